//! `calldesk-bundle`: packages the already built release app with the Tauri bundler (the
//! `tauri-bundler` library behind `cargo tauri build`, which cannot find our app: its
//! tauri.conf.json is at the repository root, not in src-tauri). Run by `cargo xtask package`.
//!
//! ```text
//! calldesk-bundle --config <tauri.conf.json> --out-dir <dir with the release binary> [--appimage]
//! ```
//!
//! Reads the bundle settings from tauri.conf.json the way the CLI does (product name, version,
//! identifier, icons, category, descriptions, `bundle > linux > deb`, the deep-link plugin's
//! schemes) and adds the Debian dependencies the CLI adds. Bundles go to `<out-dir>/bundle/…`.
//! Prints one line per result on stdout: `deb <path>`, `appimage <path>`, or
//! `appimage-skipped <reason>`.

// A command-line tool: printing to stdout is its interface.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use anyhow::{Context as _, Result, bail};
use tauri_bundler::{
    AppCategory, AppImageSettings, BundleBinary, BundleSettings, DebianSettings, PackageSettings,
    PackageType, Settings, SettingsBuilder,
};
use tauri_utils::config::{Config, DeepLinkProtocol};

/// What `cargo tauri build` adds to the package's Depends on Linux: WebKitGTK and GTK always,
/// the Ayatana indicator library when tauri's `tray-icon` feature is on (src-tauri uses it).
const CLI_DEB_DEPENDS: [&str; 3] = [
    "libayatana-appindicator3-1",
    "libwebkit2gtk-4.1-0",
    "libgtk-3-0",
];

/// The tools tauri-bundler 2.x's AppImage step needs, which it downloads from GitHub into
/// `~/.cache/tauri` unless they are there already (see its `linux/appimage/linuxdeploy.rs`;
/// the linuxdeploy build is pinned by commit in the bundler).
const APPIMAGE_TOOLS: [&str; 2] = ["AppRun-{arch}", "linuxdeploy-07333c6-{arch}.AppImage"];

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("calldesk-bundle: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Args {
    config: PathBuf,
    out_dir: PathBuf,
    appimage: bool,
}

fn parse_args() -> Result<Args> {
    const USAGE: &str =
        "usage: calldesk-bundle --config <tauri.conf.json> --out-dir <dir> [--appimage]";
    let mut config = None;
    let mut out_dir = None;
    let mut appimage = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config") => config = args.next().map(PathBuf::from),
            Some("--out-dir") => out_dir = args.next().map(PathBuf::from),
            Some("--appimage") => appimage = true,
            _ => bail!("unexpected argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        config: config.context(USAGE)?,
        out_dir: out_dir.context(USAGE)?,
        appimage,
    })
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config: Config = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid Tauri 2 config", args.config.display()))?;
    // Relative paths in the config are relative to its folder (as for tauri-build).
    let config_dir = args
        .config
        .parent()
        .context("the config path has no parent folder")?;
    let settings = |package_type| settings(&config, config_dir, &args.out_dir, package_type);

    let debs = bundle(&settings(PackageType::Deb)?)?;
    for deb in debs {
        println!("deb {}", deb.display());
    }
    if args.appimage {
        match appimage_tools_missing() {
            Some(reason) => println!("appimage-skipped {reason}"),
            None => {
                for appimage in bundle(&settings(PackageType::AppImage)?)? {
                    println!("appimage {}", appimage.display());
                }
            }
        }
    }
    Ok(())
}

/// Runs the bundler for one package type and returns the files it made.
fn bundle(settings: &Settings) -> Result<Vec<PathBuf>> {
    let bundles = tauri_bundler::bundle_project(settings).context("the Tauri bundler failed")?;
    let paths: Vec<PathBuf> = bundles.into_iter().flat_map(|b| b.bundle_paths).collect();
    if paths.is_empty() {
        bail!("the Tauri bundler made no package");
    }
    Ok(paths)
}

/// The bundler's settings for one package type, from tauri.conf.json.
fn settings(
    config: &Config,
    config_dir: &Path,
    out_dir: &Path,
    package_type: PackageType,
) -> Result<Settings> {
    let product_name = config
        .product_name
        .clone()
        .context("tauri.conf.json has no productName")?;
    let version = config
        .version
        .clone()
        .context("tauri.conf.json has no version")?;
    let main_binary = config
        .main_binary_name
        .clone()
        .unwrap_or_else(|| product_name.clone());
    let bundle = &config.bundle;
    let deb = &bundle.linux.deb;
    let path = |p: &PathBuf| config_dir.join(p);

    let mut depends = deb.depends.clone().unwrap_or_default();
    for dep in CLI_DEB_DEPENDS {
        if !depends.iter().any(|d| d == dep) {
            depends.push(dep.to_owned());
        }
    }
    let category = bundle
        .category
        .as_deref()
        .map(|name| {
            AppCategory::from_str(name).map_err(|hint| match hint {
                Some(hint) => {
                    anyhow::anyhow!("invalid bundle category {name:?}, did you mean {hint:?}?")
                }
                None => anyhow::anyhow!("invalid bundle category {name:?}"),
            })
        })
        .transpose()?;

    let bundle_settings = BundleSettings {
        identifier: Some(config.identifier.clone()),
        publisher: bundle.publisher.clone(),
        homepage: bundle.homepage.clone(),
        icon: Some(
            bundle
                .icon
                .iter()
                .map(|icon| config_dir.join(icon).to_string_lossy().into_owned())
                .collect(),
        ),
        copyright: bundle.copyright.clone(),
        license: bundle.license.clone(),
        category,
        short_description: bundle.short_description.clone(),
        long_description: bundle.long_description.clone(),
        deep_link_protocols: deep_link_protocols(config)?,
        deb: DebianSettings {
            depends: Some(depends),
            recommends: deb.recommends.clone(),
            provides: deb.provides.clone(),
            conflicts: deb.conflicts.clone(),
            replaces: deb.replaces.clone(),
            files: deb
                .files
                .iter()
                .map(|(to, from)| (to.clone(), path(from)))
                .collect(),
            desktop_template: deb.desktop_template.as_ref().map(path),
            section: deb.section.clone(),
            priority: deb.priority.clone(),
            changelog: deb.changelog.as_ref().map(path),
            pre_install_script: deb.pre_install_script.as_ref().map(path),
            post_install_script: deb.post_install_script.as_ref().map(path),
            pre_remove_script: deb.pre_remove_script.as_ref().map(path),
            post_remove_script: deb.post_remove_script.as_ref().map(path),
        },
        appimage: AppImageSettings {
            files: bundle
                .linux
                .appimage
                .files
                .iter()
                .map(|(to, from)| (to.clone(), path(from)))
                .collect(),
            bundle_media_framework: bundle.linux.appimage.bundle_media_framework,
            ..AppImageSettings::default()
        },
        ..BundleSettings::default()
    };
    SettingsBuilder::new()
        .project_out_directory(out_dir)
        .package_types(vec![package_type])
        .package_settings(PackageSettings {
            product_name,
            version,
            description: bundle.short_description.clone().unwrap_or_default(),
            homepage: bundle.homepage.clone(),
            authors: None,
            default_run: Some(main_binary.clone()),
        })
        .bundle_settings(bundle_settings)
        .binaries(vec![BundleBinary::new(main_binary, true)])
        .build()
        .context("invalid bundle settings")
}

/// `plugins > deep-link > desktop`: one protocol or a list (as the CLI reads it).
fn deep_link_protocols(config: &Config) -> Result<Option<Vec<DeepLinkProtocol>>> {
    let Some(desktop) = config
        .plugins
        .0
        .get("deep-link")
        .and_then(|plugin| plugin.get("desktop"))
    else {
        return Ok(None);
    };
    let protocols = if desktop.is_array() {
        serde_json::from_value(desktop.clone())
    } else {
        serde_json::from_value(desktop.clone()).map(|one| vec![one])
    };
    protocols
        .map(Some)
        .context("cannot read plugins > deep-link > desktop in tauri.conf.json")
}

/// Why the AppImage cannot be built offline, or `None` when the bundler's tools are on disk.
fn appimage_tools_missing() -> Option<String> {
    let arch = std::env::consts::ARCH;
    // Where the bundler looks (`dirs::cache_dir()`), as it does not use a local tools folder.
    let Some(cache) = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
    else {
        return Some("neither XDG_CACHE_HOME nor HOME is set: no cache for its tools".to_owned());
    };
    let cache = cache.join("tauri");
    let missing: Vec<String> = APPIMAGE_TOOLS
        .iter()
        .map(|name| name.replace("{arch}", arch))
        .filter(|name| !cache.join(name).is_file())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the Tauri bundler's AppImage step needs linuxdeploy and AppRun, which it downloads \
             from GitHub (not reachable here, and packaged neither by Debian nor on crates.io, \
             npm or PyPI); missing in {}: {}",
            cache.display(),
            missing.join(", ")
        )
    })
}

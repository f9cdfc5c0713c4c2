//! `cargo xtask package`: the Debian package of the desktop app, and an AppImage when that can
//! be built offline. Builds the UI and the release app (as the benchmarks do), runs the Tauri
//! bundler through `xtask/bundle` (a separate crate outside the workspace, so that CI does not
//! compile the bundler; its Cargo.toml says why), then checks the .deb itself: control fields,
//! files, the .desktop entry (the tel:/callto: handler) and the binary. Needs `dpkg-deb`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{app, procs, steps};

/// The Tauri config, at the repository root (src-tauri/build.rs points tauri-build at it).
const CONFIG: &str = "tauri.conf.json";
/// What the package must depend on to start: WebKitGTK, GTK and the tray's indicator library.
const DEPENDS: [&str; 3] = [
    "libwebkit2gtk-4.1-0",
    "libgtk-3-0",
    "libayatana-appindicator3-1",
];

/// What the package must hold, from tauri.conf.json.
#[derive(Debug)]
struct Expected {
    product: String,
    version: String,
    binary: String,
    /// URL schemes the app handles (`plugins > deep-link > desktop > schemes`).
    schemes: Vec<String>,
    /// Icon paths in the package, from the PNGs in `bundle > icon`.
    icons: Vec<String>,
}

/// The bundles the Tauri bundler made.
#[derive(Debug, Default)]
struct Bundles {
    deb: Option<PathBuf>,
    appimage: Option<PathBuf>,
    appimage_skipped: Option<String>,
}

pub fn run() -> Result<()> {
    let started = Instant::now();
    if procs::find_program("dpkg-deb").is_none() {
        bail!("dpkg-deb not found: packaging needs a Debian-based system (package dpkg)");
    }
    let root = steps::repo_root();
    let expected = Expected::read(&root)?;
    app::build_ui(&root)?;
    let app = app::build_desktop(&root, true)?;
    let built = started.elapsed();

    let bundling = Instant::now();
    let bundles = bundle(&root, &app)?;
    let deb = bundles
        .deb
        .context("the bundler reported no .deb package")?;
    let checked = check_deb(&deb, &expected)?;
    let size = fs::metadata(&deb)?.len();

    println!();
    println!(
        "package: {} ({:.1} MiB)",
        deb.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    println!("checked: {checked}");
    match (&bundles.appimage, &bundles.appimage_skipped) {
        (Some(appimage), _) => println!(
            "appimage: {} ({:.1} MiB)",
            appimage.display(),
            fs::metadata(appimage)?.len() as f64 / (1024.0 * 1024.0)
        ),
        (None, Some(reason)) => println!("appimage: skipped: {reason}"),
        (None, None) => println!("appimage: skipped"),
    }
    println!(
        "time: UI and release app {:.0} s, bundling and checks {:.0} s",
        built.as_secs_f64(),
        bundling.elapsed().as_secs_f64()
    );
    // apt-get takes a file only as a path with a slash in it.
    let deb_arg = match deb.strip_prefix(&root) {
        Ok(relative) => Path::new(".").join(relative),
        Err(_) => deb.clone(),
    };
    println!("install: sudo apt-get install {}", deb_arg.display());
    Ok(())
}

impl Expected {
    fn read(root: &Path) -> Result<Self> {
        let path = root.join(CONFIG);
        let config: Value = serde_json::from_str(
            &fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?;
        let text = |pointer: &str| {
            config
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{CONFIG} has no {pointer}"))
        };
        let product = text("/productName")?;
        let binary = text("/mainBinaryName").unwrap_or_else(|_| product.clone());
        let strings = |pointer: &str| -> Vec<String> {
            config
                .pointer(pointer)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let mut icons = Vec::new();
        for icon in strings("/bundle/icon")
            .iter()
            .filter(|icon| icon.ends_with(".png"))
        {
            let (width, height) = png_size(&root.join(icon))?;
            // As the bundler names them (`@2` for the @2x variants).
            let density = if icon.trim_end_matches(".png").ends_with("@2x") {
                "@2"
            } else {
                ""
            };
            let path =
                format!("usr/share/icons/hicolor/{width}x{height}{density}/apps/{binary}.png");
            if !icons.contains(&path) {
                icons.push(path);
            }
        }
        if icons.is_empty() {
            bail!("{CONFIG} > bundle > icon lists no PNG icon");
        }
        Ok(Self {
            version: text("/version")?,
            schemes: strings("/plugins/deep-link/desktop/schemes"),
            product,
            binary,
            icons,
        })
    }
}

/// Width and height from a PNG's header.
fn png_size(path: &Path) -> Result<(u32, u32)> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let field = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    match (
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        field(16),
        field(20),
    ) {
        (true, Some(width), Some(height)) => Ok((width, height)),
        _ => bail!("{} is not a PNG image", path.display()),
    }
}

/// Builds and runs `xtask/bundle` on the release app; it writes `<app dir>/bundle/…`.
fn bundle(root: &Path, app: &Path) -> Result<Bundles> {
    let target = steps::target_dir(root)?.join("bundler");
    procs::run(
        procs::cargo()
            .args(["build", "--locked", "--manifest-path"])
            .arg(root.join("xtask/bundle/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .current_dir(root),
    )
    .context("building the packaging tool (xtask/bundle) failed")?;
    let out_dir = app
        .parent()
        .context("the app binary has no parent folder")?;
    let mut cmd = Command::new(target.join("debug").join("calldesk-bundle"));
    cmd.arg("--config")
        .arg(root.join(CONFIG))
        .arg("--out-dir")
        .arg(out_dir)
        .arg("--appimage");
    println!("$ {}", procs::display(&cmd));
    let mut bundles = Bundles::default();
    for line in procs::output(&mut cmd)?.lines() {
        match line.split_once(' ') {
            Some(("deb", path)) => bundles.deb = Some(PathBuf::from(path)),
            Some(("appimage", path)) => bundles.appimage = Some(PathBuf::from(path)),
            Some(("appimage-skipped", reason)) => bundles.appimage_skipped = Some(reason.into()),
            _ => println!("{line}"),
        }
    }
    Ok(bundles)
}

/// Checks the package; returns what was checked, for the summary.
fn check_deb(deb: &Path, expected: &Expected) -> Result<String> {
    let dpkg_deb = |args: &[&str]| {
        procs::output(Command::new("dpkg-deb").args(args).arg(deb))
            .with_context(|| format!("{} is not a valid Debian package", deb.display()))
    };

    // Control fields.
    println!("$ dpkg-deb --info {}", deb.display());
    print!("{}", dpkg_deb(&["--info"])?);
    let fields = control_fields(&dpkg_deb(&["--field"])?);
    let field = |name: &str| fields.get(name).map_or("", String::as_str);
    let arch = procs::output(Command::new("dpkg").arg("--print-architecture"))?;
    for (name, want) in [
        // The bundler names the package after the product name in kebab case: "calldesk".
        ("Package", expected.product.as_str()),
        ("Version", expected.version.as_str()),
        ("Architecture", arch.trim()),
    ] {
        if field(name) != want {
            bail!(
                "the package's {name} is {:?}, expected {want:?}",
                field(name)
            );
        }
    }
    let depends: Vec<&str> = field("Depends")
        .split([',', '|'])
        .filter_map(|dep| dep.split_whitespace().next())
        .collect();
    let missing: Vec<&str> = DEPENDS
        .into_iter()
        .filter(|dep| !depends.contains(dep))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the package's Depends ({:?}) lacks {}",
            field("Depends"),
            missing.join(", ")
        );
    }

    // Files.
    let contents = dpkg_deb(&["--contents"])?;
    let files: Vec<&str> = contents
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(|path| path.trim_start_matches("./"))
        .collect();
    let binary = format!("usr/bin/{}", expected.binary);
    let desktop = format!("usr/share/applications/{}.desktop", expected.product);
    let required: Vec<&str> = [binary.as_str(), desktop.as_str()]
        .into_iter()
        .chain(expected.icons.iter().map(String::as_str))
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|path| !files.contains(path))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the package lacks {}; it holds:\n{}",
            missing.join(", "),
            contents.trim_end()
        );
    }

    // The unpacked .desktop entry and binary.
    let unpacked = procs::TempDir::new("calldesk-deb")?;
    procs::output(
        Command::new("dpkg-deb")
            .arg("--extract")
            .arg(deb)
            .arg(unpacked.path()),
    )?;
    let desktop_path = unpacked.path().join(&desktop);
    check_desktop_entry(&fs::read_to_string(&desktop_path)?, expected)
        .with_context(|| format!("/{desktop} in the package is wrong"))?;
    if procs::find_program("desktop-file-validate").is_some() {
        let warnings = procs::output(Command::new("desktop-file-validate").arg(&desktop_path))
            .with_context(|| format!("/{desktop} in the package is not a valid desktop entry"))?;
        print!("{warnings}");
    }
    check_binary(&unpacked.path().join(&binary), &expected.binary)?;

    Ok(format!(
        "Package/Version/Architecture/Depends, {} files ({} required), /{desktop} (Exec with %u, \
         MimeType {}), /{binary} (ELF executable for this machine, patched for the deb)",
        contents
            .lines()
            .filter(|line| line.starts_with('-'))
            .count(),
        required.len(),
        expected
            .schemes
            .iter()
            .map(|s| format!("{s}:"))
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

/// `Name: value` fields of a control file (continuation lines folded into their field).
fn control_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|name| fields.get_mut(name)) {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.insert(name.to_owned(), value.trim().to_owned());
            last = Some(name.to_owned());
        }
    }
    fields
}

/// The entry starts the app with the link (`%u`) and registers it for the app's URL schemes.
fn check_desktop_entry(text: &str, expected: &Expected) -> Result<()> {
    let entries: BTreeMap<&str, &str> = text
        .lines()
        .skip_while(|line| line.trim() != "[Desktop Entry]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .collect();
    let entry = |key: &str| entries.get(key).copied().unwrap_or_default();
    if entry("Type") != "Application" {
        bail!("Type is {:?}, not Application:\n{text}", entry("Type"));
    }
    let mut exec = entry("Exec").split_whitespace();
    let program = exec.next().unwrap_or_default();
    if program != expected.binary && program != format!("/usr/bin/{}", expected.binary) {
        bail!("Exec does not start {}:\n{text}", expected.binary);
    }
    if !exec.any(|arg| arg == "%u" || arg == "%U") {
        bail!("Exec has no %u, so links would not reach the app:\n{text}");
    }
    let mime = entry("MimeType");
    let want: String = expected
        .schemes
        .iter()
        .map(|scheme| format!("x-scheme-handler/{scheme};"))
        .collect();
    if mime != want {
        bail!("MimeType is {mime:?}, expected {want:?}:\n{text}");
    }
    Ok(())
}

/// An executable ELF file for this machine, named as expected, that the bundler patched with the
/// package type (tauri reads it at run time); its shared libraries resolve. Not started: it is
/// the GUI.
fn check_binary(path: &Path, name: &str) -> Result<()> {
    if path.file_name().and_then(|n| n.to_str()) != Some(name) {
        bail!("{} is not named {name}", path.display());
    }
    let bytes = fs::read(path).with_context(|| format!("the package has no {}", path.display()))?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o111 == 0 {
        bail!("/usr/bin/{name} in the package is not executable (mode {mode:o})");
    }
    // e_machine of this machine's architecture.
    let machine: u16 = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "riscv64" => 243,
        other => bail!("unexpected architecture {other}"),
    };
    let half = |at: usize| {
        bytes
            .get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    };
    let elf = bytes.starts_with(b"\x7fELF")
        && bytes.get(4) == Some(&2) // 64-bit
        && bytes.get(5) == Some(&1) // little-endian
        && matches!(half(16), Some(2 | 3)) // executable or position-independent executable
        && half(18) == Some(machine);
    if !elf {
        bail!("/usr/bin/{name} in the package is not an ELF executable for this machine");
    }
    if !bytes
        .windows(27)
        .any(|window| window == b"__TAURI_BUNDLE_TYPE_VAR_DEB")
    {
        bail!("/usr/bin/{name} in the package lacks the bundler's deb marker");
    }
    if procs::find_program("ldd").is_some() {
        let libraries = procs::output(Command::new("ldd").arg(path))?;
        let missing: Vec<&str> = libraries
            .lines()
            .filter(|line| line.contains("not found"))
            .map(str::trim)
            .collect();
        if !missing.is_empty() {
            bail!(
                "/usr/bin/{name} needs libraries this machine lacks:\n  {}",
                missing.join("\n  ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Expected, check_desktop_entry, control_fields};

    fn expected() -> Expected {
        Expected {
            product: "calldesk".into(),
            version: "0.1.0".into(),
            binary: "calldesk-desktop".into(),
            schemes: vec!["tel".into(), "callto".into()],
            icons: Vec::new(),
        }
    }

    #[test]
    fn reads_control_fields() {
        let fields = control_fields(
            "Package: calldesk\nVersion: 0.1.0\nDepends: libgtk-3-0, libwebkit2gtk-4.1-0\n\
             Description: Softphone\n calldesk pops calls.\n .\n More.\n",
        );
        assert_eq!(fields["Package"], "calldesk");
        assert_eq!(fields["Depends"], "libgtk-3-0, libwebkit2gtk-4.1-0");
        assert_eq!(
            fields["Description"],
            "Softphone\ncalldesk pops calls.\n.\nMore."
        );
    }

    #[test]
    fn desktop_entry_needs_the_link_argument_and_the_schemes() {
        let good = "[Desktop Entry]\nExec=calldesk-desktop %u\nType=Application\n\
                    MimeType=x-scheme-handler/tel;x-scheme-handler/callto;\n";
        assert!(check_desktop_entry(good, &expected()).is_ok());
        let no_arg = good.replace(" %u", "");
        assert!(check_desktop_entry(&no_arg, &expected()).is_err());
        let one_scheme = good.replace("x-scheme-handler/callto;", "");
        assert!(check_desktop_entry(&one_scheme, &expected()).is_err());
        let other_program = good.replace("calldesk-desktop", "other");
        assert!(check_desktop_entry(&other_program, &expected()).is_err());
    }
}

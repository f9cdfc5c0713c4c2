//! `calldesk admin`: the hub's tenants, operators and contacts, straight in its PostgreSQL
//! (`DATABASE_URL` or `--database-url`; connecting applies the migrations).
//!
//! - `tenant add` creates a tenant with exactly one PBX (Mango, Asterisk AMI or the demo) and
//!   prints its new `clientId` once: only its digest is stored. PBX secrets (the AMI secret,
//!   the Mango salt) are never stored: the tenant keeps the *name* of the environment variable
//!   that holds them in the hub's environment.
//! - `tenant list` never shows a secret; `tenant rotate-client-id` replaces the clientId.
//! - `operator add` reads the password from the first line of stdin (never an argument, so it
//!   stays out of the shell history and `ps`), refuses fewer than 8 characters and stores an
//!   argon2id hash; `operator list`.
//! - `contacts import FILE.csv` checks every row first (phones normalised to E.164 with the
//!   tenant's region) and imports nothing if any row is bad; then one transaction.
//!
//! Errors the user must fix (duplicates, unknown tenant, bad values, a bad CSV) exit 2 with the
//! reason ([`Fix`]); an unreachable database exits 1. The database URL's password is never
//! printed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use calldesk_calls::{Extension, NumberPlan, TenantId};
use calldesk_central::{
    CentralError, CentralStore, ContactImportRow, NewOperator, NewTenant, Operator, PbxConfig,
    Role, TenantConfig,
};

/// How long connecting to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Passwords shorter than this are refused.
const MIN_PASSWORD_CHARS: usize = 8;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// PostgreSQL URL of the hub's database, e.g. postgres://calldesk:…@db:5432/calldesk.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Tenants (enterprises): add, list, rotate the clientId.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Operators who log in to the hub.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The contacts and companies callers are identified by.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
}

#[derive(clap::Subcommand)]
enum TenantCommand {
    /// Create a tenant with one PBX (Mango, Asterisk AMI or the demo) and print its clientId
    /// (shown only once). PBX secrets are never stored: only the name of the environment
    /// variable that holds them where the hub runs.
    Add(Box<TenantAddArgs>),
    /// List tenants: id, name, number, region, PBX and how it is reached, active (no secrets).
    List,
    /// Give a tenant a new clientId (printed once); the old one stops working at once.
    RotateClientId(TenantArg),
    /// Show the tenant's disposition list (what operators choose from after a call), or
    /// replace it with `--set sale,callback,…` (a-z, 0-9, `_`, `-`; 1 to 30 codes, in the
    /// order shown). Desks on a Hub profile read it when the after-call panel opens.
    Dispositions(DispositionsArgs),
}

#[derive(clap::Args)]
struct DispositionsArgs {
    /// Tenant id (see `calldesk admin tenant list`).
    #[arg(long)]
    tenant: String,
    /// The new list, comma-separated.
    #[arg(long, value_delimiter = ',')]
    set: Option<Vec<String>>,
}

#[derive(clap::Subcommand)]
enum OperatorCommand {
    /// Add an operator; the password is read from the first line of stdin (at least 8
    /// characters), e.g. `printf '%s\n' "$PW" | calldesk admin operator add …`.
    Add(OperatorAddArgs),
    /// List a tenant's operators.
    List(TenantArg),
}

#[derive(clap::Subcommand)]
enum ContactsCommand {
    /// Import contacts from a CSV file, all or nothing.
    ///
    /// UTF-8, comma-separated, with a header row. Columns (any order, names case-insensitive):
    /// `name` (required), `company` (optional: found by name, case-insensitively, or created),
    /// and the numbers in a `phones` column (several separated by `;` or `,` — quote the field
    /// when it holds commas: "+7 495 123-45-67; 8 916 123 45 67") and/or one or more `phone`
    /// columns. Other columns are ignored. Every row needs a name and at least one number;
    /// numbers without a country code are read in the tenant's region and stored as E.164.
    /// If any row is bad, each is reported with its line number and nothing is imported.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct TenantArg {
    /// Tenant id (see `calldesk admin tenant list`).
    #[arg(long)]
    tenant: String,
}

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("pbx")
        .required(true)
        .args(["mango_key", "ami_host", "demo"])
))]
struct TenantAddArgs {
    /// Display name, e.g. "Acme Ltd".
    #[arg(long)]
    name: String,
    /// The tenant's number, 1–16 digits (e.g. 0367), unique across tenants.
    #[arg(long)]
    number: String,
    /// Tenant id (ASCII letters, digits, '-', '_') [default: a slug of --name; required when the
    /// name has no ASCII letters].
    #[arg(long)]
    id: Option<String>,
    /// Country of the tenant's numbers (ISO 3166 code) for numbers without a country code.
    #[arg(long, default_value = "RU")]
    region: String,
    /// Mango Office: the VPBX API key (ЛК → Интеграции → API коннектор).
    #[arg(long, requires = "mango_salt_env")]
    mango_key: Option<String>,
    /// Mango Office: NAME of the environment variable that holds the API salt in the hub's
    /// environment (the salt itself is never stored), e.g. MANGO_SALT_ACME.
    #[arg(long, requires = "mango_key", value_name = "VAR")]
    mango_salt_env: Option<String>,
    /// Mango Office: API base URL [default: Mango's production API].
    #[arg(long, requires = "mango_key", value_name = "URL")]
    mango_api_url: Option<String>,
    /// Asterisk: AMI host name or address.
    #[arg(long, requires_all = ["ami_user", "ami_secret_env"])]
    ami_host: Option<String>,
    /// Asterisk: AMI port [default: 5038, or 5039 with --ami-tls].
    #[arg(long, requires = "ami_host")]
    ami_port: Option<u16>,
    /// Asterisk: AMI user (a section of manager.conf).
    #[arg(long, requires = "ami_host")]
    ami_user: Option<String>,
    /// Asterisk: NAME of the environment variable that holds the AMI secret in the hub's
    /// environment (the secret itself is never stored), e.g. AMI_SECRET_ACME.
    #[arg(long, requires = "ami_host", value_name = "VAR")]
    ami_secret_env: Option<String>,
    /// Asterisk: AMI over TLS.
    #[arg(long, requires = "ami_host")]
    ami_tls: bool,
    /// Asterisk: the phones' channel technology, `pjsip` or `sip` (chan_sip).
    #[arg(
        long,
        requires = "ami_host",
        default_value = "pjsip",
        value_name = "TECH"
    )]
    ami_tech: String,
    /// Asterisk: the dialplan context click-to-call and transfers dial through.
    #[arg(long, requires = "ami_host", default_value = "from-internal")]
    ami_context: String,
    /// Asterisk: prefix international numbers are dialled with instead of `+` (e.g. 00, 810)
    /// [default: dial E.164 as it is].
    #[arg(long, requires = "ami_host", value_name = "DIGITS")]
    ami_intl_prefix: Option<String>,
    /// Asterisk: the context of the hold helper (extensions `customer` and `operator`; see the
    /// README) [default: hold is not offered].
    #[arg(long, requires = "ami_host", value_name = "CONTEXT")]
    ami_hold_context: Option<String>,
    /// Asterisk: the folder where the hub finds MixMonitor's files (the PBX's recordings
    /// folder, local or mounted; absolute) [default: recordings are listed, not stored].
    #[arg(long, requires = "ami_host", value_name = "DIR")]
    ami_recordings_dir: Option<String>,
    /// The built-in simulated PBX (demos and trials).
    #[arg(long)]
    demo: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    /// Sees their own calls.
    Operator,
    /// Sees every call of the tenant and the presence board.
    Supervisor,
    /// Supervisor, and manages the tenant.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Operator => Role::Operator,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(clap::Args)]
struct OperatorAddArgs {
    /// Tenant id (see `calldesk admin tenant list`).
    #[arg(long)]
    tenant: String,
    /// Login, 1–64 characters of letters, digits, '.', '_', '@', '-' (unique in the tenant).
    #[arg(long)]
    login: String,
    /// The operator's extension at the PBX (unique in the tenant).
    #[arg(long)]
    extension: String,
    /// SIP address or peer at the PBX, when it differs from the extension (Mango).
    #[arg(long)]
    sip: Option<String>,
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Display name, e.g. "Anna K".
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Tenant id (see `calldesk admin tenant list`); its region reads numbers without a
    /// country code.
    #[arg(long)]
    tenant: String,
    /// The CSV file (columns: see above).
    file: PathBuf,
}

/// Something the user must fix before running again: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fix(pub String);

fn fix(msg: impl Into<String>) -> anyhow::Error {
    Fix(msg.into()).into()
}

/// Duplicates, unknown rows and refused values are the user's to fix (exit 2); the rest is a
/// failure (exit 1).
fn store_error(e: CentralError) -> anyhow::Error {
    match e {
        CentralError::Duplicate { .. }
        | CentralError::Invalid(_)
        | CentralError::NotFound(_)
        | CentralError::Conflict(_) => fix(e.to_string()),
        other => anyhow::Error::new(other),
    }
}

pub fn run(args: &AdminArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &AdminArgs) -> anyhow::Result<()> {
    // Arguments are checked before connecting.
    match &args.command {
        AdminCommand::Tenant { command } => match command {
            TenantCommand::Add(a) => {
                let tenant = new_tenant(a)?;
                let store = connect(args).await?;
                let secret = store.add_tenant(&tenant).await.map_err(store_error)?;
                print_client_id(&tenant.id, &secret, "created")
            }
            TenantCommand::List => {
                let store = connect(args).await?;
                let tenants = store.tenants().await.map_err(store_error)?;
                if tenants.is_empty() {
                    eprintln!("no tenants yet: add one with `calldesk admin tenant add`");
                    return Ok(());
                }
                print_table(&tenant_table(&tenants))
            }
            TenantCommand::RotateClientId(a) => {
                let id = tenant_id(&a.tenant)?;
                let store = connect(args).await?;
                let secret = store.rotate_client_secret(&id).await.map_err(store_error)?;
                print_client_id(
                    &id,
                    &secret,
                    "has a new clientId; the old one no longer works",
                )
            }
            TenantCommand::Dispositions(a) => {
                let id = tenant_id(&a.tenant)?;
                let store = connect(args).await?;
                let codes = match &a.set {
                    Some(codes) => store
                        .set_dispositions(&id, codes)
                        .await
                        .map_err(store_error)?,
                    None => store.dispositions(&id).await.map_err(store_error)?,
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", codes.join(","))?;
                Ok(())
            }
        },
        AdminCommand::Operator { command } => match command {
            OperatorCommand::Add(a) => add_operator(args, a).await,
            OperatorCommand::List(a) => {
                let id = tenant_id(&a.tenant)?;
                let store = connect(args).await?;
                existing_tenant(&store, &id).await?;
                let operators = store.operators(&id).await.map_err(store_error)?;
                if operators.is_empty() {
                    eprintln!(
                        "tenant {id} has no operators yet: add one with `calldesk admin operator add`"
                    );
                    return Ok(());
                }
                print_table(&operator_table(&operators))
            }
        },
        AdminCommand::Contacts {
            command: ContactsCommand::Import(a),
        } => import_contacts(args, a).await,
    }
}

/// `postgres://user:***@host/db`: the URL without its password (in the userinfo or a
/// `password=` query parameter).
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return String::from("(not a URL)");
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***{host}"),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{head}{authority}{tail}")
}

/// The password of a database URL, as written and percent-decoded (to scrub error texts).
fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        out.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for kv in query.split('&') {
            if let Some((k, v)) = kv.split_once('=')
                && k.eq_ignore_ascii_case("password")
            {
                out.push(v.to_owned());
            }
        }
    }
    let decoded: Vec<String> = out.iter().map(|p| percent_decode(p)).collect();
    out.extend(decoded);
    out.retain(|p| !p.is_empty());
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every password of `url` replaced by `***`.
fn scrub(text: &str, url: &str) -> String {
    url_passwords(url)
        .iter()
        .fold(text.to_owned(), |t, p| t.replace(p.as_str(), "***"))
}

/// `host:port` of a database URL (port 5432 by default); `None` when it names no host (a Unix
/// socket given in the query, say).
fn url_host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    let has_port = match hostport.rfind(']') {
        Some(close) => hostport[close..].contains(':'),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    })
}

async fn connect(args: &AdminArgs) -> anyhow::Result<CentralStore> {
    let url = args
        .database_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            fix("set DATABASE_URL (or pass --database-url) to the hub's PostgreSQL, e.g. postgres://calldesk@127.0.0.1:5432/calldesk")
        })?;
    let shown = redact_url(url);
    let hint = "check DATABASE_URL (or --database-url) and that the server accepts connections";
    // The pool retries a refused connection until its timeout and then hides why: try the
    // address once first, to say at once what is wrong.
    if let Some(addr) = url_host_port(url) {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(anyhow::anyhow!(
                    "cannot connect to PostgreSQL at {shown}: {e}; {hint}"
                ));
            }
            Err(_) => {
                return Err(anyhow::anyhow!(
                    "no answer from PostgreSQL at {shown} within {} s; {hint}",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
        }
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, CentralStore::connect(url)).await {
        Err(_) => Err(anyhow::anyhow!(
            "no answer from PostgreSQL at {shown} within {} s; {hint}",
            CONNECT_TIMEOUT.as_secs()
        )),
        Ok(Ok(store)) => Ok(store),
        Ok(Err(CentralError::Connect(e))) => {
            let e = scrub(&e.to_string(), url);
            Err(anyhow::anyhow!(
                "cannot connect to PostgreSQL at {shown}: {e}; {hint}"
            ))
        }
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "{} (database {shown})",
            scrub(&e.to_string(), url)
        )),
    }
}

fn tenant_id(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::new(raw.trim()).map_err(|e| fix(format!("--tenant: {e}")))
}

async fn existing_tenant(store: &CentralStore, id: &TenantId) -> anyhow::Result<TenantConfig> {
    store
        .tenant(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| fix(format!("no tenant {id}; see `calldesk admin tenant list`")))
}

/// The id a tenant gets from its name: ASCII letters and digits, lowercased, other runs of
/// characters as one '-', at most 64 characters. `None` when the name has no ASCII letter.
fn slug(name: &str) -> Option<String> {
    if !name.chars().any(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out.truncate(64);
    Some(out.trim_end_matches('-').to_owned())
}

/// The name of an environment variable (checked here so a secret pasted by mistake is not
/// echoed back).
fn env_name(flag: &str, value: &str, what: &str) -> anyhow::Result<String> {
    let mut bytes = value.bytes();
    let ok = value.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(fix(format!(
            "{flag} takes the NAME of the environment variable that holds {what} in the hub's environment (letters, digits and '_', e.g. MANGO_SALT_ACME), not {what} itself; the value given is not such a name (not shown)"
        )));
    }
    if std::env::var_os(value).is_none() {
        eprintln!(
            "note: {value} is not set here; the hub reads {what} from {value} in its own environment"
        );
    }
    Ok(value.to_owned())
}

fn new_tenant(a: &TenantAddArgs) -> anyhow::Result<NewTenant> {
    let id = match &a.id {
        Some(id) => id.trim().to_owned(),
        None => slug(&a.name).ok_or_else(|| {
            fix(format!(
                "the name `{}` has no ASCII letters to make a tenant id from: pass --id (ASCII letters, digits, '-', '_'), e.g. --id acme",
                a.name.escape_debug()
            ))
        })?,
    };
    let id = TenantId::new(id).map_err(|e| fix(format!("--id: {e}")))?;
    NumberPlan::new(&a.region).map_err(|e| fix(format!("--region: {e}")))?;
    let pbx = if let Some(key) = &a.mango_key {
        PbxConfig::Mango {
            api_url: a.mango_api_url.clone(),
            key: key.trim().to_owned(),
            salt_env: env_name(
                "--mango-salt-env",
                a.mango_salt_env.as_deref().unwrap_or_default(),
                "the Mango API salt",
            )?,
        }
    } else if let Some(host) = &a.ami_host {
        PbxConfig::Asterisk {
            host: host.trim().to_owned(),
            port: a.ami_port.unwrap_or(if a.ami_tls { 5039 } else { 5038 }),
            user: a.ami_user.clone().unwrap_or_default(),
            secret_env: env_name(
                "--ami-secret-env",
                a.ami_secret_env.as_deref().unwrap_or_default(),
                "the AMI secret",
            )?,
            tls: a.ami_tls,
            dialplan: calldesk_central::AmiDialplan {
                tech: a.ami_tech.clone(),
                context: a.ami_context.clone(),
                international_prefix: a.ami_intl_prefix.clone(),
                hold_context: a.ami_hold_context.clone(),
                recordings_dir: a.ami_recordings_dir.clone(),
            },
        }
    } else {
        PbxConfig::Demo
    };
    Ok(NewTenant {
        id,
        name: a.name.clone(),
        number: a.number.trim().to_owned(),
        region: a.region.trim().to_ascii_uppercase(),
        pbx,
    })
}

fn print_client_id(id: &TenantId, secret: &str, what: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "tenant {id} {what}")?;
    writeln!(out, "clientId: {secret}")?;
    writeln!(
        out,
        "This clientId is shown only once: put it in the desktops' Hub profile now. Only its digest is stored; if it is lost, run `calldesk admin tenant rotate-client-id --tenant {id}`."
    )?;
    out.flush()?;
    Ok(())
}

/// Text from the database, safe for a table cell.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn yes_no(b: bool) -> String {
    String::from(if b { "yes" } else { "no" })
}

/// How the hub reaches the PBX, without any secret.
fn pbx_reach(pbx: &PbxConfig) -> (String, String) {
    match pbx {
        PbxConfig::Asterisk {
            host,
            port,
            user,
            secret_env,
            tls,
            ..
        } => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let tls = if *tls { " tls" } else { "" };
            (
                String::from("asterisk"),
                format!("{user}@{host}:{port}{tls}, secret in ${secret_env}"),
            )
        }
        PbxConfig::Mango {
            api_url,
            key,
            salt_env,
        } => {
            let api = api_url
                .as_deref()
                .map(|u| format!(", api {u}"))
                .unwrap_or_default();
            (
                String::from("mango"),
                format!("key {key}, salt in ${salt_env}{api}"),
            )
        }
        PbxConfig::Demo => (String::from("demo"), String::from("-")),
    }
}

fn tenant_table(tenants: &[TenantConfig]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "ID",
            "NAME",
            "NUMBER",
            "REGION",
            "PBX",
            "CONNECTION",
            "ACTIVE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for t in tenants {
        let (kind, reach) = pbx_reach(&t.pbx);
        rows.push(vec![
            t.id.to_string(),
            cell(&t.name),
            cell(&t.number),
            cell(&t.region),
            kind,
            cell(&reach),
            yes_no(t.active),
        ]);
    }
    rows
}

fn operator_table(operators: &[Operator]) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["LOGIN", "NAME", "ROLE", "EXTENSION", "SIP", "ACTIVE", "ID"]
            .map(String::from)
            .to_vec(),
    ];
    for o in operators {
        rows.push(vec![
            cell(&o.login),
            cell(o.name.as_deref().unwrap_or("-")),
            o.role.as_str().to_owned(),
            o.extension.to_string(),
            cell(o.sip.as_deref().unwrap_or("-")),
            yes_no(o.active),
            o.id.to_string(),
        ]);
    }
    rows
}

/// Columns padded to their widest cell, two spaces apart.
fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - c.chars().count() + 2;
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn print_table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(format_table(rows).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The first line of stdin without its line ending.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "Type the operator's password and press Enter (the input is visible; to avoid that, pipe it: printf '%s\\n' \"$PW\" | calldesk admin operator add …)"
        );
    }
    let mut line = String::new();
    let n = stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    if n == 0 {
        return Err(fix(
            "no password on stdin: pipe it in, e.g. printf '%s\\n' \"$PW\" | calldesk admin operator add …",
        ));
    }
    if let Some(l) = line.strip_suffix('\n') {
        line.truncate(l.len());
    }
    if let Some(l) = line.strip_suffix('\r') {
        line.truncate(l.len());
    }
    let chars = line.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(fix(format!(
            "the password has {chars} characters; at least {MIN_PASSWORD_CHARS} are needed"
        )));
    }
    Ok(line)
}

async fn add_operator(args: &AdminArgs, a: &OperatorAddArgs) -> anyhow::Result<()> {
    let tenant = tenant_id(&a.tenant)?;
    let extension =
        Extension::new(a.extension.trim()).map_err(|e| fix(format!("--extension: {e}")))?;
    let store = connect(args).await?;
    existing_tenant(&store, &tenant).await?;
    let password = read_password()?;
    let password_hash =
        calldesk_central::password::hash_password(&password).map_err(store_error)?;
    drop(password);
    let op = store
        .add_operator(&NewOperator {
            tenant: tenant.clone(),
            login: a.login.trim().to_owned(),
            name: a.name.clone(),
            password_hash,
            role: a.role.into(),
            extension,
            sip: a.sip.clone(),
        })
        .await
        .map_err(store_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "operator {} added to tenant {tenant}: id {}, extension {}, role {}",
        cell(&op.login),
        op.id,
        op.extension,
        op.role.as_str()
    )?;
    out.flush()?;
    Ok(())
}

/// A row of the CSV that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BadRow {
    /// 1-based line where the row starts (the header is line 1).
    line: u64,
    reason: String,
}

#[derive(Debug, PartialEq, Eq)]
enum CsvProblem {
    /// The header is unusable: nothing can be read.
    Header(String),
    Rows(Vec<BadRow>),
}

/// The contacts of a CSV file (see `contacts import --help`), every phone as E.164; or every
/// bad row. Also returns the names of the ignored columns.
fn parse_contacts(
    data: &[u8],
    plan: &NumberPlan,
) -> Result<(Vec<ContactImportRow>, Vec<String>), CsvProblem> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| CsvProblem::Header(format!("line 1: cannot read the header: {e}")))?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
        .collect();
    let find = |wanted: &str| -> Result<Option<usize>, CsvProblem> {
        let mut found = names.iter().enumerate().filter(|(_, n)| *n == wanted);
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(CsvProblem::Header(format!(
                "line 1: the column `{wanted}` appears twice"
            ))),
            (first, None) => Ok(first.map(|(i, _)| i)),
        }
    };
    let name_col = find("name")?.ok_or_else(|| {
        CsvProblem::Header(String::from(
            "line 1: the header needs a `name` column (columns: name, company, phones)",
        ))
    })?;
    let company_col = find("company")?;
    let phone_cols: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == "phones" || *n == "phone")
        .map(|(i, _)| i)
        .collect();
    if phone_cols.is_empty() {
        return Err(CsvProblem::Header(String::from(
            "line 1: the header needs a `phones` column (or `phone` columns)",
        )));
    }
    let ignored: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != name_col && Some(*i) != company_col && !phone_cols.contains(i))
        .map(|(_, n)| n.clone())
        .collect();

    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut last_line = 1;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(last_line + 1, csv::Position::line);
                last_line = line;
                bad.push(BadRow {
                    line,
                    reason: format!("not readable as CSV: {e}"),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        };
        let line = record.position().map_or(last_line + 1, csv::Position::line);
        last_line = line;
        let mut reasons = Vec::new();
        let name = record.get(name_col).unwrap_or_default().trim();
        if name.is_empty() {
            reasons.push(String::from("the name is empty"));
        }
        let company = company_col
            .and_then(|i| record.get(i))
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let mut phones: Vec<String> = Vec::new();
        for raw in phone_cols
            .iter()
            .filter_map(|&i| record.get(i))
            .flat_map(|field| field.split([';', ',']))
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match plan.parse(raw) {
                Ok(n) => {
                    if !phones.iter().any(|p| p == n.e164()) {
                        phones.push(n.e164().to_owned());
                    }
                }
                Err(e) => reasons.push(format!("phone {e}")),
            }
        }
        if phones.is_empty() && reasons.iter().all(|r| !r.starts_with("phone")) {
            reasons.push(String::from("no phone number"));
        }
        if reasons.is_empty() {
            rows.push(ContactImportRow {
                name: name.to_owned(),
                company: company.map(str::to_owned),
                phones,
            });
        } else {
            bad.push(BadRow {
                line,
                reason: reasons.join("; "),
            });
        }
    }
    if bad.is_empty() {
        Ok((rows, ignored))
    } else {
        Err(CsvProblem::Rows(bad))
    }
}

/// At most this many bad rows are listed.
const MAX_BAD_ROWS_SHOWN: usize = 100;

async fn import_contacts(args: &AdminArgs, a: &ImportArgs) -> anyhow::Result<()> {
    let tenant = tenant_id(&a.tenant)?;
    let file = a.file.display().to_string();
    let data = std::fs::read(&a.file).map_err(|e| fix(format!("cannot read {file}: {e}")))?;
    let store = connect(args).await?;
    let config = existing_tenant(&store, &tenant).await?;
    let plan = NumberPlan::new(&config.region)
        .with_context(|| format!("tenant {tenant} has a bad region"))?;
    let rows = match parse_contacts(&data, &plan) {
        Ok((rows, ignored)) => {
            if !ignored.is_empty() {
                eprintln!("{file}: ignored columns: {}", ignored.join(", "));
            }
            rows
        }
        Err(CsvProblem::Header(why)) => {
            return Err(fix(format!("{file}:{why}; nothing was imported")));
        }
        Err(CsvProblem::Rows(bad)) => {
            for b in bad.iter().take(MAX_BAD_ROWS_SHOWN) {
                eprintln!("{file}: line {}: {}", b.line, cell(&b.reason));
            }
            if bad.len() > MAX_BAD_ROWS_SHOWN {
                eprintln!("{file}: … and {} more", bad.len() - MAX_BAD_ROWS_SHOWN);
            }
            let rows = if bad.len() == 1 { "row is" } else { "rows are" };
            return Err(fix(format!(
                "{file}: {} {rows} bad (listed above); nothing was imported — fix them and run again",
                bad.len()
            )));
        }
    };
    if rows.is_empty() {
        return Err(fix(format!("{file} has no contacts (only a header)")));
    }
    let report = store
        .import_contacts(&tenant, &rows)
        .await
        .map_err(store_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "contacts={}", report.contacts)?;
    writeln!(out, "companies_created={}", report.companies_created)?;
    writeln!(out, "phones={}", report.phones)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_ascii_and_need_a_letter() {
        assert_eq!(slug("Acme Corp."), Some("acme-corp".into()));
        assert_eq!(slug("  R&D -- Team 42 "), Some("r-d-team-42".into()));
        assert_eq!(slug("Ромашка Ltd"), Some("ltd".into()));
        assert_eq!(slug("Ромашка"), None);
        assert_eq!(slug("2024"), None);
        let long = slug(&"ab ".repeat(40)).unwrap();
        assert!(long.len() <= 64 && !long.ends_with('-'), "{long}");
        assert!(TenantId::new(long).is_ok());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("postgres://calldesk:s3cr%40t@db:5432/calldesk?sslmode=require"),
            "postgres://calldesk:***@db:5432/calldesk?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact_url("postgresql://u@h/db?password=hunter22&x=1"),
            "postgresql://u@h/db?password=***&x=1"
        );
        assert_eq!(redact_url("garbage"), "(not a URL)");
        assert_eq!(
            url_host_port("postgres://u:p@db/x").as_deref(),
            Some("db:5432")
        );
        assert_eq!(
            url_host_port("postgres://db:6432").as_deref(),
            Some("db:6432")
        );
        assert_eq!(
            url_host_port("postgres://[::1]/x").as_deref(),
            Some("[::1]:5432")
        );
        assert_eq!(
            url_host_port("postgres://u@[::1]:7/x").as_deref(),
            Some("[::1]:7")
        );
        assert_eq!(url_host_port("postgres:///db?host=/run/postgresql"), None);
        let url = "postgres://u:p%40ss@h/db";
        assert_eq!(
            scrub("auth failed for p%40ss and p@ss", url),
            "auth failed for *** and ***"
        );
    }

    #[test]
    fn env_names_are_never_echoed() {
        let e = env_name("--mango-salt-env", "the actual salt!", "the Mango API salt")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("actual"), "{e}");
        assert!(e.contains("NAME of the environment variable"), "{e}");
        assert!(env_name("--x", "MANGO_SALT_ACME", "the salt").is_ok());
    }

    fn plan() -> NumberPlan {
        NumberPlan::new("RU").unwrap()
    }

    #[test]
    fn a_good_csv_gives_rows_with_e164_phones() {
        let csv = "\u{feff}Name,Company,Phones,Email\n\
                   Ivan Petrov,Acme,\"+7 495 123-45-67; 8 916 123 45 67\",ivan@acme.test\n\
                   \"Anna, K\",,\"84951234568,+74951234568\",\n\
                   \n\
                   Oleg,acme,89161112233,\n";
        let (rows, ignored) = parse_contacts(csv.as_bytes(), &plan()).unwrap();
        assert_eq!(ignored, ["email"]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "Ivan Petrov");
        assert_eq!(rows[0].company.as_deref(), Some("Acme"));
        assert_eq!(rows[0].phones, ["+74951234567", "+79161234567"]);
        // Duplicates inside a row are kept once; an empty company is none.
        assert_eq!(rows[1].name, "Anna, K");
        assert_eq!(rows[1].company, None);
        assert_eq!(rows[1].phones, ["+74951234568"]);
        assert_eq!(rows[2].phones, ["+79161112233"]);
    }

    #[test]
    fn several_phone_columns_work_too() {
        let csv = "name,phone,phone\nIvan,+74951234567,89161234567\nOleg,,89161112233\n";
        let (rows, _) = parse_contacts(csv.as_bytes(), &plan()).unwrap();
        assert_eq!(rows[0].phones, ["+74951234567", "+79161234567"]);
        assert_eq!(rows[1].phones, ["+79161112233"]);
    }

    #[test]
    fn every_bad_row_is_named_by_its_line() {
        let csv = "name,company,phones\n\
                   Ivan,Acme,+74951234567\n\
                   Anna,Acme,12ab\n\
                   ,Acme,+74951234569\n\
                   \"Multi\nline\",Acme,+74951234570\n\
                   Oleg,Acme,\n\
                   Petr,Acme,123\n";
        let Err(CsvProblem::Rows(bad)) = parse_contacts(csv.as_bytes(), &plan()) else {
            panic!("bad rows accepted")
        };
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 7, 8], "{bad:?}");
        assert!(
            bad[0].reason.contains("`12ab` is not a phone number"),
            "{}",
            bad[0].reason
        );
        assert_eq!(bad[1].reason, "the name is empty");
        assert_eq!(bad[2].reason, "no phone number");
        assert!(
            bad[3].reason.contains("`123` is not a valid phone number"),
            "{}",
            bad[3].reason
        );
    }

    #[test]
    fn a_header_without_the_columns_is_refused() {
        for (csv, want) in [
            ("fullname,phones\nIvan,+74951234567\n", "`name` column"),
            ("name,company\nIvan,Acme\n", "`phones` column"),
            ("name,name,phones\n", "appears twice"),
        ] {
            match parse_contacts(csv.as_bytes(), &plan()) {
                Err(CsvProblem::Header(why)) => assert!(why.contains(want), "{why}"),
                other => panic!("{csv}: {other:?}"),
            }
        }
        let (rows, _) = parse_contacts(b"name,phones\n", &plan()).unwrap();
        assert!(rows.is_empty());
        let bad_utf8 = b"name,phones\nIv\xffan,+74951234567\n";
        let Err(CsvProblem::Rows(bad)) = parse_contacts(bad_utf8, &plan()) else {
            panic!()
        };
        assert_eq!(bad[0].line, 2);
    }

    #[test]
    fn tables_align_and_show_no_secret() {
        let t = TenantConfig {
            id: TenantId::new("acme").unwrap(),
            name: "Acme Ltd".into(),
            number: "0367".into(),
            region: "RU".into(),
            active: true,
            pbx: PbxConfig::Asterisk {
                host: "pbx.acme.test".into(),
                port: 5039,
                user: "calldesk".into(),
                secret_env: "AMI_SECRET_ACME".into(),
                tls: true,
                dialplan: calldesk_central::AmiDialplan::default(),
            },
        };
        let text = format_table(&tenant_table(&[t]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID    NAME      NUMBER  REGION  PBX       CONNECTION  "));
        assert_eq!(
            lines[1],
            "acme  Acme Ltd  0367    RU      asterisk  calldesk@pbx.acme.test:5039 tls, secret in $AMI_SECRET_ACME  yes"
        );
        assert_eq!(lines[0].find("ACTIVE"), lines[1].find("yes"));
    }
}

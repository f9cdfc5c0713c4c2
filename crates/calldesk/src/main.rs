//! `calldesk`: the command line (layer 3: wiring only).
//!
//! - `calldesk ami replay FILE...` — raw server→client AMI bytes (a capture's `.rx.raw`) through
//!   codec + tracker + call book; one JSON [`calldesk_wire::CallRecord`] per finished call on
//!   stdout, then `messages=N bytes=B seconds=S throughput_mb_s=X` on stderr. When the capture's
//!   `.timeline.jsonl` lies beside it, bytes are fed in the chunks and at the times they arrived,
//!   so ring and talk times are real; otherwise times are `null`. `--bench` repeats the in-memory
//!   path for at least 2 s and reports its throughput (no I/O in the figure).
//! - `calldesk ami tail --host H --port P --user U` — live call updates from an Asterisk: one
//!   JSON object per line on stdout (`{"update":"new|changed|ended","call":<CallRecord>}`,
//!   `{"presence":{…}}`), connection states on stderr; Ctrl-C logs off. The secret comes from
//!   `CALLDESK_AMI_SECRET`, else from the OS keyring (`tail.rs`, `secret.rs`).
//! - `calldesk ami secret set --host H --user U` — stores the secret read from stdin in the OS
//!   keyring (service `calldesk-ami`, account `U@H`).
//!
//! - `calldesk mango sign --json J` — prints the VPBX signature of `J` (key and salt from
//!   `MANGO_API_KEY`, `MANGO_API_SALT`).
//! - `calldesk mango replay FILE...` — JSON lines `{"path":"/events/call","json":"<raw json>"}`
//!   through the Mango tracker and a call book; one [`calldesk_wire::CallRecord`] per call (id =
//!   `entry_id`), as `ami replay` prints them (`mango.rs`).
//!
//! - `calldesk hub [--config hub.toml]` — runs the hub (`calldesk_hub::run`) until Ctrl-C or
//!   SIGTERM; settings from the file and the environment (`hub.rs`).
//! - `calldesk admin tenant add|list|rotate-client-id`, `admin operator add|list`,
//!   `admin contacts import FILE.csv` — the hub's tenants, operators and contacts, straight in
//!   its PostgreSQL (`DATABASE_URL` or `--database-url`). The clientId is printed once (only its
//!   digest is stored); PBX secrets are never stored, only the names of the environment
//!   variables that hold them; operator passwords come from stdin; an import is all or nothing
//!   (`admin.rs`).
//! - `calldesk load --hub URL --tenant T …` — the hub's load generator: a call centre's Mango
//!   webhooks paced open-loop at `--rate`, supervisor clients timing webhook → WebSocket
//!   delivery, `--clients` idle WebSocket clients; progress on stderr every second, the figures
//!   as `key=value` lines on stdout (`load.rs`).
//!
//! Exit codes: 0 done (or interrupted), 1 failed (e.g. the database or the hub unreachable), 2
//! something to fix first (bad arguments, no secret, a login Asterisk or the hub rejected, a
//! duplicate, an unknown tenant, a bad CSV row).

mod admin;
mod hub;
mod load;
mod mango;
mod replay;
mod secret;
mod tail;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "calldesk",
    version,
    about = "calldesk: call-centre softphone-CRM tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Asterisk AMI tools.
    Ami {
        #[command(subcommand)]
        command: AmiCommand,
    },
    /// Mango Office VPBX tools.
    Mango {
        #[command(subcommand)]
        command: MangoCommand,
    },
    /// Run the hub: Mango webhooks, AMI sessions, REST and WebSocket (DATABASE_URL,
    /// CALLDESK_JWT_SECRET, CALLDESK_BIND).
    Hub(hub::HubArgs),
    /// The hub's tenants, operators and contacts, in its database (DATABASE_URL).
    Admin(admin::AdminArgs),
    /// Load the hub: Mango webhooks at a steady rate, idle WebSocket clients, and the
    /// webhook → WebSocket latency a supervisor sees (figures as key=value lines on stdout).
    Load(Box<load::LoadArgs>),
}

#[derive(Subcommand)]
enum MangoCommand {
    /// Print the signature of a JSON string (MANGO_API_KEY and MANGO_API_SALT from the env).
    Sign(mango::SignArgs),
    /// Replay recorded webhooks (JSON lines) and print one JSON record per call.
    Replay(mango::ReplayArgs),
}

#[derive(Subcommand)]
enum AmiCommand {
    /// Replay raw AMI captures and print one JSON record per finished call.
    Replay(replay::ReplayArgs),
    /// Connect to Asterisk and print live call updates, one JSON object per line.
    Tail(tail::TailArgs),
    /// Keep AMI secrets in the OS keyring.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Read an AMI secret from stdin (one line) and store it in the OS keyring.
    Set(secret::SetArgs),
}

/// 2 for what the user must fix before trying again, 1 for the rest.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.is::<tail::LoginRejected>()
        || e.is::<secret::LookupError>()
        || e.is::<mango::MissingEnv>()
        || e.is::<load::UsageError>()
        || e.is::<admin::Fix>()
        || e.is::<hub::BadConfig>()
    {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ami { command } => match command {
            AmiCommand::Replay(args) => replay::run(&args),
            AmiCommand::Tail(args) => tail::run(&args),
            AmiCommand::Secret {
                command: SecretCommand::Set(args),
            } => secret::run_set(&args),
        },
        Command::Mango { command } => match command {
            MangoCommand::Sign(args) => mango::run_sign(&args),
            MangoCommand::Replay(args) => mango::run_replay(&args),
        },
        Command::Hub(args) => hub::run(&args),
        Command::Admin(args) => admin::run(&args),
        Command::Load(args) => load::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calldesk: {e:#}");
            exit_code(&e)
        }
    }
}

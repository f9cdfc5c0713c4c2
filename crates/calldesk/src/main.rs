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
//! Exit codes: 0 done (or interrupted), 1 failed, 2 something to fix first (bad arguments, no
//! secret, a login Asterisk rejected).

mod mango;
mod replay;
mod secret;
mod tail;

use std::process::ExitCode;

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
    if e.is::<tail::LoginRejected>() || e.is::<secret::LookupError>() || e.is::<mango::MissingEnv>()
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calldesk: {e:#}");
            exit_code(&e)
        }
    }
}

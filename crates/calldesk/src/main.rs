//! `calldesk`: the command line (layer 3: wiring only).
//!
//! - `calldesk ami replay FILE...` — raw server→client AMI bytes (a capture's `.rx.raw`) through
//!   codec + tracker + call book; one JSON [`calldesk_wire::CallRecord`] per finished call on
//!   stdout, then `messages=N bytes=B seconds=S throughput_mb_s=X` on stderr. When the capture's
//!   `.timeline.jsonl` lies beside it, bytes are fed in the chunks and at the times they arrived,
//!   so ring and talk times are real; otherwise times are `null`. `--bench` repeats the in-memory
//!   path for at least 2 s and reports its throughput (no I/O in the figure).
//! - `calldesk ami tail --host H --port P --user U` — live call updates from an Asterisk.

mod replay;

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
}

#[derive(Subcommand)]
enum AmiCommand {
    /// Replay raw AMI captures and print one JSON record per finished call.
    Replay(replay::ReplayArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ami {
            command: AmiCommand::Replay(args),
        } => replay::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calldesk: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `calldesk mango sign` and `calldesk mango replay`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use calldesk_calls::NumberPlan;
use calldesk_mango_proto::Credentials;
use calldesk_wire::CallRecord;

#[derive(clap::Args)]
pub struct SignArgs {
    /// The exact JSON string to sign (as it will travel in the `json` form field).
    #[arg(long)]
    json: String,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Files of JSON lines `{"path": "/events/call", "json": "<raw json string>"}`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Home region for numbers without a country code (ISO code).
    #[arg(long, default_value = "RU", env = "CALLDESK_REGION")]
    region: String,
}

/// The key or salt is not in the environment: something for the user to fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "set {0} in the environment (the VPBX's API key and salt are in ЛК → Интеграции → API коннектор)"
)]
pub struct MissingEnv(pub &'static str);

fn env(name: &'static str) -> Result<String, MissingEnv> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(MissingEnv(name))
}

pub fn run_sign(args: &SignArgs) -> anyhow::Result<()> {
    let credentials = Credentials::new(env("MANGO_API_KEY")?, env("MANGO_API_SALT")?);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", credentials.sign(&args.json))?;
    Ok(())
}

pub fn run_replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let plan = NumberPlan::new(&args.region)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let calls = calldesk_mango_proto::replay::replay(&text, &plan)
            .with_context(|| format!("in {}", file.display()))?;
        for call in calls {
            serde_json::to_writer(&mut out, &CallRecord::new(&call, true))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

//! `calldesk load`: a load generator for the hub, printing figures.
//!
//! It plays a call centre's Mango webhooks at the hub and times how fast the hub turns them into
//! WebSocket messages, while thousands of idle desktops stay connected:
//!
//! * **Webhooks.** A stream of calls rendered by the fake Mango
//!   ([`calldesk_sim::mango::render`], fresh ids per call), `--live-calls` of them in progress at
//!   once with their webhooks interleaved ([`stream`]), signed with the tenant's key and salt
//!   and POSTed to `{hub}/mango/{tenant}/{path}` as Mango does. Paced open-loop at `--rate`
//!   ([`schedule`]): webhook `k` is due `k / rate` s after the start whatever the hub does; a
//!   send that leaves late (no free slot among `--concurrency` requests in flight, or the tool
//!   itself behind) is counted as late, never shifts the rest. HTTP/1.1 keep-alive connections.
//! * **Supervisor clients** (`--watchers`, logged in with `--supervisor-login`): every
//!   `call-new`/`call-updated`/`call-ended` is matched to the latest webhook of that call sent
//!   before it arrived ([`matcher`]); `call-new` also gives the pop latency from the call's first
//!   webhook. `call-ended` is reported apart: the Mango tracker ends a call once its summary has
//!   settled (2 s), which is not delivery latency.
//! * **Idle clients** (`--clients`, one token of `--login` shared by all): connect at
//!   `--connect-rate`, stay connected, count what they get and whether they were dropped. Their
//!   operator's extension should be one the simulated calls never ring (not in `--operators`;
//!   the tool warns when it is).
//!
//! With `--warmup S`, webhooks of the first S seconds are sent at the same rate but their
//! figures go to `warmup_*` (connections opening, caches and plans warming up), apart from the
//! steady state.
//!
//! Progress goes to stderr every second; the figures go to stdout at the end, one `key=value`
//! per line (times in milliseconds). The open-files limit is raised to the hard limit first;
//! more clients than it allows is refused up front. Passwords and the salt come from the
//! environment (variable names in `--password-env`, `--supervisor-password-env`,
//! `--mango-salt-env`); tokens and secrets are never printed.
//!
//! Exit codes: 0 the run finished (whatever the figures), 1 the hub was unreachable or failed,
//! 2 something to fix in the arguments or the environment (including a refused login).

mod histogram;
mod matcher;
mod schedule;
mod stream;
mod ws;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use calldesk_calls::{Extension, TenantId};
use calldesk_mango_proto::{Credentials, SignedForm};
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Semaphore, mpsc, watch};

use histogram::Histogram;
use matcher::{SendLog, WatchStats};
use schedule::{Schedule, lateness};
use stream::{StreamConfig, WebhookStream};
use ws::ClientCounts;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Base URL of the hub's plain HTTP listener, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    hub: String,
    /// The tenant: webhooks go to {hub}/mango/{tenant}/…, logins are in this tenant.
    #[arg(long)]
    tenant: String,
    /// Webhooks per second, paced open-loop (0: no webhooks, only WebSocket clients).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of sending (with --rate 0: seconds the clients stay connected).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Webhook requests in flight at most (each on its own keep-alive HTTP/1.1 connection).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Calls in progress at once in the webhook stream; two webhooks of one call are this many
    /// webhooks apart.
    #[arg(long, default_value_t = 200)]
    live_calls: usize,
    /// Extensions the simulated calls ring, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "101,102,103")]
    operators: Vec<String>,
    /// The tenant's Mango API key (`vpbx_api_key`), as configured in the hub.
    #[arg(long)]
    mango_key: Option<String>,
    /// Name of the environment variable holding the tenant's Mango salt (the same value the hub
    /// has).
    #[arg(long, default_value = "MANGO_API_SALT")]
    mango_salt_env: String,
    /// Idle WebSocket clients to connect and keep.
    #[arg(long, default_value_t = 0)]
    clients: usize,
    /// Login of the operator the idle clients connect as (one token shared by all); give an
    /// operator whose extension the calls never ring.
    #[arg(long)]
    login: Option<String>,
    /// Name of the environment variable holding that operator's password.
    #[arg(long, default_value = "CALLDESK_LOAD_PASSWORD")]
    password_env: String,
    /// Supervisor clients that receive every call and time it.
    #[arg(long, default_value_t = 1)]
    watchers: usize,
    /// Login of a supervisor (or admin) of the tenant, for the watchers.
    #[arg(long)]
    supervisor_login: Option<String>,
    /// Name of the environment variable holding the supervisor's password.
    #[arg(long, default_value = "CALLDESK_LOAD_SUPERVISOR_PASSWORD")]
    supervisor_password_env: String,
    /// New idle connections per second while the clients connect.
    #[arg(long, default_value_t = 500)]
    connect_rate: u32,
    /// Seconds at the start of sending whose webhooks are sent but timed apart (`warmup_*`
    /// figures): connections opening, caches filling. 0: everything is measured.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Seconds to wait after the last webhook for replies and messages still on their way.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Seconds a webhook request may take before it counts as failed (`timeout`).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Seed of the call mix and the Mango ids [default: random, printed]. Runs with the same
    /// seed send the same call ids: against the same database, use another seed.
    #[arg(long)]
    seed: Option<u64>,
}

/// Something to fix before running again: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// Open files beyond the sockets: the runtime, stdio, DNS, slack.
const FD_SLACK: u64 = 64;

fn env_secret(var: &str, what: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(usage(format!("set {var} in the environment to {what}"))),
    }
}

fn seconds(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| usage(format!("{flag} must be a number of seconds ≥ 0, not {v}")))
}

/// Everything checked before the first connection.
struct Plan {
    hub: String,
    tenant: TenantId,
    schedule: Option<Schedule>,
    duration: Duration,
    warmup: Duration,
    drain: Duration,
    timeout: Duration,
    credentials: Option<Credentials>,
    idle: Option<(String, String)>,
    supervisor: Option<(String, String)>,
    seed: u64,
}

fn plan(args: &LoadArgs) -> anyhow::Result<Plan> {
    let hub = args.hub.trim_end_matches('/').to_owned();
    // Checks the URL early (the token is not needed for that).
    ws::ws_url(&hub, "").map_err(|e| usage(format!("{e:#}")))?;
    let tenant = TenantId::new(args.tenant.clone()).map_err(|e| usage(format!("--tenant: {e}")))?;
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(usage(format!(
            "--rate must be ≥ 0 webhooks per second, not {}",
            args.rate
        )));
    }
    let duration = seconds(args.duration, "--duration")?;
    if duration.is_zero() {
        return Err(usage("--duration must be above 0"));
    }
    let warmup = seconds(args.warmup, "--warmup")?;
    if warmup >= duration && !warmup.is_zero() {
        return Err(usage("--warmup must be shorter than --duration"));
    }
    if args.concurrency == 0 || args.live_calls == 0 || args.connect_rate == 0 {
        return Err(usage(
            "--concurrency, --live-calls and --connect-rate must be at least 1",
        ));
    }
    for op in &args.operators {
        Extension::new(op.clone()).map_err(|e| usage(format!("--operators: {e}")))?;
    }
    if args.operators.is_empty() {
        return Err(usage("--operators needs at least one extension"));
    }
    let schedule = if args.rate > 0.0 {
        let s = Schedule::new(args.rate, duration)
            .ok_or_else(|| usage(format!("--rate {} is not a usable rate", args.rate)))?;
        if s.total() == 0 {
            return Err(usage("--rate × --duration is below one webhook"));
        }
        Some(s)
    } else {
        None
    };
    let credentials = match (&schedule, &args.mango_key) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(usage(
                "pass --mango-key (the tenant's Mango API key) to send webhooks, or --rate 0",
            ));
        }
        (Some(_), Some(key)) => Some(Credentials::new(
            key.clone(),
            env_secret(
                &args.mango_salt_env,
                "the tenant's Mango salt (--mango-salt-env)",
            )?,
        )),
    };
    let idle = if args.clients > 0 {
        let login = args.login.clone().ok_or_else(|| {
            usage("pass --login (an operator whose extension gets no calls) for --clients")
        })?;
        let password = env_secret(&args.password_env, &format!("the password of `{login}`"))?;
        Some((login, password))
    } else {
        None
    };
    let supervisor = if args.watchers > 0 {
        let login = args.supervisor_login.clone().ok_or_else(|| {
            usage("pass --supervisor-login (a supervisor of the tenant) for the latency figures, or --watchers 0")
        })?;
        let password = env_secret(
            &args.supervisor_password_env,
            &format!("the password of `{login}`"),
        )?;
        Some((login, password))
    } else {
        None
    };
    if schedule.is_none() && args.clients == 0 && args.watchers == 0 {
        return Err(usage("nothing to do: give --rate, --clients or --watchers"));
    }
    Ok(Plan {
        hub,
        tenant,
        schedule,
        duration,
        warmup,
        drain: seconds(args.drain, "--drain")?,
        timeout: seconds(args.timeout, "--timeout")?.max(Duration::from_millis(1)),
        credentials,
        idle,
        supervisor,
        seed: args.seed.unwrap_or_else(|| rand::random::<u64>() % 1_000),
    })
}

/// Raises the open-files limit to the hard limit; returns the limit now in force.
fn raise_open_files() -> (Option<u64>, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            eprintln!("calldesk load: open-files limit raised from {current} to {maximum}");
            return (Some(maximum), Some(maximum));
        }
    }
    (limit.current, limit.maximum)
}

fn check_open_files(args: &LoadArgs, soft: Option<u64>, hard: Option<u64>) -> anyhow::Result<()> {
    let needed = (args.clients as u64)
        .saturating_add(args.watchers as u64)
        .saturating_add(args.concurrency as u64)
        .saturating_add(FD_SLACK);
    if let Some(soft) = soft
        && needed > soft
    {
        let allowed =
            soft.saturating_sub(FD_SLACK + args.watchers as u64 + args.concurrency as u64);
        let hard = hard.map_or_else(|| String::from("unlimited"), |h| h.to_string());
        return Err(usage(format!(
            "--clients {} needs about {needed} open files, but this process may open only {soft} (hard limit {hard}), enough for about {allowed} clients: lower --clients or raise the hard limit (`ulimit -Hn`, LimitNOFILE= in systemd, /etc/security/limits.conf) — the hub needs as many",
            args.clients
        )));
    }
    Ok(())
}

/// Logs in; the token is never printed.
async fn login(
    client: &reqwest::Client,
    hub: &str,
    tenant: &TenantId,
    login: &str,
    password: &str,
    password_env: &str,
) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        token: String,
    }
    let url = format!("{hub}/api/auth/login");
    let body = serde_json::json!({"tenant": tenant.as_str(), "login": login, "password": password});
    let resp = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the hub at {hub} (is it running? is --hub right?)")
        })?;
    let status = resp.status();
    if status.is_success() {
        let token: Token = resp
            .json()
            .await
            .context("the hub's login answer has no `token`")?;
        return Ok(token.token);
    }
    let text = resp.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
        || (status == reqwest::StatusCode::NOT_FOUND && text.contains("tenant"))
    {
        return Err(usage(format!(
            "the hub refused the login `{login}` in tenant {tenant} (HTTP {status}: {}): check the login and the password in {password_env}",
            ws::clean(&text)
        )));
    }
    bail!(
        "login `{login}` failed: HTTP {status}: {}",
        ws::clean(&text)
    )
}

/// What the webhook senders saw.
#[derive(Debug, Default)]
struct SendStats {
    sent: u64,
    ok: u64,
    failed: BTreeMap<String, u64>,
    /// Issue − due (µs).
    late: Histogram,
    /// Request → response (µs).
    http: Histogram,
    /// The same for requests issued during the warm-up.
    warmup_http: Histogram,
    first_failure: Option<String>,
    /// When the last request left, since the start of sending.
    last_issue: Duration,
}

impl SendStats {
    fn failed(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// One webhook ready to go.
struct Prepared {
    call: Option<Arc<str>>,
    url: String,
    body: String,
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1_000.0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let plan = plan(args)?;
    let (soft, hard) = raise_open_files();
    check_open_files(args, soft, hard)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args, plan))
}

async fn run_async(args: &LoadArgs, plan: Plan) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let client = calldesk_sim::mango::loopback_client_builder()?
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .connect_timeout(Duration::from_secs(5))
        .timeout(plan.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (stop_tx, interrupted) = (stop_tx.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("calldesk load: interrupted; finishing with the figures so far");
                interrupted.store(true, Ordering::Relaxed);
                let _ = stop_tx.send(true);
            }
        });
    }

    // The webhook stream is rendered on its own thread, ahead of the schedule.
    let log = Arc::new(SendLog::default());
    let mut feed = None;
    if let (Some(schedule), Some(credentials)) = (plan.schedule, plan.credentials.clone()) {
        let (tx, rx) = mpsc::channel::<Prepared>(8_192);
        let start_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let stream = WebhookStream::new(StreamConfig {
            live_calls: args.live_calls,
            operators: args.operators.clone(),
            seed: plan.seed,
            start_unix,
            rate: schedule.rate(),
        });
        let base = format!("{}/mango/{}", plan.hub, plan.tenant);
        let total = schedule.total();
        std::thread::Builder::new()
            .name(String::from("calldesk-load-render"))
            .spawn(move || {
                let total = usize::try_from(total).unwrap_or(usize::MAX);
                for w in stream.take(total) {
                    let prepared = Prepared {
                        call: w.call,
                        url: format!("{base}/{}", w.path),
                        body: SignedForm::encode(&credentials, &w.json),
                    };
                    if tx.blocking_send(prepared).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the render thread")?;
        feed = Some((schedule, rx));
    }

    // Supervisor clients first: they must see every call.
    let watch_stats = Arc::new(Mutex::new(WatchStats::default()));
    let watcher_counts = Arc::new(ClientCounts::default());
    let mut tasks = Vec::new();
    if let Some((login_name, password)) = &plan.supervisor {
        let token = login(
            &client,
            &plan.hub,
            &plan.tenant,
            login_name,
            password,
            &args.supervisor_password_env,
        )
        .await?;
        let url = ws::ws_url(&plan.hub, &token)?;
        for i in 0..args.watchers {
            let mut socket = ws::connect(&url, false).await.with_context(|| {
                format!(
                    "supervisor client {} cannot connect to {}/ws",
                    i + 1,
                    plan.hub
                )
            })?;
            let hello = ws::hello(&mut socket).await?;
            if i == 0 && !matches!(hello.role.as_str(), "supervisor" | "admin") {
                eprintln!(
                    "calldesk load: warning: `{login_name}` has role `{}`; it sees only its own calls, so the latency figures cover few calls — use a supervisor",
                    ws::clean(&hello.role)
                );
            }
            watcher_counts.connected.fetch_add(1, Ordering::Relaxed);
            tasks.push(tokio::spawn(ws::watch(
                socket,
                log.clone(),
                watch_stats.clone(),
                watcher_counts.clone(),
                epoch,
                stop_rx.clone(),
            )));
        }
        eprintln!(
            "calldesk load: {} supervisor client(s) connected",
            args.watchers
        );
    }

    // Idle clients.
    let idle_counts = Arc::new(ClientCounts::default());
    if let Some((login_name, password)) = &plan.idle {
        let token = login(
            &client,
            &plan.hub,
            &plan.tenant,
            login_name,
            password,
            &args.password_env,
        )
        .await?;
        let url = Arc::new(ws::ws_url(&plan.hub, &token)?);
        // One probe first: says early whether the token works and which extension it has.
        let mut probe = ws::connect(&url, true)
            .await
            .with_context(|| format!("an idle client cannot connect to {}/ws", plan.hub))?;
        let hello = ws::hello(&mut probe).await?;
        if let Some(ext) = &hello.extension
            && args.operators.contains(ext)
        {
            eprintln!(
                "calldesk load: warning: `{login_name}` has extension {ext}, which the simulated calls ring: the idle clients will receive calls (leave {ext} out of --operators)"
            );
        }
        let _ = probe.close(None).await;
        drop(probe);
        let connecting = Instant::now();
        let spacing = Duration::from_secs_f64(1.0 / f64::from(args.connect_rate));
        let mut next = tokio::time::Instant::now();
        let mut last_report = Instant::now();
        for _ in 0..args.clients {
            if *stop_rx.borrow() {
                break;
            }
            tokio::time::sleep_until(next).await;
            next += spacing;
            tasks.push(tokio::spawn(ws::idle(
                url.clone(),
                idle_counts.clone(),
                stop_rx.clone(),
            )));
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                eprintln!(
                    "calldesk load: clients {} connected, {} failed of {}",
                    idle_counts.get(&idle_counts.connected),
                    idle_counts.get(&idle_counts.failed),
                    args.clients
                );
            }
        }
        // Wait for the handshakes still under way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while idle_counts.get(&idle_counts.connected) + idle_counts.get(&idle_counts.failed)
            < args.clients as u64
            && Instant::now() < deadline
            && !*stop_rx.borrow()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "calldesk load: {} of {} idle clients connected in {:.1} s ({} failed)",
            idle_counts.get(&idle_counts.connected),
            args.clients,
            connecting.elapsed().as_secs_f64(),
            idle_counts.get(&idle_counts.failed)
        );
        if let Some(e) = idle_counts.first_error() {
            eprintln!("calldesk load: first client error: {e}");
        }
    }

    // The send phase (or, with --rate 0, the clients simply stay for --duration).
    let send_stats = Arc::new(Mutex::new(SendStats::default()));
    let progress = {
        let (send_stats, watch_stats) = (send_stats.clone(), watch_stats.clone());
        let (idle_counts, watcher_counts) = (idle_counts.clone(), watcher_counts.clone());
        let mut stop = stop_rx.clone();
        let clients = args.clients;
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last_sent = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                let (sent, ok, failed, late) = {
                    let s = lock(&send_stats);
                    (s.sent, s.ok, s.failed(), s.late.quantile(0.99))
                };
                let (msgs, p99, lagged) = {
                    let w = lock(&watch_stats);
                    (w.messages, w.latency.quantile(0.99), w.lagged)
                };
                eprintln!(
                    "[{:>4}s] sent {sent} (+{}/s) ok {ok} failed {failed} in-flight {} late_p99 {}ms | ws {msgs} msgs p99 {}ms lagged {lagged} | clients {}/{clients} dropped {} | watchers dropped {}",
                    start.elapsed().as_secs(),
                    sent - last_sent,
                    sent.saturating_sub(ok + failed),
                    ms(late),
                    ms(p99),
                    idle_counts.get(&idle_counts.connected),
                    idle_counts.get(&idle_counts.dropped),
                    watcher_counts.get(&watcher_counts.dropped),
                );
                last_sent = sent;
            }
        })
    };

    let send_start = Instant::now();
    lock(&watch_stats).warmup_until_us =
        (send_start.duration_since(epoch) + plan.warmup).as_micros() as u64;
    let in_flight = Arc::new(Semaphore::new(args.concurrency));
    if let Some((schedule, mut rx)) = feed {
        let mut stop = stop_rx.clone();
        for k in 0..schedule.total() {
            if *stop.borrow() {
                break;
            }
            let due = schedule.due(k);
            if send_start.elapsed() < due {
                tokio::select! {
                    _ = tokio::time::sleep_until((send_start + due).into()) => {}
                    _ = stop.changed() => break,
                }
            }
            let Some(item) = rx.recv().await else { break };
            let permit = tokio::select! {
                p = in_flight.clone().acquire_owned() => p.context("the request limiter closed")?,
                _ = stop.changed() => break,
            };
            let issued = send_start.elapsed();
            {
                let mut s = lock(&send_stats);
                s.sent += 1;
                s.late.record(lateness(due, issued).as_micros() as u64);
                s.last_issue = issued;
            }
            let (client, log, send_stats) = (client.clone(), log.clone(), send_stats.clone());
            let warm = issued < plan.warmup;
            tokio::spawn(async move {
                let _permit = permit;
                send(&client, &log, &send_stats, item, epoch, warm).await;
            });
        }
        // Requests still in flight.
        let all = u32::try_from(args.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(
            plan.timeout + Duration::from_secs(1),
            in_flight.acquire_many(all),
        )
        .await;
    } else {
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(plan.duration) => {}
            _ = stop.changed() => {}
        }
    }
    let send_phase = send_start.elapsed();
    if !interrupted.load(Ordering::Relaxed) && !plan.drain.is_zero() {
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(plan.drain) => {}
            _ = stop.changed() => {}
        }
    }
    let clients_open = idle_counts
        .get(&idle_counts.connected)
        .saturating_sub(idle_counts.get(&idle_counts.dropped));
    let _ = stop_tx.send(true);
    let _ = progress.await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }

    let send = std::mem::take(&mut *lock(&send_stats));
    let watch = std::mem::take(&mut *lock(&watch_stats));
    report(&Report {
        args,
        plan: &plan,
        send: &send,
        send_phase,
        watch: &watch,
        idle: &idle_counts,
        clients_open,
        watchers: &watcher_counts,
        calls: log.calls(),
    })
}

/// Sends one webhook and files the outcome.
async fn send(
    client: &reqwest::Client,
    log: &SendLog,
    stats: &Mutex<SendStats>,
    item: Prepared,
    epoch: Instant,
    warm: bool,
) {
    // Recorded before the request leaves, so no WebSocket message can beat it.
    if let Some(call) = &item.call {
        log.record(call, epoch.elapsed().as_micros() as u64);
    }
    let started = Instant::now();
    let result = client
        .post(&item.url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(item.body)
        .send()
        .await;
    let outcome = match result {
        Ok(resp) => {
            let status = resp.status();
            // Read the body so the connection goes back to the pool.
            let body = resp.bytes().await;
            let took = started.elapsed().as_micros() as u64;
            if status.is_success() && body.is_ok() {
                Ok(took)
            } else {
                let text = body
                    .map(|b| ws::clean(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default();
                Err((
                    status.as_u16().to_string(),
                    Some(took),
                    format!("HTTP {status}: {text}"),
                ))
            }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            Err((kind.to_owned(), None, ws::clean(&format!("{e}"))))
        }
    };
    let mut guard = lock(stats);
    let s = &mut *guard;
    let http = if warm {
        &mut s.warmup_http
    } else {
        &mut s.http
    };
    match outcome {
        Ok(took) => {
            s.ok += 1;
            http.record(took);
        }
        Err((kind, took, detail)) => {
            *s.failed.entry(kind).or_default() += 1;
            if let Some(took) = took {
                http.record(took);
            }
            if s.first_failure.is_none() {
                s.first_failure = Some(format!("{} → {detail}", item.url));
            }
        }
    }
}

struct Report<'a> {
    args: &'a LoadArgs,
    plan: &'a Plan,
    send: &'a SendStats,
    send_phase: Duration,
    watch: &'a WatchStats,
    idle: &'a ClientCounts,
    clients_open: u64,
    watchers: &'a ClientCounts,
    calls: usize,
}

fn report(r: &Report<'_>) -> anyhow::Result<()> {
    if let Some(f) = &r.send.first_failure {
        eprintln!("calldesk load: first failed webhook: {f}");
    }
    if let Some(e) = r.watchers.first_error() {
        eprintln!("calldesk load: {e}");
    }
    if r.watch.lagged > 0 {
        eprintln!(
            "calldesk load: the hub sent {} `lagged` snapshot(s): a supervisor client fell behind and lost messages",
            r.watch.lagged
        );
    }
    let s = r.send;
    let w = r.watch;
    // The rate over the time the requests went out (first to last issue).
    let achieved = if s.sent > 1 && !s.last_issue.is_zero() {
        (s.sent - 1) as f64 / s.last_issue.as_secs_f64()
    } else {
        s.sent as f64 / r.send_phase.as_secs_f64().max(1e-9)
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| lines.push((k.to_owned(), v));
    put("seed", r.plan.seed.to_string());
    put("rate_target", format!("{}", r.args.rate));
    put("duration_s", format!("{:.3}", r.send_phase.as_secs_f64()));
    put("calls_started", r.calls.to_string());
    put("webhooks_sent", s.sent.to_string());
    put("webhooks_ok", s.ok.to_string());
    put("webhooks_failed", s.failed().to_string());
    for (kind, n) in &s.failed {
        put(&format!("webhooks_failed_{kind}"), n.to_string());
    }
    put("rate_achieved", format!("{achieved:.1}"));
    put("send_late_p50_ms", ms(s.late.quantile(0.5)));
    put("send_late_p99_ms", ms(s.late.quantile(0.99)));
    put("send_late_max_ms", ms(s.late.max()));
    put("http_mean_ms", ms(s.http.mean() as u64));
    put("http_p50_ms", ms(s.http.quantile(0.5)));
    put("http_p99_ms", ms(s.http.quantile(0.99)));
    put("http_max_ms", ms(s.http.max()));
    put("ws_messages", w.messages.to_string());
    put("ws_call_new", w.call_new.to_string());
    put("ws_call_updated", w.call_updated.to_string());
    put("ws_call_ended", w.call_ended.to_string());
    put("ws_unmatched", w.unmatched.to_string());
    put("ws_unreadable", w.unreadable.to_string());
    put("ws_lagged", w.lagged.to_string());
    put("ws_latency_count", w.latency.count().to_string());
    put("ws_latency_min_ms", ms(w.latency.min()));
    for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        put(&format!("ws_latency_{k}_ms"), ms(w.latency.quantile(q)));
    }
    put("ws_latency_max_ms", ms(w.latency.max()));
    put("pop_latency_count", w.pop.count().to_string());
    put("pop_latency_p50_ms", ms(w.pop.quantile(0.5)));
    put("pop_latency_p99_ms", ms(w.pop.quantile(0.99)));
    put("pop_latency_max_ms", ms(w.pop.max()));
    if !r.plan.warmup.is_zero() {
        put("warmup_s", format!("{:.3}", r.plan.warmup.as_secs_f64()));
        put("warmup_http_p99_ms", ms(s.warmup_http.quantile(0.99)));
        put("warmup_ws_latency_count", w.warmup.count().to_string());
        put("warmup_ws_latency_p50_ms", ms(w.warmup.quantile(0.5)));
        put("warmup_ws_latency_p99_ms", ms(w.warmup.quantile(0.99)));
        put("warmup_ws_latency_max_ms", ms(w.warmup.max()));
        put("warmup_pop_latency_p99_ms", ms(w.warmup_pop.quantile(0.99)));
    }
    put("ended_latency_p50_ms", ms(w.ended.quantile(0.5)));
    put("ended_latency_p99_ms", ms(w.ended.quantile(0.99)));
    put("watchers", r.args.watchers.to_string());
    put(
        "watchers_connected",
        r.watchers.get(&r.watchers.connected).to_string(),
    );
    put(
        "watchers_dropped",
        r.watchers.get(&r.watchers.dropped).to_string(),
    );
    put("clients", r.args.clients.to_string());
    put(
        "clients_connected",
        r.idle.get(&r.idle.connected).to_string(),
    );
    put("clients_failed", r.idle.get(&r.idle.failed).to_string());
    put("clients_dropped", r.idle.get(&r.idle.dropped).to_string());
    put("clients_open_at_end", r.clients_open.to_string());
    put("clients_messages", r.idle.get(&r.idle.messages).to_string());
    let mut out = std::io::stdout().lock();
    for (k, v) in lines {
        writeln!(out, "{k}={v}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn args(extra: &[&str]) -> LoadArgs {
        let mut all = vec!["load", "--hub", "http://127.0.0.1:1", "--tenant", "acme"];
        all.extend_from_slice(extra);
        Cli::try_parse_from(all).unwrap().load
    }

    fn fix(a: &LoadArgs) -> String {
        match plan(a) {
            Ok(_) => String::from("ok"),
            Err(e) => {
                assert!(e.is::<UsageError>(), "{e:#}");
                e.to_string()
            }
        }
    }

    #[test]
    fn arguments_say_what_to_fix() {
        assert!(fix(&args(&[])).contains("--mango-key"));
        assert!(fix(&args(&["--rate=-1"])).contains("--rate"));
        assert!(fix(&args(&["--rate", "0", "--watchers", "0"])).contains("nothing to do"));
        assert!(
            fix(&args(&["--rate", "0", "--clients", "5", "--watchers", "0"])).contains("--login")
        );
        assert!(fix(&args(&["--rate", "0"])).contains("--supervisor-login"));
        assert!(
            fix(&args(&[
                "--rate",
                "0",
                "--watchers",
                "0",
                "--clients",
                "1",
                "--login",
                "idle",
                "--password-env",
                "CALLDESK_TEST_SURELY_UNSET_VAR"
            ]))
            .contains("set CALLDESK_TEST_SURELY_UNSET_VAR")
        );
        assert!(fix(&args(&["--operators", "10 1", "--rate", "0"])).contains("--operators"));
        assert!(fix(&args(&["--duration", "0"])).contains("--duration"));
        assert!(fix(&args(&["--duration", "5", "--warmup", "5"])).contains("--warmup"));
        assert!(fix(&args(&["--warmup=-1"])).contains("--warmup"));
        let mut bad_hub = args(&[]);
        bad_hub.hub = String::from("https://hub.example");
        assert!(fix(&bad_hub).contains("plain HTTP"));
    }

    #[test]
    fn too_many_clients_for_the_open_files_limit_is_refused() {
        let a = args(&["--clients", "5000"]);
        let e = check_open_files(&a, Some(1_024), Some(4_096)).unwrap_err();
        let text = e.to_string();
        assert!(e.is::<UsageError>());
        assert!(
            text.contains("--clients 5000 needs about 5129 open files"),
            "{text}"
        );
        assert!(text.contains("only 1024 (hard limit 4096)"), "{text}");
        assert!(check_open_files(&a, Some(20_000), Some(20_000)).is_ok());
        assert!(check_open_files(&a, None, None).is_ok());
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (soft, hard) = raise_open_files();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!((now.current, now.maximum), (soft, hard));
        if hard.is_some() {
            assert_eq!(soft, hard);
        }
    }
}

//! Child processes: running commands with readable errors, and guards that stop background
//! processes (Xvfb, tauri-driver, a throwaway PostgreSQL) when they go out of scope, also when a
//! step fails or the user presses Ctrl-C.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rustix::process::{self, Pid, Signal};

/// How long a foreground command may take to stop after SIGTERM before it gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs a Ctrl-C / SIGTERM handler that only records the request, so that the guards below
/// still run their `Drop` (the default handler would kill xtask and leave servers behind).
/// Foreground children (cargo, npm) receive the same signal from the terminal and stop by
/// themselves; the loops that wait on background servers poll [`interrupted`].
pub fn install_interrupt_handler() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("xtask: interrupted again, cleaning up...");
        } else {
            eprintln!("xtask: interrupted, cleaning up...");
        }
    });
    if let Err(err) = installed {
        eprintln!("xtask: warning: cannot install a Ctrl-C handler: {err}");
    }
}

/// Whether the user asked to stop (Ctrl-C or SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails if the user asked to stop; called by loops that wait for something.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted by the user");
    }
    Ok(())
}

/// `program arg1 arg2 …` for messages.
pub fn display(cmd: &Command) -> String {
    let program = cmd.get_program();
    let mut line = if std::env::var_os("CARGO").is_some_and(|cargo| cargo == program) {
        "cargo".to_owned()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '\'', '"', '$']) {
            line.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        } else {
            line.push(' ');
            line.push_str(&arg);
        }
    }
    line
}

/// Runs a command with inherited stdio (its output streams through) and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    let status = run_status(cmd)?;
    check_status(&line, status)
}

/// Runs a command with inherited stdio and returns how it exited. If xtask is asked to stop
/// (SIGTERM, or Ctrl-C, which the child also receives from the terminal), the child gets SIGTERM,
/// then SIGKILL if it is still running after [`TERM_GRACE`], so nothing outlives xtask.
pub fn run_status(cmd: &mut Command) -> Result<ExitStatus> {
    let line = display(cmd);
    println!("$ {line}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{line}` (is it installed and in PATH?)"))?;
    let mut terminated_at: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        match terminated_at {
            None if interrupted() => {
                terminated_at = Some(Instant::now());
                let pid = Pid::from_child(&child);
                if let Err(err) = process::kill_process(pid, Signal::TERM) {
                    eprintln!("xtask: warning: cannot send SIGTERM to `{line}`: {err}");
                }
            }
            Some(at) if at.elapsed() >= TERM_GRACE => {
                eprintln!("xtask: `{line}` ignored SIGTERM for {TERM_GRACE:?}, killing it");
                child
                    .kill()
                    .with_context(|| format!("cannot kill `{line}`"))?;
                return Ok(child.wait()?);
            }
            _ => {}
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command, capturing stdout; fails (with its stderr) unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{line}` (is it installed and in PATH?)"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_status(line: &str, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{line}` failed ({status})")
    }
}

/// The cargo that runs us (`$CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Whether we run as root.
pub fn is_root() -> bool {
    process::getuid().is_root()
}

/// Looks a program up in `PATH`, then in `~/.cargo/bin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|cargo_home| cargo_home.join("bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A free TCP port on 127.0.0.1 (the OS picks it; there is a small window before we use it).
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Polls `ready` every 100 ms until it returns `Some`, the deadline passes or the user interrupts.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        if let Some(value) = ready()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {:.1} s waiting for {what}",
                timeout.as_secs_f64()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh, empty temporary directory, removed by the guard's `Drop`.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A background process, put in its own process group and stopped (the whole group: SIGTERM, then
/// SIGKILL after 3 s) when the guard is dropped. The group matters for tauri-driver, which starts
/// WebKitWebDriver, which starts the app.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    /// Spawns `cmd` in a new process group, with stdin closed.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let line = display(cmd);
        println!("$ {line} &");
        let child = cmd
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name}: `{line}`"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The process id (the leader of its group).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited (it should still be serving).
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("{} exited early ({status})", self.name),
            None => Ok(()),
        }
    }

    /// Signals the whole process group; a group that is already gone is not an error.
    fn signal_group(&self, signal: Signal) {
        let group = Pid::from_child(&self.child);
        match process::kill_process_group(group, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(err) => eprintln!(
                "xtask: warning: cannot send {signal:?} to the process group of {}: {err}",
                self.name
            ),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // The leader is gone; its group may not be.
            self.signal_group(Signal::KILL);
            return;
        }
        self.signal_group(Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                self.signal_group(Signal::KILL);
                println!("xtask: stopped {}", self.name);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(Signal::KILL);
        if let Err(err) = self.child.kill().and_then(|()| self.child.wait()) {
            eprintln!("xtask: warning: killing {}: {err}", self.name);
        }
        println!("xtask: killed {}", self.name);
    }
}

/// The last `n` lines of a text file (for failure reports).
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// The ids of the running processes whose executable is `exe` (from `/proc`).
pub fn pids_of(exe: &Path) -> Result<Vec<u32>> {
    let want = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go, and some are not ours to read: skip those.
        if std::fs::read_link(entry.path().join("exe")).is_ok_and(|p| p == want) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

//! Runs one task command as a child process and keeps its whole process tree in hand.
//!
//! A task supervisor gives `spawn` a shell, a script (Airflow's `bash_command`), the
//! environment and the try's log file. The child's stdout and stderr are that file, so
//! there is no pipe to drain and a chatty task cannot block; stdin is null. The child
//! starts in a new process group (Unix) or job object (Windows), through process-wrap,
//! so `kill_tree` reaches every grandchild, and so does the clean-up when the command
//! ends: nothing a try started outlives it.
//!
//! This module knows nothing of task states, retries or the API: it starts, waits and
//! kills. The supervisor decides when (`execution_timeout`, a cleared task, shutdown).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use process_wrap::std::{ChildWrapper, CommandWrap};

/// The longest pause between two looks at a running child where the system cannot wake
/// us when it ends (a Unix without pidfds): waits start at 1 ms and double up to this.
/// Linux (a pidfd) and Windows (the process handle) sleep until the end itself.
const MAX_POLL: Duration = Duration::from_millis(50);

/// How long dropping a still-running `Running` waits for its killed tree to end.
const DROP_WAIT: Duration = Duration::from_secs(5);

/// This process's environment, as `app::Env` read it once at start: the copy that
/// finding a shell and starting tasks read instead of the process's own (see
/// ARCHITECTURE.md: nothing outside `Env` reads the process environment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEnv {
    vars: Vec<(OsString, OsString)>,
    temp_dir: PathBuf,
}

impl HostEnv {
    /// A copy of `vars`, with `temp_dir` as the folder for temporary files.
    pub fn new(
        vars: impl IntoIterator<Item = (impl Into<OsString>, impl Into<OsString>)>,
        temp_dir: PathBuf,
    ) -> HostEnv {
        HostEnv {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            temp_dir,
        }
    }

    /// The value of `name`; compared as the OS does, without case on Windows.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        let same = |k: &OsStr| {
            if cfg!(windows) {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        };
        self.vars
            .iter()
            .find(|(k, _)| same(k))
            .map(|(_, v)| v.as_os_str())
    }

    /// The folder for temporary files (cmd's batch files).
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }
}

/// The shell that runs a `bash_command`, with what running it takes from this
/// process's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shell {
    pub kind: ShellKind,
    /// The executable, as found (an absolute path, except for a bare fallback name).
    pub program: PathBuf,
    /// Where cmd's batch files go.
    pub temp_dir: PathBuf,
    /// Variables a task's replaced environment keeps, with this process's values
    /// (`SystemRoot` on Windows; none on Unix).
    pub essential_env: Vec<(String, OsString)>,
}

/// How a shell takes a script: `bash -c` and `sh -c` alike, `cmd /D /S /C` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellKind {
    Bash,
    Sh,
    Cmd,
}

impl ShellKind {
    fn name(self) -> &'static str {
        match self {
            ShellKind::Bash => "bash",
            ShellKind::Sh => "sh",
            ShellKind::Cmd => "cmd",
        }
    }
}

impl Shell {
    /// The text the task log prints, as in `bash (/usr/bin/bash)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.kind.name(), self.program.display())
    }

    /// What the task log says about how `script` runs: the shell, and for cmd how it
    /// takes the script (see [`batch_file`]).
    pub fn describe_for(&self, script: &str) -> String {
        match self.kind {
            ShellKind::Bash | ShellKind::Sh => self.describe(),
            ShellKind::Cmd if is_multi_line(script) => format!(
                "{} as a batch file in UTF-8 (code page 65001; a top-level line that fails ends it with its exit code)",
                self.describe()
            ),
            ShellKind::Cmd => format!("{} in UTF-8 (code page 65001)", self.describe()),
        }
    }

    /// The command that runs `script`, before environment and handles are set. Keep
    /// the returned value until the command has ended: for a multi-line script under
    /// cmd it holds the batch file, which is deleted when it drops.
    pub fn command(&self, script: &str) -> io::Result<ShellCommand> {
        let mut command = Command::new(&self.program);
        let mut file = None;
        match self.kind {
            ShellKind::Bash | ShellKind::Sh => {
                command.arg("-c").arg(script);
            }
            ShellKind::Cmd if is_multi_line(script) => {
                let batch = BatchFile::write(&self.temp_dir, &batch_file(script))?;
                cmd_args(&mut command, &cmd_call(&batch.0))?;
                file = Some(batch);
            }
            ShellKind::Cmd => cmd_args(
                &mut command,
                &format!("{CHCP_UTF8} & {CLEAR_ERRORLEVEL} & {script}"),
            )?,
        }
        Ok(ShellCommand {
            command,
            _file: file,
        })
    }
}

/// A shell's command line for one script, and the batch file it runs, if any.
#[derive(Debug)]
pub struct ShellCommand {
    pub command: Command,
    _file: Option<BatchFile>,
}

/// Switches cmd's output to UTF-8 (code page 65001), silently: without it cmd and the
/// console programs it runs write in the OEM code page (`café` as `caf\x82`), which no
/// log reader can tell from UTF-8 gone wrong.
const CHCP_UTF8: &str = "chcp 65001 >nul 2>&1";

/// Sets ERRORLEVEL to 0. Where chcp cannot switch (no console: a service, Wine) it
/// leaves ERRORLEVEL at 1, and cmd builtins such as `echo` do not reset it, so
/// `cmd /C "chcp ... & echo hi"` would otherwise exit 1.
const CLEAR_ERRORLEVEL: &str = "(call )";

/// Whether a script has more than one line (trailing line breaks, as a YAML `|` block
/// leaves, do not count). `cmd /C` runs only the first line of such a script.
fn is_multi_line(script: &str) -> bool {
    script.trim_end_matches(['\r', '\n']).contains('\n')
}

/// A multi-line script as a cmd batch file (CRLF line ends, as cmd's label and `goto`
/// handling needs), which cmd runs line by line with batch-file rules (`%%i` in `for`,
/// `%%` for a literal `%`).
///
/// The rule, which README states: the file starts with `@echo off` (cmd does not print
/// the commands, as `bash -c` does not) and switches to UTF-8; the lines run in turn,
/// and after each one that ends at the top level (a parenthesised `if`/`for` block
/// counts as one line, checked after its closing parenthesis; a line continued with
/// `^` is checked after its last part) a check line follows: when `ERRORLEVEL` is not
/// 0, the script ends with it. cmd has no `set -e`, and ` || exit /b` appended to
/// lines would break blocks (and Wine's cmd takes it wrongly); a check on a line of its
/// own expands `%errorlevel%` after the line before has run. Blank lines, comments,
/// labels and `goto`/`exit` lines get no check. A script that runs to its end exits 0.
pub fn batch_file(script: &str) -> String {
    let mut out = format!("@echo off\r\n{CHCP_UTF8}\r\n{CLEAR_ERRORLEVEL}\r\n");
    let mut depth: i64 = 0;
    let mut continued = false;
    let mut checkable = true;
    for line in script.trim_end_matches(['\r', '\n']).split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !continued {
            checkable = is_checkable(line);
        }
        depth += paren_balance(line);
        continued = line.ends_with('^') && !line.ends_with("^^");
        out.push_str(line);
        out.push_str("\r\n");
        if !continued && checkable && depth <= 0 {
            out.push_str(ERRORLEVEL_CHECK);
            out.push_str("\r\n");
        }
    }
    out
}

/// The line that ends a batch file with the ERRORLEVEL of the line before, if not 0.
const ERRORLEVEL_CHECK: &str = "if %errorlevel% neq 0 exit /b %errorlevel%";

/// Whether a batch line is a command whose failure should end the script: not blank,
/// not a comment or label, not a jump.
fn is_checkable(line: &str) -> bool {
    let text = line.trim_start().trim_start_matches('@').trim_start();
    let word = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == '/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    !(text.is_empty() || text.starts_with(':') || matches!(word.as_str(), "rem" | "goto" | "exit"))
}

/// Opening minus closing parentheses on a batch line, outside double quotes and not
/// escaped with `^`. A `rem` line's text is not code.
fn paren_balance(line: &str) -> i64 {
    let text = line.trim_start().trim_start_matches('@').trim_start();
    if text.get(..3).is_some_and(|w| w.eq_ignore_ascii_case("rem"))
        && text[3..].starts_with(|c: char| c.is_whitespace())
        || text.starts_with("::")
    {
        return 0;
    }
    let (mut n, mut quoted, mut escaped) = (0, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '^' if !quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => n += 1,
            ')' if !quoted => n -= 1,
            _ => {}
        }
    }
    n
}

/// The batch file of one multi-line cmd script, in the temp folder; removed on drop.
#[derive(Debug)]
struct BatchFile(PathBuf);

impl BatchFile {
    fn write(dir: &Path, text: &str) -> io::Result<BatchFile> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut random = [0u8; 8];
        crate::ids::random_bytes(&mut random);
        let name = format!(
            "updraft-{}-{}-{}.cmd",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            u64::from_le_bytes(random)
        );
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write the batch file {}: {e}", path.display()),
                )
            })?;
        Ok(BatchFile(path))
    }
}

impl Drop for BatchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The cmd command line that runs a batch file: quoted, as temp paths hold spaces.
fn cmd_call(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// Finds the shell for a `bash_command` in `host`'s PATH (and, on Windows, its install
/// folders).
///
/// Bash comes first, as Airflow's BashOperator runs `bash -c`. On Windows that is Git
/// Bash: from PATH, beside a `git.exe` on PATH, or in the usual Git for Windows install
/// folders; WSL's `bash.exe` launcher is passed over, as it runs the script in Linux.
/// Without bash, Windows uses `cmd` and Unix `sh`.
pub fn find_shell(host: &HostEnv) -> Shell {
    let (kind, program) = match find_bash(host) {
        Some(program) => (ShellKind::Bash, program),
        None => fallback_shell(host),
    };
    Shell {
        kind,
        program,
        temp_dir: host.temp_dir().to_path_buf(),
        essential_env: ESSENTIAL_ENV
            .iter()
            .filter_map(|name| Some((name.to_string(), host.var(name)?.to_os_string())))
            .collect(),
    }
}

/// Everything `spawn` needs to start a task command.
#[derive(Debug)]
pub struct Spec {
    pub shell: Shell,
    pub script: String,
    /// Variables set for the child, after the inherited ones (if any).
    pub env: Vec<(String, String)>,
    /// Whether the child starts from this process's environment. Airflow's BashOperator
    /// passes only its `env` when that is set and `append_env` is false; the caller maps
    /// that to `false` here, and adds whatever Airflow adds (`AIRFLOW_CTX_*`) to `env`.
    pub inherit_env: bool,
    pub cwd: Option<PathBuf>,
    /// The try's log: stderr goes here (stdout too, without `stdout`), unbuffered by
    /// us. Open it for appending, so the child's writes land after what the supervisor
    /// wrote.
    pub log: File,
    /// Where stdout goes instead, when the caller reads it (BashOperator's return value
    /// is its last line). The caller must drain the pipe's reading end.
    pub stdout: Option<io::PipeWriter>,
}

/// The status a task command ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code. On Windows a killed tree reports 1.
    Code(i32),
    /// It was killed by this signal (Unix only).
    Signal(i32),
}

impl Exit {
    /// Whether the command succeeded (exit code 0).
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The number a shell would put in `$?`: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                return Exit::Signal(signal);
            }
        }
        // On Windows every status has a code; on Unix, a child that ended and was not
        // killed by a signal has one too (stopped children are never waited for here).
        Exit::Code(status.code().unwrap_or(-1))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => {
                write!(f, "killed by signal {signal}")?;
                match signal_name(signal) {
                    Some(name) => write!(f, " ({name})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A started task command and its process tree.
///
/// Dropping it kills whatever is left of the tree at once, so a supervisor that bails
/// out (or panics) leaves no process behind.
#[derive(Debug)]
pub struct Running {
    child: Box<dyn ChildWrapper>,
    /// Set once the top process has been waited for; later calls return it again.
    exit: Option<Exit>,
    /// cmd's batch file, if any: removed when this drops, after the tree is gone.
    _batch: Option<BatchFile>,
    /// A pidfd of the top process, readable once it has ended: `wait_timeout` sleeps on
    /// it. None where the kernel has no pidfd_open (before Linux 5.3, or a seccomp
    /// filter refuses it): then it polls.
    #[cfg(target_os = "linux")]
    pidfd: Option<rustix::fd::OwnedFd>,
    /// How many times `try_exit` looked at the top process (tests count the wake-ups).
    #[cfg(test)]
    looks: u32,
}

/// Starts `spec.script` under `spec.shell`, in its own process group or job object.
pub fn spawn(spec: Spec) -> io::Result<Running> {
    let ShellCommand {
        command,
        _file: file,
    } = spec.shell.command(&spec.script)?;
    let what = spec.shell.describe();
    start(command, &what, spec, file)
}

/// A program run with arguments rather than a shell script (a Python task's interpreter).
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<OsString>,
}

/// Starts `program` as `spawn` starts a script: same environment rules, log and process
/// tree; `spec.shell` gives only the variables a replaced environment keeps, and
/// `spec.script` is not used.
pub fn spawn_program(program: &Program, spec: Spec) -> io::Result<Running> {
    let mut command = Command::new(&program.path);
    command.args(&program.args);
    let what = program.path.display().to_string();
    start(command, &what, spec, None)
}

fn start(
    mut command: Command,
    what: &str,
    spec: Spec,
    file: Option<BatchFile>,
) -> io::Result<Running> {
    let Spec {
        shell,
        script: _,
        env,
        inherit_env,
        cwd,
        log,
        stdout,
    } = spec;
    let context = |e: io::Error| io::Error::new(e.kind(), format!("cannot start {what}: {e}"));
    if !inherit_env {
        command.env_clear();
        keep_essential_env(&mut command, &shell.essential_env, &env);
    }
    command.envs(env);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    // Without a stdout pipe both streams share one open file description, so writes
    // interleave as they happen and nobody has to read a pipe.
    command.stdin(Stdio::null());
    match stdout {
        Some(pipe) => command.stdout(Stdio::from(pipe)),
        None => command.stdout(Stdio::from(log.try_clone()?)),
    };
    command.stderr(Stdio::from(log));

    let mut command = CommandWrap::from(command);
    wrap_tree(&mut command);
    let child = command.spawn().map_err(context)?;
    // The child is ours and unreaped, so its pid cannot name another process yet.
    #[cfg(target_os = "linux")]
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    });
    Ok(Running {
        child,
        exit: None,
        _batch: file,
        #[cfg(target_os = "linux")]
        pidfd,
        #[cfg(test)]
        looks: 0,
    })
}

impl Running {
    /// The top process's id (on Unix also the process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the command to end; `Some` once it has.
    ///
    /// When the top process ends, anything it left running in its group or job (a
    /// forgotten `cmd &`) is killed, so the log is final once this returns `Some`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<Exit>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(exit) = self.try_exit()? {
                return Ok(Some(exit));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.sleep_on_top(deadline - now, &mut pause);
        }
    }

    /// Sleeps until the top process may have ended, at most `most`: woken by its end
    /// where the system can tell (Linux's pidfd, Windows' process handle), else a pause
    /// that doubles from call to call up to `MAX_POLL`. Returns early on a signal too;
    /// callers look again.
    fn sleep_on_top(&self, most: Duration, pause: &mut Duration) {
        if self.exit.is_none() && self.block_on_top(most) {
            return;
        }
        std::thread::sleep((*pause).min(most));
        *pause = (*pause * 2).min(MAX_POLL);
    }

    /// Kills the whole tree and returns how the command ended.
    ///
    /// Unix: SIGTERM to the process group, then SIGKILL to whatever is left after
    /// `grace`. Windows has no polite signal for a windowless process tree, so the job
    /// object is terminated at once and `grace` is unused. If the command had already
    /// ended, this returns that exit.
    pub fn kill_tree(&mut self, grace: Duration) -> io::Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        self.terminate_tree(grace)?;
        self.wait_exit()
    }

    /// Looks once, without blocking, whether the top process has ended; if it has,
    /// kills what is left of its tree and records the exit.
    fn try_exit(&mut self) -> io::Result<Option<Exit>> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        #[cfg(test)]
        {
            self.looks += 1;
        }
        if !self.top_ended()? {
            return Ok(None);
        }
        self.kill_rest();
        self.reap().map(Some)
    }

    /// Polls until the top process has ended and returns its exit.
    fn wait_exit(&mut self) -> io::Result<Exit> {
        loop {
            if let Some(exit) = self.wait_timeout(Duration::from_secs(1))? {
                return Ok(exit);
            }
        }
    }

    /// Records the exit of a top process known to have ended.
    fn reap(&mut self) -> io::Result<Exit> {
        // process-wrap's try_wait reaps the top process and, on Unix, any zombie of
        // ours in its group. Never its blocking `wait` on Windows: after our polls have
        // drained the job's completion port, that can block forever.
        match self.child.try_wait()? {
            Some(status) => {
                let exit = Exit::from(status);
                self.exit = Some(exit);
                Ok(exit)
            }
            None => Err(io::Error::other(
                "the task process ended but cannot be waited for",
            )),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.terminate_tree(Duration::ZERO);
            // Bounded, as a drop must not hang; a killed tree ends in milliseconds.
            if !matches!(self.wait_timeout(DROP_WAIT), Ok(Some(_))) {
                log::warn!("task process {} did not end when killed", self.pid());
            }
        }
    }
}

// ---- Unix: a process group, signals, and waitid to look without reaping ----

#[cfg(unix)]
impl Running {
    fn pgid(&self) -> nix::unistd::Pid {
        // process-wrap makes the top process the leader of a new group.
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Whether the top process has ended. On Linux this looks without reaping it, so
    /// its pid, which is also the group's id, cannot be reused before `kill_rest` has
    /// signalled the group.
    fn top_ended(&mut self) -> io::Result<bool> {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        {
            use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(self.pgid()), flags) {
                Ok(WaitStatus::StillAlive) => Ok(false),
                Ok(_) => Ok(true),
                Err(e) => Err(e.into()),
            }
        }
        // Elsewhere this reaps; process-wrap keeps the status for `reap`.
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        {
            Ok(self.child.try_wait()?.is_some())
        }
    }

    /// Sleeps until the top process ends or `most` passes, on its pidfd; false when
    /// there is none (nothing waited).
    fn block_on_top(&self, most: Duration) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            use rustix::event::{PollFd, PollFlags, Timespec, poll};
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let most = Timespec::try_from(most).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            // EINTR (a signal) or a failure: the caller looks at the process again.
            return poll(&mut fds, Some(&most)).is_ok();
        }
        let _ = most;
        false
    }

    /// Kills, without grace, what the top process left behind in its group.
    fn kill_rest(&mut self) {
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
    }

    /// Whether any process (zombies included) is left in the group.
    fn group_alive(&self) -> bool {
        !matches!(
            nix::sys::signal::killpg(self.pgid(), None),
            Err(nix::errno::Errno::ESRCH)
        )
    }

    fn signal_group(&self, signal: nix::sys::signal::Signal) {
        // ESRCH means the group is gone already; EPERM (a setuid member) cannot be helped.
        if let Err(e) = nix::sys::signal::killpg(self.pgid(), signal)
            && e != nix::errno::Errno::ESRCH
        {
            log::warn!("cannot send {signal} to process group {}: {e}", self.pgid());
        }
    }

    /// SIGTERM to the group; then, within `grace`, wait for the top process to end and
    /// the group to empty; then SIGKILL to whatever is left.
    fn terminate_tree(&mut self, grace: Duration) -> io::Result<()> {
        use nix::sys::signal::Signal;
        if !grace.is_zero() {
            self.signal_group(Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            let mut pause = Duration::from_millis(1);
            loop {
                if self.exit.is_none() && self.top_ended()? {
                    // Reaping the leader is safe now: while the group has members
                    // its id cannot be reused, and once it is empty we stop signalling.
                    self.reap()?;
                }
                if self.exit.is_some() && !self.group_alive() {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                // Until the leader ends, its end wakes us; then the rest of the group is
                // polled for.
                self.sleep_on_top(deadline - now, &mut pause);
            }
        }
        // A zombie left by an init that does not reap also counts as alive above; it is
        // dead already, and SIGKILL does it no harm.
        if self.exit.is_none() || self.group_alive() {
            self.signal_group(Signal::SIGKILL);
        }
        Ok(())
    }
}

#[cfg(unix)]
fn wrap_tree(command: &mut CommandWrap) {
    command.wrap(process_wrap::std::ProcessGroup::leader());
}

/// What a task's replaced environment keeps from this process's (see
/// `keep_essential_env`).
#[cfg(unix)]
const ESSENTIAL_ENV: &[&str] = &[];

#[cfg(unix)]
fn keep_essential_env(
    _command: &mut Command,
    _essential: &[(String, OsString)],
    _env: &[(String, String)],
) {
    // Nothing: Airflow gives a task with `append_env=False` exactly its `env`, and bash
    // supplies a default PATH itself.
}

#[cfg(unix)]
fn cmd_args(_command: &mut Command, _script: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "cmd exists only on Windows",
    ))
}

#[cfg(unix)]
fn signal_name(signal: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(signal)
        .ok()
        .map(|s| s.as_str())
}

#[cfg(unix)]
const BASH: &str = "bash";

#[cfg(unix)]
fn find_bash(host: &HostEnv) -> Option<PathBuf> {
    search_path(host.var("PATH"), BASH)
}

#[cfg(unix)]
fn fallback_shell(host: &HostEnv) -> (ShellKind, PathBuf) {
    let program = search_path(host.var("PATH"), "sh").unwrap_or_else(|| PathBuf::from("/bin/sh"));
    (ShellKind::Sh, program)
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---- Windows: a job object, Git Bash or cmd ----

#[cfg(windows)]
impl Running {
    /// Sleeps until the top process ends or `most` passes, on its process handle;
    /// false when there is none (nothing waited).
    #[allow(unsafe_code)]
    fn block_on_top(&self, most: Duration) -> bool {
        use std::os::windows::io::AsRawHandle;
        use windows::Win32::Foundation::HANDLE;
        use windows::Win32::System::Threading::WaitForSingleObject;
        let Some(handle) = self.child.process_handle() else {
            return false;
        };
        // Whole milliseconds, rounded up so a short wait does not spin; below INFINITE.
        let ms = most
            .as_micros()
            .div_ceil(1000)
            .min(u128::from(u32::MAX - 1)) as u32;
        // SAFETY: the handle is borrowed from the child, which outlives this call;
        // waiting on a process handle has no other effect.
        let _ = unsafe { WaitForSingleObject(HANDLE(handle.as_raw_handle()), ms) };
        true
    }

    fn top_ended(&mut self) -> io::Result<bool> {
        // A job object's handle stays ours however its processes end, so there is no
        // reuse to guard against: looking may reap.
        Ok(self.child.try_wait()?.is_some())
    }

    /// Terminates the job, which holds the rest of the tree.
    fn kill_rest(&mut self) {
        if let Err(e) = self.child.start_kill() {
            log::warn!(
                "cannot terminate the job object of process {}: {e}",
                self.pid()
            );
        }
    }

    fn terminate_tree(&mut self, _grace: Duration) -> io::Result<()> {
        self.child.start_kill()
    }
}

#[cfg(windows)]
fn wrap_tree(command: &mut CommandWrap) {
    use process_wrap::std::{CreationFlags, JobObject};
    use windows::Win32::System::Threading::CREATE_NO_WINDOW;
    // No console window flashes up for a task; process-wrap adds CREATE_SUSPENDED
    // itself so the child joins the job before it runs.
    command.wrap(CreationFlags(CREATE_NO_WINDOW));
    command.wrap(JobObject);
}

/// Windows programs, the C runtime and Winsock among them, fail without SystemRoot, so
/// a replaced environment keeps it unless the task sets it.
#[cfg(windows)]
const ESSENTIAL_ENV: &[&str] = &["SystemRoot"];

#[cfg(windows)]
fn keep_essential_env(
    command: &mut Command,
    essential: &[(String, OsString)],
    env: &[(String, String)],
) {
    for (name, value) in essential {
        let set_by_task = env.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !set_by_task {
            command.env(name, value);
        }
    }
}

#[cfg(windows)]
fn cmd_args(command: &mut Command, script: &str) -> io::Result<()> {
    use std::os::windows::process::CommandExt;
    // cmd does not parse its command line as C programs do, so the script goes in as
    // is. /S: strip the outer quotes and keep the rest verbatim; /D: no AutoRun.
    command.args(["/D", "/S", "/C"]);
    command.raw_arg(format!("\"{script}\""));
    Ok(())
}

#[cfg(windows)]
fn signal_name(_signal: i32) -> Option<&'static str> {
    None
}

#[cfg(windows)]
const BASH: &str = "bash.exe";

#[cfg(windows)]
fn find_bash(host: &HostEnv) -> Option<PathBuf> {
    let path_var = host.var("PATH");
    let on_path = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(BASH))
        .filter(|p| !is_wsl_launcher(p));
    let near_git = search_path(path_var, "git.exe").and_then(|git| git_bash_near(&git));
    let installed = git_install_roots(host)
        .into_iter()
        .map(|root| root.join(r"bin\bash.exe"));
    on_path
        .chain(near_git)
        .chain(installed)
        .find(|p| is_executable(p))
}

/// Git for Windows' usual install folders: machine-wide, 32-bit, and per user.
#[cfg(windows)]
fn git_install_roots(host: &HostEnv) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["ProgramW6432", "ProgramFiles", "ProgramFiles(x86)"]
        .iter()
        .filter_map(|name| host.var(name))
        .map(|dir| PathBuf::from(dir).join("Git"))
        .collect();
    if let Some(local) = host.var("LOCALAPPDATA") {
        roots.push(PathBuf::from(local).join(r"Programs\Git"));
    }
    roots.push(PathBuf::from(r"C:\Program Files\Git"));
    roots
}

#[cfg(windows)]
fn fallback_shell(host: &HostEnv) -> (ShellKind, PathBuf) {
    let program = host
        .var("ComSpec")
        .map(PathBuf::from)
        .or_else(|| {
            host.var("SystemRoot")
                .map(|root| PathBuf::from(root).join(r"System32\cmd.exe"))
        })
        .unwrap_or_else(|| PathBuf::from("cmd.exe"));
    (ShellKind::Cmd, program)
}

#[cfg(windows)]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

// ---- Another process: is it still the one that started before a time? ----

/// Whether process `pid` on this host is still the process that was already running at
/// `started_by`: `Some(false)` when that is proven wrong (no such process, or the pid
/// now belongs to a process started later, i.e. it was reused), `Some(true)` when it
/// is, `None` when this platform cannot tell.
///
/// The scheduler asks this of a lease holder on its own host, with the time the holder
/// registered its job, which comes after its process started: a process with that pid
/// started later is another one. Start times are compared with a second's slack, as
/// Linux knows its boot time only to the second; the slack can only make a dead holder
/// look alive, which costs the wait it always cost.
pub fn still_running(pid: u32, started_by: chrono::DateTime<chrono::Utc>) -> Option<bool> {
    let slack = chrono::Duration::seconds(1);
    match process_started(pid)? {
        Started::Gone => Some(false),
        Started::At(at) => Some(at <= started_by + slack),
        Started::Unknown => None,
    }
}

/// This process's host as the scheduler lease records it: the host name, and on Linux
/// the pid namespace too (`vm pid:[4026531836]`). Two containers can share a host name
/// (host networking) and a database file while their pids mean different processes; a
/// holder's pid proves something only in the namespace it came from. Where the
/// namespace cannot be read, the identity names this process alone, so no other
/// scheduler ever counts as on the same host.
pub fn host_identity(hostname: &str) -> String {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_link("/proc/self/ns/pid") {
            Ok(ns) => format!("{hostname} {}", ns.display()),
            Err(_) => format!("{hostname} pid-namespace-unknown-{}", std::process::id()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        hostname.to_string()
    }
}

/// When a process started, as far as the platform says.
enum Started {
    Gone,
    At(chrono::DateTime<chrono::Utc>),
    /// It exists, but its start time cannot be read.
    Unknown,
}

/// Linux: `/proc/PID/stat`'s start time, in clock ticks after the boot time of
/// `/proc/stat`.
#[cfg(target_os = "linux")]
fn process_started(pid: u32) -> Option<Started> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Started::Gone),
        Err(_) => return None,
    };
    // The command name (field 2) may hold spaces and parentheses: count after its `)`.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // Fields 3 (state) onwards; the start time is field 22.
    if matches!(fields.next(), Some("Z" | "X")) {
        return Some(Started::Gone);
    }
    let ticks: i64 = fields.nth(18)?.parse().ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)? as i64;
    let micros = boot * 1_000_000 + ticks * 1_000_000 / hz;
    Some(chrono::DateTime::from_timestamp_micros(micros).map_or(Started::Unknown, Started::At))
}

/// Other Unixes: a signal 0 tells whether the pid exists, not since when.
#[cfg(all(unix, not(target_os = "linux")))]
fn process_started(pid: u32) -> Option<Started> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?);
    match nix::sys::signal::kill(pid, None) {
        Err(nix::errno::Errno::ESRCH) => Some(Started::Gone),
        _ => Some(Started::Unknown),
    }
}

/// Windows: the creation time of the process, which `OpenProcess` finds by pid.
#[cfg(windows)]
#[allow(unsafe_code)]
fn process_started(pid: u32) -> Option<Started> {
    use windows::Win32::Foundation::{
        CloseHandle, ERROR_INVALID_PARAMETER, FILETIME, STILL_ACTIVE,
    };
    use windows::Win32::System::Threading::{
        GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: OpenProcess takes plain values; the handle it returns is used only below
    // and closed once.
    let handle = match unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) } {
        Ok(h) => h,
        // No process has this id.
        Err(e) if e.code() == ERROR_INVALID_PARAMETER.to_hresult() => return Some(Started::Gone),
        Err(_) => return None,
    };
    let (mut created, mut exited, mut kernel, mut user) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    let mut code = 0u32;
    // SAFETY: a live handle from OpenProcess and pointers to locals that outlive the
    // calls; the handle is closed after its last use.
    let (times, exit) = unsafe {
        let times = GetProcessTimes(handle, &mut created, &mut exited, &mut kernel, &mut user);
        let exit = GetExitCodeProcess(handle, &mut code);
        let _ = CloseHandle(handle);
        (times, exit)
    };
    // An ended process whose handle someone still holds can be opened too.
    if exit.is_ok() && code != STILL_ACTIVE.0 as u32 {
        return Some(Started::Gone);
    }
    if times.is_err() {
        return Some(Started::Unknown);
    }
    // 100 ns intervals since 1601-01-01.
    let intervals = (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime);
    let unix_micros = (intervals / 10) as i64 - 11_644_473_600_000_000;
    Some(chrono::DateTime::from_timestamp_micros(unix_micros).map_or(Started::Unknown, Started::At))
}

// ---- Both ----

/// The first `name` in the folders of a PATH value that can be run.
fn search_path(path_var: Option<&OsStr>, name: &str) -> Option<PathBuf> {
    path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Whether a `bash.exe` is WSL's launcher (in System32, or a WindowsApps alias) rather
/// than a bash that runs Windows programs. Written on text, so it is tested anywhere.
#[cfg_attr(unix, allow(dead_code))]
fn is_wsl_launcher(path: &Path) -> bool {
    let text = path
        .to_string_lossy()
        .replace('/', "\\")
        .to_ascii_lowercase();
    text.ends_with(r"\system32\bash.exe")
        || text.ends_with(r"\sysnative\bash.exe")
        || text.contains(r"\windowsapps\")
}

/// Git Bash beside a `git.exe`: Git for Windows puts `git.exe` on PATH from `<root>\cmd`
/// and bash in `<root>\bin`.
#[cfg_attr(unix, allow(dead_code))]
fn git_bash_near(git_exe: &Path) -> Option<PathBuf> {
    let text = git_exe.to_string_lossy().replace('/', "\\");
    let (dir, _) = text.rsplit_once('\\')?;
    let (root, last) = dir.rsplit_once('\\')?;
    last.eq_ignore_ascii_case("cmd")
        .then(|| PathBuf::from(format!(r"{root}\bin\bash.exe")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU32, Ordering};

    /// This test process's environment, as `app::Env` would read it.
    fn this_host() -> HostEnv {
        HostEnv::new(std::env::vars_os(), std::env::temp_dir())
    }

    /// A shell at `program`, with this process's temp folder.
    fn test_shell(kind: ShellKind, program: PathBuf) -> Shell {
        Shell {
            kind,
            program,
            temp_dir: std::env::temp_dir(),
            essential_env: Vec::new(),
        }
    }

    /// A folder of its own under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "updraft-process-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open_log(path: &Path) -> File {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// Polls `cond` every few milliseconds until it holds or `timeout` passes.
    fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn exit_reads_as_a_shell_would() {
        assert!(Exit::Code(0).success());
        assert!(!Exit::Code(1).success());
        assert!(!Exit::Signal(9).success());
        assert_eq!(Exit::Code(99).code(), 99);
        assert_eq!(Exit::Signal(15).code(), 143);
        assert_eq!(Exit::Code(3).to_string(), "exit code 3");
        let killed = Exit::Signal(15).to_string();
        assert!(killed.starts_with("killed by signal 15"), "{killed}");
    }

    #[test]
    fn describe_names_the_shell_and_its_path() {
        let shell = test_shell(ShellKind::Bash, PathBuf::from("/usr/bin/bash"));
        assert_eq!(shell.describe(), "bash (/usr/bin/bash)");
    }

    #[test]
    fn wsl_launchers_are_not_git_bash() {
        for wsl in [
            r"C:\Windows\System32\bash.exe",
            r"C:\WINDOWS\system32\bash.exe",
            r"C:\Windows\Sysnative\bash.exe",
            r"C:\Users\me\AppData\Local\Microsoft\WindowsApps\bash.exe",
        ] {
            assert!(is_wsl_launcher(Path::new(wsl)), "{wsl}");
        }
        for git in [
            r"C:\Program Files\Git\bin\bash.exe",
            r"C:\Program Files\Git\usr\bin\bash.exe",
            "/usr/bin/bash",
        ] {
            assert!(!is_wsl_launcher(Path::new(git)), "{git}");
        }
    }

    #[test]
    fn git_bash_is_found_beside_git_cmd() {
        assert_eq!(
            git_bash_near(Path::new(r"C:\Program Files\Git\cmd\git.exe")),
            Some(PathBuf::from(r"C:\Program Files\Git\bin\bash.exe"))
        );
        assert_eq!(git_bash_near(Path::new(r"C:\tools\git.exe")), None);
    }

    #[test]
    fn multi_line_cmd_scripts_become_batch_files_that_stop_at_a_failing_line() {
        assert!(!is_multi_line("echo a"));
        assert!(!is_multi_line("echo a\n"));
        assert!(!is_multi_line("echo a\r\n\r\n"));
        assert!(is_multi_line("echo a\necho b"));
        let script = "echo first\r\n\
                      rem a comment (with a parenthesis\n\
                      :label\n\
                      if exist x (\n\
                        echo in block\n\
                      ) else (\n\
                        echo \"other ) side\"\n\
                      )\n\
                      echo ^(escaped\n\
                      echo one ^\n\
                        two\n\
                      goto :eof\n\
                      @cmd /c exit 3\n";
        let check = "if %errorlevel% neq 0 exit /b %errorlevel%\r\n";
        let want = [
            "@echo off\r\nchcp 65001 >nul 2>&1\r\n(call )\r\n",
            "echo first\r\n",
            check,
            "rem a comment (with a parenthesis\r\n",
            ":label\r\n",
            "if exist x (\r\n",
            "echo in block\r\n",
            ") else (\r\n",
            "echo \"other ) side\"\r\n",
            ")\r\n",
            check,
            "echo ^(escaped\r\n",
            check,
            "echo one ^\r\n",
            "two\r\n",
            check,
            "goto :eof\r\n",
            "@cmd /c exit 3\r\n",
            check,
        ]
        .concat();
        assert_eq!(batch_file(script), want);
        let cmd = test_shell(
            ShellKind::Cmd,
            PathBuf::from(r"C:\Windows\System32\cmd.exe"),
        );
        assert!(cmd.describe_for("a\nb").contains("as a batch file"));
        assert!(!cmd.describe_for("a\n").contains("batch"));
        assert!(cmd.describe_for("a").contains("65001"));
    }

    #[test]
    fn still_running_tells_this_process_from_a_gone_or_later_one() {
        let now = chrono::Utc::now();
        let me = std::process::id();
        if cfg!(any(target_os = "linux", windows)) {
            assert_eq!(still_running(me, now), Some(true));
            // A job registered an hour before this process started was another one's.
            assert_eq!(
                still_running(me, now - chrono::Duration::hours(1)),
                Some(false)
            );
        }
        // A child that has ended and been reaped.
        let mut child = Command::new(if cfg!(windows) { "cmd" } else { "true" })
            .args(if cfg!(windows) {
                &["/C", "exit"][..]
            } else {
                &[][..]
            })
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(still_running(pid, now), Some(false));
    }

    #[test]
    fn host_identity_names_the_pid_namespace_on_linux() {
        let id = host_identity("box");
        if cfg!(target_os = "linux") {
            assert!(id.starts_with("box "), "{id}");
            assert_eq!(id, host_identity("box"));
            assert_ne!(id, "box");
        } else {
            assert_eq!(id, "box");
        }
    }

    #[test]
    fn cmd_outside_windows_is_refused() {
        if cfg!(windows) {
            return;
        }
        let shell = test_shell(ShellKind::Cmd, PathBuf::from("cmd.exe"));
        assert!(shell.command("echo hi").is_err());
    }

    #[cfg(unix)]
    mod unix {
        use super::*;

        fn bash() -> Shell {
            let shell = find_shell(&this_host());
            assert_eq!(shell.kind, ShellKind::Bash, "these tests need bash on PATH");
            shell
        }

        /// Runs `script` under bash and returns its exit and log.
        fn run(
            script: &str,
            env: &[(&str, &str)],
            inherit_env: bool,
            cwd: Option<&Path>,
        ) -> (Exit, String) {
            let dir = TempDir::new("run");
            let log_path = dir.path().join("try.log");
            let mut running = spawn(Spec {
                shell: bash(),
                script: script.to_owned(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                inherit_env,
                cwd: cwd.map(Path::to_path_buf),
                log: open_log(&log_path),
                stdout: None,
            })
            .unwrap();
            let exit = running
                .wait_timeout(Duration::from_secs(20))
                .unwrap()
                .expect("ended");
            (exit, std::fs::read_to_string(&log_path).unwrap())
        }

        fn start(script: &str, log: &Path) -> Running {
            spawn(Spec {
                shell: bash(),
                script: script.to_owned(),
                env: Vec::new(),
                inherit_env: true,
                cwd: None,
                log: open_log(log),
                stdout: None,
            })
            .unwrap()
        }

        /// Whether `pid` is gone: no such process, or a zombie (dead, but an init that
        /// does not reap, as in some containers, keeps its entry).
        fn is_gone(pid: i32) -> bool {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) => {
                    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                    matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
                }
                Err(_) if Path::new("/proc/self").exists() => true,
                Err(_) => matches!(
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                    Err(nix::errno::Errno::ESRCH)
                ),
            }
        }

        /// Waits for the shell to write the pid of its background child to `file`.
        fn read_pid(file: &Path) -> i32 {
            let mut pid = None;
            let written = wait_until(Duration::from_secs(10), || {
                pid = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                pid.is_some()
            });
            assert!(written, "no pid in {}", file.display());
            pid.unwrap()
        }

        #[test]
        fn finds_bash_on_path_and_falls_back_to_sh() {
            let dir = TempDir::new("path");
            let fake = dir.path().join("bash");
            std::fs::write(&fake, "#!/bin/sh\n").unwrap();
            let empty = TempDir::new("empty");

            // Not executable: passed over.
            let path = std::env::join_paths([dir.path(), empty.path()]).unwrap();
            assert_eq!(
                find_shell(&HostEnv::new([("PATH", &path)], PathBuf::new())).kind,
                ShellKind::Sh
            );
            assert_eq!(
                find_shell(&HostEnv::default()).program,
                PathBuf::from("/bin/sh")
            );

            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            let shell = find_shell(&HostEnv::new([("PATH", &path)], PathBuf::new()));
            assert_eq!((shell.kind, &shell.program), (ShellKind::Bash, &fake));
            assert_eq!(shell.describe(), format!("bash ({})", fake.display()));
        }

        #[test]
        fn stdout_and_stderr_land_in_the_log() {
            let (exit, log) = run("echo hi; echo err >&2", &[], true, None);
            assert_eq!(exit, Exit::Code(0));
            assert_eq!(log, "hi\nerr\n");
        }

        #[test]
        fn the_log_is_appended_to() {
            let dir = TempDir::new("append");
            let log_path = dir.path().join("try.log");
            std::fs::write(&log_path, "supervisor line\n").unwrap();
            let mut running = start("echo task line", &log_path);
            assert_eq!(
                running.wait_timeout(Duration::from_secs(20)).unwrap(),
                Some(Exit::Code(0))
            );
            assert_eq!(
                std::fs::read_to_string(&log_path).unwrap(),
                "supervisor line\ntask line\n"
            );
        }

        #[test]
        fn exit_codes_come_back() {
            for code in [0, 1, 99] {
                let (exit, _) = run(&format!("exit {code}"), &[], true, None);
                assert_eq!(exit, Exit::Code(code));
            }
        }

        /// A variable of this process that the shell does not set itself.
        fn inherited_var() -> (String, String) {
            std::env::vars()
                .find(|(k, v)| {
                    !matches!(
                        k.as_str(),
                        "PATH" | "PWD" | "OLDPWD" | "SHLVL" | "_" | "IFS"
                    ) && !k.starts_with("BASH")
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !v.is_empty()
                        && !v.contains('\n')
                })
                .expect("some environment variable")
        }

        #[test]
        fn env_is_added_to_the_inherited_one() {
            let (name, value) = inherited_var();
            let script = format!("echo \"$TASK_VAR|${{{name}-unset}}\"");
            let (_, log) = run(&script, &[("TASK_VAR", "from task")], true, None);
            assert_eq!(log, format!("from task|{value}\n"));
        }

        #[test]
        fn env_replaces_the_inherited_one_without_append_env() {
            let (name, _) = inherited_var();
            let script = format!("echo \"$TASK_VAR|${{{name}-unset}}\"");
            let (_, log) = run(&script, &[("TASK_VAR", "from task")], false, None);
            assert_eq!(log, "from task|unset\n");
        }

        #[test]
        fn cwd_is_set() {
            let dir = TempDir::new("cwd");
            let (exit, log) = run("pwd -P", &[], true, Some(dir.path()));
            assert_eq!(exit, Exit::Code(0));
            let expected = dir.path().canonicalize().unwrap();
            assert_eq!(log.trim_end(), expected.to_str().unwrap());
        }

        #[test]
        fn a_missing_cwd_is_an_error_naming_the_shell() {
            let dir = TempDir::new("nocwd");
            let err = spawn(Spec {
                shell: bash(),
                script: "true".into(),
                env: Vec::new(),
                inherit_env: true,
                cwd: Some(dir.path().join("missing")),
                log: open_log(&dir.path().join("try.log")),
                stdout: None,
            })
            .unwrap_err();
            assert!(err.to_string().starts_with("cannot start bash ("), "{err}");
        }

        /// The supervisor sleeps until its task ends, not in growing pauses that see a
        /// 12 ms Python task end at 15 ms or 31 ms: a wait looks at the process when it
        /// starts and when the process ends (a signal may add a look), not a dozen times.
        #[cfg(target_os = "linux")]
        #[test]
        fn a_wait_sleeps_until_the_end_instead_of_polling() {
            let dir = TempDir::new("woken");
            let mut running = start("sleep 0.4", &dir.path().join("try.log"));
            let exit = running.wait_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(exit, Some(Exit::Code(0)));
            assert!(running.looks <= 3, "{} looks", running.looks);
        }

        #[test]
        fn wait_timeout_returns_none_while_running() {
            let dir = TempDir::new("timeout");
            let mut running = start("sleep 5", &dir.path().join("try.log"));
            let started = Instant::now();
            assert_eq!(
                running.wait_timeout(Duration::from_millis(100)).unwrap(),
                None
            );
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(100), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
            let exit = running.kill_tree(Duration::from_secs(5)).unwrap();
            assert_eq!(exit, Exit::Signal(15));
            assert_eq!(exit.to_string(), "killed by signal 15 (SIGTERM)");
        }

        #[test]
        fn the_log_is_readable_while_the_command_runs() {
            let dir = TempDir::new("live");
            let log_path = dir.path().join("try.log");
            let mut running = start("echo started; sleep 30", &log_path);
            let seen = wait_until(Duration::from_secs(10), || {
                std::fs::read_to_string(&log_path).is_ok_and(|s| s == "started\n")
            });
            assert!(seen, "the log never showed the first line");
            assert_eq!(running.wait_timeout(Duration::ZERO).unwrap(), None);
            running.kill_tree(Duration::from_secs(5)).unwrap();
        }

        #[test]
        fn kill_tree_kills_the_grandchild() {
            let dir = TempDir::new("tree");
            let pidfile = dir.path().join("pid");
            let script = format!("sleep 60 & echo $! > '{}'; sleep 60", pidfile.display());
            let mut running = start(&script, &dir.path().join("try.log"));
            let grandchild = read_pid(&pidfile);
            assert!(!is_gone(grandchild));

            let exit = running.kill_tree(Duration::from_secs(5)).unwrap();
            assert_eq!(exit, Exit::Signal(15));
            assert!(wait_until(Duration::from_secs(5), || is_gone(grandchild)));
            assert!(is_gone(running.pid() as i32));
        }

        #[test]
        fn kill_tree_escalates_to_sigkill_after_the_grace() {
            let dir = TempDir::new("stubborn");
            let pidfile = dir.path().join("pid");
            // Ignored signals stay ignored across exec, so the background sleep ignores
            // SIGTERM as well as its shell.
            let script = format!(
                "trap '' TERM; sleep 60 & echo $! > '{}'; wait",
                pidfile.display()
            );
            let mut running = start(&script, &dir.path().join("try.log"));
            let grandchild = read_pid(&pidfile);

            let started = Instant::now();
            let exit = running.kill_tree(Duration::from_millis(300)).unwrap();
            assert_eq!(exit, Exit::Signal(9));
            assert!(started.elapsed() >= Duration::from_millis(300));
            assert!(wait_until(Duration::from_secs(5), || is_gone(grandchild)));
            // Later calls return the same exit.
            assert_eq!(running.kill_tree(Duration::ZERO).unwrap(), Exit::Signal(9));
            assert_eq!(
                running.wait_timeout(Duration::ZERO).unwrap(),
                Some(Exit::Signal(9))
            );
        }

        #[test]
        fn a_background_straggler_dies_when_the_command_ends() {
            let dir = TempDir::new("straggler");
            let pidfile = dir.path().join("pid");
            let script = format!("sleep 60 & echo $! > '{}'; exit 3", pidfile.display());
            let mut running = start(&script, &dir.path().join("try.log"));
            let exit = running.wait_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(exit, Some(Exit::Code(3)));
            let straggler = read_pid(&pidfile);
            assert!(wait_until(Duration::from_secs(5), || is_gone(straggler)));
        }

        #[test]
        fn dropping_a_running_command_kills_its_tree() {
            let dir = TempDir::new("drop");
            let pidfile = dir.path().join("pid");
            let script = format!("sleep 60 & echo $! > '{}'; sleep 60", pidfile.display());
            let running = start(&script, &dir.path().join("try.log"));
            let grandchild = read_pid(&pidfile);
            let top = running.pid() as i32;
            drop(running);
            assert!(wait_until(Duration::from_secs(5), || is_gone(grandchild)
                && is_gone(top)));
        }
    }

    #[cfg(windows)]
    mod windows {
        use super::*;

        #[test]
        fn finds_a_shell() {
            let shell = find_shell(&this_host());
            assert!(
                matches!(shell.kind, ShellKind::Bash | ShellKind::Cmd),
                "{shell:?}"
            );
        }

        fn cmd() -> Shell {
            let host = this_host();
            let (kind, program) = fallback_shell(&host);
            Shell {
                kind,
                program,
                ..find_shell(&host)
            }
        }

        fn start(script: &str, log: &Path) -> Running {
            spawn(Spec {
                shell: cmd(),
                script: script.to_owned(),
                env: Vec::new(),
                inherit_env: true,
                cwd: None,
                log: open_log(log),
                stdout: None,
            })
            .unwrap()
        }

        /// As on Linux: the wait sleeps on the process handle until the end.
        #[test]
        fn a_wait_sleeps_until_the_end_instead_of_polling() {
            let dir = TempDir::new("woken");
            let mut running = start("ping -n 2 127.0.0.1 >nul", &dir.path().join("try.log"));
            let exit = running.wait_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(exit, Some(Exit::Code(0)));
            assert!(running.looks <= 3, "{} looks", running.looks);
        }

        #[test]
        fn cmd_output_and_exit_code() {
            let dir = TempDir::new("cmd");
            let log_path = dir.path().join("try.log");
            let mut running = start("echo hi& echo err 1>&2& exit /b 7", &log_path);
            let exit = running.wait_timeout(Duration::from_secs(20)).unwrap();
            assert_eq!(exit, Some(Exit::Code(7)));
            let log = std::fs::read_to_string(&log_path).unwrap();
            assert_eq!(log.replace("\r\n", "\n"), "hi\nerr \n");
        }

        #[test]
        fn cmd_keeps_quotes_verbatim() {
            let dir = TempDir::new("quotes");
            let log_path = dir.path().join("try.log");
            let mut running = start(r#"echo "a b""#, &log_path);
            assert_eq!(
                running.wait_timeout(Duration::from_secs(20)).unwrap(),
                Some(Exit::Code(0))
            );
            let log = std::fs::read_to_string(&log_path).unwrap();
            assert!(log.starts_with("\"a b\""), "{log}");
        }

        #[test]
        fn replaced_env_keeps_system_root() {
            let dir = TempDir::new("env");
            let log_path = dir.path().join("try.log");
            let mut running = spawn(Spec {
                shell: cmd(),
                script: "echo %TASK_VAR%^|%SystemRoot%".into(),
                env: vec![("TASK_VAR".into(), "x".into())],
                inherit_env: false,
                cwd: Some(dir.path().to_path_buf()),
                log: open_log(&log_path),
                stdout: None,
            })
            .unwrap();
            assert_eq!(
                running.wait_timeout(Duration::from_secs(20)).unwrap(),
                Some(Exit::Code(0))
            );
            let log = std::fs::read_to_string(&log_path).unwrap();
            assert!(
                log.starts_with("x|") && !log.contains("%SystemRoot%"),
                "{log}"
            );
        }

        #[test]
        fn kill_tree_stops_the_grandchild() {
            let dir = TempDir::new("tree");
            let log_path = dir.path().join("try.log");
            // The grandchild appends ping's output about every second until it dies. No
            // compound command: Wine's cmd loses `echo`'s output in `(a & b)` blocks.
            let script = "start /b cmd /c \"for /l %i in (1,1,60) do @ping -n 2 127.0.0.1 >>ticks\" & ping -n 60 127.0.0.1 >nul";
            let mut running = spawn(Spec {
                shell: cmd(),
                script: script.into(),
                env: Vec::new(),
                inherit_env: true,
                cwd: Some(dir.path().to_path_buf()),
                log: open_log(&log_path),
                stdout: None,
            })
            .unwrap();
            let ticks = dir.path().join("ticks");
            let len = || std::fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0);
            // Still growing a while after it started: the grandchild is ticking.
            assert!(wait_until(Duration::from_secs(20), || len() > 0));
            let first = len();
            let growing = wait_until(Duration::from_secs(20), || len() > first);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(growing, "the grandchild is not ticking; log: {log}");
            assert_eq!(running.wait_timeout(Duration::ZERO).unwrap(), None);

            assert_eq!(
                running.kill_tree(Duration::from_secs(1)).unwrap(),
                Exit::Code(1)
            );
            let after_kill = len();
            // Two ticks' time with no growth: the grandchild is gone.
            let started = Instant::now();
            assert!(!wait_until(Duration::from_secs(3), || len() != after_kill));
            assert!(started.elapsed() >= Duration::from_secs(3));
        }
    }
}

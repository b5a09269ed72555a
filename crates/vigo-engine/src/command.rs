//! Running a program with a deadline and bounded, zeroized output capture.
//!
//! Every command (an exec's `/bin/sh -c`, `systemctl`, the package tools)
//! runs in its own process group with a cleared environment. On timeout the
//! whole group is killed with SIGKILL, so a shell's background children die
//! with it; so is it when [`run`]'s future is dropped before the command
//! ended (the engine stopping an apply). Output is kept as the last [`CAPTURE_LIMIT`] bytes per stream, in
//! buffers that are zeroized on drop because a command may print a secret.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// Bytes of output kept per stream (the end of it).
pub(crate) const CAPTURE_LIMIT: usize = 64 * 1024;
/// How long to keep reading output after the command itself has exited
/// (a background child may hold the pipes open indefinitely).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Read size.
const CHUNK: usize = 8 * 1024;

/// The default search path when the process has no `PATH`.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run.
pub(crate) struct Invocation {
    /// Program (absolute, or found by the caller on the search path).
    pub(crate) program: PathBuf,
    /// Arguments.
    pub(crate) args: Vec<OsString>,
    /// Working directory.
    pub(crate) cwd: Option<PathBuf>,
    /// Bytes written to standard input, which is then closed. `None`: stdin
    /// is `/dev/null`.
    pub(crate) stdin: Option<Zeroizing<Vec<u8>>>,
    /// The complete environment (the envoy's own is not inherited).
    pub(crate) env: Vec<(OsString, OsString)>,
    /// Kill the process group after this long.
    pub(crate) timeout: Duration,
    /// Run as this user and group (`None`: the envoy's own). With a user,
    /// the supplementary groups of a root envoy are dropped.
    pub(crate) identity: Option<(u32, u32)>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Ran past its timeout; its process group was killed.
    TimedOut,
}

/// The tail of one output stream.
#[derive(Default)]
pub(crate) struct Capture {
    /// The last bytes.
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    /// Whether earlier bytes were dropped.
    pub(crate) truncated: bool,
}

/// A finished command.
pub(crate) struct Finished {
    pub(crate) exit: Exit,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
}

/// Runs `invocation` to completion or timeout.
pub(crate) async fn run(invocation: Invocation) -> io::Result<Finished> {
    let mut command = tokio::process::Command::new(&invocation.program);
    command
        .args(&invocation.args)
        .env_clear()
        .envs(
            invocation
                .env
                .iter()
                .map(|(k, v)| (k.as_os_str(), v.as_os_str())),
        )
        .stdin(if invocation.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &invocation.cwd {
        command.current_dir(cwd);
    }
    if let Some((uid, gid)) = invocation.identity {
        command.uid(uid).gid(gid);
    }
    let mut child = command.spawn()?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut group_guard = GroupGuard(group);

    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), invocation.stdin) {
        // A command that never reads its input must not block us: write from
        // a task, and ignore a broken pipe (the command closed its stdin).
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let stdout = SharedCapture::start(child.stdout.take());
    let stderr = SharedCapture::start(child.stderr.take());

    let exit = match tokio::time::timeout(invocation.timeout, child.wait()).await {
        Ok(status) => {
            let status = status?;
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Signal(0),
            }
        }
        Err(_elapsed) => {
            if let Some(group) = group {
                // ESRCH (the group is already gone) is the only expected
                // failure, and then there is nothing left to kill.
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.kill().await;
            Exit::TimedOut
        }
    };
    // The shell has exited and been reaped: what it left running in the
    // background on success is its business (the drain grace bounds it).
    group_guard.disarm();
    Ok(Finished {
        exit,
        stdout: stdout.finish().await,
        stderr: stderr.finish().await,
    })
}

/// Kills a command's process group when dropped while armed: a future of
/// [`run`] dropped midway (an apply stopped by a signal) leaves no process
/// behind. (`kill_on_drop` alone would kill only the shell, and its
/// children would live on.)
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // ESRCH (the group is already gone) means nothing is left.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// A stream being read into a bounded buffer by a background task.
struct SharedCapture {
    buffer: Arc<Mutex<Capture>>,
    task: Option<JoinHandle<()>>,
}

impl SharedCapture {
    fn start<R: AsyncRead + Unpin + Send + 'static>(reader: Option<R>) -> Self {
        let buffer = Arc::new(Mutex::new(Capture {
            // Room for the limit plus a chunk, so the buffer never
            // reallocates (which would leave unzeroized copies behind).
            bytes: Zeroizing::new(Vec::with_capacity(2 * CAPTURE_LIMIT + CHUNK)),
            truncated: false,
        }));
        let task = reader.map(|reader| tokio::spawn(read_into(reader, Arc::clone(&buffer))));
        Self { buffer, task }
    }

    async fn finish(mut self) -> Capture {
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err()
        {
            task.abort();
        }
        let mut guard = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *guard)
    }
}

async fn read_into<R: AsyncRead + Unpin>(mut reader: R, buffer: Arc<Mutex<Capture>>) {
    let mut chunk = Zeroizing::new(vec![0u8; CHUNK]);
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut capture = buffer.lock().unwrap_or_else(PoisonError::into_inner);
        capture.bytes.extend_from_slice(&chunk[..n]);
        if capture.bytes.len() > 2 * CAPTURE_LIMIT {
            let excess = capture.bytes.len() - CAPTURE_LIMIT;
            capture.bytes.drain(..excess);
            capture.truncated = true;
        }
    }
    let mut capture = buffer.lock().unwrap_or_else(PoisonError::into_inner);
    if capture.bytes.len() > CAPTURE_LIMIT {
        let excess = capture.bytes.len() - CAPTURE_LIMIT;
        capture.bytes.drain(..excess);
        capture.truncated = true;
    }
}

/// Finds `program` on `search_path` (a `PATH`-style list): the first
/// executable regular file of that name.
pub(crate) fn find_program(program: &str, search_path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A minimal, predictable environment for host tools: the search path, a C
/// locale, and `HOME` if the envoy has one.
pub(crate) fn tool_env(search_path: &OsStr) -> Vec<(OsString, OsString)> {
    let mut env = vec![
        (OsString::from("PATH"), search_path.to_os_string()),
        (OsString::from("LC_ALL"), OsString::from("C")),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        env.push((OsString::from("HOME"), home));
    }
    env
}

/// The process's `PATH`, or [`DEFAULT_PATH`].
pub(crate) fn process_search_path() -> OsString {
    std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from(DEFAULT_PATH))
}

/// `true` when `path` exists (without following a final symlink).
pub(crate) fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Invocation {
        Invocation {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            cwd: None,
            stdin: None,
            env: tool_env(OsStr::new(DEFAULT_PATH)),
            timeout,
            identity: None,
        }
    }

    #[tokio::test]
    async fn captures_exit_code_and_both_streams() {
        let done = run(sh(
            "echo out; echo err >&2; exit 3",
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
        assert_eq!(done.exit, Exit::Code(3));
        assert_eq!(done.stdout.bytes.as_slice(), b"out\n");
        assert_eq!(done.stderr.bytes.as_slice(), b"err\n");
    }

    #[tokio::test]
    async fn keeps_only_the_tail_of_long_output() {
        let script = "head -c 300000 /dev/zero | tr '\\0' a; echo END";
        let done = run(sh(script, Duration::from_secs(30))).await.unwrap();
        assert!(done.stdout.truncated);
        assert_eq!(done.stdout.bytes.len(), CAPTURE_LIMIT);
        assert!(done.stdout.bytes.ends_with(b"aEND\n"));
    }

    #[tokio::test]
    async fn a_timeout_is_reported() {
        let done = run(sh("sleep 30", Duration::from_millis(200)))
            .await
            .unwrap();
        assert_eq!(done.exit, Exit::TimedOut);
    }

    #[tokio::test]
    async fn issue_12_item_7_dropping_a_running_command_kills_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let running = tokio::spawn(run(sh(&script, Duration::from_secs(60))));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let pid = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file)
                && text.ends_with('\n')
            {
                break text.trim().parse::<i32>().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the command did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        running.abort();
        assert!(running.await.is_err_and(|e| e.is_cancelled()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
            let gone = stat.map_or(true, |s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            });
            if gone {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the background sleep survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn finds_programs_only_on_the_given_path() {
        assert!(find_program("sh", OsStr::new("/bin:/usr/bin")).is_some());
        assert!(find_program("sh", OsStr::new("/nonexistent")).is_none());
        assert!(find_program("sh", OsStr::new("relative/dir")).is_none());
    }
}

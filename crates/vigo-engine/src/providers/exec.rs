//! The `exec` provider: a command run by `/bin/sh -c`.
//!
//! Secret input reaches the command only through its standard input or the
//! transient `secret_file` (docs/modules.md "Resources"): a fresh 0600 file in the envoy's
//! private 0700 folder, deleted when the command ends however it ends (a
//! guard removes it on drop, so even a cancelled apply cleans up).

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigo_catalog::{ExecSpec, SECRET_FILE_PLACEHOLDER, When};
use zeroize::Zeroizing;

use super::{Context, Outcome, ProviderError, output_excerpt, show_command};
use crate::atomic::random_suffix;
use crate::command::{self, CAPTURE_LIMIT, Capture, Exit, Finished, Invocation};
use crate::ownership;
use crate::report::{CommandOutput, Status};
use crate::scrub::Scrubber;

/// Characters of command output quoted in a failure message.
const EXCERPT_LIMIT: usize = 400;

/// Converges one `exec` resource: decides whether it must run, then runs it.
pub(crate) async fn apply(spec: &ExecSpec, when: When, ctx: &Context<'_>) -> Outcome {
    let shown = ctx.scrubber.scrub(&show_command(&spec.command));
    if let Some(creates) = &spec.creates
        && command::exists(creates.as_path())
    {
        return Outcome::unchanged(format!("{creates} exists; `{shown}` not run"));
    }
    let reason = match when {
        When::Always => None,
        When::Changed => match (ctx.refreshed_by, ctx.secret_triggered, ctx.ran_before) {
            (Some(by), _, _) => Some(format!("refresh from '{by}'")),
            (None, true, _) => Some("a watched secret rotated".to_owned()),
            (None, false, false) => Some("first run".to_owned()),
            (None, false, true) => {
                return Outcome::unchanged(format!(
                    "when: changed and nothing notified it; `{shown}` not run"
                ));
            }
        },
    };
    let because = reason.map(|r| format!(" ({r})")).unwrap_or_default();
    let identity = match Identity::of(spec) {
        Ok(identity) => identity,
        Err(e) => return Outcome::failed(e.message()),
    };
    // Guards only look: they run in noop runs too, as the decision needs.
    for (key, guard) in [("unless", &spec.unless), ("onlyif", &spec.onlyif)] {
        let Some(guard) = guard else { continue };
        let shown_guard = ctx.scrubber.scrub(&show_command(guard));
        let finished = match run_shell(spec, ctx, &identity, guard, None).await {
            Ok(finished) => finished,
            Err(e) => return Outcome::failed(format!("{key} guard: {}", e.message())),
        };
        let passed = match finished.exit {
            Exit::Code(code) => code == 0,
            Exit::Signal(_) | Exit::TimedOut => {
                let mut outcome = outcome_of(&finished, ctx.scrubber, "", spec.timeout_secs);
                outcome.message = format!("{key} guard `{shown_guard}`: {}", outcome.message);
                return outcome;
            }
        };
        match (key, passed) {
            ("unless", true) => {
                return Outcome::unchanged(format!(
                    "unless guard `{shown_guard}` succeeded; `{shown}` not run"
                ));
            }
            ("onlyif", false) => {
                return Outcome::unchanged(format!(
                    "onlyif guard `{shown_guard}` did not succeed; `{shown}` not run"
                ));
            }
            _ => {}
        }
    }
    if ctx.noop {
        return Outcome::changed(format!("would run `{shown}`{because}"));
    }
    match run(spec, ctx, &identity).await {
        Ok(finished) => outcome_of(
            &finished,
            ctx.scrubber,
            &format!("ran `{shown}`{because}"),
            spec.timeout_secs,
        ),
        Err(e) => Outcome::failed(e.message()),
    }
}

/// Who a command runs as: `user` (and its primary group unless `group` is
/// set), with its home in `HOME`.
pub(super) struct Identity {
    ids: Option<(u32, u32)>,
    env: Vec<(OsString, OsString)>,
}

impl Identity {
    fn of(spec: &ExecSpec) -> Result<Self, ProviderError> {
        let user = match &spec.user {
            None => None,
            Some(name) => {
                let uid = ownership::user_id(name)?;
                let user = nix::unistd::User::from_uid(uid)
                    .map_err(ProviderError::lookup("user", name))?;
                Some((uid, user))
            }
        };
        let gid = match (&spec.group, &user) {
            (Some(group), _) => Some(ownership::group_id(group)?),
            (None, Some((_, Some(user)))) => Some(user.gid),
            (None, Some((_, None))) => {
                return Err(ProviderError::refused(format!(
                    "user {} has no entry in the user database, so its group is unknown; set 'group'",
                    spec.user.as_deref().unwrap_or_default()
                )));
            }
            (None, None) => None,
        };
        let mut env = Vec::new();
        if let Some((_, Some(user))) = &user {
            env.push((OsString::from("HOME"), user.dir.clone().into_os_string()));
            env.push((OsString::from("USER"), OsString::from(&user.name)));
            env.push((OsString::from("LOGNAME"), OsString::from(&user.name)));
        }
        let ids = match (user, gid) {
            (Some((uid, _)), Some(gid)) => Some((uid.as_raw(), gid.as_raw())),
            (None, Some(gid)) => Some((nix::unistd::geteuid().as_raw(), gid.as_raw())),
            (_, None) => None,
        };
        Ok(Self { ids, env })
    }
}

/// Runs `script` with the resource's user, group, environment, umask and
/// working folder.
async fn run_shell(
    spec: &ExecSpec,
    ctx: &Context<'_>,
    identity: &Identity,
    script: &str,
    stdin: Option<Zeroizing<Vec<u8>>>,
) -> Result<Finished, ProviderError> {
    if let Some(cwd) = &spec.cwd
        && !cwd.as_path().is_dir()
    {
        return Err(ProviderError::refused(format!(
            "cwd {cwd} is not an existing directory; create it first (a directory resource in depends_on)"
        )));
    }
    let script = match spec.umask {
        Some(mask) => format!("umask {mask}\n{script}"),
        None => script.to_owned(),
    };
    let mut env = command::tool_env(ctx.search_path);
    for (key, value) in identity.env.iter().cloned().chain(
        spec.environment
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    ) {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    let invocation = Invocation {
        program: PathBuf::from("/bin/sh"),
        args: vec![OsString::from("-c"), OsString::from(script)],
        cwd: spec.cwd.as_ref().map(|c| c.as_path().to_path_buf()),
        stdin,
        env,
        timeout: Duration::from_secs(spec.timeout_secs),
        identity: identity.ids,
    };
    command::run(invocation)
        .await
        .map_err(|source| ProviderError::Run {
            verb: "starting",
            program: PathBuf::from("/bin/sh"),
            source,
        })
}

/// Prepares the secret file and input, then runs the command.
async fn run(
    spec: &ExecSpec,
    ctx: &Context<'_>,
    identity: &Identity,
) -> Result<Finished, ProviderError> {
    let uses_placeholder = spec.command.contains(SECRET_FILE_PLACEHOLDER);
    let secret_file = match &spec.secret_file {
        Some(text) => {
            let value = text.reveal(&ctx.catalog.secrets)?;
            // The file lives in the envoy's private folder, which another
            // user cannot enter (the compiler refuses the combination).
            if identity.ids.is_some() {
                return Err(ProviderError::refused(
                    "secret_file cannot be used with user or group; pass the secret on stdin",
                ));
            }
            Some(SecretFile::create(ctx.secret_file_dir, value.as_bytes())?)
        }
        None if uses_placeholder => {
            return Err(ProviderError::refused(format!(
                "the command uses {SECRET_FILE_PLACEHOLDER} but the resource has no secret_file; add one"
            )));
        }
        None => None,
    };
    let command_line = match &secret_file {
        Some(file) => spec
            .command
            .replace(SECRET_FILE_PLACEHOLDER, &file.shell_path()?),
        None => spec.command.clone(),
    };
    let stdin = spec
        .stdin
        .as_ref()
        .map(|text| {
            text.reveal(&ctx.catalog.secrets)
                .map(|v| Zeroizing::new(v.as_bytes().to_vec()))
        })
        .transpose()?;
    let result = run_shell(spec, ctx, identity, &command_line, stdin).await;
    // The command has ended (or never started): the file goes now.
    drop(secret_file);
    result
}

/// The outcome of a finished command: `changed` on exit 0, else `failed`
/// with the end of its output.
pub(super) fn outcome_of(
    finished: &Finished,
    scrubber: &Scrubber,
    success: &str,
    timeout_secs: u64,
) -> Outcome {
    let output = scrubbed_output(finished, scrubber);
    let excerpt = if output.stderr.trim().is_empty() {
        &output.stdout
    } else {
        &output.stderr
    };
    let excerpt = output_excerpt(excerpt, EXCERPT_LIMIT);
    let (status, mut message) = match finished.exit {
        Exit::Code(0) => (Status::Changed, success.to_owned()),
        Exit::Code(code) => (Status::Failed, format!("exit status {code}")),
        Exit::Signal(signal) => (Status::Failed, format!("killed by signal {signal}")),
        Exit::TimedOut => (
            Status::Failed,
            format!("timed out after {timeout_secs}s; its process group was killed"),
        ),
    };
    if status == Status::Failed && !excerpt.is_empty() {
        message.push_str(": ");
        message.push_str(&excerpt);
    }
    Outcome {
        status,
        message,
        output: Some(output),
        diff: None,
    }
}

/// The captured streams, as text with every secret value removed.
pub(super) fn scrubbed_output(finished: &Finished, scrubber: &Scrubber) -> CommandOutput {
    CommandOutput {
        exit_code: match finished.exit {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) | Exit::TimedOut => None,
        },
        stdout: scrub_capture(&finished.stdout, scrubber),
        stderr: scrub_capture(&finished.stderr, scrubber),
    }
}

fn scrub_capture(capture: &Capture, scrubber: &Scrubber) -> String {
    scrubber.scrub_output(&capture.bytes, capture.truncated, CAPTURE_LIMIT)
}

/// A transient secret file, removed on drop.
struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    /// Writes `value` to a new 0600 file in `dir` (the envoy's 0700 folder).
    fn create(dir: &Path, value: &[u8]) -> Result<Self, ProviderError> {
        let path = dir.join(format!("secret-{}", random_suffix()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(ProviderError::io("creating secret file in", dir))?;
        let guard = Self { path };
        file.write_all(value)
            .and_then(|()| file.sync_all())
            .map_err(ProviderError::io("writing secret file", &guard.path))?;
        Ok(guard)
    }

    /// The path as it goes into a shell command: only characters that
    /// need no quoting are accepted, so substitution cannot change the
    /// command's meaning.
    fn shell_path(&self) -> Result<String, ProviderError> {
        let text = self.path.to_str().unwrap_or_default();
        let safe = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b));
        if safe {
            Ok(text.to_owned())
        } else {
            Err(ProviderError::refused(format!(
                "the envoy's data folder path {} has characters that would need shell quoting; use a plain path for data_dir",
                self.path.parent().unwrap_or(Path::new("")).display()
            )))
        }
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::error!(path = %self.path.display(), error = %e, "could not remove a transient secret file");
        }
    }
}

#[cfg(test)]
mod tests {

    use vigo_catalog::{AbsPath, Catalog, SecretText};

    use super::*;

    fn spec(command: &str) -> ExecSpec {
        ExecSpec {
            command: command.into(),
            stdin: None,
            secret_file: None,
            creates: None,
            cwd: None,
            timeout_secs: 30,
            ..ExecSpec::default()
        }
    }

    async fn run_exec(
        spec: &ExecSpec,
        when: When,
        ran_before: bool,
        noop: bool,
        secret_dir: &Path,
    ) -> Outcome {
        let catalog = Catalog::empty("t");
        let scrubber = Scrubber::for_catalog(&catalog);
        let ctx = Context {
            secret_file_dir: secret_dir,
            ran_before,
            ..Context::for_test(&catalog, &scrubber, noop)
        };
        apply(spec, when, &ctx).await
    }

    #[tokio::test]
    async fn exit_codes_map_to_statuses_with_an_excerpt() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run_exec(&spec("true"), When::Always, false, false, dir.path()).await;
        assert_eq!(ok.status, Status::Changed);
        let bad = run_exec(
            &spec("echo boom >&2; exit 4"),
            When::Always,
            false,
            false,
            dir.path(),
        )
        .await;
        assert_eq!(bad.status, Status::Failed);
        assert_eq!(bad.message, "exit status 4: boom");
    }

    #[tokio::test]
    async fn creates_and_when_changed_skip_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("exit 1");
        s.creates = Some(AbsPath::parse(dir.path().to_str().unwrap()).unwrap());
        assert_eq!(
            run_exec(&s, When::Always, false, false, dir.path())
                .await
                .status,
            Status::Unchanged
        );
        let once = run_exec(&spec("exit 1"), When::Changed, true, false, dir.path()).await;
        assert_eq!(once.status, Status::Unchanged);
        let noop = run_exec(&spec("exit 1"), When::Changed, false, true, dir.path()).await;
        assert_eq!(noop.message, "would run `exit 1` (first run)");
    }

    #[tokio::test]
    async fn a_placeholder_without_secret_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_exec(
            &spec("cat {{secret_file}}"),
            When::Always,
            false,
            false,
            dir.path(),
        )
        .await;
        assert_eq!(out.status, Status::Failed);
        assert!(out.message.contains("no secret_file"), "{}", out.message);
    }

    #[tokio::test]
    async fn stdin_text_reaches_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("cat > out.txt");
        s.cwd = Some(AbsPath::parse(dir.path().to_str().unwrap()).unwrap());
        s.stdin = Some(SecretText::literal("line one\n"));
        assert_eq!(
            run_exec(&s, When::Always, false, false, dir.path())
                .await
                .status,
            Status::Changed
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "line one\n"
        );
    }

    #[tokio::test]
    async fn issue_15_unless_and_onlyif_guard_the_command_also_in_noop() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut s = spec(&format!("touch {}", marker.display()));
        s.unless = Some("test -e /".into());
        let out = run_exec(&s, When::Always, false, false, dir.path()).await;
        assert_eq!(out.status, Status::Unchanged);
        assert_eq!(
            out.message,
            format!(
                "unless guard `test -e /` succeeded; `touch {}` not run",
                marker.display()
            )
        );
        s.unless = Some("exit 1".into());
        s.onlyif = Some("exit 3".into());
        let out = run_exec(&s, When::Always, false, true, dir.path()).await;
        assert_eq!(out.status, Status::Unchanged, "{}", out.message);
        s.onlyif = Some("true".into());
        let out = run_exec(&s, When::Always, false, true, dir.path()).await;
        assert!(out.message.starts_with("would run"), "{}", out.message);
        assert!(!marker.exists());
        assert_eq!(
            run_exec(&s, When::Always, false, false, dir.path())
                .await
                .status,
            Status::Changed
        );
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn issue_15_environment_and_umask_reach_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec("printf '%s' \"$GREETING\" > out.txt; umask > mask.txt");
        s.cwd = Some(AbsPath::parse(dir.path().to_str().unwrap()).unwrap());
        s.environment
            .insert("GREETING".into(), "hello there".into());
        s.umask = Some(vigo_catalog::Mode::from_bits(0o027));
        let out = run_exec(&s, When::Always, false, false, dir.path()).await;
        assert_eq!(out.status, Status::Changed, "{}", out.message);
        assert_eq!(
            fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "hello there"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("mask.txt"))
                .unwrap()
                .trim(),
            "0027"
        );
        let meta = fs::metadata(dir.path().join("out.txt")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o640
        );
    }

    #[tokio::test]
    async fn issue_15_user_and_group_set_who_runs_the_command() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out_file = dir.path().join("id.txt");
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let mut s = spec(&format!(
            "echo \"$(id -u) $(id -g) $HOME\" > {}",
            out_file.display()
        ));
        s.user = Some("nobody".into());
        let out = run_exec(&s, When::Always, false, false, dir.path()).await;
        assert_eq!(out.status, Status::Changed, "{}", out.message);
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            fs::read_to_string(&out_file).unwrap().trim(),
            format!("{} {} {}", nobody.uid, nobody.gid, nobody.dir.display())
        );
        s.user = Some("no-such-user-vigo".into());
        let out = run_exec(&s, When::Always, false, false, dir.path()).await;
        assert_eq!(out.status, Status::Failed);
        assert!(out.message.contains("does not exist"), "{}", out.message);
    }
}

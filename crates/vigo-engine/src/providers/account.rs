//! The `user` and `group` providers: local accounts, read from the user
//! database (`getpwnam`/`getgrnam`, as `getent` does) and changed with
//! `useradd`/`usermod`/`userdel` and `groupadd`/`groupmod`/`groupdel`
//! found on the search path, only where they differ. A password hash comes
//! from a secret and reaches `chpasswd -e` on its standard input, never a
//! command line; it is compared with `/etc/shadow` and never shown.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::path::Path;
use std::time::Duration;

use nix::unistd::{Gid, Group, User};
use vigo_catalog::{GroupSpec, Presence, UserSpec};
use zeroize::Zeroizing;

use super::exec::scrubbed_output;
use super::{Context, Outcome, ProviderError, check_name, output_excerpt};
use crate::command::{self, Exit, Invocation};
use crate::ownership;

/// How long an account tool may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Where password hashes live.
const SHADOW: &str = "/etc/shadow";

/// Converges one `group` resource.
pub(crate) async fn apply_group(spec: &GroupSpec, ctx: &Context<'_>) -> Outcome {
    converge_group(spec, ctx).await.into()
}

async fn converge_group(spec: &GroupSpec, ctx: &Context<'_>) -> Result<Outcome, ProviderError> {
    let name = spec.group.as_str();
    check_name("group", name)?;
    let existing = Group::from_name(name).map_err(ProviderError::lookup("group", name))?;
    let (tool, args, what) = match (spec.state, existing) {
        (Presence::Absent, None) => {
            return Ok(Outcome::unchanged(format!("group {name} is absent")));
        }
        (Presence::Absent, Some(_)) => (
            "groupdel",
            vec![name.to_owned()],
            format!("remove group {name}"),
        ),
        (Presence::Present, None) => {
            let mut args = Vec::new();
            if let Some(gid) = spec.gid {
                args.extend(["-g".to_owned(), gid.to_string()]);
            }
            if spec.system {
                args.push("-r".to_owned());
            }
            args.push(name.to_owned());
            let with = spec.gid.map(|g| format!(" (gid {g})")).unwrap_or_default();
            ("groupadd", args, format!("create group {name}{with}"))
        }
        (Presence::Present, Some(group)) => match spec.gid {
            Some(gid) if gid != group.gid.as_raw() => (
                "groupmod",
                vec!["-g".to_owned(), gid.to_string(), name.to_owned()],
                format!("set gid of group {name} to {gid} (was {})", group.gid),
            ),
            _ => {
                return Ok(Outcome::unchanged(format!(
                    "group {name} exists (gid {})",
                    group.gid
                )));
            }
        },
    };
    if ctx.noop {
        return Ok(Outcome::changed(format!("would {what}")));
    }
    run(ctx, tool, &args, None).await?;
    Ok(Outcome::changed(past(&what)))
}

/// Converges one `user` resource.
pub(crate) async fn apply_user(spec: &UserSpec, ctx: &Context<'_>) -> Outcome {
    converge_user(spec, ctx).await.into()
}

async fn converge_user(spec: &UserSpec, ctx: &Context<'_>) -> Result<Outcome, ProviderError> {
    let name = spec.user.as_str();
    check_name("user", name)?;
    let existing = User::from_name(name).map_err(ProviderError::lookup("user", name))?;
    if spec.state == Presence::Absent {
        if existing.is_none() {
            return Ok(Outcome::unchanged(format!("user {name} is absent")));
        }
        if ctx.noop {
            return Ok(Outcome::changed(format!("would remove user {name}")));
        }
        run(ctx, "userdel", &[name.to_owned()], None).await?;
        return Ok(Outcome::changed(format!("removed user {name}")));
    }
    let gid = spec.gid.as_deref().map(ownership::group_id).transpose()?;
    let groups: Option<BTreeSet<u32>> = spec
        .groups
        .as_ref()
        .map(|names| {
            names
                .iter()
                .map(|g| ownership::group_id(g).map(Gid::as_raw))
                .collect::<Result<_, _>>()
        })
        .transpose()?;
    let hash = spec
        .password
        .as_ref()
        .map(|p| p.reveal(&ctx.catalog.secrets))
        .transpose()?;

    let mut changes = Vec::new();
    let Some(user) = existing else {
        let mut args = Vec::new();
        if let Some(uid) = spec.uid {
            args.extend(["-u".to_owned(), uid.to_string()]);
        }
        if let Some(gid) = gid {
            args.extend(["-g".to_owned(), gid.to_string()]);
        }
        if let Some(groups) = &groups {
            args.extend(["-G".to_owned(), join_ids(groups)]);
        }
        if let Some(home) = &spec.home {
            args.extend(["-d".to_owned(), home.to_string()]);
        }
        if let Some(shell) = &spec.shell {
            args.extend(["-s".to_owned(), shell.to_string()]);
        }
        args.push(if spec.system { "-r" } else { "-m" }.to_owned());
        args.push(name.to_owned());
        let mut what = format!("create user {name}");
        if hash.is_some() {
            what.push_str(" with its password");
        }
        if ctx.noop {
            return Ok(Outcome::changed(format!("would {what}")));
        }
        run(ctx, "useradd", &args, None).await?;
        if let Some(hash) = &hash {
            set_password(ctx, name, hash).await?;
        }
        return Ok(Outcome::changed(past(&what)));
    };

    let mut args = Vec::new();
    if let Some(uid) = spec.uid.filter(|u| *u != user.uid.as_raw()) {
        args.extend(["-u".to_owned(), uid.to_string()]);
        changes.push(format!("set uid of {name} to {uid} (was {})", user.uid));
    }
    if let Some(gid) = gid.filter(|g| *g != user.gid) {
        args.extend(["-g".to_owned(), gid.to_string()]);
        changes.push(format!(
            "set primary group of {name} to {} (was {})",
            ownership::group_name(gid.as_raw()),
            ownership::group_name(user.gid.as_raw())
        ));
    }
    if let Some(wanted) = &groups {
        let primary = gid.unwrap_or(user.gid);
        let now = supplementary(name, primary)?;
        if now != *wanted {
            args.extend(["-G".to_owned(), join_ids(wanted)]);
            changes.push(format!(
                "set groups of {name} to [{}] (was [{}])",
                names(wanted),
                names(&now)
            ));
        }
    }
    if let Some(home) = spec.home.as_ref().filter(|h| h.as_path() != user.dir) {
        args.extend(["-d".to_owned(), home.to_string()]);
        changes.push(format!(
            "set home of {name} to {home} (was {})",
            user.dir.display()
        ));
    }
    if let Some(shell) = spec.shell.as_ref().filter(|s| s.as_path() != user.shell) {
        args.extend(["-s".to_owned(), shell.to_string()]);
        changes.push(format!(
            "set shell of {name} to {shell} (was {})",
            user.shell.display()
        ));
    }
    let password_differs = match &hash {
        Some(hash) => !shadow_hash_is(name, hash)?,
        None => false,
    };
    if password_differs {
        changes.push(format!("set the password of {name} (secret, not shown)"));
    }
    if !ctx.noop {
        if !args.is_empty() {
            args.push(name.to_owned());
            run(ctx, "usermod", &args, None).await?;
        }
        if let (true, Some(hash)) = (password_differs, &hash) {
            set_password(ctx, name, hash).await?;
        }
    }
    Ok(Outcome::from_changes(
        changes,
        ctx.noop,
        format!("user {name} is in sync (uid {})", user.uid),
    ))
}

/// The supplementary groups of `user` (every group listing it, less its
/// primary group).
fn supplementary(user: &str, primary: Gid) -> Result<BTreeSet<u32>, ProviderError> {
    let name = CString::new(user)
        .map_err(|_| ProviderError::refused(format!("user name '{user}' holds NUL")))?;
    let all =
        nix::unistd::getgrouplist(&name, primary).map_err(|source| ProviderError::Lookup {
            what: format!("the groups of user '{user}'"),
            source,
        })?;
    Ok(all
        .into_iter()
        .filter(|g| *g != primary)
        .map(Gid::as_raw)
        .collect())
}

fn join_ids(ids: &BTreeSet<u32>) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn names(ids: &BTreeSet<u32>) -> String {
    ids.iter()
        .map(|g| ownership::group_name(*g))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `/etc/shadow` holds exactly `hash` for `user` (compared in
/// constant time; the file's content is zeroized after).
fn shadow_hash_is(user: &str, hash: &str) -> Result<bool, ProviderError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(SHADOW).map_err(ProviderError::io("reading", Path::new(SHADOW)))?,
    );
    let current = text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        (fields.next() == Some(user)).then(|| fields.next().unwrap_or_default())
    });
    Ok(current.is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), hash.as_bytes()).is_ok()
    }))
}

/// Sets the hash with `chpasswd -e`, the hash on its standard input.
async fn set_password(ctx: &Context<'_>, user: &str, hash: &str) -> Result<(), ProviderError> {
    if hash.contains(['\n', ':']) || hash.is_empty() {
        return Err(ProviderError::refused(format!(
            "the password secret of user {user} is not a crypt(3) hash (empty, or holds ':' or a newline)"
        )));
    }
    let input = Zeroizing::new(format!("{user}:{hash}\n").into_bytes());
    run(ctx, "chpasswd", &["-e".to_owned()], Some(input)).await
}

/// Runs an account tool found on the search path; a failure says which
/// tool and ends with its (scrubbed) error output.
async fn run(
    ctx: &Context<'_>,
    tool: &str,
    args: &[String],
    stdin: Option<Zeroizing<Vec<u8>>>,
) -> Result<(), ProviderError> {
    let program = command::find_program(tool, ctx.search_path).ok_or_else(|| {
        ProviderError::refused(format!(
            "{tool} is not on the search path; install the shadow-utils (passwd) tools"
        ))
    })?;
    let invocation = Invocation {
        program: program.clone(),
        args: args.iter().map(OsString::from).collect(),
        cwd: None,
        stdin,
        env: command::tool_env(ctx.search_path),
        timeout: TOOL_TIMEOUT,
        identity: None,
    };
    let finished = command::run(invocation)
        .await
        .map_err(|source| ProviderError::Run {
            verb: "running",
            program: program.clone(),
            source,
        })?;
    let reason = match finished.exit {
        Exit::Code(0) => return Ok(()),
        Exit::Code(code) => format!("exit status {code}"),
        Exit::Signal(signal) => format!("killed by signal {signal}"),
        Exit::TimedOut => format!("timed out after {}s", TOOL_TIMEOUT.as_secs()),
    };
    let output = scrubbed_output(&finished, ctx.scrubber);
    let excerpt = output_excerpt(&output.stderr, 300);
    Err(ProviderError::refused(format!(
        "{tool} failed ({reason}): {excerpt}"
    )))
}

/// "create x" -> "created x", and so on for the verbs used here.
fn past(what: &str) -> String {
    for (from, to) in [
        ("create ", "created "),
        ("remove ", "removed "),
        ("set ", "set "),
    ] {
        if let Some(rest) = what.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    what.to_owned()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::path::Path;

    use vigo_catalog::Catalog;

    use super::*;
    use crate::report::Status;
    use crate::scrub::Scrubber;

    /// A name no other test or host account uses.
    fn unique(prefix: &str) -> String {
        format!("{prefix}{}", &crate::atomic::random_suffix()[..8])
    }

    async fn tool(program: &str, args: &[&str]) {
        let _ = std::process::Command::new(program).args(args).status();
    }

    /// Removes the account when the test ends, whatever happens.
    struct Cleanup(Vec<(&'static str, String)>);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for (program, name) in &self.0 {
                let _ = std::process::Command::new(program)
                    .args(if *program == "userdel" {
                        vec!["-r", name.as_str()]
                    } else {
                        vec![name.as_str()]
                    })
                    .output();
            }
        }
    }

    fn ctx<'a>(catalog: &'a Catalog, scrubber: &'a Scrubber, noop: bool) -> Context<'a> {
        Context::for_test(catalog, scrubber, noop)
    }

    fn can_manage_accounts() -> bool {
        nix::unistd::geteuid().is_root()
            && command::find_program("useradd", OsStr::new(command::DEFAULT_PATH)).is_some()
    }

    #[tokio::test]
    async fn issue_15_group_is_created_changed_and_removed_honestly() {
        if !can_manage_accounts() {
            return;
        }
        let name = unique("vgg");
        let _cleanup = Cleanup(vec![("groupdel", name.clone())]);
        let catalog = Catalog::empty("t");
        let scrubber = Scrubber::for_catalog(&catalog);
        let mut spec = GroupSpec {
            group: name.clone(),
            gid: None,
            system: true,
            state: Presence::Present,
        };
        let noop = apply_group(&spec, &ctx(&catalog, &scrubber, true)).await;
        assert_eq!(noop.message, format!("would create group {name}"));
        assert!(Group::from_name(&name).unwrap().is_none());
        let made = apply_group(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(made.status, Status::Changed, "{}", made.message);
        let gid = Group::from_name(&name).unwrap().unwrap().gid.as_raw();
        let again = apply_group(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(again.status, Status::Unchanged, "{}", again.message);
        spec.gid = Some(gid + 7919);
        let moved = apply_group(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(moved.status, Status::Changed, "{}", moved.message);
        assert_eq!(
            Group::from_name(&name).unwrap().unwrap().gid.as_raw(),
            gid + 7919
        );
        spec.state = Presence::Absent;
        assert_eq!(
            apply_group(&spec, &ctx(&catalog, &scrubber, false))
                .await
                .status,
            Status::Changed
        );
        assert!(Group::from_name(&name).unwrap().is_none());
        assert_eq!(
            apply_group(&spec, &ctx(&catalog, &scrubber, false))
                .await
                .status,
            Status::Unchanged
        );
    }

    #[tokio::test]
    async fn issue_15_user_with_groups_shell_and_secret_password() {
        if !can_manage_accounts() {
            return;
        }
        let user = unique("vgu");
        let extra = unique("vgx");
        let _cleanup = Cleanup(vec![("userdel", user.clone()), ("groupdel", extra.clone())]);
        tool("groupadd", &["-r", &extra]).await;
        let hash = "$6$vigo$CANARYhashCANARYhashCANARY";
        let path = vigo_secrets::SecretPath::parse("vigo/users/pw").unwrap();
        let mut catalog = Catalog::empty("t");
        catalog.secrets.insert(
            path.clone(),
            vigo_catalog::CatalogSecret {
                version: 1,
                value: Some(hash.into()),
            },
        );
        let scrubber = Scrubber::for_catalog(&catalog);
        let mut spec = UserSpec {
            user: user.clone(),
            uid: None,
            gid: None,
            groups: Some(vec![extra.clone()]),
            home: None,
            shell: Some(vigo_catalog::AbsPath::parse("/bin/sh").unwrap()),
            system: true,
            password: Some(vigo_catalog::SecretText(vec![
                vigo_catalog::Segment::Secret(path),
            ])),
            state: Presence::Present,
        };
        let made = apply_user(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(made.status, Status::Changed, "{}", made.message);
        assert!(!made.message.contains("CANARY"));
        let entry = User::from_name(&user).unwrap().unwrap();
        assert_eq!(entry.shell, Path::new("/bin/sh"));
        assert!(shadow_hash_is(&user, hash).unwrap());
        let again = apply_user(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(again.status, Status::Unchanged, "{}", again.message);

        // Drift: shell and groups changed by hand, password reset.
        tool("usermod", &["-s", "/bin/bash", "-G", "", &user]).await;
        tool("usermod", &["-p", "!", &user]).await;
        let noop = apply_user(&spec, &ctx(&catalog, &scrubber, true)).await;
        assert_eq!(noop.status, Status::Changed);
        assert!(noop.message.contains("set shell"), "{}", noop.message);
        assert!(
            noop.message
                .contains(&format!("set groups of {user} to [{extra}] (was [])")),
            "{}",
            noop.message
        );
        assert!(
            noop.message.contains("(secret, not shown)"),
            "{}",
            noop.message
        );
        assert!(!noop.message.contains("CANARY"));
        let fixed = apply_user(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(fixed.status, Status::Changed, "{}", fixed.message);
        assert!(shadow_hash_is(&user, hash).unwrap());
        assert_eq!(
            apply_user(&spec, &ctx(&catalog, &scrubber, false))
                .await
                .status,
            Status::Unchanged
        );

        spec.state = Presence::Absent;
        let gone = apply_user(&spec, &ctx(&catalog, &scrubber, false)).await;
        assert_eq!(gone.status, Status::Changed, "{}", gone.message);
        assert!(User::from_name(&user).unwrap().is_none());
    }
}

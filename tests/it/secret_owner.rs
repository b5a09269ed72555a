//! Who owns a secret file: `vigocli secrets bootstrap` and `secrets set` run
//! as root write files owned by the owner of `secrets_dir`, so a vigosrv
//! running as that (unprivileged) user reads them; a file it cannot read is
//! reported with the `chown` to run. Needs root (the tests say so and pass
//! otherwise, as a CI run as root is where they mean something).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use nix::unistd::{Group, User};

use crate::support::{ServerProcess, TestDir, assert_contains, bin, run, stderr, stdout};

const PATH: &str = "vigo/app/password";
const CANARY: &str = "issue17-canary-owner-3f9c";

/// The unprivileged user the server runs as, with its group's name.
struct Unprivileged {
    user: User,
    group: String,
}

/// `nobody`, when this test runs as root and the host has it and setpriv.
fn unprivileged() -> Option<Unprivileged> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the owner tests need root");
        return None;
    }
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: no /usr/bin/setpriv");
        return None;
    }
    let user = User::from_name("nobody").ok().flatten()?;
    let group = Group::from_gid(user.gid).ok().flatten()?.name;
    Some(Unprivileged { user, group })
}

/// A test folder the unprivileged user can read, whose data folder it owns.
fn folder_for(who: &Unprivileged) -> TestDir {
    let dir = TestDir::new();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.data_dir()).unwrap();
    std::fs::set_permissions(dir.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    nix::unistd::chown(&dir.data_dir(), Some(who.user.uid), Some(who.user.gid)).unwrap();
    dir
}

/// vigosrv started as the unprivileged user.
fn server_as(who: &Unprivileged, dir: &TestDir) -> ServerProcess {
    ServerProcess::from_command(
        Command::new("/usr/bin/setpriv")
            .arg(format!("--reuid={}", who.user.uid))
            .arg(format!("--regid={}", who.user.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(bin("vigosrv"))
            .arg("--config")
            .arg(dir.config()),
    )
}

/// Every file and folder under `root` with an owner other than `who`.
fn not_owned_by(root: &Path, who: &Unprivileged) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.uid() != who.user.uid.as_raw() || meta.gid() != who.user.gid.as_raw() {
            wrong.push(format!(
                "{} ({}:{})",
                path.display(),
                meta.uid(),
                meta.gid()
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    wrong
}

#[test]
fn issue_17_a_root_cli_writes_files_an_unprivileged_server_reads() {
    let Some(who) = unprivileged() else { return };
    let dir = folder_for(&who);

    let out = dir.cli(&["secrets", "bootstrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = not_owned_by(&dir.data_dir(), &who);
    assert!(wrong.is_empty(), "bootstrap as root left: {wrong:?}");

    let mut server = server_as(&who, &dir);
    server.wait_healthy(dir.port, &dir.ca_file());

    let out = crate::support::run_with_stdin(
        dir.vigocli().args(["secrets", "set", PATH, "-"]),
        CANARY.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_contains(&stdout(&out), "Server notified");
    assert!(
        server.wait_for_log(&format!("INFO secret changed path={PATH} version=1")),
        "{}",
        server.log()
    );
    let wrong = not_owned_by(&dir.data_dir(), &who);
    assert!(wrong.is_empty(), "secrets set as root left: {wrong:?}");
    assert!(!server.log().contains(CANARY));
    assert!(server.terminate().success(), "{}", server.log());
}

#[test]
fn issue_17_the_server_names_the_chown_for_a_file_it_cannot_read() {
    let Some(who) = unprivileged() else { return };
    let dir = folder_for(&who);
    assert!(dir.cli(&["secrets", "bootstrap"]).status.success());

    // As an older vigocli run as root left it.
    let file = dir.secret_file("vigo/db/dsn");
    let file = if file.exists() {
        file
    } else {
        first_file_of(&dir.secret_file("vigo/db/dsn"))
    };
    nix::unistd::chown(&file, Some(0.into()), Some(0.into())).unwrap();

    let mut server = server_as(&who, &dir);
    assert!(!server.wait_exit().success());
    let fix = format!(
        "fix: chown {}:{} {}",
        who.user.name,
        who.group,
        file.display()
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("ERROR server failed") && l.contains(&fix)),
        "no {fix:?} in:\n{log}"
    );

    // Running the fix lets the server start.
    let status = Command::new("chown")
        .arg(format!("{}:{}", who.user.name, who.group))
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let mut server = server_as(&who, &dir);
    server.wait_healthy(dir.port, &dir.ca_file());
    assert!(server.terminate().success());
}

/// The single file inside `folder` (a secret stored as a folder of versions).
fn first_file_of(folder: &Path) -> std::path::PathBuf {
    let mut stack = vec![folder.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_file() {
            return path;
        }
        if let Ok(entries) = std::fs::read_dir(&path) {
            stack.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    panic!("no file under {}", folder.display());
}

#[test]
fn issue_17_a_third_user_is_refused_with_the_command_to_run() {
    let Some(who) = unprivileged() else { return };
    let dir = folder_for(&who);
    assert!(dir.cli(&["secrets", "bootstrap"]).status.success());
    let daemon = User::from_name("daemon")
        .ok()
        .flatten()
        .expect("a daemon user");
    let out = run(Command::new("/usr/bin/setpriv")
        .arg(format!("--reuid={}", daemon.uid))
        .arg(format!("--regid={}", daemon.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(bin("vigocli"))
        .arg("--config")
        .arg(dir.config())
        .args(["secrets", "set", PATH, "x"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_contains(
        &err,
        &format!(
            "belongs to {} and the server could not read a secret file written by daemon: run this command as {0}",
            who.user.name
        ),
    );
}

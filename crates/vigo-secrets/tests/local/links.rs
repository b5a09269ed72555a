//! The secrets folder holds only real folders and files: a symbolic link at
//! any level is refused on read and write, and a FIFO (or any other
//! non-regular file) where a secret belongs is an error, never a hang.

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::Duration;

use vigo_secrets::{SecretError, SecretProvider};

use super::{Store, path, value};

/// Runs `f` on its own thread; `None` if it has not returned after a
/// generous deadline (the old code blocked forever opening a FIFO).
fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[tokio::test]
async fn issue_12_item_12_a_symlinked_folder_is_never_followed() {
    let s = Store::new();
    s.provider.set(&path("vigo/a"), &value("v")).await.unwrap();
    // A folder outside the store, reached through a link inside it.
    let outside = s.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, s.secrets_dir().join("app")).unwrap();

    let write = s
        .provider
        .set(&path("app/db/password"), &value("canary-1"))
        .await;
    assert!(
        matches!(&write, Err(SecretError::Symlink { file }) if file == &s.secrets_dir().join("app")),
        "{write:?}"
    );
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "something was written outside the secrets folder"
    );
    assert_eq!(
        write.unwrap_err().to_string(),
        format!(
            "{} is a symbolic link; the secrets folder must hold only real folders and files: replace it",
            s.secrets_dir().join("app").display()
        )
    );

    // A real secret file outside, read through the link: refused too.
    let real = s.dir.path().join("real");
    let other = super::Store::new();
    other
        .provider
        .set(&path("x/pw"), &value("canary-2"))
        .await
        .unwrap();
    fs::rename(other.secrets_dir().join("x"), &real).unwrap();
    symlink(&real, s.secrets_dir().join("x")).unwrap();
    let read = s.provider.get(&path("x/pw")).await;
    assert!(matches!(read, Err(SecretError::Symlink { .. })), "{read:?}");
    let versions = s.provider.versions(&[path("x/pw")]).await;
    assert!(
        matches!(versions, Err(SecretError::Symlink { .. })),
        "{versions:?}"
    );
    let delete = s.provider.delete(&path("x/pw")).await;
    assert!(
        matches!(delete, Err(SecretError::Symlink { .. })),
        "{delete:?}"
    );
    assert!(real.join("pw").exists(), "a file outside was deleted");
}

#[tokio::test]
async fn issue_12_item_12_a_symlinked_secret_file_is_never_followed() {
    let s = Store::new();
    s.provider.set(&path("vigo/a"), &value("v")).await.unwrap();
    let target = s.dir.path().join("elsewhere");
    fs::write(&target, b"not a secret").unwrap();
    symlink(&target, s.secrets_dir().join("vigo/b")).unwrap();
    let read = s.provider.get(&path("vigo/b")).await;
    assert!(matches!(read, Err(SecretError::Symlink { .. })), "{read:?}");
    let write = s.provider.set(&path("vigo/b"), &value("new")).await;
    assert!(
        matches!(write, Err(SecretError::Symlink { .. })),
        "{write:?}"
    );
    assert_eq!(fs::read(&target).unwrap(), b"not a secret");
}

#[test]
fn issue_12_item_12_a_fifo_at_a_secret_path_is_an_error_not_a_hang() {
    let s = Store::new();
    block_on(s.provider.set(&path("vigo/a"), &value("v"))).unwrap();
    let fifo = s.secrets_dir().join("vigo/pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let provider = s.reopen();
    let result = within_deadline(move || {
        block_on(async {
            let get = provider.get(&path("vigo/pipe")).await.map(|_| ());
            let versions = provider.versions(&[path("vigo/pipe")]).await.map(|_| ());
            let set = provider
                .set(&path("vigo/pipe"), &value("x"))
                .await
                .map(|_| ());
            (get, versions, set)
        })
    })
    .expect("reading a FIFO at a secret's path hung");
    let want = format!("{} is a FIFO, not a secret file; remove it", fifo.display());
    for outcome in [result.0, result.1, result.2] {
        assert_eq!(outcome.unwrap_err().to_string(), want);
    }
}

//! The SQLCipher key never reaches a log line, even at trace level: sqlx
//! logs every statement it runs, and the key is set by one.
//!
//! This file holds a single test because it installs a process-wide
//! subscriber (sqlx runs SQLite on its own worker threads).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use vigo_secrets::SecretValue;
use vigo_store::Timestamp;

const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_never_reaches_the_log_at_any_level() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let folder = tempfile::tempdir().expect("temporary folder");
    let dsn = SecretValue::new(format!(
        "sqlite://{}/vigo.db?key={KEY}",
        folder.path().display()
    ));
    let store = vigo_store::connect(&dsn).await.expect("open");
    store
        .upsert_enrollment_request("a", "CSR", Timestamp::now())
        .await
        .expect("write");
    store.close().await;
    // A second open, and a failing one with another key, log too.
    let reopened = vigo_store::connect(&dsn).await.expect("reopen");
    reopened.close().await;
    let wrong = SecretValue::new(format!(
        "sqlite://{}/vigo.db?key={}",
        folder.path().display(),
        "f".repeat(64)
    ));
    let _ = vigo_store::connect(&wrong).await.expect_err("wrong key");

    let text = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(
        !text.to_ascii_lowercase().contains(KEY),
        "key in log:\n{text}"
    );
    assert!(!text.contains(&"f".repeat(64)), "wrong key in log:\n{text}");
    assert!(
        !text.contains("PRAGMA key"),
        "key statement in log:\n{text}"
    );
}

//! Fault points for tests: places between two writes where a test can make
//! the process stop or fail, to prove that nothing is lost.
//!
//! They only act in builds with the `test-hooks` feature (the workspace
//! enables it for its own end-to-end tests, never for a release build).
//! There, `VIGO_FAULT=<point>:<action>[,<point>:<action>...]` chooses:
//! - `hang`: log `fault point <point> reached` at ERROR and never return, so
//!   the test can SIGKILL the process at exactly that point;
//! - `fail`: return a database error, as a lost connection would.
//!
//! Without the feature [`point`] does nothing and reads no environment.

use crate::error::StoreError;

/// Acts as `VIGO_FAULT` says when it names `name`; see the module doc.
#[cfg(feature = "test-hooks")]
pub async fn point(name: &str) -> Result<(), StoreError> {
    match action(name).as_deref() {
        Some("hang") => {
            tracing::error!(point = name, "fault point reached; waiting to be killed");
            std::future::pending::<()>().await;
            Ok(())
        }
        Some("fail") => {
            tracing::error!(point = name, "fault point reached; failing");
            Err(StoreError::Query {
                operation: "fault injection",
                source: sqlx::Error::Protocol(format!("injected fault at {name}")),
            })
        }
        _ => Ok(()),
    }
}

/// Does nothing: this build has no fault points.
#[cfg(not(feature = "test-hooks"))]
#[inline]
pub async fn point(_name: &str) -> Result<(), StoreError> {
    Ok(())
}

/// The action `VIGO_FAULT` sets for `name`.
#[cfg(feature = "test-hooks")]
fn action(name: &str) -> Option<String> {
    let spec = std::env::var("VIGO_FAULT").ok()?;
    spec.split(',').find_map(|entry| {
        let (point, action) = entry.trim().split_once(':')?;
        (point == name).then(|| action.to_owned())
    })
}

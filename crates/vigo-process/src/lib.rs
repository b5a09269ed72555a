//! Process hardening every Vigo binary applies before it does anything else.
//!
//! `vigosrv`, `vigoenvoy` and `vigocli` hold secret values in memory (the
//! server's keys and admin token, an envoy's catalog, a value being set). A
//! core dump would write all of them to disk, and a process another user
//! may attach to could read them. [`harden`] therefore:
//!
//! - sets the core-file size limit (`RLIMIT_CORE`) to 0, soft and hard, so
//!   that no core file is written and the process cannot raise the limit
//!   again;
//! - clears the "dumpable" flag (`prctl(PR_SET_DUMPABLE, 0)`): no core dump
//!   even through a `core_pattern` pipe (which ignores `RLIMIT_CORE`),
//!   `/proc/PID/mem`, `environ` and friends become root's, and only a
//!   process with `CAP_SYS_PTRACE` can attach with a debugger.
//!
//! Neither step stops root: a root-owned debugger (`gcore` run as root) can
//! still read the process's memory. The flag is reset by `execve` of a
//! set-user-ID program only; children (an envoy's commands) inherit the
//! core limit of 0 but, after their own `execve`, are dumpable again.
//!
//! Main item: [`harden`]; [`HardenError`] says which step failed.

use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// A hardening step the kernel refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardenError {
    /// `setrlimit(RLIMIT_CORE, 0, 0)` failed.
    #[error("could not turn off core dumps (RLIMIT_CORE)")]
    CoreLimit(#[source] nix::Error),
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("could not mark the process as not dumpable (PR_SET_DUMPABLE)")]
    Dumpable(#[source] nix::Error),
}

/// Turns core dumps off and makes the process non-dumpable. Call it first
/// thing in `main`, before any secret is read.
pub fn harden() -> Result<(), HardenError> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardenError::CoreLimit)?;
    prctl::set_dumpable(false).map_err(HardenError::Dumpable)?;
    Ok(())
}

/// Whether this process is hardened: core limit 0 (soft and hard) and not
/// dumpable. For tests and diagnostics.
pub fn is_hardened() -> bool {
    let core_off = getrlimit(Resource::RLIMIT_CORE).is_ok_and(|limits| limits == (0, 0));
    let not_dumpable = prctl::get_dumpable().is_ok_and(|dumpable| !dumpable);
    core_off && not_dumpable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_item_10_harden_turns_core_dumps_off() {
        harden().expect("hardening succeeds");
        assert_eq!(
            getrlimit(Resource::RLIMIT_CORE).expect("reads the limit"),
            (0, 0)
        );
        assert!(!prctl::get_dumpable().expect("reads the flag"));
        assert!(is_hardened());
        // The hard limit is 0 too: the process cannot raise it again
        // (without CAP_SYS_RESOURCE).
        harden().expect("hardening twice is harmless");
    }
}

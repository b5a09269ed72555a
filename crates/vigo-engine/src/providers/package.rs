//! The `package` provider: apt, dnf or apk, chosen by which tool is on the
//! search path. Presence is queried first; the package tool runs only when
//! it differs.

use std::path::PathBuf;
use std::time::Duration;

use vigo_catalog::{PackageSpec, Presence};

use super::exec::{outcome_of, scrubbed_output};
use super::{Context, Outcome, check_name, output_excerpt, run_tool};
use crate::command::{self, Exit};
use crate::report::Status;

/// How long a query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an install or removal may take.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(1800);

/// The package manager found on the host.
#[derive(Debug)]
enum Manager {
    Apt {
        dpkg_query: PathBuf,
        apt_get: PathBuf,
    },
    Dnf {
        rpm: PathBuf,
        dnf: PathBuf,
    },
    Apk {
        apk: PathBuf,
    },
}

impl Manager {
    fn detect(search_path: &std::ffi::OsStr) -> Option<Self> {
        let find = |name| command::find_program(name, search_path);
        if let (Some(dpkg_query), Some(apt_get)) = (find("dpkg-query"), find("apt-get")) {
            return Some(Self::Apt {
                dpkg_query,
                apt_get,
            });
        }
        if let (Some(rpm), Some(dnf)) = (find("rpm"), find("dnf")) {
            return Some(Self::Dnf { rpm, dnf });
        }
        find("apk").map(|apk| Self::Apk { apk })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Apt { .. } => "apt",
            Self::Dnf { .. } => "dnf",
            Self::Apk { .. } => "apk",
        }
    }

    /// Whether `package` is installed.
    async fn installed(&self, package: &str, ctx: &Context<'_>) -> Result<bool, String> {
        let (program, args): (&PathBuf, Vec<&str>) = match self {
            Self::Apt { dpkg_query, .. } => {
                (dpkg_query, vec!["-W", "--showformat=${Status}", package])
            }
            Self::Dnf { rpm, .. } => (rpm, vec!["-q", package]),
            Self::Apk { apk } => (apk, vec!["info", "-e", package]),
        };
        let finished = run_tool(program, &args, &[], ctx.search_path, QUERY_TIMEOUT).await?;
        match finished.exit {
            // dpkg-query also knows removed packages ("deinstall ok
            // config-files"): installed only when the status ends so.
            Exit::Code(0) => Ok(match self {
                Self::Apt { .. } => {
                    String::from_utf8_lossy(&finished.stdout.bytes)
                        .split_whitespace()
                        .last()
                        == Some("installed")
                }
                Self::Dnf { .. } | Self::Apk { .. } => true,
            }),
            Exit::Code(_) => Ok(false),
            Exit::Signal(_) | Exit::TimedOut => {
                let output = scrubbed_output(&finished, ctx.scrubber);
                Err(format!(
                    "querying package {package} with {} did not finish: {}",
                    program.display(),
                    output_excerpt(&output.stderr, 200)
                ))
            }
        }
    }

    /// Installs or removes `package`.
    async fn change(
        &self,
        package: &str,
        install: bool,
        ctx: &Context<'_>,
    ) -> Result<Outcome, String> {
        let (program, args, env): (&PathBuf, Vec<&str>, Vec<(&str, &str)>) = match (self, install) {
            (Self::Apt { apt_get, .. }, true) => (
                apt_get,
                vec!["install", "-y", package],
                vec![("DEBIAN_FRONTEND", "noninteractive")],
            ),
            (Self::Apt { apt_get, .. }, false) => (
                apt_get,
                vec!["remove", "-y", package],
                vec![("DEBIAN_FRONTEND", "noninteractive")],
            ),
            (Self::Dnf { dnf, .. }, true) => (dnf, vec!["install", "-y", package], vec![]),
            (Self::Dnf { dnf, .. }, false) => (dnf, vec!["remove", "-y", package], vec![]),
            (Self::Apk { apk }, true) => (apk, vec!["add", package], vec![]),
            (Self::Apk { apk }, false) => (apk, vec!["del", package], vec![]),
        };
        let finished = run_tool(program, &args, &env, ctx.search_path, CHANGE_TIMEOUT).await?;
        let done = if install { "installed" } else { "removed" };
        let mut outcome = outcome_of(
            &finished,
            ctx.scrubber,
            &format!("{done} {package} ({})", self.name()),
            CHANGE_TIMEOUT.as_secs(),
        );
        if outcome.status == Status::Failed {
            let verb = if install { "installing" } else { "removing" };
            outcome.message = format!(
                "{verb} {package} with {} failed: {}",
                self.name(),
                outcome.message
            );
        }
        Ok(outcome)
    }
}

/// Converges one `package` resource.
pub(crate) async fn apply(spec: &PackageSpec, ctx: &Context<'_>) -> Outcome {
    converge(spec, ctx).await.into()
}

async fn converge(spec: &PackageSpec, ctx: &Context<'_>) -> Result<Outcome, String> {
    let package = spec.package.as_str();
    check_name("package", package)?;
    let manager = Manager::detect(ctx.search_path).ok_or_else(|| {
        "no supported package manager on PATH (looked for dpkg-query and apt-get, rpm and dnf, apk)"
            .to_owned()
    })?;
    let installed = manager.installed(package, ctx).await?;
    let want = spec.state == Presence::Present;
    if installed == want {
        let state = if installed {
            "installed"
        } else {
            "not installed"
        };
        return Ok(Outcome::unchanged(format!("{package} is {state}")));
    }
    if ctx.noop {
        let verb = if want { "install" } else { "remove" };
        return Ok(Outcome::changed(format!(
            "would {verb} {package} ({})",
            manager.name()
        )));
    }
    manager.change(package, want, ctx).await
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn no_manager_on_an_empty_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manager::detect(dir.path().as_os_str()).is_none());
        assert!(Manager::detect(OsStr::new("")).is_none());
    }
}

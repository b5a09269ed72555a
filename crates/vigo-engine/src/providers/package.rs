//! The `package` provider: apt, dnf or apk, chosen by which tool is on the
//! search path. Presence is queried first; the package tool runs only when
//! it differs.

use std::path::PathBuf;
use std::time::Duration;

use vigo_catalog::{PackageSpec, Presence};

use super::exec::{outcome_of, scrubbed_output};
use super::{Context, Outcome, ProviderError, check_name, output_excerpt, run_tool};
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

    /// The installed version of `package`, `None` when not installed.
    async fn installed(
        &self,
        package: &str,
        ctx: &Context<'_>,
    ) -> Result<Option<String>, ProviderError> {
        let (program, args): (&PathBuf, Vec<&str>) = match self {
            Self::Apt { dpkg_query, .. } => (
                dpkg_query,
                vec!["-W", "--showformat=${Version} ${Status}", package],
            ),
            Self::Dnf { rpm, .. } => (
                rpm,
                vec!["-q", "--queryformat", "%{VERSION}-%{RELEASE}", package],
            ),
            Self::Apk { apk } => (apk, vec!["info", "-e", "-v", package]),
        };
        let finished = run_tool(program, &args, &[], ctx.search_path, QUERY_TIMEOUT).await?;
        match finished.exit {
            Exit::Code(0) => {
                let out = String::from_utf8_lossy(&finished.stdout.bytes);
                Ok(parse_installed(self, package, &out))
            }
            Exit::Code(_) => Ok(None),
            Exit::Signal(_) | Exit::TimedOut => {
                let output = scrubbed_output(&finished, ctx.scrubber);
                Err(ProviderError::refused(format!(
                    "querying package {package} with {} did not finish: {}",
                    program.display(),
                    output_excerpt(&output.stderr, 200)
                )))
            }
        }
    }

    /// Installs or removes `package`.
    async fn change(
        &self,
        package: &str,
        version: Option<&str>,
        install: bool,
        ctx: &Context<'_>,
    ) -> Result<Outcome, ProviderError> {
        let wanted = self.spec(package, version);
        let package = wanted.as_str();
        // A pinned version may be older than the installed one.
        let apt_install = if version.is_some() {
            vec!["install", "-y", "--allow-downgrades", package]
        } else {
            vec!["install", "-y", package]
        };
        let (program, args, env): (&PathBuf, Vec<&str>, Vec<(&str, &str)>) = match (self, install) {
            (Self::Apt { apt_get, .. }, true) => (
                apt_get,
                apt_install,
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

impl Manager {
    /// `package` at `version` as the tool takes it: `name=1.2` (apt, apk)
    /// or `name-1.2` (dnf).
    fn spec(&self, package: &str, version: Option<&str>) -> String {
        match (self, version) {
            (_, None) => package.to_owned(),
            (Self::Apt { .. } | Self::Apk { .. }, Some(v)) => format!("{package}={v}"),
            (Self::Dnf { .. }, Some(v)) => format!("{package}-{v}"),
        }
    }
}

/// The installed version from a query's output, `None` when the package
/// is not (fully) installed.
fn parse_installed(manager: &Manager, package: &str, out: &str) -> Option<String> {
    match manager {
        // "1.2-3 install ok installed"; dpkg also knows removed packages
        // ("deinstall ok config-files"): installed only when it ends so.
        Manager::Apt { .. } => {
            let mut words = out.split_whitespace();
            let version = words.next()?;
            (words.last() == Some("installed")).then(|| version.to_owned())
        }
        Manager::Dnf { .. } => Some(out.trim().to_owned()).filter(|v| !v.is_empty()),
        // "curl-8.5.0-r0"
        Manager::Apk { .. } => out
            .lines()
            .next()
            .and_then(|l| l.trim().strip_prefix(package))
            .and_then(|v| v.strip_prefix('-'))
            .map(str::to_owned),
    }
}

/// Whether the installed version is the one asked for: equal, or (rpm)
/// the asked version followed by the release.
fn version_matches(installed: &str, wanted: &str) -> bool {
    installed == wanted
        || installed
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Converges one `package` resource.
pub(crate) async fn apply(spec: &PackageSpec, ctx: &Context<'_>) -> Outcome {
    converge(spec, ctx).await.into()
}

async fn converge(spec: &PackageSpec, ctx: &Context<'_>) -> Result<Outcome, ProviderError> {
    let package = spec.package.as_str();
    check_name("package", package)?;
    let manager = Manager::detect(ctx.search_path).ok_or_else(|| {
        ProviderError::refused(
            "no supported package manager on PATH (looked for dpkg-query and apt-get, rpm and dnf, apk)",
        )
    })?;
    let version = spec.version.as_deref();
    if let Some(v) = version {
        check_name("package version", v)?;
    }
    let installed = manager.installed(package, ctx).await?;
    let want = spec.state == Presence::Present;
    match (&installed, want, version) {
        (None, false, _) => {
            return Ok(Outcome::unchanged(format!("{package} is not installed")));
        }
        (Some(v), true, None) => {
            return Ok(Outcome::unchanged(format!("{package} is installed ({v})")));
        }
        (Some(v), true, Some(wanted)) if version_matches(v, wanted) => {
            return Ok(Outcome::unchanged(format!("{package} {v} is installed")));
        }
        _ => {}
    }
    let what = match (&installed, want, version) {
        (Some(v), true, Some(wanted)) => format!("change {package} from {v} to {wanted}"),
        (_, true, Some(wanted)) => format!("install {package} {wanted}"),
        (_, true, None) => format!("install {package}"),
        (_, false, _) => format!("remove {package}"),
    };
    if ctx.noop {
        return Ok(Outcome::changed(format!(
            "would {what} ({})",
            manager.name()
        )));
    }
    manager.change(package, version, want, ctx).await
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn issue_15_versions_are_read_and_compared() {
        let apt = Manager::Apt {
            dpkg_query: PathBuf::new(),
            apt_get: PathBuf::new(),
        };
        assert_eq!(
            parse_installed(&apt, "curl", "8.5.0-2 install ok installed"),
            Some("8.5.0-2".into())
        );
        assert_eq!(
            parse_installed(&apt, "curl", "8.5.0-2 deinstall ok config-files"),
            None
        );
        let apk = Manager::Apk {
            apk: PathBuf::new(),
        };
        assert_eq!(
            parse_installed(&apk, "curl", "curl-8.5.0-r0\n"),
            Some("8.5.0-r0".into())
        );
        assert!(version_matches("1.2.3-4.el9", "1.2.3"));
        assert!(version_matches("1.2.3-4", "1.2.3-4"));
        assert!(!version_matches("1.2.30-1", "1.2.3"));
        assert_eq!(apt.spec("curl", Some("8.5.0-2")), "curl=8.5.0-2");
        let dnf = Manager::Dnf {
            rpm: PathBuf::new(),
            dnf: PathBuf::new(),
        };
        assert_eq!(dnf.spec("curl", Some("8.5.0")), "curl-8.5.0");
    }

    #[test]
    fn no_manager_on_an_empty_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manager::detect(dir.path().as_os_str()).is_none());
        assert!(Manager::detect(OsStr::new("")).is_none());
    }
}

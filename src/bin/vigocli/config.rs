//! `vigocli config reload` and `vigocli config status`: deploy the
//! config repository to the running server and see what it serves, through
//! the admin API.

use anyhow::bail;
use clap::Subcommand;
use vigo_proto::admin::{ConfigReloadAnswer, ConfigRevision, ConfigStatus};

use crate::admin::AdminClient;
use crate::output::{call, print_json};
use crate::{Globals, Output};

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load the config repository now (the server also reloads on a change
    /// under config_dir and on SIGHUP); prints how many envoys' catalogs
    /// changed, or every error with file:line:col and exits non-zero.
    Reload,
    /// Show the serving revision (content hash, git commit), when it was
    /// loaded, and the errors of the last failed reload.
    Status,
}

/// Runs one `config` subcommand.
pub(crate) async fn run(command: ConfigCommand, globals: &Globals) -> anyhow::Result<()> {
    let client = AdminClient::open(&globals.config).await?;
    match command {
        ConfigCommand::Reload => {
            let answer: ConfigReloadAnswer = call(
                client
                    .post("/v1/admin/config/reload", &serde_json::json!({}))
                    .await,
            )?;
            if globals.output == Output::Json {
                print_json(&answer)?;
            } else if answer.ok {
                print!("{}", reloaded(&answer));
            } else {
                for problem in &answer.errors {
                    eprintln!("{problem}");
                }
            }
            if !answer.ok {
                bail!(
                    "config not reloaded ({}); revision {} keeps serving",
                    count(answer.errors.len(), "error", "errors"),
                    revision_line(&answer.serving)
                );
            }
        }
        ConfigCommand::Status => {
            let status: ConfigStatus = call(client.get("/v1/admin/config/status").await)?;
            match globals.output {
                Output::Json => print_json(&status)?,
                Output::Text => print!("{}", status_text(&status)),
            }
        }
    }
    Ok(())
}

/// `Config reloaded: revision R (git C); N envoys' catalogs changed.` and
/// the names.
fn reloaded(answer: &ConfigReloadAnswer) -> String {
    let changed = &answer.changed_envoys;
    let mut out = format!(
        "Config reloaded: revision {}; {} changed.\n",
        revision_line(&answer.serving),
        match changed.len() {
            1 => "1 envoy's catalog".to_owned(),
            n => format!("{n} envoys' catalogs"),
        }
    );
    for name in changed {
        out.push_str(&format!("  {name}\n"));
    }
    out
}

/// `abcdef012345 (git 0123456789ab)`.
fn revision_line(revision: &ConfigRevision) -> String {
    let short = |s: &str| s.get(..12).unwrap_or(s).to_owned();
    match &revision.git_commit {
        Some(commit) => format!("{} (git {})", short(&revision.hash), short(commit)),
        None => short(&revision.hash),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn status_text(status: &ConfigStatus) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<13}{value}\n"));
    line(
        "config_dir:",
        &format!(
            "{} ({})",
            status.config_dir,
            if status.watching {
                "watched for changes"
            } else {
                "not watched: deploy with SIGHUP or `vigocli config reload`"
            }
        ),
    );
    line("revision:", &status.serving.hash);
    line(
        "git commit:",
        status.serving.git_commit.as_deref().unwrap_or("-"),
    );
    line(
        "loaded at:",
        &format!("{} (by {})", status.serving.loaded_at, status.loaded_by),
    );
    match &status.last_attempt {
        Some(attempt) => line(
            "last reload:",
            &format!(
                "{} at {} (by {})",
                if attempt.ok { "ok" } else { "FAILED" },
                attempt.at,
                attempt.by
            ),
        ),
        None => line("last reload:", "- (none since the start)"),
    }
    if let Some(failure) = &status.last_failure {
        line(
            "last failure:",
            &format!(
                "{} (by {}, content {}): {}",
                failure.at,
                failure.by,
                failure.hash.get(..12).unwrap_or(&failure.hash),
                count(failure.errors.len(), "error", "errors")
            ),
        );
        for problem in &failure.errors {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use vigo_proto::admin::{ConfigAttempt, ConfigFailure, ConfigProblem};

    use super::*;

    fn revision() -> ConfigRevision {
        ConfigRevision {
            hash: "3f9a1c2e7b4d5e6f".repeat(4),
            git_commit: Some("8c1d2e3f4a5b".repeat(3) + "8c1d"),
            loaded_at: "2026-01-02T03:04:05Z".to_owned(),
        }
    }

    #[test]
    fn a_reload_says_how_many_catalogs_changed() {
        let answer = ConfigReloadAnswer {
            ok: true,
            serving: revision(),
            changed_envoys: vec!["web1.example.com".to_owned()],
            errors: Vec::new(),
        };
        assert_eq!(
            reloaded(&answer),
            "Config reloaded: revision 3f9a1c2e7b4d (git 8c1d2e3f4a5b); 1 envoy's catalog changed.\n  web1.example.com\n"
        );
    }

    #[test]
    fn status_shows_the_last_failure_with_positions() {
        let status = ConfigStatus {
            config_dir: "/srv/vigo/config".to_owned(),
            watching: true,
            serving: revision(),
            loaded_by: "startup".to_owned(),
            last_attempt: Some(ConfigAttempt {
                at: "2026-01-02T04:00:00Z".to_owned(),
                by: "watcher".to_owned(),
                ok: false,
            }),
            last_failure: Some(ConfigFailure {
                at: "2026-01-02T04:00:00Z".to_owned(),
                by: "watcher".to_owned(),
                hash: "aa".repeat(32),
                errors: vec![ConfigProblem {
                    file: Some("modules/web.vgo".to_owned()),
                    line: Some(3),
                    column: Some(11),
                    resource: Some("index".to_owned()),
                    envoy: None,
                    message: "unknown type 'fiel'".to_owned(),
                }],
            }),
        };
        let text = status_text(&status);
        assert!(
            text.contains("last reload: FAILED at 2026-01-02T04:00:00Z (by watcher)\n"),
            "{text}"
        );
        assert!(
            text.contains("  modules/web.vgo:3:11: resource 'index': unknown type 'fiel'\n"),
            "{text}"
        );
    }
}

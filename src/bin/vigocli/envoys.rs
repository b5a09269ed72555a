//! `vigocli envoys ...`: list and inspect envoys, and run enrollment
//! (docs/operations.md "Enroll envoys") through the server's admin API.
//!
//! Approval names the pending key: `approve NAME --fingerprint FP` goes
//! ahead only when FP (or a prefix of at least 16 hex digits) is the key
//! fingerprint the host's `vigoenvoy` printed while it waits, so an operator
//! never signs a key that someone else slipped in under the host's name.

use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use vigo_proto::admin::{ApproveEnvoy, EnvoyDetail, EnvoySummary, NewToken, RemovedEnvoys};
use vigo_secrets::EnvoyName;

use crate::admin::AdminClient;
use crate::output::{self, call, print_as, print_json};
use crate::{Globals, Output};

/// Shortest `--ttl` for a token.
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Longest `--ttl` for a token.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The `envoys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EnvoysCommand {
    /// List every envoy with its status, last check-in and last report.
    List,
    /// Show one envoy: certificate, facts, queued triggers, last report.
    Show {
        /// The envoy's name.
        name: String,
    },
    /// Print a new one-time enrollment token (stdout); its expiry goes to
    /// stderr.
    Token {
        /// How long the token stays valid, 1m to 30d (1h, 30m, 2d, ...).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Approve a pending envoy: the server signs its certificate request
    /// once FP matches the key the host printed while it waits.
    Approve {
        /// The envoy's name.
        name: String,
        /// The key fingerprint `vigoenvoy` printed on the host (64 hex
        /// digits, or at least the first 16).
        #[arg(long, value_name = "FP")]
        fingerprint: Option<String>,
    },
    /// Revoke an envoy: the server refuses its certificate from now on.
    Revoke {
        /// The envoy's name.
        name: String,
    },
    /// Delete a pending or revoked envoy so the name can enroll again (an
    /// approved one must be revoked first).
    Remove {
        /// The envoy's name.
        name: String,
    },
}

/// Runs one `envoys` subcommand.
pub(crate) async fn run(command: EnvoysCommand, globals: &Globals) -> anyhow::Result<()> {
    // Flag mistakes are reported before anything is opened.
    match &command {
        EnvoysCommand::Token { ttl } => {
            check_ttl(ttl)?;
        }
        EnvoysCommand::Approve {
            fingerprint: Some(fingerprint),
            ..
        } => {
            check_fingerprint(fingerprint)?;
        }
        _ => {}
    }
    let client = AdminClient::open(&globals.config).await?;
    match command {
        EnvoysCommand::List => {
            let envoys: Vec<EnvoySummary> = call(client.get("/v1/admin/envoys").await)?;
            match globals.output {
                Output::Json => print_json(&envoys)?,
                Output::Text => print!("{}", table(&envoys)),
            }
        }
        EnvoysCommand::Show { name } => {
            let route = format!("/v1/admin/envoys/{}", checked_name(&name)?);
            let detail: EnvoyDetail = call(client.get(&route).await)?;
            match globals.output {
                Output::Json => print_json(&detail)?,
                Output::Text => print!("{}", details(&detail)),
            }
        }
        EnvoysCommand::Token { ttl } => {
            let ttl = check_ttl(&ttl)?;
            let body = serde_json::json!({ "ttl_secs": ttl.as_secs() });
            let token: NewToken = call(client.post("/v1/admin/envoys/token", &body).await)?;
            match globals.output {
                Output::Json => print_json(&token)?,
                Output::Text => {
                    println!("{}", token.token);
                    eprintln!(
                        "One-time enrollment token; expires at {}. Put it in the envoy's enroll_token_file (mode 0600).",
                        token.expires_at
                    );
                }
            }
        }
        EnvoysCommand::Approve { name, fingerprint } => {
            let name = checked_name(&name)?;
            let Some(fingerprint) = fingerprint else {
                let detail: EnvoyDetail =
                    call(client.get(&format!("/v1/admin/envoys/{name}")).await)?;
                bail!("{}", approve_refusal(&detail));
            };
            let route = format!("/v1/admin/envoys/{name}/approve");
            let body = ApproveEnvoy {
                fingerprint: Some(check_fingerprint(&fingerprint)?),
            };
            let envoy: EnvoySummary = call(client.post(&route, &body).await)?;
            print_as(globals.output, &envoy, |envoy| {
                println!(
                    "Envoy \"{}\" approved; it receives its certificate at its next attempt.",
                    envoy.name
                );
            })?;
        }
        EnvoysCommand::Revoke { name } => {
            let route = format!("/v1/admin/envoys/{}/revoke", checked_name(&name)?);
            let envoy: EnvoySummary = call(client.post(&route, &serde_json::json!({})).await)?;
            print_as(globals.output, &envoy, |envoy| {
                println!(
                    "Envoy \"{}\" revoked; the server refuses its certificate from now on.",
                    envoy.name
                );
            })?;
        }
        EnvoysCommand::Remove { name } => {
            let route = format!("/v1/admin/envoys/{}/remove", checked_name(&name)?);
            let removed: RemovedEnvoys = call(client.post(&route, &serde_json::json!({})).await)?;
            print_as(globals.output, &removed, |removed| {
                for name in &removed.removed {
                    println!("Envoy \"{name}\" removed; the name can enroll again.");
                }
            })?;
        }
    }
    Ok(())
}

/// Envoy names are host names, in their one lower-case form (the same rule
/// the server applies); anything else never reaches a URL.
fn checked_name(name: &str) -> anyhow::Result<EnvoyName> {
    Ok(EnvoyName::parse(name)?)
}

/// `--ttl` in the terms of the flag: a token lives 1m to 30d.
fn check_ttl(text: &str) -> anyhow::Result<Duration> {
    let Ok(ttl) = humantime::parse_duration(text) else {
        bail!("--ttl {text:?} is not a duration; use one such as 30m, 1h or 2d");
    };
    if ttl < MIN_TOKEN_TTL || ttl > MAX_TOKEN_TTL {
        bail!("--ttl must be between 1m and 30d (got {text})");
    }
    Ok(ttl)
}

/// `--fingerprint`, normalised: 16 to 64 hex digits (`:` and blanks are
/// ignored, letters lower-cased).
fn check_fingerprint(input: &str) -> anyhow::Result<String> {
    match vigo_pki::parse_fingerprint_prefix(input) {
        Some(fingerprint) => Ok(fingerprint),
        None => bail!(
            "--fingerprint must be the key fingerprint vigoenvoy prints (64 hex digits) or at least its first {} digits",
            vigo_pki::MIN_FINGERPRINT_PREFIX
        ),
    }
}

/// Why `approve` without `--fingerprint` does nothing, with the fingerprint
/// to compare.
fn approve_refusal(detail: &EnvoyDetail) -> String {
    let name = &detail.summary.name;
    match &detail.summary.pending_fingerprint {
        Some(fingerprint) => format!(
            "approving needs --fingerprint: envoy '{name}' waits with key fingerprint {fingerprint}; check that vigoenvoy on the host printed the same, then run `vigocli envoys approve {name} --fingerprint {fingerprint}` (if it differs, the request is not the host's: `vigocli envoys remove {name}`)"
        ),
        None => format!(
            "envoy '{name}' is {}, not pending: there is nothing to approve",
            detail.summary.status
        ),
    }
}

/// `NAME STATUS PENDING-KEY LAST-CHECKIN LAST-REPORT`, columns padded to
/// fit; STATUS is the derived state (`ok`, `changed`, `failed`, `pending`,
/// `revoked`, `stale`); PENDING-KEY is the full key fingerprint of a pending
/// request.
fn table(envoys: &[EnvoySummary]) -> String {
    let rows: Vec<[&str; 5]> = envoys
        .iter()
        .map(|e| {
            [
                e.name.as_str(),
                e.state.as_str(),
                e.pending_fingerprint.as_deref().unwrap_or("-"),
                e.last_checkin.as_deref().unwrap_or("-"),
                e.last_report.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    output::table(
        [
            "NAME",
            "STATUS",
            "PENDING-KEY",
            "LAST-CHECKIN",
            "LAST-REPORT",
        ],
        &rows,
    )
}

/// The text form of `envoys show`.
fn details(d: &EnvoyDetail) -> String {
    let s = &d.summary;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<19}{value}\n"));
    line("name:", s.name.clone());
    line("status:", s.state.clone());
    line("enrollment:", s.status.clone());
    if let Some(fingerprint) = &s.pending_fingerprint {
        line("pending key:", fingerprint.clone());
    }
    line("certificate:", or_dash(d.cert_fingerprint.as_deref()));
    line("last check-in:", or_dash(s.last_checkin.as_deref()));
    line("last report:", or_dash(s.last_report.as_deref()));
    line("last run:", or_dash(d.last_run.as_deref()));
    line(
        "force-push:",
        if d.force_push { "yes" } else { "no" }.to_owned(),
    );
    line(
        "last rotation lag:",
        d.last_rotation_lag_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
    );
    if d.queued_triggers.is_empty() {
        line("queued triggers:", "none".to_owned());
    } else {
        line("queued triggers:", String::new());
        for trigger in &d.queued_triggers {
            out.push_str(&format!("  {trigger}\n"));
        }
    }
    if !d.facts.is_empty() {
        out.push_str("facts:\n");
        let mut lines = Vec::new();
        fact_lines("", &d.facts, &mut lines);
        for (key, value) in lines {
            out.push_str(&format!("  {key}: {value}\n"));
        }
    }
    if !d.last_report_resources.is_empty() {
        out.push_str("resources (last report):\n");
        for r in &d.last_report_resources {
            let label = format!("{}[{}]", r.kind, r.name);
            out.push_str(&output::resource_line(
                &label,
                &r.status,
                r.duration_ms,
                &r.message,
            ));
        }
    }
    out
}

/// Facts as `dotted.path: value` lines, in key order; a list prints as
/// JSON, an empty map as `{}`.
fn fact_lines(
    prefix: &str,
    map: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<(String, String)>,
) {
    if map.is_empty() && !prefix.is_empty() {
        out.push((prefix.to_owned(), "{}".to_owned()));
    }
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_json::Value::Object(inner) => fact_lines(&path, inner, out),
            serde_json::Value::String(text) => out.push((path, text.clone())),
            other => out.push((path, other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envoy(name: &str, checkin: Option<&str>) -> EnvoySummary {
        EnvoySummary {
            name: name.to_owned(),
            status: "approved".to_owned(),
            state: "ok".to_owned(),
            last_checkin: checkin.map(str::to_owned),
            last_report: None,
            pending_fingerprint: None,
        }
    }

    #[test]
    fn the_table_pads_columns() {
        let mut pending = envoy("w", None);
        pending.status = "pending".to_owned();
        pending.state = "pending".to_owned();
        pending.pending_fingerprint = Some("ab".repeat(32));
        let text = table(&[
            envoy("db1.example.com", Some("2026-01-01T00:00:00Z")),
            pending,
        ]);
        let key = "ab".repeat(32);
        assert_eq!(
            text,
            format!(
                "NAME             STATUS   PENDING-KEY{pad}  LAST-CHECKIN          LAST-REPORT\n\
                 db1.example.com  ok       -{wide}  2026-01-01T00:00:00Z  -\n\
                 w                pending  {key}  -                     -\n",
                pad = " ".repeat(64 - 11),
                wide = " ".repeat(63),
            )
        );
    }

    #[test]
    fn names_that_are_not_host_names_are_refused() {
        assert_eq!(
            checked_name("DB1.Example.com").unwrap().as_str(),
            "db1.example.com"
        );
        for bad in ["", "../token", "a/b", "x?y", ".hidden", "a_b"] {
            assert!(checked_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issue_12_token_ttl_is_checked_in_flag_terms() {
        for bad in ["0s", "500ms", "59s", "31d", "30d 1s"] {
            let err = check_ttl(bad).unwrap_err().to_string();
            assert_eq!(err, format!("--ttl must be between 1m and 30d (got {bad})"));
        }
        for (good, secs) in [("1m", 60), ("1h", 3600), ("30d", 30 * 86400)] {
            assert_eq!(check_ttl(good).unwrap(), Duration::from_secs(secs));
        }
        assert!(
            check_ttl("soon")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
    }

    #[test]
    fn issue_12_fingerprints_need_16_hex_digits() {
        assert_eq!(
            check_fingerprint("AB:CD:EF:01:23:45:67:89").unwrap(),
            "abcdef0123456789"
        );
        for bad in ["abc", "xyz0123456789abcdef", ""] {
            assert!(check_fingerprint(bad).is_err(), "{bad}");
        }
    }
}

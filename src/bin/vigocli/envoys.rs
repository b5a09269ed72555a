//! `vigocli envoys ...`: list and inspect envoys, and run enrollment
//! (SPEC 6.2, 7) through the server's admin API.

use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use vigo_proto::admin::{EnvoyDetail, EnvoySummary, NewToken};

use crate::admin::AdminClient;
use crate::output::{self, call, print_json};
use crate::{Globals, Output, backend};

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
        /// How long the token stays valid (1h, 30m, 2d, ...).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Approve a pending envoy: the server signs its certificate request.
    Approve {
        /// The envoy's name.
        name: String,
    },
    /// Revoke an envoy: the server refuses its certificate from now on.
    Revoke {
        /// The envoy's name.
        name: String,
    },
}

/// Runs one `envoys` subcommand.
pub(crate) async fn run(command: EnvoysCommand, globals: &Globals) -> anyhow::Result<()> {
    let opened = backend::open(&globals.config)?;
    let client = AdminClient::new(&opened.raw, &*opened.provider).await?;
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
            let body = serde_json::json!({ "ttl_secs": ttl.as_secs().max(1) });
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
        EnvoysCommand::Approve { name } => {
            let route = format!("/v1/admin/envoys/{}/approve", checked_name(&name)?);
            let envoy: EnvoySummary = call(client.post(&route, &serde_json::json!({})).await)?;
            match globals.output {
                Output::Json => print_json(&envoy)?,
                Output::Text => println!(
                    "Envoy \"{}\" approved; it receives its certificate at its next attempt.",
                    envoy.name
                ),
            }
        }
        EnvoysCommand::Revoke { name } => {
            let route = format!("/v1/admin/envoys/{}/revoke", checked_name(&name)?);
            let envoy: EnvoySummary = call(client.post(&route, &serde_json::json!({})).await)?;
            match globals.output {
                Output::Json => print_json(&envoy)?,
                Output::Text => println!(
                    "Envoy \"{}\" revoked; the server refuses its certificate from now on.",
                    envoy.name
                ),
            }
        }
    }
    Ok(())
}

/// Envoy names are host names; anything else never reaches a URL.
fn checked_name(name: &str) -> anyhow::Result<&str> {
    let plain = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain {
        bail!("invalid envoy name {name:?}: use a host name such as db1.example.com");
    }
    Ok(name)
}

/// `NAME STATUS LAST-CHECKIN LAST-REPORT`, columns padded to fit.
fn table(envoys: &[EnvoySummary]) -> String {
    let rows: Vec<[&str; 4]> = envoys
        .iter()
        .map(|e| {
            [
                e.name.as_str(),
                e.status.as_str(),
                e.last_checkin.as_deref().unwrap_or("-"),
                e.last_report.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    output::table(["NAME", "STATUS", "LAST-CHECKIN", "LAST-REPORT"], &rows)
}

/// The text form of `envoys show`.
fn details(d: &EnvoyDetail) -> String {
    let s = &d.summary;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<19}{value}\n"));
    line("name:", s.name.clone());
    line("status:", s.status.clone());
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
        for (key, value) in &d.facts {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key}: {value}\n"));
        }
    }
    if !d.last_report_resources.is_empty() {
        out.push_str("resources (last report):\n");
        for r in &d.last_report_resources {
            let message = if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            };
            out.push_str(&format!(
                "  {}[{}] {} ({} ms){message}\n",
                r.kind, r.name, r.status, r.duration_ms
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envoy(name: &str, checkin: Option<&str>) -> EnvoySummary {
        EnvoySummary {
            name: name.to_owned(),
            status: "approved".to_owned(),
            last_checkin: checkin.map(str::to_owned),
            last_report: None,
        }
    }

    #[test]
    fn the_table_pads_columns() {
        let text = table(&[
            envoy("db1.example.com", Some("2026-01-01T00:00:00Z")),
            envoy("w", None),
        ]);
        assert_eq!(
            text,
            "NAME             STATUS    LAST-CHECKIN          LAST-REPORT\n\
             db1.example.com  approved  2026-01-01T00:00:00Z  -\n\
             w                approved  -                     -\n"
        );
    }

    #[test]
    fn names_that_are_not_host_names_are_refused() {
        assert!(checked_name("db1.example.com").is_ok());
        for bad in ["", "../token", "a/b", "x?y", ".hidden"] {
            assert!(checked_name(bad).is_err(), "{bad}");
        }
    }
}

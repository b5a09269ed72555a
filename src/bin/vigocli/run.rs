//! `vigocli run TARGET [--role ROLE] [--noop] [--timeout 60s] [--verbose]`:
//! asks the server to make the chosen envoys check in and apply their own
//! catalog now, then polls the admin API for the outcome and prints one line
//! per envoy as its report arrives. It never runs a command on a host: each
//! envoy applies the catalog the server compiled for it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use vigo_proto::Report;
use vigo_proto::admin::{RunEnvoy, RunStarted, RunStatus, RunTarget};

use crate::admin::AdminClient;
use crate::output::{call, print_json};
use crate::{Globals, Output};

/// How often the outcome is polled.
const POLL: Duration = Duration::from_millis(200);

/// `vigocli run` arguments.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// An envoy name or a glob such as 'web*' (quote it), matched as
    /// nodes.vgo matches; omit it with --role.
    #[arg(required_unless_present = "role", conflicts_with = "role")]
    target: Option<String>,
    /// Every approved envoy whose catalog includes this role.
    #[arg(long)]
    role: Option<String>,
    /// Evaluate only: report what would change, change nothing (and clear
    /// no rotation trigger).
    #[arg(long)]
    noop: bool,
    /// How long to wait for the envoys' reports.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Show the (redacted) diff of every changed resource.
    #[arg(long)]
    verbose: bool,
}

/// Runs `vigocli run`.
pub(crate) async fn run(args: &RunArgs, globals: &Globals) -> anyhow::Result<()> {
    let client = AdminClient::open(&globals.config).await?;
    let started: RunStarted = call(
        client
            .post(
                "/v1/admin/runs",
                &RunTarget {
                    target: args.target.clone(),
                    role: args.role.clone(),
                    noop: args.noop,
                    requested_by: requested_by(),
                },
            )
            .await,
    )?;
    let text = globals.output == Output::Text;
    if started.envoys.is_empty() && started.not_approved.is_empty() {
        bail!(
            "no envoy matches {}; see `vigocli envoys list`",
            target_label(args)
        );
    }
    let deadline = Instant::now() + args.timeout;
    let mut shown = BTreeSet::new();
    let mut last: Option<RunStatus> = None;
    while !started.envoys.is_empty() {
        let status: RunStatus = call(client.get(&format!("/v1/admin/runs/{}", started.id)).await)?;
        for envoy in &status.envoys {
            if let Some(report) = finished(envoy)
                && shown.insert(envoy.name.clone())
                && text
            {
                print!("{}", envoy_lines(envoy, report, args.verbose));
            }
        }
        let done = status.envoys.iter().all(|e| finished(e).is_some());
        last = Some(status);
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let mut silent: Vec<(String, &str)> = last
        .iter()
        .flat_map(|s| &s.envoys)
        .filter(|e| finished(e).is_none())
        .map(|e| {
            let why = match e.status.as_str() {
                "delivered" => "checked in, no report yet",
                "superseded" => "a later run request replaced this one",
                _ => "did not check in (not connected, stopped or stale)",
            };
            (e.name.clone(), why)
        })
        .collect();
    silent.extend(
        started
            .not_approved
            .iter()
            .map(|n| (n.clone(), "not approved (pending or revoked)")),
    );
    let failed = last
        .iter()
        .flat_map(|s| &s.envoys)
        .filter(|e| e.status == "failed")
        .count();
    if text {
        if !silent.is_empty() {
            println!(
                "did not answer within {}:",
                humantime::format_duration(args.timeout)
            );
            for (name, why) in &silent {
                println!("  {name}  ({why})");
            }
        }
    } else {
        print_json(&serde_json::json!({
            "run": last,
            "not_answered": silent.iter().map(|(n, why)| serde_json::json!({"name": n, "why": why})).collect::<Vec<_>>(),
        }))?;
    }
    match (failed, silent.len()) {
        (0, 0) => Ok(()),
        (f, 0) => bail!("{} of {} failed", envoys(f), started.envoys.len()),
        (0, s) => bail!("{} did not answer within the timeout", envoys(s)),
        (f, s) => bail!(
            "{} failed and {} did not answer within the timeout",
            envoys(f),
            envoys(s)
        ),
    }
}

/// `1 envoy`, `2 envoys`.
fn envoys(n: usize) -> String {
    if n == 1 {
        "1 envoy".to_owned()
    } else {
        format!("{n} envoys")
    }
}

/// The envoy's report once its run is over.
fn finished(envoy: &RunEnvoy) -> Option<&Report> {
    match envoy.status.as_str() {
        "ok" | "changed" | "failed" => envoy.report.as_ref(),
        _ => None,
    }
}

/// `web1  ok  12 resources: ...  (0.4 s)`, then the changed and failed
/// resources (with their diffs when verbose).
fn envoy_lines(envoy: &RunEnvoy, report: &Report, verbose: bool) -> String {
    // Milliseconds: far below 2^53, so the conversion is exact.
    let secs = report.duration_ms as f64 / 1000.0;
    let mut out = format!(
        "{}  {}  {}  ({secs:.1} s)\n",
        envoy.name, envoy.status, report.summary
    );
    for r in &report.resources {
        let status = r.status.to_string();
        if status != "changed" && status != "failed" {
            continue;
        }
        let word = if report.noop && status == "changed" {
            "would change"
        } else {
            status.as_str()
        };
        out.push_str(&format!("    {word} {}", r.label()));
        if !r.message.is_empty() {
            out.push_str(&format!(": {}", r.message));
        }
        out.push('\n');
        if verbose && let Some(diff) = &r.diff {
            for line in diff.lines() {
                out.push_str(&format!("        {line}\n"));
            }
        }
    }
    out
}

fn target_label(args: &RunArgs) -> String {
    match (&args.target, &args.role) {
        (Some(t), _) => format!("'{t}'"),
        (None, Some(r)) => format!("role '{r}'"),
        (None, None) => String::new(),
    }
}

/// The local user, for the server's audit record of who asked.
fn requested_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("{user} (vigocli)")
}

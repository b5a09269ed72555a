//! `vigocli reports [ENVOY] [--failed] [--since 1h]` and `vigocli reports
//! show ID`: the run history the server keeps (docs/operations.md "Run
//! history"), read through the admin API. Messages, command output and
//! diffs were scrubbed of secret values by the envoy before they were sent.

use anyhow::bail;
use clap::{Args, Subcommand};
use vigo_proto::ResourceResult;
use vigo_proto::admin::{ReportDetail, ReportEntry};
use vigo_secrets::EnvoyName;

use crate::admin::AdminClient;
use crate::output::{self, call, print_json};
use crate::{Globals, Output};

/// `reports`: list, or `show` one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ReportsArgs {
    #[command(subcommand)]
    command: Option<ReportsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

/// The `reports` subcommands.
#[derive(Debug, Subcommand)]
enum ReportsCommand {
    /// Show one report: every resource's outcome, duration and message.
    Show {
        /// The report's id (the first column of `vigocli reports`).
        id: i64,
    },
}

/// Which reports `vigocli reports` lists, newest first.
#[derive(Debug, Args)]
struct ListArgs {
    /// Only this envoy's runs.
    envoy: Option<String>,
    /// Only runs in which a resource failed.
    #[arg(long)]
    failed: bool,
    /// Only runs since this long ago (30m, 1h, 2d) or this RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// At most this many runs (1 to 1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// Runs `vigocli reports ...`.
pub(crate) async fn run(args: ReportsArgs, globals: &Globals) -> anyhow::Result<()> {
    // Flag mistakes are reported before anything is opened.
    let route = match &args.command {
        Some(ReportsCommand::Show { id }) => format!("/v1/admin/reports/{id}"),
        None => list_route(&args.list)?,
    };
    let client = AdminClient::open(&globals.config).await?;
    match args.command {
        Some(ReportsCommand::Show { .. }) => {
            let detail: ReportDetail = call(client.get(&route).await)?;
            match globals.output {
                Output::Json => print_json(&detail)?,
                Output::Text => print!("{}", details(&detail)),
            }
        }
        None => {
            let reports: Vec<ReportEntry> = call(client.get(&route).await)?;
            match globals.output {
                Output::Json => print_json(&reports)?,
                Output::Text if reports.is_empty() => eprintln!("No reports match."),
                Output::Text => print!("{}", table(&reports)),
            }
        }
    }
    Ok(())
}

/// `/v1/admin/reports?...` for the flags, checked: a name in its one
/// normalised form, a `--since` the server will take.
fn list_route(args: &ListArgs) -> anyhow::Result<String> {
    let mut query = vec![format!("limit={}", args.limit)];
    if args.limit == 0 || args.limit > 1_000 {
        bail!("--limit must be between 1 and 1000 (got {})", args.limit);
    }
    if let Some(envoy) = &args.envoy {
        query.push(format!("envoy={}", EnvoyName::parse(envoy)?));
    }
    if args.failed {
        query.push("failed=true".to_owned());
    }
    if let Some(since) = &args.since {
        let valid = humantime::parse_duration(since).is_ok()
            || humantime::parse_rfc3339_weak(since).is_ok();
        if !valid {
            bail!(
                "--since {since:?} is neither a duration (30m, 1h, 2d) nor an RFC 3339 time (2026-01-31T12:00:00Z)"
            );
        }
        // Durations and RFC 3339 times (UTC) hold only characters safe in a
        // query but blanks (`1h 30m`).
        query.push(format!("since={}", since.replace(' ', "%20")));
    }
    Ok(format!("/v1/admin/reports?{}", query.join("&")))
}

/// `ok`, `changed` or `failed`, with ` (noop)` for a noop run.
fn status(entry: &ReportEntry) -> String {
    if entry.noop {
        format!("{} (noop)", entry.status)
    } else {
        entry.status.clone()
    }
}

fn duration(entry: &ReportEntry) -> String {
    entry
        .duration_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}

/// `ID ENVOY FINISHED STATUS CHANGED FAILED DURATION`.
fn table(reports: &[ReportEntry]) -> String {
    let cells: Vec<[String; 7]> = reports
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.envoy.clone(),
                r.finished.clone(),
                status(r),
                r.changed.to_string(),
                r.failed.to_string(),
                duration(r),
            ]
        })
        .collect();
    let rows: Vec<[&str; 7]> = cells
        .iter()
        .map(|row| row.each_ref().map(String::as_str))
        .collect();
    output::table(
        [
            "ID", "ENVOY", "FINISHED", "STATUS", "CHANGED", "FAILED", "DURATION",
        ],
        &rows,
    )
}

/// The text form of `reports show`.
fn details(d: &ReportDetail) -> String {
    let e = &d.entry;
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<11}{value}\n"));
    line("id:", e.id.to_string());
    line("envoy:", e.envoy.clone());
    line("finished:", e.finished.clone());
    line("status:", status(e));
    line("duration:", duration(e));
    line(
        "summary:",
        format!(
            "{} resources: {} changed, {} failed, {} skipped, {} unchanged",
            e.changed + e.failed + e.skipped + e.unchanged,
            e.changed,
            e.failed,
            e.skipped,
            e.unchanged
        ),
    );
    if !d.resources.is_empty() {
        out.push_str("resources:\n");
        for r in &d.resources {
            resource_lines(r, &mut out);
        }
    }
    out
}

/// `  type[name] status (N ms): message`, then a command's output and a
/// noop diff, indented.
fn resource_lines(r: &ResourceResult, out: &mut String) {
    out.push_str(&output::resource_line(
        &r.label(),
        r.status.as_str(),
        r.duration_ms,
        &r.message,
    ));
    let mut block = |title: &str, text: &str| {
        if !text.is_empty() {
            out.push_str(&format!("    {title}:\n"));
            for text_line in text.lines() {
                out.push_str(&format!("      {text_line}\n"));
            }
        }
    };
    if let Some(output) = &r.output {
        block("stdout", &output.stdout);
        block("stderr", &output.stderr);
    }
    if let Some(diff) = &r.diff {
        block("diff", diff);
    }
}

#[cfg(test)]
mod tests {
    use vigo_proto::{CommandOutput, Status};

    use super::*;

    fn entry(id: i64, envoy: &str, failed: u32, noop: bool) -> ReportEntry {
        ReportEntry {
            id,
            envoy: envoy.to_owned(),
            finished: "2026-12-07T12:00:00Z".to_owned(),
            status: if failed > 0 { "failed" } else { "changed" }.to_owned(),
            noop,
            changed: 1,
            failed,
            skipped: failed,
            unchanged: 3,
            duration_ms: Some(1_234),
            changed_resources: vec!["file[motd]".to_owned()],
        }
    }

    fn list_args(envoy: Option<&str>, since: Option<&str>) -> ListArgs {
        ListArgs {
            envoy: envoy.map(str::to_owned),
            failed: true,
            since: since.map(str::to_owned),
            limit: 20,
        }
    }

    #[test]
    fn the_table_lists_runs() {
        let mut old = entry(3, "web1.example.com", 0, true);
        old.duration_ms = None;
        insta::assert_snapshot!(table(&[entry(7, "db1", 2, false), old]), @r"
        ID  ENVOY             FINISHED              STATUS          CHANGED  FAILED  DURATION
        7   db1               2026-12-07T12:00:00Z  failed          1        2       1234 ms
        3   web1.example.com  2026-12-07T12:00:00Z  changed (noop)  1        0       -
        ");
    }

    #[test]
    fn show_prints_every_resource_with_output() {
        let detail = ReportDetail {
            entry: entry(7, "db1", 1, false),
            resources: vec![
                ResourceResult {
                    name: "motd".to_owned(),
                    resource_type: "file".to_owned(),
                    status: Status::Changed,
                    duration_ms: 3,
                    message: "content updated".to_owned(),
                    output: None,
                    diff: None,
                },
                ResourceResult {
                    name: "migrate".to_owned(),
                    resource_type: "exec".to_owned(),
                    status: Status::Failed,
                    duration_ms: 40,
                    message: "exited with status 2".to_owned(),
                    output: Some(CommandOutput {
                        exit_code: Some(2),
                        stdout: String::new(),
                        stderr: "no such table\nrolled back".to_owned(),
                    }),
                    diff: None,
                },
                ResourceResult {
                    name: "restart".to_owned(),
                    resource_type: "service".to_owned(),
                    status: Status::Skipped,
                    duration_ms: 0,
                    message: String::new(),
                    output: None,
                    diff: None,
                },
            ],
        };
        insta::assert_snapshot!(details(&detail), @r"
        id:        7
        envoy:     db1
        finished:  2026-12-07T12:00:00Z
        status:    failed
        duration:  1234 ms
        summary:   6 resources: 1 changed, 1 failed, 1 skipped, 3 unchanged
        resources:
          file[motd] changed (3 ms): content updated
          exec[migrate] failed (40 ms): exited with status 2
            stderr:
              no such table
              rolled back
          service[restart] skipped (0 ms)
        ");
    }

    #[test]
    fn list_flags_become_a_checked_query() {
        assert_eq!(
            list_route(&list_args(Some("DB1.Example.com"), Some("1h"))).unwrap(),
            "/v1/admin/reports?limit=20&envoy=db1.example.com&failed=true&since=1h"
        );
        assert_eq!(
            list_route(&list_args(None, Some("1h 30m"))).unwrap(),
            "/v1/admin/reports?limit=20&failed=true&since=1h%2030m"
        );
        let err = list_route(&list_args(None, Some("yesterday"))).unwrap_err();
        assert!(err.to_string().contains("neither a duration"), "{err}");
        assert!(list_route(&list_args(Some("db1/../x"), None)).is_err());
        let mut zero = list_args(None, None);
        zero.limit = 0;
        assert!(list_route(&zero).is_err());
    }
}

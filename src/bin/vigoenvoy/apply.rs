//! `vigoenvoy apply --catalog FILE [--noop] [--data-dir DIR] [--tags T]
//! [--resource NAME]`.
//!
//! Reads a revealed catalog file, applies it (or the part `--tags` and
//! `--resource` select) with the engine, prints one line per resource that
//! changed, failed or was skipped, then the summary line. Exit 0 when nothing failed, [`EXIT_FAILED`] when a resource failed,
//! 1 for bad input, 128 + the signal number when SIGTERM/SIGINT stopped it.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;
use vigo_catalog::Catalog;
use vigo_engine::{ApplyOptions, Engine, Report, ResourceResult, Scrubber, Status};
use zeroize::Zeroizing;

use crate::select::SelectArgs;
use crate::stop::Stop;

/// Exit status when at least one resource failed.
const EXIT_FAILED: u8 = 2;

/// Options of `vigoenvoy apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// The catalog file (JSON).
    #[arg(long, value_name = "FILE")]
    catalog: PathBuf,
    /// Report what would change; change nothing and run no command.
    #[arg(long)]
    noop: bool,
    /// The envoy's data folder (state, transient secret files) [default:
    /// `data_dir` of the config file, else /var/lib/vigoenvoy].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    select: SelectArgs,
}

/// Runs the command.
pub(crate) fn run(args: &ApplyArgs, config: &Path) -> anyhow::Result<ExitCode> {
    let catalog = read_catalog(&args.catalog)?;
    let selection = args.select.selection();
    let only = if selection.is_empty() {
        None
    } else {
        Some(
            selection
                .resolve(&catalog)
                .with_context(|| format!("selecting from {}", args.catalog.display()))?,
        )
    };
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => data_dir_from_config(config)?,
    };
    let mut engine = Engine::new(&data_dir)
        .with_context(|| format!("opening the envoy data folder {}", data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // SIGTERM/SIGINT stop the apply (see `stop`): the running command's
    // process group is killed and its secret file removed before exiting.
    let (report, stop) = runtime.block_on(async {
        let stop = Stop::install(engine.cancel_handle())?;
        let report = tokio::select! {
            report = engine.apply(&catalog, ApplyOptions { noop: args.noop, only: only.as_ref() }) => Some(report),
            () = stop.deadline() => None,
        };
        anyhow::Ok((report, stop))
    })?;
    if let Some(report) = &report {
        print_report(report)?;
    }
    if let Some(code) = stop.exit() {
        return Ok(code);
    }
    Ok(if report.is_none_or(|r| r.has_failures()) {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads and parses the catalog; errors name `file:line:col` and never
/// quote a secret value.
fn read_catalog(path: &Path) -> anyhow::Result<Catalog> {
    let text = Zeroizing::new(
        fs::read_to_string(path).with_context(|| format!("reading catalog {}", path.display()))?,
    );
    match serde_json::from_str::<Catalog>(&text) {
        Ok(catalog) => Ok(catalog),
        Err(e) => {
            let position = format!(" at line {} column {}", e.line(), e.column());
            let full = e.to_string();
            let message = full.strip_suffix(&position).unwrap_or(&full);
            // A type error may quote the offending value, which could be a
            // secret: scrub with whatever values the file carries.
            let message = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(value) => scrub_with_values(message, &value),
                Err(_) => message.to_owned(),
            };
            bail!(
                "{}:{}:{}: {message}; expected the JSON of `vigocli catalog NAME --output json --reveal`",
                path.display(),
                e.line(),
                e.column()
            )
        }
    }
}

/// `message` with every `secrets.*.value` string of `value` removed.
fn scrub_with_values(message: &str, value: &serde_json::Value) -> String {
    let mut catalog = Catalog::empty("");
    if let Some(secrets) = value.get("secrets").and_then(|s| s.as_object()) {
        for (i, secret) in secrets.values().enumerate() {
            if let Some(text) = secret.get("value").and_then(|v| v.as_str())
                && let Ok(path) = vigo_secrets_path(i)
            {
                catalog.secrets.insert(
                    path,
                    vigo_catalog::CatalogSecret {
                        version: 0,
                        value: Some(text.into()),
                    },
                );
            }
        }
    }
    Scrubber::for_catalog(&catalog).scrub(message)
}

/// A placeholder path to key a value by (the real path may be invalid).
fn vigo_secrets_path(i: usize) -> Result<vigo_secrets::SecretPath, vigo_secrets::PathError> {
    vigo_secrets::SecretPath::parse(&format!("scrub/{i}"))
}

/// The part of `envoy.yaml` that `apply` uses.
#[derive(Debug, Deserialize)]
struct ConfigDataDir {
    #[serde(default)]
    data_dir: Option<PathBuf>,
}

/// `data_dir` from the config file if it exists and names one (relative
/// paths are taken from the config's folder), else the default.
fn data_dir_from_config(config: &Path) -> anyhow::Result<PathBuf> {
    let text = match fs::read_to_string(config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(PathBuf::from(vigo_envoy::DEFAULT_DATA_DIR));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let parsed: ConfigDataDir =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    Ok(match parsed.data_dir {
        Some(dir) if dir.is_relative() => config.parent().unwrap_or(Path::new("/")).join(dir),
        Some(dir) => dir,
        None => PathBuf::from(vigo_envoy::DEFAULT_DATA_DIR),
    })
}

/// Prints the resource lines and the summary on stdout.
pub(crate) fn print_report(report: &Report) -> anyhow::Result<()> {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    for result in report
        .resources
        .iter()
        .filter(|r| r.status != Status::Unchanged)
    {
        writeln!(out, "{}", resource_line(result, colour)).context("writing to stdout")?;
        if let Some(diff) = &result.diff {
            write!(out, "{}", diff_lines(diff)).context("writing to stdout")?;
        }
    }
    writeln!(out, "{}", report.summary).context("writing to stdout")?;
    Ok(())
}

/// `changed  file[pg-config]: wrote /etc/x (mode 0600)`.
fn resource_line(result: &ResourceResult, colour: bool) -> String {
    let word = result.status.as_str();
    let padding = " ".repeat(9usize.saturating_sub(word.len()));
    let word = match (colour, result.status) {
        (true, Status::Changed) => format!("\x1b[32m{word}\x1b[0m"),
        (true, Status::Failed) => format!("\x1b[31m{word}\x1b[0m"),
        (true, Status::Skipped) => format!("\x1b[33m{word}\x1b[0m"),
        _ => word.to_owned(),
    };
    // Command output may hold newlines or terminal escapes: one line, plain.
    let message: String = result
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{word}{padding}{}: {message}", result.label())
}

/// A noop diff, indented under its resource line. File content may hold
/// terminal escapes: control characters other than tab are shown escaped.
fn diff_lines(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.lines() {
        out.push_str("    ");
        for c in line.chars() {
            if c.is_control() && c != '\t' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status, message: &str) -> ResourceResult {
        ResourceResult {
            name: "pg".into(),
            resource_type: "service".into(),
            status,
            duration_ms: 0,
            message: message.into(),
            output: None,
            diff: None,
        }
    }

    #[test]
    fn lines_align_and_stay_on_one_line() {
        assert_eq!(
            resource_line(&result(Status::Skipped, "dependency 'x' failed"), false),
            "skipped  service[pg]: dependency 'x' failed"
        );
        assert_eq!(
            resource_line(&result(Status::Failed, "a\nb"), false),
            "failed   service[pg]: a b"
        );
        assert!(resource_line(&result(Status::Changed, "m"), true).starts_with("\x1b[32mchanged"));
    }

    #[test]
    fn issue_11_diffs_are_indented_and_escape_control_characters() {
        assert_eq!(
            diff_lines("--- /a\n+++ /a (desired)\n-x\x1b[31m\n+\ty\rz\n"),
            "    --- /a\n    +++ /a (desired)\n    -x\\u{1b}[31m\n    +\ty\\rz\n"
        );
    }
}

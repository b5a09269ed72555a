//! The `service` provider: systemd units through `systemctl`.
//!
//! State is queried first (`is-active`, `is-enabled`) and only the
//! differences are acted on. A refresh event or a secret trigger restarts a
//! unit that is (and stays) running, unless this run has just started it.

use std::path::Path;
use std::time::Duration;

use vigo_catalog::{ServiceSpec, ServiceState};

use super::exec::outcome_of;
use super::{Context, Outcome, ProviderError, check_name, output_excerpt, run_tool};
use crate::command;
use crate::report::Status;

/// How long one `systemctl` call may take.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(300);

/// Converges one `service` resource.
pub(crate) async fn apply(spec: &ServiceSpec, ctx: &Context<'_>) -> Outcome {
    converge(spec, ctx).await.into()
}

async fn converge(spec: &ServiceSpec, ctx: &Context<'_>) -> Result<Outcome, ProviderError> {
    let unit = spec.service.as_str();
    check_name("service", unit)?;
    let systemctl = command::find_program("systemctl", ctx.search_path).ok_or_else(|| {
        ProviderError::refused(
            "systemctl was not found on PATH; service resources need systemd on the host",
        )
    })?;

    let active = query(&systemctl, "is-active", unit, ctx).await?;
    let mut actions: Vec<(&str, String)> = Vec::new();
    if let Some(enabled) = spec.enabled {
        let is_enabled = query(&systemctl, "is-enabled", unit, ctx).await?;
        match (enabled, is_enabled) {
            (true, false) => actions.push(("enable", format!("enable {unit}"))),
            (false, true) => actions.push(("disable", format!("disable {unit}"))),
            _ => {}
        }
    }
    let will_run = match spec.state {
        Some(ServiceState::Running) if !active => {
            actions.push(("start", format!("start {unit}")));
            false
        }
        Some(ServiceState::Stopped) if active => {
            actions.push(("stop", format!("stop {unit}")));
            false
        }
        Some(ServiceState::Stopped) => false,
        Some(ServiceState::Running) | None => active,
    };
    if will_run {
        let reason = match (ctx.refreshed_by, ctx.secret_triggered) {
            (Some(by), _) => Some(format!("refresh from '{by}'")),
            (None, true) => Some("a watched secret rotated".to_owned()),
            (None, false) => None,
        };
        if let Some(reason) = reason {
            actions.push(("restart", format!("restart {unit} ({reason})")));
        }
    }

    if actions.is_empty() {
        let state = if active { "running" } else { "stopped" };
        return Ok(Outcome::unchanged(format!("{unit} is {state}")));
    }
    if ctx.noop {
        let all: Vec<String> = actions.into_iter().map(|(_, text)| text).collect();
        return Ok(Outcome::from_changes(all, true, String::new()));
    }
    let mut done = Vec::new();
    for (verb, text) in actions {
        let finished = run_tool(
            &systemctl,
            &[verb, unit],
            &[],
            ctx.search_path,
            SYSTEMCTL_TIMEOUT,
        )
        .await?;
        let outcome = outcome_of(&finished, ctx.scrubber, "", SYSTEMCTL_TIMEOUT.as_secs());
        if outcome.status == Status::Failed {
            let mut message = format!("systemctl {verb} {unit} failed: {}", outcome.message);
            if !done.is_empty() {
                message.push_str(&format!(" (already done: {})", done.join("; ")));
            }
            return Ok(Outcome {
                status: Status::Failed,
                message,
                output: outcome.output,
                diff: None,
            });
        }
        done.push(past_tense(&text));
    }
    Ok(Outcome::changed(done.join("; ")))
}

/// `systemctl is-active UNIT` / `is-enabled UNIT`: exit 0 means yes. A
/// timeout or a tool that cannot start is an error, not a "no".
async fn query(
    systemctl: &Path,
    verb: &str,
    unit: &str,
    ctx: &Context<'_>,
) -> Result<bool, ProviderError> {
    let finished = run_tool(
        systemctl,
        &[verb, unit],
        &[],
        ctx.search_path,
        SYSTEMCTL_TIMEOUT,
    )
    .await?;
    match finished.exit {
        command::Exit::Code(code) => Ok(code == 0),
        command::Exit::Signal(_) | command::Exit::TimedOut => {
            let output = super::exec::scrubbed_output(&finished, ctx.scrubber);
            Err(ProviderError::refused(format!(
                "systemctl {verb} {unit} did not finish: {}",
                output_excerpt(&output.stderr, 200)
            )))
        }
    }
}

/// `start x` -> `started x` (the verbs used above only).
fn past_tense(text: &str) -> String {
    for (verb, past) in [
        ("enable ", "enabled "),
        ("disable ", "disabled "),
        ("start ", "started "),
        ("stop ", "stopped "),
        ("restart ", "restarted "),
    ] {
        if let Some(rest) = text.strip_prefix(verb) {
            return format!("{past}{rest}");
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_the_past_tense() {
        assert_eq!(
            past_tense("restart pg (refresh from 'x')"),
            "restarted pg (refresh from 'x')"
        );
        assert_eq!(past_tense("stop pg"), "stopped pg");
    }
}

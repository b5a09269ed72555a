//! The dashboard's HTML, written with maud (every interpolated value is
//! escaped). No script anywhere: buttons are plain forms, each carrying
//! the session's CSRF token. Pages never hold a secret value: they show
//! paths, versions, fingerprints and report lines only.

use std::time::Duration;

use maud::{DOCTYPE, Markup, html};
use vigo_proto::admin::{
    ConfigStatus, EnvoyDetail, EnvoySummary, HistoryEntry, ReportDetail, ReportEntry, SecretUser,
};
use vigo_secrets::SecretPath;

use super::sessions::{Role, Session};

/// A page's place in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    Overview,
    Enrollments,
    Secrets,
    Config,
    Other,
}

/// One envoy on the overview.
#[derive(Debug)]
pub(crate) struct EnvoyRow {
    /// The envoy's derived status (`vigo_store::EnvoyState`).
    pub status: &'static str,
    /// Time since its last check-in.
    pub checkin_age: Option<Duration>,
    /// What `vigocli envoys list` shows of it.
    pub summary: EnvoySummary,
}

/// One secret on the secrets page.
#[derive(Debug)]
pub(crate) struct SecretRow {
    pub path: SecretPath,
    pub version: u64,
    pub users: Vec<SecretUser>,
}

/// The statuses in the order the overview counts them.
const STATUSES: [&str; 6] = ["stale", "failed", "pending", "changed", "ok", "revoked"];

fn layout(session: Option<&Session>, page: Page, title: &str, body: Markup) -> Markup {
    let nav = [
        (Page::Overview, "/ui/", "Fleet"),
        (Page::Enrollments, "/ui/enrollments", "Enrollments"),
        (Page::Secrets, "/ui/secrets", "Secrets"),
        (Page::Config, "/ui/config", "Config"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Vigo" }
                link rel="stylesheet" href="/ui/static/vigo.css";
            }
            body {
                header {
                    span.brand { "Vigo" }
                    @if let Some(session) = session {
                        nav {
                            @for (target, href, label) in nav {
                                @if target == page {
                                    a.current href=(href) { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                        form.signout method="post" action="/ui/signout" {
                            span.role { "Signed in: " (session.role.as_str()) }
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" id="signout" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The sign-in page; `nonce` is the form's double-submit value.
pub(crate) fn signin(nonce: &str, problem: Option<&str>) -> Markup {
    layout(
        None,
        Page::Other,
        "Sign in",
        html! {
            @if let Some(problem) = problem { p.error { (problem) } }
            form.card.signin method="post" action="/ui/signin" {
                input type="hidden" name="signin" value=(nonce);
                label for="token" { "Admin or viewer token" }
                input type="password" id="token" name="token" autocomplete="off" required;
                button type="submit" id="signin" { "Sign in" }
                p.hint {
                    "The admin token is the secret " code { "vigo/server/admin_token" }
                    "; read-only access uses " code { "vigo/server/ui_viewer_token" } "."
                }
            }
        },
    )
}

/// A page with one message (a refusal or a failed action).
pub(crate) fn message_page(session: Option<&Session>, title: &str, message: &str) -> Markup {
    layout(
        session,
        Page::Other,
        title,
        html! {
            p.error { (message) }
            p { a href="/ui/" { "Back to the fleet" } }
        },
    )
}

/// "3m ago" for an age.
fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// The fleet overview: counts by status, then every envoy, trouble first.
pub(crate) fn overview(session: &Session, rows: &[EnvoyRow]) -> Markup {
    layout(
        Some(session),
        Page::Overview,
        "Fleet",
        html! {
            section.counts {
                @for status in STATUSES {
                    div class={ "count " (status) } {
                        span.n { (rows.iter().filter(|r| r.status == status).count()) }
                        span.label { (status) }
                    }
                }
            }
            @if rows.is_empty() {
                p { "No envoys yet: create a token with " code { "vigocli envoys token" } "." }
            } @else {
                table id="envoys" {
                    thead { tr { th { "Envoy" } th { "Status" } th { "Last check-in" } th { "Last run" } } }
                    tbody {
                        @for row in rows {
                            tr class=(row.status) {
                                td { a href={ "/ui/envoys/" (row.summary.name) } { (row.summary.name) } }
                                td { (badge(row.status)) }
                                td title=[row.summary.last_checkin.as_deref()] {
                                    @match row.checkin_age { Some(d) => (age(d)), None => "never" }
                                }
                                td.mono { (row.summary.last_report.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn approve_form(session: &Session, name: &str) -> Markup {
    html! {
        @if session.role == Role::Admin {
            form.inline method="post" action={ "/ui/envoys/" (name) "/approve" } {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="text" name="fingerprint" placeholder="fingerprint the host printed"
                    aria-label="Key fingerprint" required minlength="16" maxlength="64" size="40";
                button type="submit" class="approve" { "Approve" }
            }
        }
    }
}

fn revoke_form(session: &Session, name: &str) -> Markup {
    html! {
        @if session.role == Role::Admin {
            form.inline method="post" action={ "/ui/envoys/" (name) "/revoke" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button type="submit" class="revoke" { "Revoke" }
            }
        }
    }
}

/// One envoy: status, facts, roles, its last run per resource, its recent
/// runs (each linking to its report page), queued triggers.
pub(crate) fn envoy(
    session: &Session,
    detail: &EnvoyDetail,
    status: &str,
    roles: &[String],
    runs: &[ReportEntry],
) -> Markup {
    let s = &detail.summary;
    layout(
        Some(session),
        Page::Other,
        &s.name,
        html! {
            dl.card.facts {
                dt { "Status" } dd { (badge(status)) }
                dt { "Last check-in" } dd { (s.last_checkin.as_deref().unwrap_or("never")) }
                dt { "Last report" } dd.mono { (s.last_report.as_deref().unwrap_or("none")) }
                @if let Some(run) = &detail.last_run { dt { "Last run" } dd.mono { (run) } }
                @if let Some(fp) = &detail.cert_fingerprint { dt { "Certificate" } dd.mono { (fp) } }
                @if let Some(fp) = &s.pending_fingerprint { dt { "Pending key" } dd.mono { (fp) } }
                @if let Some(lag) = detail.last_rotation_lag_ms { dt { "Last rotation lag" } dd { (lag) " ms" } }
                dt { "Roles" } dd { @if roles.is_empty() { "none" } @else { (roles.join(", ")) } }
            }
            @if s.status == "pending" { p { (approve_form(session, &s.name)) " " (revoke_form(session, &s.name)) } }
            @if s.status == "approved" { p { (revoke_form(session, &s.name)) } }
            h2 { "Last run" }
            @if detail.last_report_resources.is_empty() {
                p { "No report yet." }
            } @else {
                table id="resources" {
                    thead { tr { th { "Resource" } th { "Type" } th { "Outcome" } th { "Time" } th { "Message" } } }
                    tbody {
                        @for r in &detail.last_report_resources {
                            tr class=(r.status) {
                                td { (r.name) @if r.secret_triggered { " " span.tag { "secret-triggered" } } }
                                td { (r.kind) }
                                td { (badge(&r.status)) }
                                td { (r.duration_ms) " ms" }
                                td.mono.message { (r.message) }
                            }
                        }
                    }
                }
            }
            h2 { "Recent runs" }
            @if runs.is_empty() {
                p { "No stored report yet (a clean run sends none; its check-in counts as the last run above)." }
            } @else {
                (runs_table(runs))
            }
            h2 { "Queued triggers" }
            @if detail.queued_triggers.is_empty() {
                p { "None." }
            } @else {
                ul.mono { @for t in &detail.queued_triggers { li { (t) } } }
            }
            h2 { "Facts" }
            @if detail.facts.is_empty() {
                p { "None reported yet." }
            } @else {
                table class="facts" {
                    tbody {
                        @for (key, value) in &detail.facts {
                            tr { th { (key) } td.mono { (fact_text(value)) } }
                        }
                    }
                }
            }
        },
    )
}

/// Reports, newest first, each linking to its page.
fn runs_table(runs: &[ReportEntry]) -> Markup {
    html! {
        table id="runs" {
            thead { tr { th { "Report" } th { "Finished" } th { "Status" } th { "Changed" } th { "Failed" } th { "Time" } th { "Changed resources" } } }
            tbody {
                @for run in runs {
                    tr class=(run.status) {
                        td { a href={ "/ui/reports/" (run.id) } { "#" (run.id) } }
                        td.mono { (run.finished) }
                        td { (badge(&run.status)) @if run.noop { " " span.tag { "noop" } } }
                        td { (run.changed) }
                        td { (run.failed) }
                        td { @match run.duration_ms { Some(ms) => { (ms) " ms" }, None => "—" } }
                        td.mono { (run.changed_resources.join(", ")) }
                    }
                }
            }
        }
    }
}

/// One stored report: every resource's outcome and message, a command's
/// output and a file's diff, as the envoy sent them (scrubbed of secret
/// values on the host; a diff of secret-bearing content is never sent).
pub(crate) fn report(session: &Session, report: &ReportDetail) -> Markup {
    let e = &report.entry;
    layout(
        Some(session),
        Page::Other,
        &format!("Report #{} of {}", e.id, e.envoy),
        html! {
            dl.card.facts {
                dt { "Envoy" } dd { a href={ "/ui/envoys/" (e.envoy) } { (e.envoy) } }
                dt { "Finished" } dd.mono { (e.finished) }
                dt { "Status" } dd { (badge(&e.status)) @if e.noop { " " span.tag { "noop" } } }
                dt { "Resources" } dd { (e.changed) " changed, " (e.failed) " failed, " (e.skipped) " skipped, " (e.unchanged) " unchanged" }
                @if let Some(ms) = e.duration_ms { dt { "Time" } dd { (ms) " ms" } }
            }
            table id="report-resources" {
                thead { tr { th { "Resource" } th { "Outcome" } th { "Time" } th { "Message, output and diff" } } }
                tbody {
                    @for r in &report.resources {
                        tr class=(r.status.as_str()) {
                            td.mono { (r.label()) }
                            td { (badge(r.status.as_str())) }
                            td { (r.duration_ms) " ms" }
                            td.message {
                                div.mono { (r.message) }
                                @if let Some(out) = &r.output {
                                    @if let Some(code) = out.exit_code { div.hint { "exit code " (code) } }
                                    @if !out.stdout.is_empty() { pre.output { (out.stdout) } }
                                    @if !out.stderr.is_empty() { pre.output.stderr { (out.stderr) } }
                                }
                                @if let Some(diff) = &r.diff { pre.diff { (diff) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The latest change of a secret's version and its deliveries, from the
/// history shown.
struct Rotation<'a> {
    /// When this version was stored, if the history shown has it.
    changed_at: Option<&'a str>,
    /// Envoys that received this version since.
    deliveries: usize,
    /// The longest time from the change to a delivery.
    slowest: Option<Duration>,
}

fn last_rotation<'a>(history: &'a [HistoryEntry], path: &SecretPath, version: u64) -> Rotation<'a> {
    let of_version = |e: &&HistoryEntry| e.path == *path && e.version == version;
    let changed_at = history
        .iter()
        .filter(of_version)
        .find(|e| e.event == "changed")
        .map(|e| e.at.as_str());
    let delivered: Vec<&HistoryEntry> = history
        .iter()
        .filter(of_version)
        .filter(|e| e.event == "delivered")
        .collect();
    Rotation {
        changed_at,
        deliveries: delivered.len(),
        slowest: delivered
            .iter()
            .filter_map(|e| delivery_lag(history, e))
            .max(),
    }
}

/// For a delivery, the time since its version was stored (when the history
/// shown has both).
fn delivery_lag(history: &[HistoryEntry], entry: &HistoryEntry) -> Option<Duration> {
    if entry.event != "delivered" {
        return None;
    }
    let changed = history
        .iter()
        .find(|e| e.event == "changed" && e.path == entry.path && e.version == entry.version)?;
    let at = |text: &str| humantime::parse_rfc3339_weak(text).ok();
    at(&entry.at)?.duration_since(at(&changed.at)?).ok()
}

/// `< 1 s`, `12 s`, `3m 5s` (history times are to the second).
fn seconds(d: Duration) -> String {
    match d.as_secs() {
        0 => "< 1 s".to_owned(),
        secs @ 1..120 => format!("{secs} s"),
        secs => format!("{}m {}s", secs / 60, secs % 60),
    }
}

fn fact_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The pending enrollment requests with Approve and Revoke.
pub(crate) fn enrollments(session: &Session, pending: &[EnvoyRow]) -> Markup {
    layout(
        Some(session),
        Page::Enrollments,
        "Pending enrollments",
        html! {
            p.hint {
                "Approve a request only after checking that the fingerprint below is the one "
                code { "vigoenvoy" } " printed on the host; type or paste the host's fingerprint to approve."
            }
            @if pending.is_empty() {
                p { "No pending requests." }
            } @else {
                table id="pending" {
                    thead { tr { th { "Envoy" } th { "Request key fingerprint" } th { "" } } }
                    tbody {
                        @for row in pending {
                            @let name = &row.summary.name;
                            tr {
                                td { a href={ "/ui/envoys/" (name) } { (name) } }
                                td.mono.fingerprint { (row.summary.pending_fingerprint.as_deref().unwrap_or("—")) }
                                td.actions { (approve_form(session, name)) " " (revoke_form(session, name)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Secrets: paths, versions, users and watchers, history. Never a value.
pub(crate) fn secrets(session: &Session, rows: &[SecretRow], history: &[HistoryEntry]) -> Markup {
    layout(
        Some(session),
        Page::Secrets,
        "Secrets",
        html! {
            table id="secrets" {
                thead { tr { th { "Path" } th { "Version" } th { "Last change" } th { "Delivered to" } th { "Used by" } th { "Watched by" } } }
                tbody {
                    @for row in rows {
                        @let rotation = last_rotation(history, &row.path, row.version);
                        tr {
                            td.mono { (row.path.as_str()) }
                            td { (row.version) }
                            td.mono { (rotation.changed_at.unwrap_or("—")) }
                            td {
                                @if rotation.changed_at.is_some() {
                                    (rotation.deliveries) @if rotation.deliveries == 1 { " envoy" } @else { " envoys" }
                                    @if let Some(lag) = rotation.slowest { ", slowest after " (seconds(lag)) }
                                } @else { "—" }
                            }
                            td { @for u in &row.users { @if !u.uses.is_empty() { div { (u.envoy) ": " (u.uses.join(", ")) } } } }
                            td { @for u in &row.users { @if !u.watches.is_empty() { div { (u.envoy) ": " (u.watches.join(", ")) } } } }
                        }
                    }
                }
            }
            h2 { "History (newest first)" }
            @if history.is_empty() {
                p { "No changes recorded yet." }
            } @else {
                table id="history" {
                    thead { tr { th { "When" } th { "Event" } th { "Path" } th { "Version" } th { "By" } th { "Lag" } } }
                    tbody {
                        @for e in history {
                            tr {
                                td { (e.at) } td { (e.event) } td.mono { (e.path.as_str()) } td { (e.version) } td { (e.by) }
                                td { @match delivery_lag(history, e) { Some(lag) => (seconds(lag)), None => "" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Config status: the serving revision, the last attempt and failure.
pub(crate) fn config(session: &Session, status: &ConfigStatus) -> Markup {
    layout(
        Some(session),
        Page::Config,
        "Config",
        html! {
            dl.card.facts {
                dt { "Config folder" } dd.mono { (status.config_dir) }
                dt { "Watched" } dd { @if status.watching { "yes" } @else { "no" } }
                dt { "Serving" } dd.mono { (status.serving.hash) }
                @if let Some(commit) = &status.serving.git_commit { dt { "Git commit" } dd.mono { (commit) } }
                dt { "Loaded" } dd { (status.serving.loaded_at) " by " (status.loaded_by) }
                @if let Some(a) = &status.last_attempt {
                    dt { "Last attempt" } dd { (a.at) " by " (a.by) ": " @if a.ok { "ok" } @else { span.error { "failed" } } }
                }
            }
            h2 { "Last reload error" }
            @match &status.last_failure {
                None => p { "None." },
                Some(f) => {
                    p { (f.at) " by " (f.by) ", revision " code { (f.hash) } }
                    ul.mono.error { @for problem in &f.errors { li { (problem.to_string()) } } }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_ages_read_short() {
        let session = Session {
            role: Role::Viewer,
            csrf: "c".repeat(64),
        };
        let page = message_page(Some(&session), "t", "<script>alert(1)</script>").into_string();
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>"));
        assert_eq!(age(Duration::from_secs(5)), "5s ago");
        assert_eq!(age(Duration::from_secs(125)), "2m ago");
        assert_eq!(age(Duration::from_secs(7200)), "2h ago");
        assert_eq!(age(Duration::from_secs(200_000)), "2d ago");
    }

    #[test]
    fn viewers_get_no_action_buttons() {
        let viewer = Session {
            role: Role::Viewer,
            csrf: "v".repeat(64),
        };
        assert!(approve_form(&viewer, "web1").into_string().is_empty());
        let admin = Session {
            role: Role::Admin,
            csrf: "a".repeat(64),
        };
        let form = approve_form(&admin, "web1").into_string();
        assert!(form.contains("/ui/envoys/web1/approve") && form.contains(&"a".repeat(64)));
    }
}

//! Human and JSON forms of a catalog for `vigocli catalog`.

use std::fmt::Write;

use std::collections::BTreeMap;

use vigo_catalog::{Catalog, CatalogSecret, Presence, Resource, ResourceKind, SecretText, When};
use vigo_secrets::SecretPath;

/// The catalog as a readable YAML-like listing, one block per resource.
/// Secrets appear only as `[secret:path]`, never as values, whatever the
/// catalog carries.
pub fn render_catalog_text(catalog: &Catalog) -> String {
    render_text(catalog, false)
}

/// The same listing with every secret replaced by its value, for
/// `vigocli catalog NAME --reveal`. A secret the catalog carries no value for
/// stays `[secret:path]`.
pub fn render_catalog_text_revealed(catalog: &Catalog) -> String {
    render_text(catalog, true)
}

fn render_text(catalog: &Catalog, reveal: bool) -> String {
    let secrets = reveal.then_some(&catalog.secrets);
    let mut out = String::new();
    let _ = writeln!(out, "envoy: {}", catalog.envoy);
    if catalog.resources.is_empty() {
        out.push_str("resources: []\n");
    } else {
        out.push_str("resources:\n");
        for r in &catalog.resources {
            resource_text(&mut out, r, secrets);
        }
    }
    if !catalog.secrets.is_empty() {
        out.push_str("secrets:\n");
        for (path, s) in &catalog.secrets {
            let _ = writeln!(out, "  {path}: version {}", s.version);
        }
    }
    out
}

fn resource_text(
    out: &mut String,
    r: &Resource,
    secrets: Option<&BTreeMap<SecretPath, CatalogSecret>>,
) {
    let _ = writeln!(out, "  - name: {}", r.name);
    let _ = writeln!(out, "    type: {}", r.kind.type_name());
    let field = |out: &mut String, key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "    {key}: {value}");
    };
    let text = |out: &mut String, key: &str, value: &SecretText| {
        let shown = match secrets.map(|s| value.reveal(s)) {
            Some(Ok(revealed)) => revealed.as_str().to_owned(),
            _ => value.redacted(),
        };
        if shown.contains('\n') {
            let _ = writeln!(out, "    {key}: |");
            for line in shown.lines() {
                let _ = writeln!(out, "      {line}");
            }
        } else {
            let _ = writeln!(out, "    {key}: {shown:?}");
        }
    };
    let presence = |out: &mut String, p: Presence| {
        if p == Presence::Absent {
            field(out, "state", &"absent");
        }
    };
    match &r.kind {
        ResourceKind::File(f) => {
            field(out, "target_path", &f.target_path);
            field(out, "mode", &f.mode);
            f.owner.iter().for_each(|o| field(out, "owner", o));
            f.group.iter().for_each(|g| field(out, "group", g));
            presence(out, f.state);
            f.content.iter().for_each(|c| text(out, "content", c));
            f.bytes.iter().for_each(|b| {
                field(
                    out,
                    "copied_from",
                    &format!("{} ({} bytes)", b.from, b.data.len()),
                );
            });
        }
        ResourceKind::Directory(d) => {
            field(out, "target_path", &d.target_path);
            field(out, "mode", &d.mode);
            d.owner.iter().for_each(|o| field(out, "owner", o));
            d.group.iter().for_each(|g| field(out, "group", g));
            presence(out, d.state);
        }
        ResourceKind::Exec(e) => {
            field(out, "command", &format!("{:?}", e.command));
            e.stdin.iter().for_each(|s| text(out, "stdin", s));
            e.secret_file
                .iter()
                .for_each(|s| text(out, "secret_file", s));
            e.creates.iter().for_each(|c| field(out, "creates", c));
            e.cwd.iter().for_each(|c| field(out, "cwd", c));
            field(out, "timeout", &format!("{}s", e.timeout_secs));
            e.unless
                .iter()
                .for_each(|c| field(out, "unless", &format!("{c:?}")));
            e.onlyif
                .iter()
                .for_each(|c| field(out, "onlyif", &format!("{c:?}")));
            e.user.iter().for_each(|u| field(out, "user", u));
            e.group.iter().for_each(|g| field(out, "group", g));
            if !e.environment.is_empty() {
                out.push_str("    environment:\n");
                for (k, v) in &e.environment {
                    let _ = writeln!(out, "      {k}: {v:?}");
                }
            }
            e.umask.iter().for_each(|m| field(out, "umask", m));
        }
        ResourceKind::Service(s) => {
            field(out, "service", &s.service);
            if let Some(state) = s.state {
                let state = match state {
                    vigo_catalog::ServiceState::Running => "running",
                    vigo_catalog::ServiceState::Stopped => "stopped",
                };
                field(out, "state", &state);
            }
            s.enabled.iter().for_each(|e| field(out, "enabled", e));
        }
        ResourceKind::Package(p) => {
            field(out, "package", &p.package);
            p.version.iter().for_each(|v| field(out, "version", v));
            presence(out, p.state);
        }
        ResourceKind::Symlink(l) => {
            field(out, "target_path", &l.target_path);
            if !l.points_to.is_empty() {
                field(out, "points_to", &l.points_to);
            }
            if l.force {
                field(out, "force", &true);
            }
            presence(out, l.state);
        }
        ResourceKind::User(u) => {
            field(out, "user", &u.user);
            u.uid.iter().for_each(|v| field(out, "uid", v));
            u.gid.iter().for_each(|v| field(out, "gid", v));
            u.groups
                .iter()
                .for_each(|g| field(out, "groups", &format!("[{}]", g.join(", "))));
            u.home.iter().for_each(|v| field(out, "home", v));
            u.shell.iter().for_each(|v| field(out, "shell", v));
            if u.system {
                field(out, "system", &true);
            }
            u.password.iter().for_each(|p| text(out, "password", p));
            presence(out, u.state);
        }
        ResourceKind::Group(g) => {
            field(out, "group", &g.group);
            g.gid.iter().for_each(|v| field(out, "gid", v));
            if g.system {
                field(out, "system", &true);
            }
            presence(out, g.state);
        }
        ResourceKind::Line(l) => {
            field(out, "target_path", &l.target_path);
            if !l.line.is_empty() {
                field(out, "line", &format!("{:?}", l.line));
            }
            l.pattern
                .iter()
                .for_each(|p| field(out, "match", &format!("{p:?}")));
            presence(out, l.state);
        }
    }
    if r.when == When::Changed {
        field(out, "when", &"changed");
    }
    let list = |out: &mut String, key: &str, items: Vec<String>| {
        if !items.is_empty() {
            field(out, key, &format!("[{}]", items.join(", ")));
        }
    };
    list(out, "depends_on", r.depends_on.clone());
    list(out, "notify", r.notify.clone());
    list(
        out,
        "watch_secret",
        r.watch_secret.iter().map(ToString::to_string).collect(),
    );
    list(
        out,
        "tags",
        r.tags.iter().map(ToString::to_string).collect(),
    );
    if r.secret_triggered {
        field(out, "_secret_triggered", &true);
    }
    r.source.iter().for_each(|s| field(out, "source", s));
}

/// The catalog as pretty JSON. Without `reveal`, secret values are left
/// out (versions stay); with it, they are included, as the envoy gets them.
pub fn catalog_json(catalog: &Catalog, reveal: bool) -> String {
    let result = if reveal {
        serde_json::to_string_pretty(catalog)
    } else {
        serde_json::to_string_pretty(&catalog.redacted())
    };
    // The catalog types serialise infallibly (string-keyed maps, no custom
    // serialiser that errors).
    result.unwrap_or_default()
}

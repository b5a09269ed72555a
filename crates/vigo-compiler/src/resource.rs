//! Module resources as declared: fields checked against their type, paths,
//! modes, durations and secret paths parsed, templates parsed once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use serde_saphyr::Spanned;
use vigo_catalog::{AbsPath, Mode, Presence, ServiceState, When};
use vigo_secrets::{SecretPath, SecretRef};
use vigo_template::{Output, Piece, RenderOptions, Template, TemplateError, Value};

use crate::diagnostics::Diagnostic;
use crate::yaml::{Node, Pos, SourceFile, TextStart};

/// A resource as written in YAML: field name to value, each with position.
pub(crate) type RawResource = Spanned<BTreeMap<String, Spanned<Node>>>;

/// The resource types and their own fields (besides the common ones).
pub(crate) const TYPES: &[(&str, &[&str])] = &[
    (
        "file",
        &["target_path", "content", "mode", "owner", "group", "state"],
    ),
    (
        "directory",
        &["target_path", "mode", "owner", "group", "state"],
    ),
    (
        "exec",
        &[
            "command",
            "stdin",
            "secret_file",
            "creates",
            "cwd",
            "timeout",
        ],
    ),
    ("service", &["service", "state", "enabled"]),
    ("package", &["package", "state"]),
];

/// Fields every resource type takes.
pub(crate) const COMMON: &[&str] = &[
    "name",
    "type",
    "depends_on",
    "notify",
    "watch_secret",
    "when",
];

/// Default exec timeout (SPEC 5.1).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// One declared resource of a module.
#[derive(Debug, Clone)]
pub(crate) struct ResourceDecl {
    pub(crate) name: String,
    pub(crate) name_pos: Pos,
    pub(crate) kind: KindDecl,
    pub(crate) depends_on: NameList,
    pub(crate) notify: NameList,
    pub(crate) watch_secret: Vec<SecretPath>,
    pub(crate) when: When,
}

/// Resource names listed in `depends_on` or `notify`.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameList {
    pub(crate) names: Vec<String>,
    pub(crate) pos: Pos,
}

/// Type-specific fields.
#[derive(Debug, Clone)]
pub(crate) enum KindDecl {
    File {
        target_path: AbsPath,
        content: Option<TextField>,
        mode: Option<Mode>,
        owner: Option<String>,
        group: Option<String>,
        state: Presence,
    },
    Directory {
        target_path: AbsPath,
        mode: Option<Mode>,
        owner: Option<String>,
        group: Option<String>,
        state: Presence,
    },
    Exec {
        command: TextField,
        stdin: Option<TextField>,
        secret_file: Option<TextField>,
        creates: Option<AbsPath>,
        cwd: Option<AbsPath>,
        timeout_secs: u64,
    },
    Service {
        service: String,
        state: Option<ServiceState>,
        enabled: Option<bool>,
    },
    Package {
        package: String,
        state: Presence,
    },
}

/// A text field: a whole-value `secret:` reference or a parsed template
/// (plain text is a template without actions).
#[derive(Debug, Clone)]
pub(crate) struct TextField {
    pub(crate) source: TextSource,
    pub(crate) start: TextStart,
}

#[derive(Debug, Clone)]
pub(crate) enum TextSource {
    Secret(SecretPath),
    Template(Template),
}

impl TextField {
    pub(crate) fn render(
        &self,
        data: &Value,
        options: RenderOptions,
    ) -> Result<Output, TemplateError> {
        match &self.source {
            TextSource::Secret(path) => Ok(Output(vec![Piece::Secret(path.clone())])),
            TextSource::Template(t) => t.render(data, options),
        }
    }

    /// The secret path of a whole-value reference.
    pub(crate) fn secret_ref(&self) -> Option<&SecretPath> {
        match &self.source {
            TextSource::Secret(p) => Some(p),
            TextSource::Template(_) => None,
        }
    }
}

/// Reads one resource; problems go to `errors` and give `None`.
pub(crate) fn parse_resource(
    file: &SourceFile,
    raw: RawResource,
    errors: &mut Vec<Diagnostic>,
) -> Option<ResourceDecl> {
    let start = Pos::of(&raw.referenced);
    let mut fields = Fields {
        file,
        map: raw
            .value
            .iter()
            .map(|(key, node)| (key.clone(), file.spanned_json(node)))
            .collect(),
        resource: None,
        errors,
        failed: false,
    };
    let Some((name, name_pos)) = fields.string("name") else {
        if !fields.failed {
            fields.error(start, "the resource has no 'name'");
        }
        return None;
    };
    fields.resource = Some(name.clone());
    let Some((type_name, type_pos)) = fields.string("type") else {
        if !fields.failed {
            fields.error(
                name_pos,
                "the resource has no 'type'; valid types: file, directory, exec, service, package",
            );
        }
        return None;
    };
    let Some(&(_, own)) = TYPES.iter().find(|(t, _)| *t == type_name) else {
        fields.error(
            type_pos,
            format!("unknown resource type '{type_name}'; valid types: file, directory, exec, service, package"),
        );
        return None;
    };
    fields.refuse_foreign(&type_name, own);

    let depends_on = fields.names("depends_on");
    let notify = fields.names("notify");
    let watch_secret = fields.secret_paths("watch_secret");
    let when = match fields.string("when") {
        None => When::Always,
        Some((w, pos)) => {
            match w.as_str() {
                "always" => When::Always,
                "changed" if type_name == "exec" => When::Changed,
                "changed" => {
                    fields.error(pos, format!("'when: changed' applies only to exec resources, not to type '{type_name}'"));
                    When::Always
                }
                other => {
                    fields.error(
                        pos,
                        format!("invalid when '{other}'; use 'always' or 'changed'"),
                    );
                    When::Always
                }
            }
        }
    };
    let kind = match type_name.as_str() {
        "file" => KindDecl::File {
            target_path: fields.required_abs_path("target_path", name_pos)?,
            content: fields.text("content"),
            mode: fields.mode(),
            owner: fields.plain("owner"),
            group: fields.plain("group"),
            state: fields.presence(),
        },
        "directory" => KindDecl::Directory {
            target_path: fields.required_abs_path("target_path", name_pos)?,
            mode: fields.mode(),
            owner: fields.plain("owner"),
            group: fields.plain("group"),
            state: fields.presence(),
        },
        "exec" => {
            let Some(command) = fields.text("command") else {
                if !fields.failed {
                    fields.error(name_pos, "an exec resource needs a 'command'");
                }
                return None;
            };
            KindDecl::Exec {
                command,
                stdin: fields.text("stdin"),
                secret_file: fields.text("secret_file"),
                creates: fields.abs_path("creates"),
                cwd: fields.abs_path("cwd"),
                timeout_secs: fields.timeout(),
            }
        }
        "service" => {
            let Some((service, _)) = fields.string("service") else {
                if !fields.failed {
                    fields.error(
                        name_pos,
                        "a service resource needs a 'service' (the unit name)",
                    );
                }
                return None;
            };
            let state = fields
                .string("state")
                .and_then(|(s, pos)| match s.as_str() {
                    "running" => Some(ServiceState::Running),
                    "stopped" => Some(ServiceState::Stopped),
                    other => {
                        fields.error(
                            pos,
                            format!("invalid state '{other}'; use 'running' or 'stopped'"),
                        );
                        None
                    }
                });
            KindDecl::Service {
                service,
                state,
                enabled: fields.boolean("enabled"),
            }
        }
        _ => {
            let Some((package, _)) = fields.string("package") else {
                if !fields.failed {
                    fields.error(
                        name_pos,
                        "a package resource needs a 'package' (the package name)",
                    );
                }
                return None;
            };
            KindDecl::Package {
                package,
                state: fields.presence(),
            }
        }
    };
    if fields.failed {
        return None;
    }
    Some(ResourceDecl {
        name,
        name_pos,
        kind,
        depends_on,
        notify,
        watch_secret,
        when,
    })
}

/// The fields of one resource being read, with the errors found so far.
struct Fields<'a> {
    file: &'a SourceFile,
    map: BTreeMap<String, Spanned<Json>>,
    resource: Option<String>,
    errors: &'a mut Vec<Diagnostic>,
    failed: bool,
}

impl Fields<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.failed = true;
        let d = self.file.diagnostic(pos, self.resource.as_deref(), message);
        self.errors.push(d);
    }

    /// Reports (and drops) every field that `type_name` does not take.
    fn refuse_foreign(&mut self, type_name: &str, own: &[&str]) {
        let foreign: Vec<String> = self
            .map
            .keys()
            .filter(|k| !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in foreign {
            if let Some(value) = self.map.remove(&key) {
                let valid: Vec<&str> = COMMON.iter().chain(own).copied().collect();
                let pos = self.file.key_pos(&key, &value);
                self.error(
                    pos,
                    format!(
                        "unknown field '{key}' for type '{type_name}'; valid fields: {}",
                        valid.join(", ")
                    ),
                );
            }
        }
    }

    fn take(&mut self, key: &str) -> Option<Spanned<Json>> {
        self.map.remove(key).filter(|v| !v.value.is_null())
    }

    /// A scalar as text (numbers are accepted: `owner: 1000`).
    fn string(&mut self, key: &str) -> Option<(String, Pos)> {
        let value = self.take(key)?;
        let pos = Pos::of(&value.referenced);
        match value.value {
            Json::String(s) => Some((s, pos)),
            Json::Number(n) => Some((n.to_string(), pos)),
            other => {
                self.error(
                    pos,
                    format!("'{key}' must be a string, not {}", kind_of(&other)),
                );
                None
            }
        }
    }

    fn plain(&mut self, key: &str) -> Option<String> {
        self.string(key).map(|(s, _)| s)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        let value = self.take(key)?;
        match value.value {
            Json::Bool(b) => Some(b),
            other => {
                let pos = Pos::of(&value.referenced);
                self.error(
                    pos,
                    format!("'{key}' must be true or false, not {}", kind_of(&other)),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is a list of one.
    fn strings(&mut self, key: &str) -> Option<(Vec<String>, Pos)> {
        let value = self.take(key)?;
        let pos = Pos::of(&value.referenced);
        let items = match value.value {
            Json::String(s) => return Some((vec![s], pos)),
            Json::Array(items) => items,
            other => {
                self.error(
                    pos,
                    format!("'{key}' must be a list of strings, not {}", kind_of(&other)),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Json::String(s) => out.push(s),
                other => {
                    self.error(
                        pos,
                        format!(
                            "'{key}' must be a list of strings; found {}",
                            kind_of(&other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some((out, pos))
    }

    fn names(&mut self, key: &str) -> NameList {
        self.strings(key)
            .map(|(names, pos)| NameList { names, pos })
            .unwrap_or_default()
    }

    fn secret_paths(&mut self, key: &str) -> Vec<SecretPath> {
        let Some((items, pos)) = self.strings(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            // `secret:` in front is tolerated: it names the same path.
            let raw = item
                .strip_prefix(vigo_secrets::SECRET_PREFIX)
                .unwrap_or(&item);
            match SecretPath::parse(raw) {
                Ok(p) if !out.contains(&p) => out.push(p),
                Ok(_) => {}
                Err(e) => self.error(pos, format!("{key}: {e}")),
            }
        }
        out
    }

    fn abs_path(&mut self, key: &str) -> Option<AbsPath> {
        let (raw, pos) = self.string(key)?;
        match AbsPath::parse(&raw) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(pos, format!("{key}: {e}"));
                None
            }
        }
    }

    fn required_abs_path(&mut self, key: &str, name_pos: Pos) -> Option<AbsPath> {
        if !self.map.contains_key(key) {
            self.error(name_pos, format!("the resource needs a '{key}'"));
            return None;
        }
        self.abs_path(key)
    }

    /// `mode`: octal digits, as a string or as a number written the same
    /// way. A number is read back as written: YAML reads `0o644` as 420 and
    /// `0x1A4` as 420 too, which as octal digits would be mode 0420.
    fn mode(&mut self) -> Option<Mode> {
        if let Some(value) = self.map.get("mode")
            && value.value.is_number()
            && let Some(written) = self.file.scalar_text(value)
        {
            let written = written.to_owned();
            self.map.insert(
                "mode".to_owned(),
                Spanned::new(Json::String(written), value.referenced, value.defined),
            );
        }
        let (raw, pos) = self.string("mode")?;
        match Mode::parse(&raw) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error(pos, e);
                None
            }
        }
    }

    fn presence(&mut self) -> Presence {
        match self.string("state") {
            None => Presence::Present,
            Some((s, pos)) => match s.as_str() {
                "present" => Presence::Present,
                "absent" => Presence::Absent,
                other => {
                    self.error(
                        pos,
                        format!("invalid state '{other}'; use 'present' or 'absent'"),
                    );
                    Presence::Present
                }
            },
        }
    }

    /// `timeout: 5m` (humantime) or a number of seconds.
    fn timeout(&mut self) -> u64 {
        let Some(value) = self.take("timeout") else {
            return DEFAULT_TIMEOUT.as_secs();
        };
        let pos = Pos::of(&value.referenced);
        let parsed = match &value.value {
            Json::Number(n) => n.as_u64().ok_or_else(|| format!("invalid timeout '{n}'")),
            Json::String(s) => humantime::parse_duration(s)
                .map(|d| d.as_secs())
                .map_err(|e| {
                    format!(
                        "invalid timeout '{s}': {e}; write a duration such as \"300s\" or \"5m\""
                    )
                }),
            other => Err(format!(
                "'timeout' must be a duration such as \"300s\", not {}",
                kind_of(other)
            )),
        };
        match parsed {
            Ok(0) => {
                self.error(pos, "timeout must be at least 1s");
                0
            }
            Ok(secs) => secs,
            Err(e) => {
                self.error(pos, e);
                0
            }
        }
    }

    /// A text field, parsed as a template unless it is a whole-value
    /// `secret:` reference.
    fn text(&mut self, key: &str) -> Option<TextField> {
        let value = self.take(key)?;
        let start = self.file.text_start(&value);
        let raw = match &value.value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            other => {
                let message = format!("'{key}' must be text, not {}", kind_of(other));
                self.error(start.pos(), message);
                return None;
            }
        };
        match SecretRef::recognise(&raw) {
            Ok(Some(r)) => {
                return Some(TextField {
                    source: TextSource::Secret(r.into_path()),
                    start,
                });
            }
            Ok(None) => {}
            Err(e) => {
                self.error(start.pos(), format!("{key}: {e}"));
                return None;
            }
        }
        match Template::parse(&raw) {
            Ok(t) => Some(TextField {
                source: TextSource::Template(t),
                start,
            }),
            Err(e) => {
                self.error(start.locate(&e), format!("{key}: {}", e.message));
                None
            }
        }
    }
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

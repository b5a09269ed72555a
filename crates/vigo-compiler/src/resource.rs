//! Module resources as declared: fields checked against their type, paths,
//! modes, durations and secret paths parsed, templates parsed once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use serde_saphyr::Spanned;
use std::path::{Component, Path};

use vigo_catalog::{
    AbsPath, FileBytes, GroupSpec, Mode, Presence, ServiceState, SymlinkSpec, UserSpec, When,
};
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
        &[
            "target_path",
            "content",
            "source",
            "template",
            "mode",
            "owner",
            "group",
            "state",
        ],
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
            "unless",
            "onlyif",
            "user",
            "group",
            "environment",
            "umask",
        ],
    ),
    ("service", &["service", "state", "enabled"]),
    ("package", &["package", "state", "version"]),
    ("symlink", &["target_path", "points_to", "force", "state"]),
    (
        "user",
        &[
            "user", "uid", "gid", "groups", "home", "shell", "system", "password", "state",
        ],
    ),
    ("group", &["group", "gid", "system", "state"]),
    ("line", &["target_path", "line", "match", "state"]),
];

/// The largest repository file a `source` or `template` may name.
pub(crate) const REPO_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// `file, directory, ...` for messages.
fn valid_types() -> String {
    TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
}

/// Fields every resource type takes.
pub(crate) const COMMON: &[&str] = &[
    "name",
    "type",
    "depends_on",
    "notify",
    "watch_secret",
    "when",
];

/// Default exec timeout (docs/modules.md "Resources").
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
#[expect(
    clippy::large_enum_variant,
    reason = "one per declared resource, built once per config load; boxing buys nothing"
)]
pub(crate) enum KindDecl {
    File {
        target_path: AbsPath,
        /// `content`, or the parsed `template` file.
        content: Option<TextField>,
        /// The `source` file's bytes.
        bytes: Option<FileBytes>,
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
        unless: Option<TextField>,
        onlyif: Option<TextField>,
        user: Option<String>,
        group: Option<String>,
        environment: Vec<(String, TextField)>,
        umask: Option<Mode>,
    },
    Service {
        service: String,
        state: Option<ServiceState>,
        enabled: Option<bool>,
    },
    Package {
        package: String,
        state: Presence,
        version: Option<String>,
    },
    Symlink(SymlinkSpec),
    User {
        spec: UserSpec,
        password: Option<SecretPath>,
    },
    Group(GroupSpec),
    Line {
        target_path: AbsPath,
        line: Option<TextField>,
        pattern: Option<String>,
        state: Presence,
    },
}

/// A text field: a whole-value `secret:` reference or a parsed template
/// (plain text is a template without actions).
#[derive(Debug, Clone)]
pub(crate) struct TextField {
    pub(crate) source: TextSource,
    pub(crate) start: TextStart,
    /// The template file it was read from (`template:`), when not the
    /// module itself: errors point into that file.
    pub(crate) file: Option<String>,
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
    config_dir: &Path,
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
        config_dir,
        raw: raw.value.clone(),
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
                format!("the resource has no 'type'; valid types: {}", valid_types()),
            );
        }
        return None;
    };
    let Some(&(_, own)) = TYPES.iter().find(|(t, _)| *t == type_name) else {
        fields.error(
            type_pos,
            format!(
                "unknown resource type '{type_name}'; valid types: {}",
                valid_types()
            ),
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
        "file" => {
            let target_path = fields.required_abs_path("target_path", name_pos)?;
            let (content, bytes) = fields.file_content();
            KindDecl::File {
                target_path,
                content,
                bytes,
                mode: fields.mode("mode"),
                owner: fields.plain("owner"),
                group: fields.plain("group"),
                state: fields.presence(),
            }
        }
        "directory" => KindDecl::Directory {
            target_path: fields.required_abs_path("target_path", name_pos)?,
            mode: fields.mode("mode"),
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
            let secret_file = fields.text("secret_file");
            if secret_file.is_some()
                && let Some(key) = ["user", "group"]
                    .into_iter()
                    .find(|k| fields.map.contains_key(*k))
                && let Some(value) = fields.map.get(key)
            {
                let pos = fields.file.key_pos(key, value);
                fields.error(
                    pos,
                    format!("'secret_file' cannot be combined with '{key}': the file is kept where only the envoy's user can read it; pass the secret with stdin"),
                );
            }
            KindDecl::Exec {
                command,
                stdin: fields.text("stdin"),
                secret_file,
                creates: fields.abs_path("creates"),
                cwd: fields.abs_path("cwd"),
                timeout_secs: fields.timeout(),
                unless: fields.text("unless"),
                onlyif: fields.text("onlyif"),
                user: fields.plain("user"),
                group: fields.plain("group"),
                environment: fields.environment(),
                umask: fields.mode("umask"),
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
        "package" => {
            let Some((package, _)) = fields.string("package") else {
                if !fields.failed {
                    fields.error(
                        name_pos,
                        "a package resource needs a 'package' (the package name)",
                    );
                }
                return None;
            };
            let version = fields.string("version");
            let state = fields.presence();
            if let Some((_, pos)) = &version
                && state == Presence::Absent
            {
                fields.error(
                    *pos,
                    "'version' applies only to 'state: present'; drop it or the state",
                );
            }
            KindDecl::Package {
                package,
                state,
                version: version.map(|(v, _)| v),
            }
        }
        "symlink" => {
            let target_path = fields.required_abs_path("target_path", name_pos)?;
            let state = fields.presence();
            let points_to = fields.string("points_to");
            let points_to = match (points_to, state) {
                (Some((p, pos)), _) if p.is_empty() || p.contains('\0') => {
                    fields.error(pos, "'points_to' must be a non-empty path");
                    String::new()
                }
                (Some((p, _)), _) => p,
                (None, Presence::Absent) => String::new(),
                (None, Presence::Present) => {
                    fields.error(
                        name_pos,
                        "a symlink resource needs 'points_to' (what the link points to)",
                    );
                    String::new()
                }
            };
            KindDecl::Symlink(SymlinkSpec {
                target_path,
                points_to,
                force: fields.boolean("force").unwrap_or(false),
                state,
            })
        }
        "group" => {
            let group = fields.account_name("group", name_pos)?;
            KindDecl::Group(GroupSpec {
                group,
                gid: fields.id("gid"),
                system: fields.boolean("system").unwrap_or(false),
                state: fields.presence(),
            })
        }
        "user" => {
            let user = fields.account_name("user", name_pos)?;
            let password = fields.password();
            let groups = fields.strings("groups").map(|(g, _)| g);
            KindDecl::User {
                spec: UserSpec {
                    user,
                    uid: fields.id("uid"),
                    gid: fields.plain("gid"),
                    groups,
                    home: fields.abs_path("home"),
                    shell: fields.abs_path("shell"),
                    system: fields.boolean("system").unwrap_or(false),
                    password: None,
                    state: fields.presence(),
                },
                password,
            }
        }
        _ => {
            let target_path = fields.required_abs_path("target_path", name_pos)?;
            let line = fields.text("line");
            let pattern = fields
                .string("match")
                .and_then(|(p, pos)| match regex::Regex::new(&p) {
                    Ok(_) => Some(p),
                    Err(e) => {
                        let reason = e.to_string();
                        let last = reason.lines().last().unwrap_or_default().trim();
                        let last = last.strip_prefix("error: ").unwrap_or(last);
                        fields.error(
                            pos,
                            format!("'match' is not a valid regular expression: {last}"),
                        );
                        None
                    }
                });
            let state = fields.presence();
            if line.is_none() && !(state == Presence::Absent && pattern.is_some()) && !fields.failed
            {
                fields.error(
                    name_pos,
                    "a line resource needs a 'line' (or, with 'state: absent', a 'match')",
                );
            }
            KindDecl::Line {
                target_path,
                line,
                pattern,
                state,
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
    config_dir: &'a Path,
    /// The fields as written, for positions inside mappings.
    raw: BTreeMap<String, Spanned<Node>>,
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
    fn mode(&mut self, key: &str) -> Option<Mode> {
        if let Some(value) = self.map.get(key)
            && value.value.is_number()
            && let Some(written) = self.file.scalar_text(value)
        {
            let written = written.to_owned();
            self.map.insert(
                key.to_owned(),
                Spanned::new(Json::String(written), value.referenced, value.defined),
            );
        }
        let (raw, pos) = self.string(key)?;
        match Mode::parse(&raw) {
            Ok(m) => Some(m),
            Err(e) if key == "mode" => {
                self.error(pos, e.to_string());
                None
            }
            Err(e) => {
                self.error(pos, format!("{key}: {e}"));
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
                    file: None,
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
                file: None,
            }),
            Err(e) => {
                self.error(start.locate(&e), format!("{key}: {}", e.message));
                None
            }
        }
    }
}

impl Fields<'_> {
    /// A file's content: `content`, `source` or `template`, at most one.
    fn file_content(&mut self) -> (Option<TextField>, Option<FileBytes>) {
        let given: Vec<&str> = ["content", "source", "template"]
            .into_iter()
            .filter(|k| self.map.get(*k).is_some_and(|v| !v.value.is_null()))
            .collect();
        if given.len() > 1 {
            let second = given[1];
            if let Some(value) = self.map.get(second) {
                let pos = self.file.key_pos(second, value);
                self.error(
                    pos,
                    format!(
                        "'{}' and '{second}' exclude each other: a file's content comes from one of 'content', 'source' or 'template'",
                        given[0]
                    ),
                );
            }
            return (None, None);
        }
        if let Some((rel, pos)) = self.string("source") {
            let bytes = self
                .repo_file("source", &rel, pos)
                .map(|data| FileBytes { from: rel, data });
            return (None, bytes);
        }
        if let Some((rel, pos)) = self.string("template") {
            let Some(data) = self.repo_file("template", &rel, pos) else {
                return (None, None);
            };
            let Ok(text) = String::from_utf8(data) else {
                self.error(
                    pos,
                    format!(
                        "template: {rel} is not UTF-8 text; use 'source' to copy a binary file"
                    ),
                );
                return (None, None);
            };
            let start = TextStart {
                line: 1,
                column: 1,
                block: false,
            };
            return match Template::parse(&text) {
                Ok(t) => (
                    Some(TextField {
                        source: TextSource::Template(t),
                        start,
                        file: Some(rel),
                    }),
                    None,
                ),
                Err(e) => {
                    self.failed = true;
                    let at = start.locate(&e);
                    self.errors.push(Diagnostic {
                        file: rel,
                        line: at.line,
                        column: at.column,
                        resource: self.resource.clone(),
                        message: format!("template: {}", e.message),
                    });
                    (None, None)
                }
            };
        }
        (self.text("content"), None)
    }

    /// Reads a repository file named relative to the config directory,
    /// refusing a path that leaves it (`..`, an absolute path, a symlink
    /// pointing outside), a folder, and a file over [`REPO_FILE_LIMIT`].
    fn repo_file(&mut self, key: &str, rel: &str, pos: Pos) -> Option<Vec<u8>> {
        match read_repo_file(self.config_dir, rel) {
            Ok(data) => Some(data),
            Err(message) => {
                self.error(pos, format!("{key}: {message}"));
                None
            }
        }
    }

    /// `environment`: a mapping of variable names to text templates.
    fn environment(&mut self) -> Vec<(String, TextField)> {
        let Some(value) = self.take("environment") else {
            return Vec::new();
        };
        let pos = Pos::of(&value.referenced);
        let (Json::Object(_), Some(Node::Map(items))) = (
            &value.value,
            self.raw.get("environment").map(|n| n.value.clone()),
        ) else {
            self.error(
                pos,
                format!(
                    "'environment' must be a mapping of names to values, not {}",
                    kind_of(&value.value)
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, item) in items {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                let at = self.file.key_pos(&name, &item);
                self.error(
                    at,
                    format!("environment: '{name}' is not a variable name (letters, digits and '_', not starting with a digit)"),
                );
                continue;
            }
            let key = format!("environment {name}");
            let json = self.file.spanned_json(&item);
            self.map.insert(key.clone(), json);
            if let Some(field) = self.text(&key) {
                out.push((name, field));
            }
        }
        out
    }

    /// A user or group name: required, and one the account tools accept.
    fn account_name(&mut self, key: &str, name_pos: Pos) -> Option<String> {
        let Some((name, pos)) = self.string(key) else {
            if !self.failed {
                self.error(
                    name_pos,
                    format!("a {key} resource needs a '{key}' (the {key} name)"),
                );
            }
            return None;
        };
        let valid = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            self.error(
                pos,
                format!("invalid {key} name '{name}': use at most 32 letters, digits, '_', '-' and '.', not starting with '-'"),
            );
            return None;
        }
        Some(name)
    }

    /// A numeric id (`uid`, `gid`).
    fn id(&mut self, key: &str) -> Option<u32> {
        let value = self.take(key)?;
        let pos = Pos::of(&value.referenced);
        match value.value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(id) => Some(id),
            None => {
                self.error(
                    pos,
                    format!("'{key}' must be a whole number from 0 to 4294967295"),
                );
                None
            }
        }
    }

    /// `password`: only a whole `secret:` reference (a hash in the config
    /// would be readable by everyone with the repository).
    fn password(&mut self) -> Option<SecretPath> {
        let value = self.map.get("password")?;
        let pos = Pos::of(&value.referenced);
        let field = self.text("password")?;
        match field.source {
            TextSource::Secret(path) => Some(path),
            TextSource::Template(_) => {
                self.error(
                    pos,
                    "'password' must be a secret reference (\"secret:PATH\" holding the crypt(3) hash); a hash is never written into the config",
                );
                None
            }
        }
    }
}

/// The bytes of `rel`, a path inside `config_dir`.
fn read_repo_file(config_dir: &Path, rel: &str) -> Result<Vec<u8>, String> {
    let path = Path::new(rel);
    if rel.is_empty() || rel.contains('\0') {
        return Err("the path is empty".to_owned());
    }
    if path.is_absolute() {
        return Err(format!(
            "'{rel}' must be relative to the config directory (files/..., templates/...)"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!(
            "'{rel}' must not contain '.' or '..': files come from inside the config directory"
        ));
    }
    let dir = config_dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve the config directory: {e}"))?;
    let full = dir.join(path).canonicalize().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{rel} does not exist in the config directory")
        } else {
            format!("cannot read {rel}: {e}")
        }
    })?;
    if !full.starts_with(&dir) {
        return Err(format!(
            "{rel} leaves the config directory through a symlink (it resolves to {}); copy the file into the repository",
            full.display()
        ));
    }
    let meta = std::fs::metadata(&full).map_err(|e| format!("cannot read {rel}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{rel} is not a regular file"));
    }
    if meta.len() > REPO_FILE_LIMIT {
        return Err(format!(
            "{rel} is {} bytes; a file from the repository may be at most {} bytes (4 MiB)",
            meta.len(),
            REPO_FILE_LIMIT
        ));
    }
    let data = std::fs::read(&full).map_err(|e| format!("cannot read {rel}: {e}"))?;
    // The file may have grown between the check and the read.
    if data.len() as u64 > REPO_FILE_LIMIT {
        return Err(format!(
            "{rel} is over {REPO_FILE_LIMIT} bytes (4 MiB), the limit for a file from the repository"
        ));
    }
    Ok(data)
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

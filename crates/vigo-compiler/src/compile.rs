//! Compiling one envoy's catalog: select node entries, render every
//! resource of its roles, check names, references, the DAG and secret taint.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use vigo_catalog::{
    Catalog, CatalogSecret, DirectorySpec, ExecSpec, FileSpec, LineSpec, Mode, PackageSpec,
    Resource, ResourceKind, SECRET_FILE_PLACEHOLDER, SecretText, Segment, ServiceSpec, UserSpec,
};
use vigo_secrets::{SecretPath, VersionedSecret};
use vigo_template::{Output, Piece, RenderOptions, TemplateError, Value};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::repo::{ConfigRepo, Module, NodeEntry};
use crate::resource::{KindDecl, ResourceDecl, TextField};
use crate::vars::{Vars, overlay, plain_value};
use crate::yaml::Pos;

/// A compiled catalog and which of its resources use or watch each secret.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The catalog, with [`Catalog::secrets`] filled (values included).
    pub catalog: Catalog,
    /// Secret path to resource names.
    pub index: SecretIndex,
}

/// Which resources of one catalog use or watch each secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretIndex {
    /// Resources whose fields (content, stdin, secret_file) carry the secret.
    pub uses: BTreeMap<SecretPath, BTreeSet<String>>,
    /// Resources that list the secret in `watch_secret` (re-run on rotation).
    pub watches: BTreeMap<SecretPath, BTreeSet<String>>,
}

/// What one envoy gets: its roles in order and its merged node vars.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub(crate) roles: Vec<String>,
    pub(crate) vars: Vars,
}

impl Selection {
    pub(crate) fn from_entries<'a>(entries: impl Iterator<Item = &'a NodeEntry>) -> Self {
        let mut selection = Self::default();
        for entry in entries {
            for role in &entry.roles {
                if !selection.roles.contains(role) {
                    selection.roles.push(role.clone());
                }
            }
            overlay(&mut selection.vars, &entry.vars);
        }
        selection
    }
}

impl ConfigRepo {
    /// Compiles the catalog for `envoy`, whose last check-in reported
    /// `facts` (a JSON object; anything else counts as no facts). Every
    /// entry of `nodes.vgo` that applies (its `match` fits the name, its
    /// `match_facts` hold) counts; an envoy that matches none gets an empty
    /// catalog. `secrets` must hold every secret the catalog uses (resolve
    /// [`ConfigRepo::referenced_secrets`] first); the catalog carries only
    /// the ones its resources use.
    pub fn compile(
        &self,
        envoy: &str,
        facts: &serde_json::Value,
        secrets: &BTreeMap<SecretPath, VersionedSecret>,
    ) -> Result<Compiled, Diagnostics> {
        let facts = facts.as_object().cloned().unwrap_or_default();
        let selection = Selection::from_entries(self.matching(envoy, &facts));
        self.compile_selection(envoy, &facts, &selection, secrets, FactsMode::Reported)
    }

    /// Compiles the catalog of an envoy that has reported no facts yet
    /// against the stand-in facts of [`ConfigRepo::check`]: to validate the
    /// repository for it before its first check-in brings real facts.
    pub fn compile_stand_in(
        &self,
        envoy: &str,
        secrets: &BTreeMap<SecretPath, VersionedSecret>,
    ) -> Result<Compiled, Diagnostics> {
        let facts = vigo_proto::facts::Facts::stand_in().to_json();
        let selection = Selection::from_entries(self.matching(envoy, &facts));
        self.compile_selection(envoy, &facts, &selection, secrets, FactsMode::StandIn)
    }

    /// The roles `envoy` gets with these facts (every `nodes.vgo` entry
    /// that applies), in first-occurrence order, included modules too.
    pub fn roles_of(&self, envoy: &str, facts: &serde_json::Value) -> Vec<String> {
        let facts = facts.as_object().cloned().unwrap_or_default();
        self.expand_includes(&Selection::from_entries(self.matching(envoy, &facts)).roles)
    }

    pub(crate) fn compile_selection(
        &self,
        envoy: &str,
        facts: &serde_json::Map<String, serde_json::Value>,
        selection: &Selection,
        secrets: &BTreeMap<SecretPath, VersionedSecret>,
        mode: FactsMode,
    ) -> Result<Compiled, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut placed: Vec<Placed<'_>> = Vec::new();
        let facts = facts_value(facts);
        for role in &self.expand_includes(&selection.roles) {
            // Load refuses a repository whose nodes name a missing module.
            let Some(module) = self.modules.get(role) else {
                continue;
            };
            let data = template_data(envoy, &facts, module, &selection.vars);
            for decl in &module.resources {
                match render_resource(module, decl, &data, mode) {
                    Ok(resource) => placed.push(Placed {
                        module,
                        decl,
                        resource,
                    }),
                    Err(mut e) => errors.0.append(&mut e),
                }
            }
        }
        check_names(&placed, &mut errors);
        check_graph(&placed, &mut errors);

        let mut index = SecretIndex::default();
        let mut catalog = Catalog::empty(envoy);
        for p in placed {
            for path in p.resource.secret_paths() {
                index
                    .uses
                    .entry(path.clone())
                    .or_default()
                    .insert(p.resource.name.clone());
                if !catalog.secrets.contains_key(path) {
                    match secrets.get(path) {
                        Some(s) => {
                            catalog.secrets.insert(
                                path.clone(),
                                CatalogSecret {
                                    version: s.version,
                                    value: Some(s.value.clone()),
                                },
                            );
                        }
                        None => errors.push(p.error(
                            p.decl.name_pos,
                            format!("secret '{path}' has no resolved value; store it in the secrets backend"),
                        )),
                    }
                }
            }
            for path in &p.resource.watch_secret {
                index
                    .watches
                    .entry(path.clone())
                    .or_default()
                    .insert(p.resource.name.clone());
            }
            catalog.resources.push(p.resource);
        }
        if errors.is_empty() {
            Ok(Compiled { catalog, index })
        } else {
            errors.dedup();
            Err(errors)
        }
    }
}

/// A rendered resource with the declaration it came from.
struct Placed<'a> {
    module: &'a Module,
    decl: &'a ResourceDecl,
    resource: Resource,
}

impl Placed<'_> {
    fn error(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        diagnostic(self.module, self.decl, pos, message)
    }

    fn place(&self) -> String {
        format!(
            "{}:{}:{}",
            self.module.file, self.decl.name_pos.line, self.decl.name_pos.column
        )
    }
}

fn diagnostic(
    module: &Module,
    decl: &ResourceDecl,
    pos: Pos,
    message: impl Into<String>,
) -> Diagnostic {
    Diagnostic {
        file: module.file.clone(),
        line: pos.line,
        column: pos.column,
        resource: Some(decl.name.clone()),
        message: message.into(),
    }
}

/// What `.Facts` holds while compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactsMode {
    /// An envoy's reported facts: a fact it did not report is an error.
    Reported,
    /// `vigocli check`'s stand-in facts: every built-in fact is there, and
    /// so is any key a template reads in an open map (`custom`,
    /// `networking.interfaces`), since only the envoys know those.
    StandIn,
}

/// `.Vars` (module defaults overlaid by the envoy's node vars), `.Envoy`
/// and `.Facts`.
fn template_data(envoy: &str, facts: &Value, module: &Module, node_vars: &Vars) -> Value {
    let mut vars = module.defaults.clone();
    overlay(&mut vars, node_vars);
    let envoy = BTreeMap::from([("Name".to_owned(), Value::Str(envoy.to_owned()))]);
    Value::Map(BTreeMap::from([
        ("Vars".to_owned(), Value::Map(vars)),
        ("Envoy".to_owned(), Value::Map(envoy)),
        ("Facts".to_owned(), facts.clone()),
    ]))
}

/// Facts as template data: plain text throughout (an envoy reports its
/// facts, and must never be able to name a secret into its own catalog).
fn facts_value(facts: &serde_json::Map<String, serde_json::Value>) -> Value {
    let mut map: BTreeMap<String, Value> = facts
        .iter()
        .map(|(k, v)| (k.clone(), plain_value(v)))
        .collect();
    // `.Facts.custom` is always a map, so that a custom fact an envoy does
    // not report is worded as such.
    map.entry(vigo_proto::facts::CUSTOM.to_owned())
        .or_insert_with(|| Value::Map(BTreeMap::new()));
    Value::Map(map)
}

/// Renders `field`; with stand-in facts, a key read in an open fact map
/// is added and the field rendered again, so that only real mistakes
/// remain.
fn render_field(
    field: &TextField,
    data: &Value,
    options: RenderOptions,
    mode: FactsMode,
) -> Result<Output, TemplateError> {
    let first = field.render(data, options);
    if mode == FactsMode::Reported {
        return first;
    }
    let mut data = data.clone();
    let mut result = first;
    // Each round adds one key or turns one value into a map.
    for _ in 0..MAX_OPEN_FACT_ROUNDS {
        let Err(e) = &result else {
            break;
        };
        if !fill_open_fact(&mut data, &e.message) {
            break;
        }
        result = field.render(&data, options);
    }
    result
}

/// How many keys one field may read in open fact maps under `vigocli check`.
const MAX_OPEN_FACT_ROUNDS: usize = 64;

/// Given an engine error, adds what it missed in an open fact map of the
/// stand-in facts: a missing key (an interface gets the stand-in
/// interface's addresses, a custom fact a placeholder string), or a map
/// where a custom fact placeholder was read as one. `false`: the error is
/// not about an open map.
fn fill_open_fact(data: &mut Value, message: &str) -> bool {
    let (path, key, as_map) = if let Some(rest) = message.strip_prefix("missing key '") {
        let Some((key, rest)) = rest.split_once("' in ") else {
            return false;
        };
        let Some((chain, _)) = rest.split_once(" (") else {
            return false;
        };
        (chain, key.to_owned(), false)
    } else if let Some(rest) = message.strip_prefix("can't evaluate field '") {
        // `can't evaluate field 'x' in .Facts.custom.a.x: .Facts.custom.a is a string, not a map`
        let Some((_, rest)) = rest.split_once(": ") else {
            return false;
        };
        let Some((chain, _)) = rest.split_once(" is a string, not a map") else {
            return false;
        };
        let Some((parent, key)) = chain.rsplit_once('.') else {
            return false;
        };
        (parent, key.to_owned(), true)
    } else {
        return false;
    };
    let Some(path) = path.trim_start_matches('$').strip_prefix(".Facts.") else {
        return false;
    };
    let interfaces = "networking.interfaces";
    let in_custom = path == vigo_proto::facts::CUSTOM
        || path.starts_with(&format!("{}.", vigo_proto::facts::CUSTOM));
    let placeholder = if path == interfaces && !as_map {
        interface_stand_in()
    } else if in_custom {
        if as_map {
            Value::Map(BTreeMap::new())
        } else {
            Value::Str("custom-fact".into())
        }
    } else {
        return false;
    };
    let Value::Map(top) = data else {
        return false;
    };
    let Some(mut at) = top.get_mut("Facts") else {
        return false;
    };
    for part in path.split('.') {
        let Value::Map(map) = at else {
            return false;
        };
        let Some(next) = map.get_mut(part) else {
            return false;
        };
        at = next;
    }
    let Value::Map(map) = at else {
        return false;
    };
    if !as_map && map.contains_key(&key) {
        return false;
    }
    map.insert(key, placeholder);
    true
}

fn interface_stand_in() -> Value {
    serde_json::to_value(vigo_proto::facts::InterfaceFacts::stand_in())
        .map_or(Value::Map(BTreeMap::new()), |json| plain_value(&json))
}

fn render_resource(
    module: &Module,
    decl: &ResourceDecl,
    data: &Value,
    mode: FactsMode,
) -> Result<Resource, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut text = |field: &TextField, key: &str, options: RenderOptions| match render_field(
        field, data, options, mode,
    ) {
        Ok(out) => Some(out),
        Err(e) => {
            let key = if field.file.is_some() {
                "template"
            } else {
                key
            };
            errors.push(field_diagnostic(
                module,
                decl,
                field,
                field.start.locate(&e),
                template_message(key, &e.message),
            ));
            None
        }
    };
    let plain = RenderOptions::default();
    let kind = match &decl.kind {
        KindDecl::File {
            target_path,
            content,
            bytes,
            mode,
            owner,
            group,
            state,
        } => {
            let content = content
                .as_ref()
                .and_then(|c| text(c, "content", plain))
                .map(secret_text);
            let uses_secret = content.as_ref().is_some_and(SecretText::uses_secrets);
            ResourceKind::File(FileSpec {
                target_path: target_path.clone(),
                content,
                bytes: bytes.clone(),
                mode: mode.unwrap_or(if uses_secret {
                    Mode::SECRET_FILE
                } else {
                    Mode::FILE
                }),
                owner: owner.clone(),
                group: group.clone(),
                state: *state,
            })
        }
        KindDecl::Directory {
            target_path,
            mode,
            owner,
            group,
            state,
        } => ResourceKind::Directory(DirectorySpec {
            target_path: target_path.clone(),
            mode: mode.unwrap_or(Mode::DIRECTORY),
            owner: owner.clone(),
            group: group.clone(),
            state: *state,
        }),
        KindDecl::Exec {
            command,
            stdin,
            secret_file,
            creates,
            cwd,
            timeout_secs,
            unless,
            onlyif,
            user,
            group,
            environment,
            umask,
        } => {
            let rendered = text(
                command,
                "command",
                RenderOptions {
                    allow_secret_file: true,
                },
            );
            let stdin = stdin
                .as_ref()
                .and_then(|s| text(s, "stdin", plain))
                .map(secret_text);
            let secret_file_text = secret_file
                .as_ref()
                .and_then(|s| text(s, "secret_file", plain))
                .map(secret_text);
            let guards: Vec<(&str, &TextField, Option<Output>)> =
                [("unless", unless), ("onlyif", onlyif)]
                    .into_iter()
                    .filter_map(|(key, field)| {
                        field.as_ref().map(|f| (key, f, text(f, key, plain)))
                    })
                    .collect();
            let env_rendered: Vec<(&String, &TextField, Option<Output>)> = environment
                .iter()
                .map(|(name, field)| (name, field, text(field, "environment", plain)))
                .collect();
            let command_line = rendered.and_then(|out| {
                no_secret(module, decl, command, out, &mut errors, |path| {
                    format!("secret '{path}' would appear in the command line; pass it with stdin or secret_file")
                })
            });
            let mut guard_lines = BTreeMap::new();
            for (key, field, out) in guards {
                if let Some(line) = out.and_then(|out| {
                    no_secret(module, decl, field, out, &mut errors, |path| {
                        format!("secret '{path}' would appear in the '{key}' command line; a guard command runs without secrets")
                    })
                }) {
                    guard_lines.insert(key, line);
                }
            }
            let mut env = BTreeMap::new();
            for (name, field, out) in env_rendered {
                if let Some(value) = out.and_then(|out| {
                    no_secret(module, decl, field, out, &mut errors, |path| {
                        format!("secret '{path}' would appear in environment variable '{name}', which other processes can read; pass it with stdin or secret_file")
                    })
                }) {
                    env.insert(name.clone(), value);
                }
            }
            if let Some(line) = &command_line {
                let uses_placeholder = line.contains(SECRET_FILE_PLACEHOLDER);
                match (uses_placeholder, secret_file.is_some()) {
                    (true, false) => errors.push(diagnostic(
                        module,
                        decl,
                        command.start.pos(),
                        "the command uses {{secret_file}} but the resource sets no 'secret_file'",
                    )),
                    (false, true) => errors.push(diagnostic(
                        module,
                        decl,
                        decl.name_pos,
                        "'secret_file' is set but the command never uses {{secret_file}}, so the file could not be read",
                    )),
                    _ => {}
                }
            }
            ResourceKind::Exec(ExecSpec {
                command: command_line.unwrap_or_default(),
                stdin,
                secret_file: secret_file_text,
                creates: creates.clone(),
                cwd: cwd.clone(),
                timeout_secs: *timeout_secs,
                unless: guard_lines.remove("unless"),
                onlyif: guard_lines.remove("onlyif"),
                user: user.clone(),
                group: group.clone(),
                environment: env,
                umask: *umask,
            })
        }
        KindDecl::Service {
            service,
            state,
            enabled,
        } => ResourceKind::Service(ServiceSpec {
            service: service.clone(),
            state: *state,
            enabled: *enabled,
        }),
        KindDecl::Package {
            package,
            state,
            version,
        } => ResourceKind::Package(PackageSpec {
            package: package.clone(),
            state: *state,
            version: version.clone(),
        }),
        KindDecl::Symlink(spec) => ResourceKind::Symlink(spec.clone()),
        KindDecl::Group(spec) => ResourceKind::Group(spec.clone()),
        KindDecl::User { spec, password } => ResourceKind::User(UserSpec {
            password: password
                .as_ref()
                .map(|p| SecretText(vec![Segment::Secret(p.clone())])),
            ..spec.clone()
        }),
        KindDecl::Line {
            target_path,
            line,
            pattern,
            state,
        } => {
            let rendered = line.as_ref().and_then(|l| text(l, "line", plain));
            let line_text = match (line, rendered) {
                (Some(field), Some(out)) => {
                    no_secret(module, decl, field, out, &mut errors, |path| {
                        format!(
                            "secret '{path}' would be written by a line resource, whose line is shown in reports; manage the file with a file resource"
                        )
                    })
                }
                _ => None,
            };
            ResourceKind::Line(LineSpec {
                target_path: target_path.clone(),
                line: line_text.unwrap_or_default(),
                pattern: pattern.clone(),
                state: *state,
            })
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Resource {
        name: decl.name.clone(),
        kind,
        depends_on: decl.depends_on.names.clone(),
        notify: decl.notify.names.clone(),
        watch_secret: decl.watch_secret.clone(),
        when: decl.when,
        tags: decl.tags.clone(),
        secret_triggered: false,
        source: Some(format!("{}:{}", module.file, decl.name_pos.line)),
    })
}

/// A diagnostic about a text field: in the template file it came from, or
/// else in the module.
fn field_diagnostic(
    module: &Module,
    decl: &ResourceDecl,
    field: &TextField,
    pos: Pos,
    message: impl Into<String>,
) -> Diagnostic {
    let mut d = diagnostic(module, decl, pos, message);
    if let Some(file) = &field.file {
        d.file.clone_from(file);
    }
    d
}

/// An engine error as a diagnostic message: a missing var reads
/// `missing var 'db_password'`, a missing fact `unknown fact 'os.famly'`;
/// anything else is prefixed by its field.
fn template_message(field: &str, message: &str) -> String {
    if message.starts_with("missing var '") {
        match message.split_once(" (") {
            Some((head, _)) => head.to_owned(),
            None => message.to_owned(),
        }
    } else if let Some(path) = missing_fact(message) {
        match path.strip_prefix("custom.") {
            Some(name) if !name.contains('.') => format!(
                "the envoy reports no custom fact '{name}' (.Facts.{path}); to make it optional, test it with {{{{ if index .Facts.custom \"{name}\" }}}}"
            ),
            _ => format!(
                "unknown fact '{path}' (.Facts.{path}); the facts are listed in docs/modules.md, \"Facts\""
            ),
        }
    } else {
        format!("{field}: {message}")
    }
}

/// The dotted fact path of a `missing key` error inside `.Facts`.
fn missing_fact(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing key '")?;
    let (_, rest) = rest.split_once("' in ")?;
    let (_, chain) = rest.split_once(" (")?;
    let chain = chain.strip_suffix(')')?;
    chain
        .trim_start_matches('$')
        .strip_prefix(".Facts.")
        .map(str::to_owned)
}

/// Rendered text that must carry no secret (a command line, a guard, an environment value, a line
/// of a file): secret taint (docs/modules.md "Secrets never go on a command line"). A `secret:`
/// reference written into the text is refused the same way.
fn no_secret(
    module: &Module,
    decl: &ResourceDecl,
    field: &TextField,
    out: Output,
    errors: &mut Vec<Diagnostic>,
    message: impl Fn(&SecretPath) -> String,
) -> Option<String> {
    let mut line = String::new();
    let mut secret = None;
    for piece in out.0 {
        match piece {
            Piece::Text(t) => line.push_str(&t),
            Piece::Secret(path) => {
                secret = Some(path);
                break;
            }
        }
    }
    if let Some(path) = secret.or_else(|| literal_secret_reference(&line)) {
        errors.push(field_diagnostic(
            module,
            decl,
            field,
            field.start.pos(),
            message(&path),
        ));
        return None;
    }
    Some(line)
}

/// The first `secret:PATH` written into a command's text (literally, or in
/// a var that is not a whole reference): the command would run with the
/// reference itself, and whoever wrote it meant the value, which the taint
/// rule keeps off command lines.
fn literal_secret_reference(line: &str) -> Option<SecretPath> {
    line.match_indices("secret:").find_map(|(at, prefix)| {
        let rest = &line[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
            .unwrap_or(rest.len());
        // A sentence's full stop or a trailing slash is not part of a path.
        let candidate = rest[..end].trim_end_matches(['.', '/']);
        SecretPath::parse(candidate).ok()
    })
}

fn secret_text(out: Output) -> SecretText {
    SecretText(
        out.0
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => Segment::Text(t),
                Piece::Secret(s) => Segment::Secret(s),
            })
            .collect(),
    )
}

/// Names unique; `depends_on` and `notify` name resources of this catalog,
/// never the resource itself.
fn check_names(placed: &[Placed<'_>], errors: &mut Diagnostics) {
    let mut first: HashMap<&str, &Placed<'_>> = HashMap::new();
    for p in placed {
        match first.get(p.decl.name.as_str()) {
            Some(earlier) => errors.push(p.error(
                p.decl.name_pos,
                format!(
                    "duplicate resource name '{}': already declared at {}; names must be unique within an envoy's catalog",
                    p.decl.name,
                    earlier.place()
                ),
            )),
            None => {
                first.insert(&p.decl.name, p);
            }
        }
    }
    for p in placed {
        for (key, list) in [
            ("depends_on", &p.decl.depends_on),
            ("notify", &p.decl.notify),
        ] {
            for name in &list.names {
                if *name == p.decl.name {
                    errors.push(p.error(list.pos, format!("{key} names the resource itself")));
                } else if !first.contains_key(name.as_str()) {
                    errors.push(p.error(
                        list.pos,
                        format!(
                            "{key} names '{name}', which is not a resource of this envoy's catalog"
                        ),
                    ));
                }
            }
        }
    }
}

/// Builds the ordering graph (`a -> b`: a is applied before b) and reports
/// every cycle in full.
fn check_graph(placed: &[Placed<'_>], errors: &mut Diagnostics) {
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(placed.len(), placed.len());
    let nodes: Vec<NodeIndex> = (0..placed.len()).map(|i| graph.add_node(i)).collect();
    let index: HashMap<&str, NodeIndex> = placed
        .iter()
        .zip(&nodes)
        .map(|(p, n)| (p.decl.name.as_str(), *n))
        .collect();
    for (p, &node) in placed.iter().zip(&nodes) {
        for dep in &p.decl.depends_on.names {
            // Self-references are reported by `check_names`.
            if let Some(&d) = index.get(dep.as_str()).filter(|&&d| d != node) {
                graph.update_edge(d, node, ());
            }
        }
        for target in &p.decl.notify.names {
            if let Some(&t) = index.get(target.as_str()).filter(|&&t| t != node) {
                graph.update_edge(node, t, ());
            }
        }
    }
    let mut cycles: Vec<Vec<NodeIndex>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| cycle_in(&graph, &scc))
        .collect();
    cycles.sort_by_key(|c| c.first().map(|n| n.index()));
    for cycle in cycles {
        let Some(&start) = cycle.first() else {
            continue;
        };
        let names: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&start))
            .map(|n| placed[graph[*n]].decl.name.as_str())
            .collect();
        let p = &placed[graph[start]];
        errors.push(p.error(
            p.decl.name_pos,
            format!("dependency cycle: {}", names.join(" -> ")),
        ));
    }
}

/// One cycle through a strongly connected component, starting at its
/// earliest-declared member and following edges in order (shortest way back).
fn cycle_in(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
    let Some(&start) = members.iter().min_by_key(|n| graph[**n]) else {
        return Vec::new();
    };
    let mut previous: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph
            .neighbors(node)
            .filter(|n| members.contains(n))
            .collect();
        next.sort_by_key(|n| graph[*n]);
        for n in next {
            if n == start {
                let mut path = vec![node];
                let mut at = node;
                while let Some(&before) = previous.get(&at) {
                    path.push(before);
                    at = before;
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(n) {
                e.insert(node);
                queue.push_back(n);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::repo::compile_glob;

    fn entry(vars: &BTreeMap<String, i64>, roles: &[&str]) -> NodeEntry {
        NodeEntry {
            pattern: Some("*".into()),
            matcher: Some(compile_glob("*").unwrap()),
            facts: Vec::new(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            vars: vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::Int(*v)))
                .collect(),
        }
    }

    fn module(defaults: &BTreeMap<String, i64>) -> Module {
        Module {
            file: "modules/m.vgo".into(),
            defaults: defaults
                .iter()
                .map(|(k, v)| (k.clone(), Value::Int(*v)))
                .collect(),
            resources: Vec::new(),
            includes: Vec::new(),
        }
    }

    #[test]
    fn roles_are_united_in_first_occurrence_order() {
        let none = BTreeMap::new();
        let entries = [
            entry(&none, &["base", "db"]),
            entry(&none, &["web", "base"]),
        ];
        let s = Selection::from_entries(entries.iter());
        assert_eq!(s.roles, ["base", "db", "web"]);
    }

    fn vars_map() -> impl Strategy<Value = BTreeMap<String, i64>> {
        prop::collection::btree_map("[a-e]", 0i64..100, 0..5)
    }

    proptest! {
        #[test]
        fn later_entries_win_and_every_key_is_kept(all in prop::collection::vec(vars_map(), 0..5)) {
            let entries: Vec<NodeEntry> = all.iter().map(|v| entry(v, &[])).collect();
            let merged = Selection::from_entries(entries.iter()).vars;
            for (i, vars) in all.iter().enumerate() {
                for (k, v) in vars {
                    let later = all[i + 1..].iter().any(|m| m.contains_key(k));
                    prop_assert!(merged.contains_key(k));
                    if !later {
                        prop_assert_eq!(&merged[k], &Value::Int(*v));
                    }
                }
            }
            prop_assert_eq!(merged.len(), all.iter().flat_map(|m| m.keys()).collect::<BTreeSet<_>>().len());
        }

        #[test]
        fn module_defaults_lose_to_node_vars(defaults in vars_map(), node in vars_map()) {
            let data = template_data("e1", &Value::Map(BTreeMap::new()), &module(&defaults), &entry(&node, &[]).vars);
            let Value::Map(top) = data else { panic!("data is a map") };
            let Value::Map(vars) = &top["Vars"] else { panic!("Vars is a map") };
            for (k, v) in &defaults {
                let expected = node.get(k).unwrap_or(v);
                prop_assert_eq!(&vars[k], &Value::Int(*expected));
            }
            for (k, v) in &node {
                prop_assert_eq!(&vars[k], &Value::Int(*v));
            }
            prop_assert_eq!(&top["Envoy"], &Value::Map(BTreeMap::from([("Name".to_owned(), Value::Str("e1".into()))])));
        }
    }
}

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
use vigo_template::{Output, Piece, RenderOptions, Value};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::repo::{ConfigRepo, Module, NodeEntry};
use crate::resource::{KindDecl, ResourceDecl, TextField};
use crate::vars::{Vars, overlay};
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
    /// Compiles the catalog for `envoy`. Every entry of `nodes.vgo` whose
    /// `match` fits the name applies; an envoy that matches none gets an
    /// empty catalog. `secrets` must hold every secret the catalog uses
    /// (resolve [`ConfigRepo::referenced_secrets`] first); the catalog
    /// carries only the ones its resources use.
    pub fn compile(
        &self,
        envoy: &str,
        secrets: &BTreeMap<SecretPath, VersionedSecret>,
    ) -> Result<Compiled, Diagnostics> {
        let selection = Selection::from_entries(self.matching(envoy));
        self.compile_selection(envoy, &selection, secrets)
    }

    /// The roles `envoy` gets (every `nodes.vgo` entry whose `match` fits
    /// its name), in first-occurrence order.
    pub fn roles_of(&self, envoy: &str) -> Vec<String> {
        Selection::from_entries(self.matching(envoy)).roles
    }

    pub(crate) fn compile_selection(
        &self,
        envoy: &str,
        selection: &Selection,
        secrets: &BTreeMap<SecretPath, VersionedSecret>,
    ) -> Result<Compiled, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut placed: Vec<Placed<'_>> = Vec::new();
        for role in &selection.roles {
            // Load refuses a repository whose nodes name a missing module.
            let Some(module) = self.modules.get(role) else {
                continue;
            };
            let data = template_data(envoy, module, &selection.vars);
            for decl in &module.resources {
                match render_resource(module, decl, &data) {
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

/// `.Vars` (module defaults overlaid by the envoy's node vars) and `.Envoy`.
fn template_data(envoy: &str, module: &Module, node_vars: &Vars) -> Value {
    let mut vars = module.defaults.clone();
    overlay(&mut vars, node_vars);
    let envoy = BTreeMap::from([("Name".to_owned(), Value::Str(envoy.to_owned()))]);
    Value::Map(BTreeMap::from([
        ("Vars".to_owned(), Value::Map(vars)),
        ("Envoy".to_owned(), Value::Map(envoy)),
    ]))
}

fn render_resource(
    module: &Module,
    decl: &ResourceDecl,
    data: &Value,
) -> Result<Resource, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut text =
        |field: &TextField, key: &str, options: RenderOptions| match field.render(data, options) {
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
/// `missing var 'db_password'`; anything else is prefixed by its field.
fn template_message(field: &str, message: &str) -> String {
    if message.starts_with("missing var '") {
        match message.split_once(" (") {
            Some((head, _)) => head.to_owned(),
            None => message.to_owned(),
        }
    } else {
        format!("{field}: {message}")
    }
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
    for piece in out.0 {
        match piece {
            Piece::Text(t) => line.push_str(&t),
            Piece::Secret(path) => {
                errors.push(field_diagnostic(
                    module,
                    decl,
                    field,
                    field.start.pos(),
                    message(&path),
                ));
                return None;
            }
        }
    }
    if let Some(path) = literal_secret_reference(&line) {
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
            pattern: "*".into(),
            matcher: compile_glob("*").unwrap(),
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
            let data = template_data("e1", &module(&defaults), &entry(&node, &[]).vars);
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

//! Loading the config repository: `nodes.vgo` and `modules/*.vgo`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_saphyr::Spanned;
use vigo_secrets::SecretPath;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::resource::{KindDecl, RawResource, ResourceDecl, parse_resource};
use crate::vars::{RawVars, Vars, collect_secrets, convert_vars};
use crate::yaml::{Pos, SourceFile};

/// The node map's file name inside the config directory.
pub const NODES_FILE: &str = "nodes.vgo";
/// The folder of modules inside the config directory.
pub const MODULES_DIR: &str = "modules";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesFile {
    #[serde(default)]
    envoys: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(rename = "match", default)]
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    match_facts: Option<Spanned<RawVars>>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    vars: RawVars,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleFile {
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    vars: RawVars,
    #[serde(default)]
    resources: Vec<RawResource>,
}

/// One `envoys:` entry of `nodes.vgo`. It applies to an envoy when its
/// `match` glob (if any) fits the name and every `match_facts` pair (if
/// any) holds; it has at least one of the two.
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    pub(crate) pattern: Option<String>,
    pub(crate) matcher: Option<GlobMatcher>,
    pub(crate) facts: Vec<FactMatch>,
    pub(crate) roles: Vec<String>,
    pub(crate) vars: Vars,
}

/// One `match_facts` pair: the fact at `path` (dotted) must be a string,
/// number or boolean whose text is exactly `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FactMatch {
    pub(crate) path: String,
    pub(crate) expected: String,
}

impl FactMatch {
    pub(crate) fn holds(&self, facts: &serde_json::Map<String, serde_json::Value>) -> bool {
        vigo_proto::facts::lookup(facts, &self.path)
            .and_then(scalar_text)
            .is_some_and(|text| text == self.expected)
    }
}

/// The text of a scalar fact or `match_facts` value; `None` for null, a
/// list or a map.
pub(crate) fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            None
        }
    }
}

impl NodeEntry {
    /// Whether this entry applies to an envoy of this name and facts.
    pub(crate) fn applies(
        &self,
        envoy: &str,
        facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.matcher.as_ref().is_none_or(|m| m.is_match(envoy))
            && self.facts.iter().all(|f| f.holds(facts))
    }
}

/// One `modules/<role>.vgo`.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    /// `modules/<role>.vgo`, for diagnostics.
    pub(crate) file: String,
    pub(crate) defaults: Vars,
    pub(crate) resources: Vec<ResourceDecl>,
    /// The modules it includes (`include:`), with where each is named.
    pub(crate) includes: Vec<(String, Pos)>,
}

/// A loaded, validated config repository: node entries with compiled globs,
/// modules with their templates parsed. Load once per config (re)load, then
/// compile a catalog per envoy with [`ConfigRepo::compile`].
///
/// `ConfigRepo::default()` is the empty repository: every envoy compiles to
/// an empty catalog (a server started without a `nodes.vgo`).
#[derive(Debug, Clone, Default)]
pub struct ConfigRepo {
    pub(crate) entries: Vec<NodeEntry>,
    pub(crate) modules: BTreeMap<String, Module>,
}

impl ConfigRepo {
    /// Reads and validates `nodes.vgo`, every module a node entry names and
    /// every other `modules/*.vgo` present. Every problem found is
    /// reported, across all files, not only the first.
    pub fn load(config_dir: &Path) -> Result<Self, Diagnostics> {
        let mut errors = Vec::new();
        let nodes = read(config_dir, NODES_FILE);
        let (entries, mentions) = match &nodes {
            Ok(file) => load_nodes(file, &mut errors),
            Err(d) => {
                errors.push(d.clone());
                (Vec::new(), Vec::new())
            }
        };

        let mut modules = BTreeMap::new();
        for role in module_names(config_dir, &mut errors) {
            let rel = module_rel(&role);
            match read(config_dir, &rel) {
                Ok(file) => {
                    if let Some(m) = load_module(&file, config_dir, &mut errors) {
                        modules.insert(role, m);
                    }
                }
                Err(d) => errors.push(d),
            }
        }
        check_includes(&modules, &mut errors);
        // Every role a node entry names needs its module (reported once per
        // role, at its first mention).
        let mut reported = BTreeSet::new();
        if let Ok(nodes) = &nodes {
            for (role, pos) in mentions {
                if !modules.contains_key(&role)
                    && !errors
                        .iter()
                        .any(|d: &Diagnostic| d.file == module_rel(&role))
                    && reported.insert(role.clone())
                {
                    errors.push(nodes.diagnostic(
                        pos,
                        None,
                        format!(
                            "role '{role}' has no module: expected the file {}",
                            module_rel(&role)
                        ),
                    ));
                }
            }
        }

        if errors.is_empty() {
            Ok(Self { entries, modules })
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// Every secret path the repository references: in vars (node entries
    /// and module defaults), in `stdin`/`secret_file`/`content` written as a
    /// `secret:` reference, and in `watch_secret`. Resolve them all before
    /// compiling (docs/secrets.md "Fail-fast").
    pub fn referenced_secrets(&self) -> BTreeSet<SecretPath> {
        let mut out = BTreeSet::new();
        for entry in &self.entries {
            collect_secrets(&entry.vars, &mut out);
        }
        for module in self.modules.values() {
            collect_secrets(&module.defaults, &mut out);
            for r in &module.resources {
                out.extend(r.watch_secret.iter().cloned());
                let texts = match &r.kind {
                    KindDecl::File { content, .. } => vec![content.as_ref()],
                    KindDecl::Exec {
                        command,
                        stdin,
                        secret_file,
                        unless,
                        onlyif,
                        environment,
                        ..
                    } => [
                        Some(command),
                        stdin.as_ref(),
                        secret_file.as_ref(),
                        unless.as_ref(),
                        onlyif.as_ref(),
                    ]
                    .into_iter()
                    .chain(environment.iter().map(|(_, t)| Some(t)))
                    .collect(),
                    KindDecl::Line { line, .. } => vec![line.as_ref()],
                    KindDecl::User {
                        password: Some(p), ..
                    } => {
                        out.insert(p.clone());
                        Vec::new()
                    }
                    KindDecl::Directory { .. }
                    | KindDecl::Service { .. }
                    | KindDecl::Package { .. }
                    | KindDecl::Symlink(_)
                    | KindDecl::User { .. }
                    | KindDecl::Group(_) => Vec::new(),
                };
                out.extend(
                    texts
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.secret_ref().cloned()),
                );
            }
        }
        out
    }

    /// The node entries that apply to `envoy` with these facts, in file
    /// order.
    pub(crate) fn matching<'a>(
        &'a self,
        envoy: &'a str,
        facts: &'a serde_json::Map<String, serde_json::Value>,
    ) -> impl Iterator<Item = &'a NodeEntry> {
        self.entries.iter().filter(move |e| e.applies(envoy, facts))
    }

    /// `roles` with the modules they include added, each before the first
    /// module that includes it, every module once.
    pub(crate) fn expand_includes(&self, roles: &[String]) -> Vec<String> {
        fn visit(
            modules: &BTreeMap<String, Module>,
            role: &str,
            seen: &mut BTreeSet<String>,
            out: &mut Vec<String>,
        ) {
            if !seen.insert(role.to_owned()) {
                return;
            }
            if let Some(module) = modules.get(role) {
                for (included, _) in &module.includes {
                    visit(modules, included, seen, out);
                }
            }
            out.push(role.to_owned());
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for role in roles {
            visit(&self.modules, role, &mut seen, &mut out);
        }
        out
    }
}

/// Every `include:` names a module that exists, and includes form no cycle
/// (each cycle reported once, at the include that starts it in its first
/// module by name).
fn check_includes(modules: &BTreeMap<String, Module>, errors: &mut Vec<Diagnostic>) {
    for module in modules.values() {
        for (included, pos) in &module.includes {
            if !modules.contains_key(included)
                && !errors.iter().any(|d| d.file == module_rel(included))
            {
                errors.push(Diagnostic {
                    file: module.file.clone(),
                    line: pos.line,
                    column: pos.column,
                    resource: None,
                    message: format!(
                        "include '{included}' has no module: expected the file {}",
                        module_rel(included)
                    ),
                });
            }
        }
    }
    let mut reported = BTreeSet::new();
    for start in modules.keys() {
        let mut path = vec![start.as_str()];
        find_cycles(modules, &mut path, &mut reported, errors);
    }
}

/// Depth-first from the last module of `path`, reporting each cycle that
/// returns to `path[0]` and passes only through modules named after it.
fn find_cycles<'a>(
    modules: &'a BTreeMap<String, Module>,
    path: &mut Vec<&'a str>,
    reported: &mut BTreeSet<Vec<String>>,
    errors: &mut Vec<Diagnostic>,
) {
    let (Some(&start), Some(&last)) = (path.first(), path.last()) else {
        return;
    };
    let Some(module) = modules.get(last) else {
        return;
    };
    for (included, _) in &module.includes {
        if included == start {
            let cycle: Vec<String> = path.iter().map(|r| (*r).to_owned()).collect();
            if reported.insert(cycle.clone()) {
                let first = &modules[start];
                let next = path.get(1).copied().unwrap_or(start);
                let pos = first
                    .includes
                    .iter()
                    .find(|(r, _)| r == next)
                    .map_or_else(Pos::default, |(_, p)| *p);
                let mut names = cycle;
                names.push(start.to_owned());
                errors.push(Diagnostic {
                    file: first.file.clone(),
                    line: pos.line,
                    column: pos.column,
                    resource: None,
                    message: format!(
                        "include cycle: {}; a module cannot include itself, directly or through others",
                        names.join(" -> ")
                    ),
                });
            }
        } else if included.as_str() > start
            && !path.contains(&included.as_str())
            && modules.contains_key(included)
        {
            path.push(included);
            find_cycles(modules, path, reported, errors);
            path.pop();
        }
    }
}

/// The glob for a `match` pattern: case-insensitive (host names are), and
/// `*` crosses dots.
pub(crate) fn compile_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
}

fn module_rel(role: &str) -> String {
    format!("{MODULES_DIR}/{role}.vgo")
}

fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn read(config_dir: &Path, rel: &str) -> Result<SourceFile, Diagnostic> {
    std::fs::read_to_string(config_dir.join(rel))
        .map(|text| SourceFile {
            rel: rel.to_owned(),
            text,
        })
        .map_err(|e| Diagnostic {
            file: rel.to_owned(),
            line: 0,
            column: 0,
            resource: None,
            message: format!("cannot read {}: {e}", config_dir.join(rel).display()),
        })
}

/// Role names of the module files present, sorted.
fn module_names(config_dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<String> {
    let dir = config_dir.join(MODULES_DIR);
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(Diagnostic {
                file: MODULES_DIR.into(),
                line: 0,
                column: 0,
                resource: None,
                message: format!("cannot list {}: {e}", dir.display()),
            });
            return Vec::new();
        }
    };
    let mut names: Vec<String> = listing
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".vgo").map(str::to_owned)
        })
        .collect();
    names.sort();
    for name in &names {
        if !valid_role(name) {
            errors.push(Diagnostic {
                file: module_rel(name),
                line: 0,
                column: 0,
                resource: None,
                message: "a module's file name must be a role name: letters, digits, '_' and '-'"
                    .into(),
            });
        }
    }
    names.retain(|n| valid_role(n));
    names
}

/// The node entries, and every valid role named with where it is named.
fn load_nodes(
    file: &SourceFile,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<NodeEntry>, Vec<(String, Pos)>) {
    let parsed: NodesFile = match file.parse() {
        Ok(p) => p,
        Err(d) => {
            errors.push(d);
            return (Vec::new(), Vec::new());
        }
    };
    let mut entries = Vec::new();
    let mut mentions = Vec::new();
    for entry in parsed.envoys {
        let entry_pos = Pos::of(&entry.referenced);
        let raw = entry.value;
        let mut valid = true;
        let (pattern, matcher) = match raw.pattern {
            None => (None, None),
            Some(p) => match compile_glob(&p.value) {
                Ok(m) => (Some(p.value), Some(m)),
                Err(e) => {
                    errors.push(file.diagnostic(
                        Pos::of(&p.referenced),
                        None,
                        format!("invalid match pattern '{}': {}", p.value, e.kind()),
                    ));
                    valid = false;
                    (None, None)
                }
            },
        };
        let has_facts = raw.match_facts.is_some();
        let facts = match raw.match_facts {
            Some(m) => {
                let before = errors.len();
                let facts = fact_matches(file, m.value, errors);
                valid &= errors.len() == before;
                facts
            }
            None => Vec::new(),
        };
        if valid && pattern.is_none() && !has_facts {
            errors.push(file.diagnostic(
                entry_pos,
                None,
                "the entry has neither 'match' nor 'match_facts'; give it a name glob (match: \"*\" for every envoy), facts to match, or both",
            ));
            valid = false;
        }
        let mut roles = Vec::new();
        for role in raw.roles {
            if !valid_role(&role.value) {
                errors.push(file.diagnostic(
                    Pos::of(&role.referenced),
                    None,
                    format!(
                        "invalid role name '{}': use letters, digits, '_' and '-' (it names modules/<role>.vgo)",
                        role.value
                    ),
                ));
            } else {
                mentions.push((role.value.clone(), Pos::of(&role.referenced)));
                if !roles.contains(&role.value) {
                    roles.push(role.value);
                }
            }
        }
        let vars = convert_vars(file, raw.vars, errors);
        if valid {
            entries.push(NodeEntry {
                pattern,
                matcher,
                facts,
                roles,
                vars,
            });
        }
    }
    (entries, mentions)
}

/// The pairs of a `match_facts` mapping: each key a known fact's dotted
/// path, each value a string, number or boolean.
fn fact_matches(file: &SourceFile, raw: RawVars, errors: &mut Vec<Diagnostic>) -> Vec<FactMatch> {
    let mut out = Vec::new();
    for (path, value) in raw {
        let pos = file.key_pos(&path, &value);
        if !vigo_proto::facts::Facts::is_known_path(&path) {
            errors.push(file.diagnostic(
                pos,
                None,
                format!(
                    "match_facts: unknown fact '{path}'; facts are {}, networking.interfaces.NAME.ipv4|ipv6 and custom.NAME",
                    known_leaf_facts()
                ),
            ));
            continue;
        }
        match scalar_text(&file.json(&value)) {
            Some(expected) => out.push(FactMatch { path, expected }),
            None => errors.push(file.diagnostic(
                Pos::of(&value.referenced),
                None,
                format!("match_facts: the value of '{path}' must be a string, number or boolean"),
            )),
        }
    }
    out
}

/// The built-in facts with a single value, for error messages.
fn known_leaf_facts() -> String {
    vigo_proto::facts::Facts::known_paths()
        .into_iter()
        .filter(|p| !vigo_proto::facts::OPEN_MAPS.contains(&p.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_module(
    file: &SourceFile,
    config_dir: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<Module> {
    let parsed: ModuleFile = match file.parse() {
        Ok(p) => p,
        Err(d) => {
            errors.push(d);
            return None;
        }
    };
    let defaults = convert_vars(file, parsed.vars, errors);
    let mut includes: Vec<(String, Pos)> = Vec::new();
    for role in parsed.include {
        let pos = Pos::of(&role.referenced);
        if !valid_role(&role.value) {
            errors.push(file.diagnostic(
                pos,
                None,
                format!(
                    "invalid include '{}': name a module by its role (letters, digits, '_' and '-'; modules/<role>.vgo)",
                    role.value
                ),
            ));
        } else if !includes.iter().any(|(r, _)| *r == role.value) {
            includes.push((role.value, pos));
        }
    }
    let mut resources: Vec<ResourceDecl> = Vec::new();
    for raw in parsed.resources {
        if let Some(r) = parse_resource(file, config_dir, raw, errors) {
            resources.push(r);
        }
    }
    Some(Module {
        file: file.rel.clone(),
        defaults,
        resources,
        includes,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn star_crosses_dots_and_case_is_ignored() {
        let m = compile_glob("db*.example.com").unwrap();
        assert!(m.is_match("db1.example.com"));
        assert!(m.is_match("db1.internal.example.com"));
        assert!(m.is_match("DB2.Example.COM"));
        assert!(!m.is_match("web1.example.com"));
        let set = compile_glob("web[0-9].{eu,us}.example.com").unwrap();
        assert!(set.is_match("web3.eu.example.com"));
        assert!(!set.is_match("web3.asia.example.com"));
    }

    fn host() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-z0-9][a-z0-9-]{0,8}", 1..5).prop_map(|labels| labels.join("."))
    }

    proptest! {
        #[test]
        fn a_literal_name_matches_itself(name in host()) {
            prop_assert!(compile_glob(&name).unwrap().is_match(&name));
        }

        #[test]
        fn star_matches_every_name(name in host()) {
            prop_assert!(compile_glob("*").unwrap().is_match(&name));
        }

        #[test]
        fn prefix_star_matches_every_extension(prefix in host(), rest in host()) {
            let m = compile_glob(&format!("{prefix}*")).unwrap();
            let joined = format!("{prefix}{rest}");
            let dotted = format!("{prefix}.{rest}");
            prop_assert!(m.is_match(&joined));
            prop_assert!(m.is_match(&dotted));
        }
    }
}

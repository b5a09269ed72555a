//! Resource tags and partial runs: `vigoenvoy run --once --tags nginx`,
//! `apply --resource NAME`.
//!
//! A [`Selection`] names tags and resources; [`Selection::resolve`] turns it,
//! against one catalog, into the [`Selected`] set: every resource that
//! carries one of the tags or has one of the names, plus everything those
//! `depends_on`, transitively. `notify` edges pull nothing in: a selected
//! resource that changes does not refresh a resource outside the set (as
//! Puppet's `--tags`). A tag or name the catalog does not have is an error
//! naming it, never an empty run.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Catalog;

/// A resource tag: non-empty, letters, digits, `_`, `.` and `-` only. In
/// JSON, a string checked when read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// Accepts a non-empty tag of `[A-Za-z0-9_.-]`.
    pub fn parse(input: &str) -> Result<Self, TagError> {
        if input.is_empty() {
            return Err(TagError::Empty);
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(TagError::Character {
                tag: input.escape_debug().to_string(),
                character: bad,
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Tag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Tag> for String {
    fn from(tag: Tag) -> Self {
        tag.0
    }
}

/// Why a tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The tag is the empty string.
    #[error("a tag must not be empty")]
    Empty,
    /// The tag holds a character outside `[A-Za-z0-9_.-]` (shown escaped).
    #[error(
        "invalid tag '{tag}': '{}' is not allowed; use letters, digits, '_', '.' and '-'",
        character.escape_debug()
    )]
    Character {
        /// The tag as given.
        tag: String,
        /// The first character refused.
        character: char,
    },
}

/// What a partial run applies: the resources tagged with any of `tags` or
/// named in `resources` (and their dependencies). Empty: the whole catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// `--tags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// `--resource`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl Selection {
    /// Whether nothing is selected by name or tag (a whole run).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.resources.is_empty()
    }

    /// The resources of `catalog` this selection applies. Every tag must be
    /// carried and every name must exist in the catalog.
    pub fn resolve(&self, catalog: &Catalog) -> Result<Selected, SelectionError> {
        for tag in &self.tags {
            if !catalog.resources.iter().any(|r| r.tags.contains(tag)) {
                return Err(SelectionError::UnknownTag {
                    tag: tag.clone(),
                    known: known_tags(catalog),
                });
            }
        }
        for name in &self.resources {
            if catalog.resource(name).is_none() {
                return Err(SelectionError::UnknownResource { name: name.clone() });
            }
        }
        // First occurrence wins, as in the engine's ordering.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(catalog.resources.len());
        for (i, r) in catalog.resources.iter().enumerate().rev() {
            index.insert(r.name.as_str(), i);
        }
        let mut chosen = vec![false; catalog.resources.len()];
        let mut todo: Vec<usize> = catalog
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                self.resources.contains(&r.name) || r.tags.iter().any(|t| self.tags.contains(t))
            })
            .map(|(i, _)| i)
            .collect();
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut chosen[i], true) {
                continue;
            }
            // An unknown dependency is the engine's to report (the resource
            // fails); it selects nothing here.
            todo.extend(
                catalog.resources[i]
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied()),
            );
        }
        let names = catalog
            .resources
            .iter()
            .zip(chosen)
            .filter(|(_, c)| *c)
            .map(|(r, _)| r.name.clone())
            .collect();
        Ok(Selected { names })
    }
}

/// `a, b, c`, or a note that the catalog has no tags at all.
fn known_tags(catalog: &Catalog) -> String {
    let tags: BTreeSet<&str> = catalog
        .resources
        .iter()
        .flat_map(|r| r.tags.iter().map(Tag::as_str))
        .collect();
    if tags.is_empty() {
        "none (no resource of this catalog has tags)".to_owned()
    } else {
        tags.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// The names of the resources a partial run applies (see
/// [`Selection::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    names: BTreeSet<String>,
}

impl Selected {
    /// Whether the resource called `name` is applied.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The selected names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// How many resources are selected.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no resource is selected.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Why a selection does not fit a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// No resource carries the tag.
    #[error("no resource of the catalog is tagged '{tag}'; its tags: {known}")]
    UnknownTag {
        /// The tag asked for.
        tag: Tag,
        /// The tags the catalog has, for the message.
        known: String,
    },
    /// No resource has the name.
    #[error(
        "the catalog has no resource named '{name}'; `vigocli catalog ENVOY` lists its resources"
    )]
    UnknownResource {
        /// The name asked for.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(resources: serde_json::Value) -> Catalog {
        serde_json::from_value(serde_json::json!({"envoy": "e", "resources": resources})).unwrap()
    }

    fn package(
        name: &str,
        tags: &[&str],
        depends_on: &[&str],
        notify: &[&str],
    ) -> serde_json::Value {
        serde_json::json!({
            "name": name, "type": "package", "package": name,
            "tags": tags, "depends_on": depends_on, "notify": notify,
        })
    }

    fn names(selected: &Selected) -> Vec<&str> {
        selected.names().collect()
    }

    fn tags(list: &[&str]) -> Vec<Tag> {
        list.iter().map(|t| Tag::parse(t).unwrap()).collect()
    }

    #[test]
    fn issue_15_tags_accept_only_the_documented_characters() {
        for good in ["nginx", "web-1", "a.b_c", "0"] {
            assert_eq!(Tag::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(Tag::parse(""), Err(TagError::Empty));
        assert_eq!(
            Tag::parse("web server").unwrap_err().to_string(),
            "invalid tag 'web server': ' ' is not allowed; use letters, digits, '_', '.' and '-'"
        );
        assert!(Tag::parse("a,b").is_err());
        assert!(Tag::parse("ü").is_err());
        let err = serde_json::from_str::<Tag>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
    }

    #[test]
    fn issue_15_selection_pulls_in_dependencies_transitively_but_not_notify_targets() {
        let c = catalog(serde_json::json!([
            package("base", &[], &[], &[]),
            package("lib", &[], &["base"], &[]),
            package("conf", &["nginx"], &["lib"], &["svc"]),
            package("svc", &[], &[], &[]),
            package("other", &["db"], &[], &[]),
        ]));
        let by_tag = Selection {
            tags: tags(&["nginx"]),
            resources: vec![],
        };
        assert_eq!(names(&by_tag.resolve(&c).unwrap()), ["base", "conf", "lib"]);
        let by_name = Selection {
            tags: vec![],
            resources: vec!["lib".into(), "svc".into()],
        };
        assert_eq!(names(&by_name.resolve(&c).unwrap()), ["base", "lib", "svc"]);
        let both = Selection {
            tags: tags(&["db"]),
            resources: vec!["base".into()],
        };
        assert_eq!(names(&both.resolve(&c).unwrap()), ["base", "other"]);
    }

    #[test]
    fn issue_15_unknown_tags_and_names_are_errors_naming_them() {
        let c = catalog(serde_json::json!([
            package("a", &["web", "db"], &[], &[]),
            package("b", &[], &["ghost"], &[]),
        ]));
        let err = Selection {
            tags: tags(&["web", "nginx"]),
            resources: vec![],
        }
        .resolve(&c)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no resource of the catalog is tagged 'nginx'; its tags: db, web"
        );
        let err = Selection {
            tags: vec![],
            resources: vec!["c".into()],
        }
        .resolve(&c)
        .unwrap_err();
        assert_eq!(err, SelectionError::UnknownResource { name: "c".into() });
        // A dependency the catalog lacks selects nothing more.
        let ok = Selection {
            tags: vec![],
            resources: vec!["b".into()],
        };
        assert_eq!(names(&ok.resolve(&c).unwrap()), ["b"]);
        let untagged = catalog(serde_json::json!([package("a", &[], &[], &[])]));
        let err = Selection {
            tags: tags(&["x"]),
            resources: vec![],
        }
        .resolve(&untagged)
        .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("its tags: none (no resource of this catalog has tags)")
        );
    }
}

//! Execution order of a catalog's resources.
//!
//! Edges run from a resource to those that must come after it: `A
//! depends_on B` gives B → A, `A notify B` gives A → B. Resources are
//! ordered topologically, ties broken by declaration order so a catalog
//! without edges applies top to bottom. The compiler rejects cycles and
//! unknown names, but a catalog from elsewhere (a file given to `vigoenvoy
//! apply`) may still have them: such resources are reported as failed, never
//! a panic, and everything that comes after them is skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use vigo_catalog::Catalog;

/// The order to apply a catalog in.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Resource indices in application order (every resource exactly once).
    pub(crate) order: Vec<usize>,
    /// Per resource: those that must come first (its dependencies and the
    /// resources that notify it).
    pub(crate) before: Vec<Vec<usize>>,
    /// Per resource: those it notifies.
    pub(crate) notifies: Vec<Vec<usize>>,
    /// Per resource: why it cannot be applied at all (unknown reference,
    /// duplicate name, part of a cycle).
    pub(crate) invalid: Vec<Option<String>>,
}

impl Plan {
    /// Orders `catalog`.
    pub(crate) fn of(catalog: &Catalog) -> Self {
        let n = catalog.resources.len();
        let mut invalid: Vec<Option<String>> = vec![None; n];
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, r) in catalog.resources.iter().enumerate() {
            if index.insert(r.name.as_str(), i).is_some() {
                invalid[i] = Some(format!(
                    "another resource is also named '{}'; names must be unique",
                    r.name
                ));
            }
        }
        // First occurrence wins for lookups.
        for (i, r) in catalog.resources.iter().enumerate().rev() {
            index.insert(r.name.as_str(), i);
        }

        let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(n, n);
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        let mut before = vec![Vec::new(); n];
        let mut notifies = vec![Vec::new(); n];
        for (i, r) in catalog.resources.iter().enumerate() {
            for dep in &r.depends_on {
                match index.get(dep.as_str()) {
                    Some(&d) => {
                        graph.add_edge(nodes[d], nodes[i], ());
                        before[i].push(d);
                    }
                    None => {
                        invalid[i].get_or_insert_with(|| {
                            format!("depends_on names '{dep}', which is not in the catalog")
                        });
                    }
                }
            }
            for target in &r.notify {
                match index.get(target.as_str()) {
                    Some(&t) => {
                        graph.add_edge(nodes[i], nodes[t], ());
                        before[t].push(i);
                        notifies[i].push(t);
                    }
                    None => {
                        invalid[i].get_or_insert_with(|| {
                            format!("notify names '{target}', which is not in the catalog")
                        });
                    }
                }
            }
        }

        let mut cyclic = vec![false; n];
        for component in tarjan_scc(&graph) {
            let in_cycle = component.len() > 1
                || component
                    .iter()
                    .any(|&node| graph.contains_edge(node, node));
            if in_cycle {
                let mut members: Vec<usize> = component.iter().map(|&node| graph[node]).collect();
                members.sort_unstable();
                let names: Vec<String> = members
                    .iter()
                    .map(|&m| format!("'{}'", catalog.resources[m].name))
                    .collect();
                for &m in &members {
                    cyclic[m] = true;
                    invalid[m] = Some(format!(
                        "part of a dependency cycle among {}",
                        names.join(", ")
                    ));
                }
            }
        }

        let order = stable_order(n, &before, &cyclic);
        Self {
            order,
            before,
            notifies,
            invalid,
        }
    }
}

/// Kahn's algorithm with the lowest declaration index first. Resources in
/// a cycle are taken as soon as everything outside their cycle is placed
/// (they will be reported failed), so the order always covers every
/// resource.
fn stable_order(n: usize, before: &[Vec<usize>], cyclic: &[bool]) -> Vec<usize> {
    let mut pending = vec![0usize; n];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, preds) in before.iter().enumerate() {
        for &p in preds {
            // Edges inside a cycle are ignored: cycle members are failed
            // anyway, and dropping them lets the rest be ordered.
            if cyclic[i] && cyclic[p] {
                continue;
            }
            pending[i] += 1;
            after[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| pending[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &next in &after[i] {
            pending[next] -= 1;
            if pending[next] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use vigo_catalog::{ExecSpec, Resource, ResourceKind, When};

    use super::*;

    fn resource(name: &str, depends_on: &[&str], notify: &[&str]) -> Resource {
        Resource {
            name: name.into(),
            kind: ResourceKind::Exec(ExecSpec {
                command: "true".into(),
                stdin: None,
                secret_file: None,
                creates: None,
                cwd: None,
                timeout_secs: 10,
                ..ExecSpec::default()
            }),
            depends_on: depends_on.iter().map(|s| (*s).into()).collect(),
            notify: notify.iter().map(|s| (*s).into()).collect(),
            watch_secret: vec![],
            when: When::Always,
            tags: vec![],
            secret_triggered: false,
            source: None,
        }
    }

    fn catalog(resources: Vec<Resource>) -> Catalog {
        let mut c = Catalog::empty("t");
        c.resources = resources;
        c
    }

    #[test]
    fn edges_order_and_declaration_breaks_ties() {
        let plan = Plan::of(&catalog(vec![
            resource("svc", &["pkg"], &[]),
            resource("cfg", &[], &["svc"]),
            resource("pkg", &[], &[]),
            resource("other", &[], &[]),
        ]));
        assert_eq!(plan.order, vec![1, 2, 0, 3]);
        assert!(plan.invalid.iter().all(Option::is_none));
        assert_eq!(plan.notifies[1], vec![0]);
    }

    #[test]
    fn cycles_and_unknown_names_are_reported_not_fatal() {
        let plan = Plan::of(&catalog(vec![
            resource("a", &["b"], &[]),
            resource("b", &["a"], &[]),
            resource("c", &["a"], &[]),
            resource("d", &["nope"], &[]),
            resource("e", &["e"], &[]),
        ]));
        let mut order = plan.order.clone();
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            plan.invalid[0].as_deref(),
            Some("part of a dependency cycle among 'a', 'b'")
        );
        assert!(plan.invalid[2].is_none());
        assert!(plan.invalid[3].as_deref().unwrap().contains("'nope'"));
        assert!(plan.invalid[4].as_deref().unwrap().contains("cycle"));
        let pos = |i| plan.order.iter().position(|&x| x == i).unwrap();
        assert!(pos(2) > pos(0) && pos(2) > pos(1));
    }
}

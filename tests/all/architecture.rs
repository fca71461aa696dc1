//! The shape of the code: module dependencies point one way (ARCHITECTURE.md).
//!
//! The graph is read from the source: every `crate::...` path in a file is an edge from the
//! file's module to the module it names. A node is a top-level module (`cache`, `report`,
//! `pipeline`, ...), except that each stage (`stages::dedup`, ...) is a node of its own: the
//! report reads the stages' artifacts and the render stage calls the report, which is one
//! way as long as no artifact-producing stage reads the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module node of a source file: `src/stages/embed/knn.rs` → `stages::embed`.
fn node_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => "crate".into(),
        [stages, stage, ..] if stages == "stages" && stage != "mod" => format!("stages::{stage}"),
        [first, ..] => first.clone(),
        [] => "crate".into(),
    }
}

/// Nodes a `crate::` path names: `crate::stages::ingest::X` → `stages::ingest`,
/// `crate::{cache, fsutil}` → `cache`, `fsutil`.
fn targets(after_crate: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = after_crate.strip_prefix('{') {
        let inner: String = group.chars().take_while(|&c| c != '}').collect();
        return inner
            .split(',')
            .map(|item| ident(item.trim()))
            .filter(|name| !name.is_empty())
            .collect();
    }
    let first = ident(after_crate);
    if first == "stages" {
        let rest = &after_crate[first.len()..];
        if let Some(rest) = rest.strip_prefix("::") {
            let stage = ident(rest);
            if !stage.is_empty() && stage.chars().next().is_some_and(|c| c.is_lowercase()) {
                return vec![format!("stages::{stage}")];
            }
        }
    }
    vec![first]
}

fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let from = node_of(path.strip_prefix(&src).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            let edges = graph.entry(from.clone()).or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                for (at, _) in code.match_indices("crate::") {
                    for to in targets(&code[at + "crate::".len()..]) {
                        if to != from && !to.is_empty() {
                            edges.insert(to);
                        }
                    }
                }
            }
        }
    }
    graph
}

/// A cycle through the graph, if there is one (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn module_dependencies_have_no_cycle() {
    let graph = dependency_graph();
    assert!(
        graph.contains_key("pipeline") && graph.contains_key("stages::dedup"),
        "the source was not read: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module dependency cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn nothing_but_the_crate_root_imports_the_orchestrator() {
    for (from, to) in dependency_graph() {
        assert!(
            from == "crate" || from == "pipeline" || !to.contains("pipeline"),
            "{from} imports pipeline"
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph
        .entry("report".into())
        .or_default()
        .insert("runlog".into());
    graph
        .entry("runlog".into())
        .or_default()
        .insert("pipeline".into());
    assert_eq!(find_cycle(&graph), None);
    graph
        .entry("pipeline".into())
        .or_default()
        .insert("report".into());
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(node_of(Path::new("stages/embed/knn.rs")), "stages::embed");
    assert_eq!(node_of(Path::new("stages/mod.rs")), "stages");
    assert_eq!(
        targets("stages::ingest::{Ingested, Scan};"),
        ["stages::ingest"]
    );
    assert_eq!(targets("{cache, fsutil};"), ["cache", "fsutil"]);
}

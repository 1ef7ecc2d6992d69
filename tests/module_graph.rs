//! The crate's modules form no import cycle: no module (`commands::produce`,
//! `engines::publisher`, `stats`, …) uses one that uses it back, directly or through others.
//! Read from the sources: every `crate::MODULE` path in a module's files is an edge; the folders
//! of roles (`commands/`, `engines/`) count each member as a module of its own
//! (docs/ARCHITECTURE.md draws them). And engines never use a command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The folders whose members are modules of their own in the graph.
const ROLES: [&str; 2] = ["commands", "engines"];

/// Module → the modules its files name with `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src");
            let parts: Vec<&str> = relative
                .components()
                .map(|c| c.as_os_str().to_str().expect("a UTF-8 path"))
                .collect();
            let first = parts[0].trim_end_matches(".rs");
            let module = match (ROLES.contains(&first), parts.get(1)) {
                (true, Some(&"mod.rs")) | (true, None) => continue,
                (true, Some(member)) => format!("{first}::{}", member.trim_end_matches(".rs")),
                (false, _) => first.to_string(),
            };
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            let uses = graph.entry(module.clone()).or_default();
            for used in crate_paths(&text) {
                if used != module {
                    uses.insert(used);
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// The module of every `crate::` path in `text` (`crate::{a, b::c}` gives a and b; a path into
/// a role folder, `crate::engines::reader::X`, gives `engines::reader`).
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        let first: String = s
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        match (
            ROLES.contains(&first.as_str()),
            s[first.len()..].strip_prefix("::"),
        ) {
            (true, Some(rest)) => {
                let member: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                format!("{first}::{member}")
            }
            _ => first,
        }
    };
    let mut found = Vec::new();
    // A comment's `crate::` (a doc link) is no import.
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inside = &group[..group.find('}').unwrap_or(group.len())];
            found.extend(inside.split(',').map(|part| ident(part.trim())));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .map(|cycle| cycle.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn engines_never_use_a_command() {
    let graph = module_graph();
    for (module, uses) in graph.iter().filter(|(m, _)| m.starts_with("engines::")) {
        let commands: Vec<_> = uses
            .iter()
            .filter(|m| m.starts_with("commands::"))
            .collect();
        assert!(commands.is_empty(), "{module} uses {commands:?}");
    }
}

#[test]
fn crate_paths_are_read_from_groups_and_single_paths() {
    let text = "use crate::a::B;\nuse crate::{c::D, e};\nlet x = crate::f::g();\n/// [`crate::h`]\nuse crate::engines::reader::R;";
    assert_eq!(crate_paths(text), ["a", "c", "e", "f", "engines::reader"]);
}

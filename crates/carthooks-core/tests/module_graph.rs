//! The crate doc's promise, checked: core's modules import one way, no two
//! (or more) of them in a cycle. Reads `src/*.rs` as text: every `crate::name`
//! outside comments and `#[cfg(test)]` modules is an edge.

use std::collections::{BTreeMap, BTreeSet};

/// Module → the modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(module) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|_| path.extension().is_some_and(|e| e == "rs"))
        else {
            continue;
        };
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut uses = BTreeSet::new();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
        graph.insert(module.to_owned(), uses);
    }
    graph
}

#[test]
fn core_modules_import_one_way() {
    let graph = graph();
    assert!(graph.len() > 10, "read the modules: {graph:?}");
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| m == module) {
            panic!("module cycle: {} → {module}", path[at..].join(" → "));
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if graph.contains_key(next) {
                visit(next, graph, path, done);
            }
        }
        path.pop();
        done.insert(module.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    // The leaves the crate doc names import nothing of the crate.
    for leaf in ["sanitize", "secret", "ids", "httpdate"] {
        assert_eq!(graph[leaf], BTreeSet::new(), "{leaf} is a leaf");
    }
}

//! The core's modules form layers: no circle of imports between them, and no module reaches a sibling's item
//! through the crate root (`crate::Pool`), which would hide the real edge. Read from the source text, so that it
//! runs without any tool; `.ci/module-layers` checks the modules inside folders too, from cargo-modules' graph.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// The top-level modules `lib.rs` declares.
fn modules(src: &Path) -> BTreeSet<String> {
    fs::read_to_string(src.join("lib.rs"))
        .expect("lib.rs reads")
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches("pub ").trim();
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect()
}

/// The text of a module (a file, or every file of a folder), without comments and without its unit tests.
fn code_of(src: &Path, module: &str) -> String {
    let folder = src.join(module);
    let files: Vec<_> = if folder.is_dir() {
        fs::read_dir(&folder)
            .expect("the module folder reads")
            .map(|entry| entry.expect("an entry").path())
            .collect()
    } else {
        vec![src.join(format!("{module}.rs"))]
    };
    let mut code = String::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("a module file reads");
        let text = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The names that follow `crate::` in `code`, and those in `use crate::{a, b::c}` groups.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with('$') {
            continue; // `$crate::` in a macro: the caller's path, not an import.
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            let mut depth = 0;
            let mut start = true;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        let end = group[i..]
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .map_or(group.len(), |n| i + n);
                        names.insert(group[i..end].to_owned());
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.insert(rest[..end].to_owned());
        }
    }
    names
}

#[test]
fn core_modules_form_layers_with_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(
        modules.contains("login") && modules.contains("pool"),
        "{modules:?}"
    );
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut through_root = Vec::new();
    for module in &modules {
        for name in crate_paths(&code_of(&src, module)) {
            if modules.contains(&name) {
                if &name != module {
                    edges.entry(module).or_default().insert(name);
                }
            } else if module != "reexports" {
                through_root.push(format!("{module} -> crate::{name}"));
            }
        }
    }
    assert_eq!(
        through_root,
        Vec::<String>::new(),
        "imports through the crate root"
    );

    // Depth-first search for a back edge.
    fn visit<'a>(
        module: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!(
                "a circle of imports: {} -> {module}",
                path[at..].join(" -> ")
            );
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in edges.get(module).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        visit(module, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_reader_finds_group_imports_and_plain_paths() {
    let code = "use crate::{\n    backend::{Backend, Reuse},\n    error::Error,\n};\nlet x = crate::pool::Pool::new();\n$crate::Pool";
    assert_eq!(
        crate_paths(code),
        BTreeSet::from(["backend".into(), "error".into(), "pool".into()])
    );
}

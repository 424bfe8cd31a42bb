//! The import direction of the crate's layers (see the crate docs,
//! "Layers and imports"): a module may name only modules of its own layer
//! or of the layers below it. Reads every source file and fails on the
//! first `crate::x` path that points up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layer rank of each top-level module: a module may import ranks <= its
/// own. `top` is a separate client and may import only the leaves.
fn rank(module: &str) -> Option<u32> {
    Some(match module {
        "protocol" | "metrics" | "alloc" => 0,
        "config" => 1,
        "store" => 2,
        "coord" => 3,
        "command" => 4,
        "server" => 5,
        "collector" => 6,
        "top" => 1,
        "cluster" => 1,
        _ => return None,
    })
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules a line of code names through `crate::` paths.
fn named_modules(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn imports_point_down_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    assert!(files.len() > 30, "found the sources");
    let mut seen_modules = BTreeSet::new();
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue; // the crate root and the binary put the layers together
        }
        let own = rank(&module)
            .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/layering.rs"));
        seen_modules.insert(module.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue; // doc links may point anywhere
            }
            let code = code.split(" //").next().unwrap();
            for named in named_modules(code) {
                let Some(theirs) = rank(&named) else {
                    continue; // an item of the crate root (e.g. `crate::run`)
                };
                if named != module && theirs > own {
                    violations.push(format!(
                        "{}:{}: `{module}` (layer {own}) imports `{named}` (layer {theirs})",
                        relative.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    for expected in [
        "protocol",
        "metrics",
        "store",
        "coord",
        "command",
        "server",
        "collector",
    ] {
        assert!(
            seen_modules.contains(expected),
            "module {expected} was read"
        );
    }
    assert!(
        violations.is_empty(),
        "imports against the layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_a_path() {
    assert_eq!(
        named_modules("use crate::server::connection::{ClientState}; crate::coord::on(x)"),
        vec!["server".to_string(), "coord".to_string()]
    );
}

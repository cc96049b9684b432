//! docs/architecture.md says which crate may depend on which; the Cargo.toml files must agree,
//! so that the page stays the record of the layout (and no runtime quietly grows a dependency
//! on a parser, nor the binary on the test kit).
use std::collections::BTreeMap;
use std::path::Path;

fn crates_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `crate → a, b (note), c    comment` lines of the page's first code block.
fn documented() -> BTreeMap<String, Vec<String>> {
    let page = std::fs::read_to_string(crates_dir().join("../docs/architecture.md")).expect("docs/architecture.md");
    let block = page.split("```").nth(1).expect("a code block");
    let mut out = BTreeMap::new();
    for line in block.lines() {
        let Some((name, rest)) = line.split_once('→') else { continue };
        let targets = rest.split("  ").next().unwrap_or_default();
        let deps: Vec<String> = if targets.contains("nothing") || targets.contains("dev-dependency") {
            Vec::new()
        } else {
            targets
                .split(',')
                .map(|d| d.split('(').next().unwrap_or_default().trim().to_string())
                .filter(|d| !d.is_empty())
                .collect()
        };
        out.insert(name.trim().to_string(), deps);
    }
    out
}

/// The fulcrum crates each crate's [dependencies] names.
fn actual() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(crates_dir()).expect("crates/") {
        let dir = entry.expect("entry").path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let deps = deps.split("\n[").next().unwrap_or_default();
        let mut names: Vec<String> = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("fulcrum-"))
            .map(|l| l.split(['.', ' ', '=']).next().unwrap_or_default().to_string())
            .collect();
        names.sort();
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        out.insert(name, names);
    }
    out
}

#[test]
fn the_crates_depend_on_what_the_architecture_page_says() {
    let mut page = documented();
    for deps in page.values_mut() {
        deps.sort();
    }
    assert_eq!(page, actual(), "docs/architecture.md (left) and the Cargo.toml files (right) disagree");
}

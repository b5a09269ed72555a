//! docs/ARCHITECTURE.md names source files in its diagram and flow steps:
//! every one must exist, so a move that forgets the doc fails here.

use std::path::{Path, PathBuf};

/// Every file under `dir` (skipping `target` and hidden folders), as paths
/// relative to the workspace root with `/` separators.
fn files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap();
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The source-file names the text mentions: words ending in `.rs`, with
/// the folders written before them (`api/envoy.rs`).
fn mentioned_sources(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)))
        .map(|word| word.trim_matches('.'))
        .filter(|word| word.ends_with(".rs") && word.len() > 3)
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn issue_13_architecture_doc_names_files_that_exist() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut tree = Vec::new();
    files(&root, &root, &mut tree);

    let mentioned = mentioned_sources(&doc);
    assert!(
        mentioned.len() > 20,
        "the doc names few source files: {mentioned:?}"
    );
    let missing: Vec<&String> = mentioned
        .iter()
        .filter(|name| {
            !tree
                .iter()
                .any(|file| *file == **name || file.ends_with(&format!("/{name}")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names files that do not exist: {missing:?}"
    );
}

#[test]
fn mentions_are_found_with_their_folders() {
    let text = "the accept loop (`listener.rs`), `api/envoy.rs` and lib.rs; not vigo-server.";
    assert_eq!(
        mentioned_sources(text),
        ["api/envoy.rs", "lib.rs", "listener.rs"]
    );
}

//! Apply of an already converged catalog of 1,000 `file` resources: every
//! resource is checked (stat, read, compare) and reported unchanged. The
//! goal is under 100 ms per apply.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vigo_catalog::Catalog;

const RESOURCES: usize = 1_000;

fn catalog(dir: &std::path::Path) -> Catalog {
    let resources: Vec<_> = (0..RESOURCES)
        .map(|i| {
            json!({
                "name": format!("file-{i}"),
                "type": "file",
                "target_path": dir.join(format!("f{i}.conf")),
                "content": [{"text": format!("setting_{i} = {}\n", "x".repeat(200))}],
                "mode": "0644",
            })
        })
        .collect();
    serde_json::from_value(json!({"envoy": "bench", "resources": resources}))
        .expect("the benchmark catalog is valid")
}

fn converged_apply(c: &mut Criterion) {
    let mut host = common::converge(catalog, RESOURCES);
    common::bench_converged(c, "apply_converged_1000_files", &mut host, RESOURCES);
}

criterion_group!(benches, converged_apply);
criterion_main!(benches);

//! Apply of an already converged catalog of 1,000 `file` resources: every
//! resource is checked (stat, read, compare) and reported unchanged. The
//! goal is under 100 ms per apply.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use vigo_catalog::Catalog;
use vigo_engine::{ApplyOptions, Engine};

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
    let dir = tempfile::tempdir().expect("temporary folder");
    let targets = dir.path().join("targets");
    std::fs::create_dir(&targets).expect("targets folder");
    let catalog = catalog(&targets);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut engine = Engine::new(&dir.path().join("data")).expect("engine");
    let first = runtime.block_on(engine.apply(&catalog, ApplyOptions::default()));
    assert_eq!(first.summary.changed, RESOURCES);

    c.bench_function("apply_converged_1000_files", |b| {
        b.iter(|| {
            let report =
                runtime.block_on(engine.apply(black_box(&catalog), ApplyOptions::default()));
            assert_eq!(report.summary.unchanged, RESOURCES);
            report
        });
    });
}

criterion_group!(benches, converged_apply);
criterion_main!(benches);

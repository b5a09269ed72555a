//! One enforcement cycle of the envoy's run loop (docs/ARCHITECTURE.md "A check-in"): the catalog
//! held in memory applied again to a converged host of 1,000 `file`
//! resources, 100 of them holding a secret. Every resource is checked
//! (stat, read, constant-time compare, mode); nothing is written. The goal
//! is under 100 ms per cycle. A second case repairs one deleted file per
//! cycle, the usual drift.

use std::hint::black_box;

mod common;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use vigo_catalog::Catalog;
use vigo_engine::ApplyOptions;

const RESOURCES: usize = 1_000;
/// Every tenth file's content uses the secret.
const SECRET_EVERY: usize = 10;

fn catalog(dir: &std::path::Path) -> Catalog {
    let resources: Vec<_> = (0..RESOURCES)
        .map(|i| {
            let mut content = vec![json!({"text": format!("setting_{i} = {}\n", "x".repeat(200))})];
            if i % SECRET_EVERY == 0 {
                content.push(json!({"text": "password = "}));
                content.push(json!({"secret": "bench/password"}));
                content.push(json!({"text": "\n"}));
            }
            json!({
                "name": format!("file-{i}"),
                "type": "file",
                "target_path": dir.join(format!("f{i}.conf")),
                "content": content,
                "mode": if i % SECRET_EVERY == 0 { "0600" } else { "0644" },
            })
        })
        .collect();
    serde_json::from_value(json!({
        "envoy": "bench",
        "resources": resources,
        "secrets": {"bench/password": {"version": 1, "value": "bench-secret-value"}},
    }))
    .expect("the benchmark catalog is valid")
}

fn enforcement_cycle(c: &mut Criterion) {
    let mut host = common::converge(catalog, RESOURCES);
    common::bench_converged(
        c,
        "enforce_cycle_1000_converged_files",
        &mut host,
        RESOURCES,
    );
    let common::Converged {
        targets,
        catalog,
        runtime,
        mut engine,
        ..
    } = host;

    let victim = targets.join("f500.conf");
    c.bench_function("enforce_cycle_1000_files_one_deleted", |b| {
        b.iter_batched(
            || std::fs::remove_file(&victim).expect("deleting a managed file"),
            |()| {
                let report =
                    runtime.block_on(engine.apply(black_box(&catalog), ApplyOptions::default()));
                assert_eq!(report.summary.changed, 1);
                report
            },
            BatchSize::PerIteration,
        );
    });
}

criterion_group!(benches, enforcement_cycle);
criterion_main!(benches);

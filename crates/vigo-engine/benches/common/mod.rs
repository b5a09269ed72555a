//! Set-up shared by the engine benchmarks: a host converged on a catalog,
//! and the benchmark of applying it again.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::Criterion;
use vigo_catalog::Catalog;
use vigo_engine::{ApplyOptions, Engine};

/// A temporary host after a first apply of `catalog` wrote all of it.
pub(crate) struct Converged {
    _dir: tempfile::TempDir,
    #[allow(dead_code, reason = "only the enforce benchmark deletes a target")]
    pub(crate) targets: PathBuf,
    pub(crate) catalog: Catalog,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) engine: Engine,
}

/// Applies `catalog(targets)` (of `resources` resources) once to a fresh
/// temporary host, checking that every resource was written.
pub(crate) fn converge(catalog: fn(&std::path::Path) -> Catalog, resources: usize) -> Converged {
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
    assert_eq!(
        first.summary.changed,
        resources,
        "{:?}",
        first.resources.first()
    );
    Converged {
        _dir: dir,
        targets,
        catalog,
        runtime,
        engine,
    }
}

/// Benchmarks applying the catalog again to the converged host, each
/// apply reporting all `resources` unchanged.
pub(crate) fn bench_converged(
    c: &mut Criterion,
    name: &str,
    host: &mut Converged,
    resources: usize,
) {
    c.bench_function(name, |b| {
        b.iter(|| {
            let report = host.runtime.block_on(
                host.engine
                    .apply(black_box(&host.catalog), ApplyOptions::default()),
            );
            assert_eq!(report.summary.unchanged, resources);
            report
        });
    });
}

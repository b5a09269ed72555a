//! Parallel writers never hand out the same version twice.

use std::collections::BTreeSet;

use vigo_secrets::SecretProvider;

use super::{Store, path, value};

#[test]
fn parallel_sets_from_threads_get_distinct_consecutive_versions() {
    const THREADS: u64 = 8;
    const SETS_EACH: u64 = 6;
    let s = Store::new();
    let p = path("vigo/contended");
    let versions: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                // Each thread has its own provider and runtime, as separate
                // processes would; only the lock file orders them.
                let provider = s.reopen();
                let p = p.clone();
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    (0..SETS_EACH)
                        .map(|i| {
                            runtime
                                .block_on(provider.set(&p, &value(&format!("t{t}-{i}"))))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        versions.len(),
        distinct.len(),
        "a version was handed out twice"
    );
    assert_eq!(distinct, (1..=THREADS * SETS_EACH).collect());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let last = runtime.block_on(s.provider.get(&p)).unwrap();
    assert_eq!(last.version, THREADS * SETS_EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sets_on_one_provider_are_serialised() {
    let s = Store::new();
    let p = path("vigo/shared");
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let provider = s.provider.clone();
            let p = p.clone();
            tokio::spawn(async move { provider.set(&p, &value(&i.to_string())).await.unwrap() })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=24).collect::<Vec<u64>>());
    // Readers during and after the writes always see a whole file.
    let got = s.provider.get(&p).await.unwrap();
    assert_eq!(got.version, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_alongside_writers_see_whole_files() {
    let s = Store::new();
    let p = path("vigo/read-while-write");
    s.provider.set(&p, &value("start")).await.unwrap();
    let writer = {
        let provider = s.provider.clone();
        let p = p.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                provider
                    .set(&p, &value(&format!("value-{i}")))
                    .await
                    .unwrap();
            }
        })
    };
    let mut last_seen = 0;
    while !writer.is_finished() {
        let got = s.provider.get(&p).await.unwrap();
        assert!(got.version >= last_seen, "versions went backwards");
        last_seen = got.version;
        let v = got.value.expose_secret();
        assert!(v == "start" || v.starts_with("value-"));
    }
    writer.await.unwrap();
    assert_eq!(s.provider.get(&p).await.unwrap().version, 31);
}

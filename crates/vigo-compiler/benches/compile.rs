//! Compiling catalogs: 1,000 envoys x 50 resources (5 roles x 10 resources
//! with templates and secret vars), secrets from an in-memory map. The
//! figure that matters is catalogs per second on one core (target: 1,000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigo_compiler::ConfigRepo;
use vigo_secrets::{SecretPath, VersionedSecret};

const ENVOYS: usize = 1_000;
const ROLES: usize = 5;
const RESOURCES_PER_ROLE: usize = 10;

/// Writes the synthetic repository into `dir`.
fn write_repo(dir: &Path) {
    let mut nodes = String::from("envoys:\n");
    nodes.push_str("  - match: \"*.bench.example.com\"\n    roles: [");
    let roles: Vec<String> = (0..ROLES).map(|r| format!("role{r}")).collect();
    nodes.push_str(&roles.join(", "));
    nodes.push_str("]\n    vars:\n      region: \"eu-west\"\n      db_password: \"secret:bench/db/password\"\n");
    for group in 0..10 {
        let _ = write!(
            nodes,
            "  - match: \"node{group}*.bench.example.com\"\n    vars:\n      group: \"g{group}\"\n      api_key: \"secret:bench/api/key{group}\"\n"
        );
    }
    std::fs::create_dir_all(dir.join("modules")).unwrap();
    std::fs::write(dir.join("nodes.vgo"), nodes).unwrap();
    for role in &roles {
        let mut m = String::from(
            "vars:\n  port: 8080\n  group: \"none\"\n  api_key: \"secret:bench/api/default\"\nresources:\n",
        );
        for i in 0..RESOURCES_PER_ROLE {
            let name = format!("{role}-res{i}");
            match i % 5 {
                0 => {
                    let _ = write!(
                        m,
                        "  - name: {name}\n    type: directory\n    target_path: /etc/bench/{role}/{i}\n"
                    );
                }
                1 | 2 => {
                    let _ = write!(
                        m,
                        "  - name: {name}\n    type: file\n    target_path: /etc/bench/{role}/{i}.conf\n    content: |\n      # {{{{ .Envoy.Name }}}} in {{{{ .Vars.region }}}} ({{{{ .Vars.group }}}})\n      listen = {{{{ .Vars.port }}}}\n      password = {{{{ .Vars.db_password }}}}\n    depends_on: [{role}-res0]\n    watch_secret: [bench/db/password]\n"
                    );
                }
                3 => {
                    let _ = write!(
                        m,
                        "  - name: {name}\n    type: exec\n    command: \"/usr/local/bin/register --group {{{{ .Vars.group }}}} --name {{{{ .Envoy.Name }}}}\"\n    stdin: \"{{{{ .Vars.api_key }}}}\"\n    when: changed\n    depends_on: [{role}-res1]\n"
                    );
                }
                _ => {
                    let _ = write!(
                        m,
                        "  - name: {name}\n    type: service\n    service: bench-{role}-{i}\n    state: running\n    enabled: true\n"
                    );
                }
            }
        }
        std::fs::write(dir.join(format!("modules/{role}.vgo")), m).unwrap();
    }
}

fn secrets(repo: &ConfigRepo) -> BTreeMap<SecretPath, VersionedSecret> {
    common::secrets_for(repo, |p| (format!("value-of-{p}"), 1))
}

fn bench_compile(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_repo(dir.path());
    let repo = ConfigRepo::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    let secrets = secrets(&repo);
    let names: Vec<String> = (0..ENVOYS)
        .map(|i| format!("node{i}.bench.example.com"))
        .collect();
    let first = repo
        .compile(&names[0], &serde_json::Value::Null, &secrets)
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(first.catalog.resources.len(), ROLES * RESOURCES_PER_ROLE);

    let mut group = c.benchmark_group("compile");
    group.throughput(Throughput::Elements(ENVOYS as u64));
    group.sample_size(10);
    group.bench_function("1000_envoys_x_50_resources", |b| {
        b.iter(|| {
            for name in &names {
                black_box(
                    repo.compile(name, &serde_json::Value::Null, &secrets)
                        .unwrap(),
                );
            }
        });
    });
    group.finish();

    c.bench_function("load_repo", |b| {
        b.iter(|| black_box(ConfigRepo::load(dir.path()).unwrap()));
    });
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);

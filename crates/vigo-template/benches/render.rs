//! Rendering speed: a catalog's worth of templates (50 resources), parsed
//! once and rendered against one envoy's data, as the server does per
//! check-in.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vigo_secrets::SecretPath;
use vigo_template::{RenderOptions, Template, Value};

const TEMPLATES: &[&str] = &[
    "listen_port = {{ .Vars.port }}\nserver_name = {{ .Envoy.Name }}\n",
    "password={{ .Vars.db_password }}\nuser={{ .Vars.db_user }}\n",
    "{{- range .Vars.upstreams }}\nserver {{ .host }}:{{ .port }};\n{{- end }}\n",
    "{{ if .Vars.tls }}ssl on;{{ else }}ssl off;{{ end }}\n",
    "{{ with index .Vars \"optional\" }}opt={{ . }}{{ else }}# no opt{{ end }}\n",
    "# managed by Vigo\n{{ printf \"%-20s %5d\" .Envoy.Name .Vars.port }}\n",
    "/usr/bin/setup --name {{ .Envoy.Name }} --password-file {{ secret_file }}",
    "plain content with no actions at all, as many files are\n",
];

fn data() -> Value {
    let upstreams: Vec<Value> = (0..5)
        .map(|i| {
            Value::Map(BTreeMap::from([
                ("host".to_owned(), Value::from(format!("app{i}.internal"))),
                ("port".to_owned(), Value::Int(8000 + i)),
            ]))
        })
        .collect();
    let vars = BTreeMap::from([
        ("port".to_owned(), Value::Int(443)),
        (
            "db_password".to_owned(),
            Value::Secret(SecretPath::parse("vigo/db/password").expect("valid path")),
        ),
        ("db_user".to_owned(), Value::from("app")),
        ("upstreams".to_owned(), Value::List(upstreams)),
        ("tls".to_owned(), Value::Bool(true)),
    ]);
    let envoy = BTreeMap::from([("Name".to_owned(), Value::from("web1.example.com"))]);
    Value::Map(BTreeMap::from([
        ("Vars".to_owned(), Value::Map(vars)),
        ("Envoy".to_owned(), Value::Map(envoy)),
    ]))
}

fn catalog(c: &mut Criterion) {
    let templates: Vec<Template> = TEMPLATES
        .iter()
        .cycle()
        .take(50)
        .map(|src| Template::parse(src).expect("parses"))
        .collect();
    let data = data();
    let options = RenderOptions {
        allow_secret_file: true,
    };
    c.bench_function("render 50 resource templates", |b| {
        b.iter(|| {
            for template in &templates {
                black_box(template.render(black_box(&data), options).expect("renders"));
            }
        });
    });
    c.bench_function("parse 50 resource templates", |b| {
        b.iter(|| {
            for src in TEMPLATES.iter().cycle().take(50) {
                black_box(Template::parse(black_box(src)).expect("parses"));
            }
        });
    });
}

criterion_group!(benches, catalog);
criterion_main!(benches);

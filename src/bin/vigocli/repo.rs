//! `vigocli check` and `vigocli catalog NAME`: the config repository,
//! compiled straight from `config_dir` with secrets from the configured
//! backend — no server needed.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use vigo_compiler::{ConfigRepo, Diagnostics};
use vigo_secrets::{SecretPath, VersionedSecret};

use crate::backend::{self, Backend};
use crate::{Globals, Output};

/// Arguments of `vigocli catalog`.
#[derive(Debug, clap::Args)]
pub(crate) struct CatalogArgs {
    /// The envoy's name, e.g. db1.example.com.
    name: String,
    /// Include the real secret values (prints a warning on stderr).
    #[arg(long)]
    reveal: bool,
}

/// `vigocli check`: every error of the repository (syntax, types, missing
/// vars, taint, cycles) and every reference that does not resolve, in one
/// run. Exits non-zero when there is any.
pub(crate) async fn check(globals: &Globals) -> anyhow::Result<()> {
    let backend = backend::open(&globals.config)?;
    let repo = match ConfigRepo::load(&backend.raw.config_dir) {
        Ok(repo) => repo,
        Err(diagnostics) => return report_problems(&diagnostics, &[]),
    };
    let (secrets, unresolved) = resolve_all(&repo, &backend).await;
    let diagnostics = repo.check(&secrets);
    if diagnostics.is_empty() && unresolved.is_empty() {
        match globals.output {
            Output::Text => println!(
                "config ok: {} ({} secret references resolved)",
                backend.raw.config_dir.display(),
                secrets.len()
            ),
            Output::Json => println!("{}", serde_json::json!({ "ok": true, "errors": [] })),
        }
        return Ok(());
    }
    if globals.output == Output::Json {
        let mut errors: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        errors.extend(unresolved.iter().cloned());
        println!("{}", serde_json::json!({ "ok": false, "errors": errors }));
        bail!("{} problem(s) found", errors.len());
    }
    report_problems(&diagnostics, &unresolved)
}

fn report_problems(diagnostics: &Diagnostics, unresolved: &[String]) -> anyhow::Result<()> {
    for line in diagnostics.iter() {
        eprintln!("{line}");
    }
    for line in unresolved {
        eprintln!("{line}");
    }
    bail!(
        "{} problem(s) found in the config repository",
        diagnostics.len() + unresolved.len()
    )
}

/// `vigocli catalog NAME`: the compiled catalog, secrets as `[secret:path]`
/// unless `--reveal`.
pub(crate) async fn catalog(args: &CatalogArgs, globals: &Globals) -> anyhow::Result<()> {
    let backend = backend::open(&globals.config)?;
    let repo = ConfigRepo::load(&backend.raw.config_dir).map_err(|d| anyhow::anyhow!("{d}"))?;
    let (secrets, unresolved) = resolve_all(&repo, &backend).await;
    if let Some(first) = unresolved.first() {
        bail!("{first}");
    }
    // The envoy's name as the server knows it: lower case (EnvoyName).
    let name = vigo_secrets::EnvoyName::parse(&args.name)?;
    let compiled = match reported_facts(&backend, &name).await {
        Ok(facts) => repo.compile(&name, &facts, &secrets),
        Err(why) => {
            let stand_in = repo.compile_stand_in(&name, &secrets);
            // Said only when facts matter: a catalog that compiles the same
            // without any facts does not depend on them.
            let without = repo.compile(&name, &serde_json::Value::Null, &secrets);
            let same = match (&stand_in, &without) {
                (Ok(a), Ok(b)) => {
                    vigo_compiler::catalog_json(&a.catalog, false)
                        == vigo_compiler::catalog_json(&b.catalog, false)
                }
                _ => false,
            };
            if !same {
                eprintln!("warning: compiling with the stand-in facts of `vigocli check`: {why}");
            }
            stand_in
        }
    }
    .map_err(|d| anyhow::anyhow!("{d}"))
    .with_context(|| format!("compiling the catalog of '{name}'"))?;
    if args.reveal {
        crate::output::make_stdout_file_private()?;
        eprintln!(
            "warning: --reveal prints secret values; keep this output out of logs and tickets"
        );
    }
    match globals.output {
        Output::Json => println!(
            "{}",
            vigo_compiler::catalog_json(&compiled.catalog, args.reveal)
        ),
        Output::Text if args.reveal => print!(
            "{}",
            vigo_compiler::render_catalog_text_revealed(&compiled.catalog)
        ),
        Output::Text => print!("{}", vigo_compiler::render_catalog_text(&compiled.catalog)),
    }
    Ok(())
}

/// The facts of `name`'s latest check-in, from the server; why not, when
/// the server cannot tell (unreachable, no such envoy, no check-in yet).
async fn reported_facts(
    backend: &Backend,
    name: &vigo_secrets::EnvoyName,
) -> Result<serde_json::Value, String> {
    let client = crate::admin::AdminClient::new(&backend.raw, &*backend.provider)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let detail: vigo_proto::admin::EnvoyDetail = client
        .get(&format!("/v1/admin/envoys/{name}"))
        .await
        .map_err(|e| format!("asking the server for the facts of '{name}': {e}"))?;
    if detail.facts.is_empty() {
        return Err(format!("envoy '{name}' has not checked in yet"));
    }
    Ok(serde_json::Value::Object(detail.facts))
}

/// Resolves every reference of the repository; the failures come back as
/// lines in the fail-fast shape, one per secret.
async fn resolve_all(
    repo: &ConfigRepo,
    backend: &Backend,
) -> (BTreeMap<SecretPath, VersionedSecret>, Vec<String>) {
    let mut secrets = BTreeMap::new();
    let mut unresolved = Vec::new();
    for path in repo.referenced_secrets() {
        match backend.provider.get(&path).await {
            Ok(found) => {
                secrets.insert(path, found);
            }
            Err(e) => unresolved.push(format!("resolving secret '{path}': {e}")),
        }
    }
    (secrets, unresolved)
}

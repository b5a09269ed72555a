//! `vigocli secrets migrate --to isopass|local --target-config FILE
//! [--apply]`: copies every secret, with its current value, from the
//! backend of the server config to the backend of a second config file —
//! the `vigosrv.yaml` the server will run with afterwards — and reads each
//! back to verify it. Dry-run unless `--apply`. Prints paths and versions,
//! never values; ends by naming the config change to make.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use vigo_config::{RawConfig, SecretsBackend, bootstrap};
use vigo_secrets::SecretProvider;

use crate::backend::{self, Backend};
use crate::hint::WithHint;
use crate::output::print_json;
use crate::{Globals, Output};

/// `secrets migrate` arguments.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The backend to copy the secrets to.
    #[arg(long, value_enum)]
    to: Target,
    /// A server config file whose `secrets:` section names the target
    /// backend (the config vigosrv will use after the switch).
    #[arg(long, value_name = "PATH")]
    target_config: PathBuf,
    /// Write to the target (without it, only show what would be copied).
    #[arg(long)]
    apply: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The isopass API.
    Isopass,
    /// Encrypted files under a master key.
    Local,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Isopass => "isopass",
            Target::Local => "local",
        }
    }
}

#[derive(Serialize)]
struct Copied {
    path: String,
    /// Version in the source backend.
    from_version: u64,
    /// Version in the target (`null` in a dry run).
    to_version: Option<u64>,
    /// `would-copy`, `copied` or `unchanged` (the target already held the
    /// same value).
    status: &'static str,
}

#[derive(Serialize)]
struct Migration<'a> {
    from: &'static str,
    to: &'static str,
    target_config: &'a Path,
    applied: bool,
    secrets: &'a [Copied],
}

/// Runs `secrets migrate`.
pub(crate) async fn run(args: &MigrateArgs, globals: &Globals) -> anyhow::Result<()> {
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let target_raw = RawConfig::load(&args.target_config)
        .with_context(|| format!("loading the target config {}", args.target_config.display()))?;
    let to = args.to.name();
    if target_raw.secrets.name() != to {
        return Err(anyhow::anyhow!(
            "{} names the {} backend, not {to}",
            args.target_config.display(),
            target_raw.secrets.name()
        ))
        .hint("point --target-config at the config whose `secrets:` section is the target");
    }
    if raw.secrets.name() == to {
        bail!(
            "{} already uses the {to} backend; migrate copies between local and isopass",
            raw.file.display()
        );
    }
    let target = open_target(&target_raw, args.apply)?;
    let listed = provider
        .list("")
        .await
        .with_context(|| format!("listing the secrets of the {} backend", raw.secrets.name()))?;

    let mut done = Vec::with_capacity(listed.len());
    for info in listed {
        let source = provider
            .get(&info.path)
            .await
            .with_context(|| format!("reading secret '{}'", info.path))?;
        let Some(target) = &target else {
            done.push(Copied {
                path: info.path.to_string(),
                from_version: source.version,
                to_version: None,
                status: "would-copy",
            });
            continue;
        };
        let existing = match target.get(&info.path).await {
            Ok(found) => Some(found),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                return Err(e).with_context(|| format!("reading secret '{}' from {to}", info.path));
            }
        };
        let (to_version, status) = match existing {
            Some(found) if found.value.expose_secret() == source.value.expose_secret() => {
                (found.version, "unchanged")
            }
            _ => {
                let version = target
                    .set(&info.path, &source.value)
                    .await
                    .with_context(|| format!("storing secret '{}' in {to}", info.path))?;
                (version, "copied")
            }
        };
        let back = target
            .get(&info.path)
            .await
            .with_context(|| format!("reading secret '{}' back from {to}", info.path))?;
        if back.value.expose_secret() != source.value.expose_secret() {
            bail!(
                "secret '{}' read back from {to} differs from the value copied; the {} backend is unchanged and still in use",
                info.path,
                raw.secrets.name()
            );
        }
        done.push(Copied {
            path: info.path.to_string(),
            from_version: source.version,
            to_version: Some(to_version),
            status,
        });
    }
    report(&raw, &target_raw, args, &done, globals)
}

/// The target backend, opened (`None` in a dry run, which writes nothing
/// — not even a new master key for a local target).
fn open_target(
    target_raw: &RawConfig,
    apply: bool,
) -> anyhow::Result<Option<std::sync::Arc<dyn SecretProvider>>> {
    if !apply {
        return Ok(None);
    }
    if let SecretsBackend::Local {
        key_file,
        secrets_dir,
    } = &target_raw.secrets
    {
        bootstrap::prepare_local_key(key_file, secrets_dir)?;
    }
    Ok(Some(vigo_config::open_provider(target_raw)?))
}

fn report(
    raw: &RawConfig,
    target_raw: &RawConfig,
    args: &MigrateArgs,
    done: &[Copied],
    globals: &Globals,
) -> anyhow::Result<()> {
    let (from, to) = (raw.secrets.name(), args.to.name());
    if globals.output == Output::Json {
        return print_json(&Migration {
            from,
            to,
            target_config: &args.target_config,
            applied: args.apply,
            secrets: done,
        });
    }
    for c in done {
        match c.to_version {
            None => println!("{}  {} -> {to}", c.path, c.from_version),
            Some(v) => println!("{}  {} -> {to} {v}  {}", c.path, c.from_version, c.status),
        }
    }
    if !args.apply {
        if let SecretsBackend::Local { key_file, .. } = &target_raw.secrets
            && !key_file.exists()
        {
            println!(
                "A new master key would be generated at {}.",
                key_file.display()
            );
        }
        println!(
            "Dry run: {} secrets would be copied from {from} to {to}; nothing was written. Run again with --apply.",
            done.len()
        );
        return Ok(());
    }
    println!(
        "{} secrets copied to {to} and verified. To switch, replace the `secrets:` section of {} with the one in {}, then restart vigosrv.",
        done.len(),
        raw.file.display(),
        target_raw.file.display()
    );
    Ok(())
}

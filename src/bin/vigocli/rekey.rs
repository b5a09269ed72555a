//! `vigocli secrets rekey [--finish]`: a new master key for the local
//! backend (the crash-safety reasoning is in vigo-secrets'
//! `local/rekey.rs`).
//!
//! A running server needs no restart: its provider re-reads the key file
//! when a secret no longer opens under the key it holds.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use vigo_secrets::{LocalProvider, SecretInfo};

use crate::backend;
use crate::hint::WithHint;
use crate::output::print_json;
use crate::{Globals, Output};

#[derive(Serialize)]
struct Rekeyed<'a> {
    key_file: &'a Path,
    old_key_file: String,
    secrets: &'a [SecretInfo],
}

#[derive(Serialize)]
struct Finished<'a> {
    key_file: &'a Path,
    /// Secrets checked under the current key; `null` when there was no old
    /// key to remove.
    checked: Option<usize>,
}

/// Runs `secrets rekey` (or `--finish`).
pub(crate) async fn run(finish: bool, globals: &Globals) -> anyhow::Result<()> {
    let raw = backend::load_config(&globals.config)?;
    let Some((key_file, secrets_dir)) = backend::local_store(&raw) else {
        return Err(anyhow::anyhow!(
            "the secrets backend in {} is not local; the master key belongs to the local backend",
            raw.file.display()
        ))
        .hint("change the key of isopass through isopass itself");
    };
    let (key, dir) = (key_file.to_path_buf(), secrets_dir.to_path_buf());
    if finish {
        let checked = tokio::task::spawn_blocking(move || LocalProvider::finish_rekey(&key, &dir))
            .await?
            .context("finishing the master key change")?;
        match globals.output {
            Output::Json => print_json(&Finished { key_file, checked })?,
            Output::Text => match checked {
                Some(n) => println!(
                    "Every secret ({n}) opens under {}; the previous key was removed.",
                    key_file.display()
                ),
                None => println!("Nothing to finish: no previous key is kept."),
            },
        }
        return Ok(());
    }
    let done = tokio::task::spawn_blocking(move || LocalProvider::rekey(&key, &dir))
        .await?
        .context("changing the master key")?;
    let old_key_file = format!("{}.old", key_file.display());
    match globals.output {
        Output::Json => print_json(&Rekeyed {
            key_file,
            old_key_file,
            secrets: &done,
        })?,
        Output::Text => {
            for info in &done {
                println!("{}  {}", info.path, info.version);
            }
            println!(
                "Master key {} replaced; {} secrets re-encrypted (paths and versions unchanged).",
                key_file.display(),
                done.len()
            );
            println!(
                "The previous key is kept as {old_key_file} until `vigocli secrets rekey --finish`. Back up the new key file now."
            );
        }
    }
    Ok(())
}

//! `vigocli secrets ...`: store, read, list, remove and bootstrap secrets
//! through the backend the server config names (docs/secrets.md "Rotation").
//!
//! Every PATH is validated before the config is even read, so an invalid
//! path (`../../etc/shadow`) never reaches a backend.
//!
//! After `set`, the server is told through its admin API. The secret is
//! stored whatever the server answers, so `set` exits 0 in every case: when
//! the server cannot be reached it says so on stdout (the server applies the
//! change at its next start), and when the server answers with an error
//! (e.g. 401) a `warning:` line on stderr says what it answered.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;
use vigo_config::{RawConfig, SecretsBackend, bootstrap, fetch_secret};
use vigo_proto::admin::{History, SecretChanged, SecretChangedAnswer, WhoUses};
use vigo_secrets::{SecretPath, SecretValue};
use zeroize::Zeroizing;

use crate::admin::{AdminClient, AdminError};
use crate::backend::{self, Backend};
use crate::hint::WithHint;
use crate::output::{self, call, print_json};
use crate::{Globals, Output};

/// The `secrets` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Store a secret, then notify the server. VALUE `-` reads the value
    /// from stdin (one trailing newline is dropped), keeping it out of `ps`
    /// and shell history; on a terminal it asks for it without echo.
    Set {
        /// The secret's path, e.g. vigo/grafana/admin-password.
        path: String,
        /// The value, or `-` to read it from stdin.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Store an empty value (refused otherwise: it is usually a mistake,
        /// such as an empty pipe or Enter pressed at the prompt).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Print a secret's value.
    Get {
        /// The secret's path.
        path: String,
    },
    /// Print paths and versions (never values).
    List {
        /// Only paths under this prefix (whole segments).
        prefix: Option<String>,
    },
    /// Delete a secret; refused while the config references it.
    Rm {
        /// The secret's path.
        path: String,
        /// Delete even when the config references it.
        #[arg(long)]
        force: bool,
    },
    /// Create the server's generated secrets (CA, server certificate,
    /// database DSN, admin token, HMAC key) that are missing.
    Bootstrap,
    /// The audit trail: secret changes (who, when, path, version) and
    /// deliveries (which envoy received which version), never values.
    History {
        /// Only paths equal to or under this one (whole segments).
        path: Option<String>,
    },
    /// Every envoy and resource whose compiled catalog references PATH, and
    /// which of those resources watch it.
    WhoUses {
        /// The secret's path.
        path: String,
    },
    /// Replace the local backend's master key: every secret is re-encrypted
    /// under a new key (paths and versions unchanged), crash-safely; the
    /// previous key is kept as `<key_file>.old` until `--finish`.
    Rekey {
        /// Check that every secret opens under the new key, then remove
        /// `<key_file>.old`.
        #[arg(long)]
        finish: bool,
    },
    /// Copy every secret to another backend (local or isopass) and verify
    /// it; dry-run unless --apply. Prints paths and versions only.
    Migrate(crate::migrate::MigrateArgs),
}

/// Runs one `secrets` subcommand.
pub(crate) async fn run(command: SecretsCommand, globals: &Globals) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set {
            path,
            value,
            allow_empty,
        } => {
            let path = parse_path(&path)?;
            let value = if value == "-" {
                if std::io::stdin().is_terminal() {
                    read_terminal_value(&path)?
                } else {
                    read_stdin_value()?
                }
            } else {
                SecretValue::new(value)
            };
            if value.expose_secret().is_empty() && !allow_empty {
                bail!(
                    "the value for '{path}' is empty; nothing was stored (pass --allow-empty to store an empty value)"
                );
            }
            set(&path, &value, globals).await
        }
        SecretsCommand::Get { path } => get(&parse_path(&path)?, globals).await,
        SecretsCommand::List { prefix } => list(prefix.as_deref().unwrap_or(""), globals).await,
        SecretsCommand::Rm { path, force } => rm(&parse_path(&path)?, force, globals).await,
        SecretsCommand::Bootstrap => bootstrap(globals).await,
        SecretsCommand::History { path } => history(path.as_deref(), globals).await,
        SecretsCommand::WhoUses { path } => who_uses(&parse_path(&path)?, globals).await,
        SecretsCommand::Rekey { finish } => crate::rekey::run(finish, globals).await,
        SecretsCommand::Migrate(args) => crate::migrate::run(&args, globals).await,
    }
}

fn parse_path(path: &str) -> anyhow::Result<SecretPath> {
    Ok(SecretPath::parse(path)?)
}

/// Asks for the value on the terminal, without echo.
fn read_terminal_value(path: &SecretPath) -> anyhow::Result<SecretValue> {
    let value = rpassword::prompt_password(format!("Value for {path} (not echoed): "))
        .context("reading the value from the terminal")?;
    // The String moves into the SecretValue, which wipes it when dropped.
    Ok(SecretValue::new(value))
}

/// Reads the whole of stdin as the value, dropping one trailing newline.
fn read_stdin_value() -> anyhow::Result<SecretValue> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(8192));
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .context("reading the value from stdin")?;
    let mut text = match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => text,
        Err(e) => {
            // Wipe the bytes before reporting.
            drop(Zeroizing::new(e.into_bytes()));
            bail!("the value read from stdin is not valid UTF-8");
        }
    };
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    Ok(SecretValue::new(text))
}

#[derive(Serialize)]
struct SetResult<'a> {
    path: &'a SecretPath,
    version: u64,
    /// `notified`, `unreachable` or `refused`.
    server: &'static str,
}

async fn set(path: &SecretPath, value: &SecretValue, globals: &Globals) -> anyhow::Result<()> {
    crate::store_owner::act_as_store_owner(&backend::load_config(&globals.config)?)?;
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let version = provider
        .set(path, value)
        .await
        .with_context(|| format!("storing secret '{path}'"))?;
    if globals.output == Output::Text {
        println!("Secret \"{path}\" stored.");
    }
    let server = match notify(&raw, &*provider, path, version).await {
        Ok(()) => {
            if globals.output == Output::Text {
                println!("Server notified — affected envoys will apply on next check-in.");
            }
            "notified"
        }
        Err(NotifyFailure::Unreachable(cause)) => {
            tracing::debug!(error = %cause, "server notification failed");
            if globals.output == Output::Text {
                println!("Server not reachable — the change will be applied when it next starts.");
            }
            "unreachable"
        }
        Err(NotifyFailure::Refused(cause)) => {
            eprintln!(
                "warning: the secret is stored, but notifying the server failed: {cause}; the server applies the change when it next starts"
            );
            "refused"
        }
    };
    if globals.output == Output::Json {
        print_json(&SetResult {
            path,
            version,
            server,
        })?;
    }
    Ok(())
}

enum NotifyFailure {
    /// No server answered.
    Unreachable(String),
    /// A server answered, but not with success (or the CLI could not even
    /// build the request).
    Refused(String),
}

async fn notify(
    raw: &RawConfig,
    provider: &dyn vigo_secrets::SecretProvider,
    path: &SecretPath,
    version: u64,
) -> Result<(), NotifyFailure> {
    let client = AdminClient::new(raw, provider)
        .await
        .map_err(|e| NotifyFailure::Refused(vigo_log::error_chain(e.as_ref())))?;
    let change = SecretChanged {
        path: path.clone(),
        version: Some(version),
    };
    match client
        .post::<_, SecretChangedAnswer>("/v1/admin/secrets/changed", &change)
        .await
    {
        Ok(_) => Ok(()),
        Err(e @ AdminError::Unreachable { .. }) => Err(NotifyFailure::Unreachable(e.to_string())),
        Err(e) => Err(NotifyFailure::Refused(e.to_string())),
    }
}

async fn get(path: &SecretPath, globals: &Globals) -> anyhow::Result<()> {
    let Backend { provider, .. } = backend::open(&globals.config)?;
    let found = fetch_secret(&*provider, path)
        .await
        .hint("`vigocli secrets list` shows the stored paths")?;
    let mut out = Zeroizing::new(Vec::new());
    match globals.output {
        Output::Text => {
            out.extend_from_slice(found.value.expose_secret().as_bytes());
            out.push(b'\n');
        }
        Output::Json => {
            #[derive(Serialize)]
            struct Shown<'a> {
                path: &'a SecretPath,
                version: u64,
                value: &'a str,
            }
            serde_json::to_writer(
                &mut *out,
                &Shown {
                    path,
                    version: found.version,
                    value: found.value.expose_secret(),
                },
            )?;
            out.push(b'\n');
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(())
}

async fn list(prefix: &str, globals: &Globals) -> anyhow::Result<()> {
    let trimmed = prefix.trim_end_matches('/');
    if !trimmed.is_empty() {
        SecretPath::parse(trimmed).context("invalid prefix")?;
    }
    let Backend { provider, .. } = backend::open(&globals.config)?;
    let found = provider.list(trimmed).await.context("listing secrets")?;
    match globals.output {
        Output::Text => {
            for info in &found {
                println!("{}  {}", info.path, info.version);
            }
        }
        Output::Json => print_json(&found)?,
    }
    Ok(())
}

async fn rm(path: &SecretPath, force: bool, globals: &Globals) -> anyhow::Result<()> {
    let raw = backend::load_config(&globals.config)?;
    if !force {
        let users = references(&raw, path)?;
        if !users.is_empty() {
            let users: Vec<_> = users.into_iter().collect();
            return Err(anyhow::anyhow!(
                "secret '{path}' is still referenced by {}",
                users.join(" and ")
            ))
            .hint("remove the references first, or pass --force");
        }
    }
    let Backend { provider, .. } = backend::open(&globals.config)?;
    provider
        .delete(path)
        .await
        .with_context(|| format!("removing secret '{path}'"))?;
    match globals.output {
        Output::Text => println!("Secret \"{path}\" removed."),
        Output::Json => print_json(&serde_json::json!({ "path": path, "removed": true }))?,
    }
    Ok(())
}

/// Who references `path`: the server itself (its config or its own
/// secrets) and the config repository.
fn references(raw: &RawConfig, path: &SecretPath) -> anyhow::Result<BTreeSet<String>> {
    let mut users = BTreeSet::new();
    if raw.required_secrets().contains(path) {
        users.insert(format!("the server ({})", raw.file.display()));
    }
    if repo_exists(&raw.config_dir) {
        let repo = vigo_compiler::ConfigRepo::load(&raw.config_dir)
            .map_err(|d| anyhow::anyhow!("{d}"))
            .with_context(|| {
                format!(
                    "cannot tell whether the config repository {} references '{path}'",
                    raw.config_dir.display()
                )
            })
            .hint("fix the config repository (`vigocli check`), or pass --force")?;
        if repo.referenced_secrets().contains(path) {
            users.insert(format!(
                "the config repository ({})",
                raw.config_dir.display()
            ));
        }
    }
    Ok(users)
}

fn repo_exists(config_dir: &Path) -> bool {
    config_dir.join(vigo_compiler::NODES_FILE).exists()
}

async fn bootstrap(globals: &Globals) -> anyhow::Result<()> {
    let raw = backend::load_config(&globals.config)?;
    crate::store_owner::act_as_store_owner(&raw)?;
    if let SecretsBackend::Local {
        key_file,
        secrets_dir,
    } = &raw.secrets
        && bootstrap::prepare_local_key(key_file, secrets_dir)? == bootstrap::KeyStep::Generated
        && globals.output == Output::Text
    {
        println!("Master key {} generated.", key_file.display());
    }
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let created = bootstrap::ensure_generated_secrets(&*provider, &raw.data_dir).await?;
    match globals.output {
        Output::Text if created.is_empty() => {
            println!("Nothing to create: every generated secret exists.");
        }
        Output::Text => {
            for path in &created {
                println!("Secret \"{path}\" created.");
            }
        }
        Output::Json => print_json(&created)?,
    }
    Ok(())
}

async fn history(prefix: Option<&str>, globals: &Globals) -> anyhow::Result<()> {
    let prefix = prefix
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    if let Some(prefix) = prefix {
        SecretPath::parse(prefix).context("invalid path")?;
    }
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let client = AdminClient::new(&raw, &*provider).await?;
    let route = match prefix {
        Some(prefix) => format!("/v1/admin/secrets/history?prefix={prefix}"),
        None => "/v1/admin/secrets/history".to_owned(),
    };
    let history: History = call(client.get(&route).await)?;
    match globals.output {
        Output::Json => print_json(&history)?,
        Output::Text => {
            let versions: Vec<String> = history
                .entries
                .iter()
                .map(|e| e.version.to_string())
                .collect();
            let rows: Vec<[&str; 5]> = history
                .entries
                .iter()
                .zip(&versions)
                .map(|(e, version)| {
                    [
                        e.at.as_str(),
                        e.event.as_str(),
                        e.path.as_str(),
                        version.as_str(),
                        e.by.as_str(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(["AT", "EVENT", "PATH", "VERSION", "BY"], &rows)
            );
        }
    }
    Ok(())
}

async fn who_uses(path: &SecretPath, globals: &Globals) -> anyhow::Result<()> {
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let client = AdminClient::new(&raw, &*provider).await?;
    let users: WhoUses = call(
        client
            .get(&format!("/v1/admin/secrets/who-uses?path={path}"))
            .await,
    )?;
    match globals.output {
        Output::Json => print_json(&users)?,
        Output::Text if users.envoys.is_empty() => {
            println!("No envoy's catalog references secret \"{path}\".");
        }
        Output::Text => {
            let mut rows: Vec<[&str; 3]> = Vec::new();
            for user in &users.envoys {
                let mut resources: BTreeSet<&str> = user.uses.iter().map(String::as_str).collect();
                resources.extend(user.watches.iter().map(String::as_str));
                for resource in resources {
                    let watches = user.watches.iter().any(|w| w == resource);
                    rows.push([
                        user.envoy.as_str(),
                        resource,
                        if watches { "yes" } else { "no" },
                    ]);
                }
            }
            print!("{}", output::table(["ENVOY", "RESOURCE", "WATCHES"], &rows));
        }
    }
    Ok(())
}

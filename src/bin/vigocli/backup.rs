//! `vigocli backup FILE` / `vigocli restore FILE`: one age-encrypted tar
//! archive holding the local backend's encrypted secret files, a consistent
//! snapshot of the embedded database (taken online with SQLCipher's
//! `sqlcipher_export`, still encrypted with its own key) and the CA
//! certificate. It never holds the master key: that is backed up apart, and
//! restore needs it in place first.
//!
//! Layout: `vigo-backup.json` (format), `secrets/<path>`, `vigo.db`,
//! `ca.crt`. A passphrase comes from `--passphrase-file` (`-` for stdin)
//! or the terminal (no echo), never the command line; or the archive is
//! encrypted to an age recipient (`--recipient age1...`) and restored with
//! `--identity-file`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use vigo_secrets::{LocalProvider, SecretValue};
use zeroize::Zeroizing;

use crate::backend::{self, Backend};
use crate::hint::WithHint;
use crate::output::print_json;
use crate::{Globals, Output};

const MANIFEST: &str = "vigo-backup.json";
const FORMAT: u32 = 1;
const DB_NAME: &str = "vigo.db";
const CA_NAME: &str = "ca.crt";
const SECRETS: &str = "secrets";

/// `backup` arguments.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The archive to write (replaced atomically if it exists).
    file: PathBuf,
    /// Encrypt to this age recipient (`age1...`) instead of a passphrase.
    #[arg(long, value_name = "AGE_RECIPIENT")]
    recipient: Option<String>,
    /// Read the passphrase from this file (`-`: stdin) instead of the
    /// terminal.
    #[arg(long, value_name = "PATH", conflicts_with = "recipient")]
    passphrase_file: Option<PathBuf>,
}

/// `restore` arguments.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The archive written by `vigocli backup`.
    file: PathBuf,
    /// The age identity file matching the backup's recipient.
    #[arg(long, value_name = "PATH")]
    identity_file: Option<PathBuf>,
    /// Read the passphrase from this file (`-`: stdin) instead of the
    /// terminal.
    #[arg(long, value_name = "PATH", conflicts_with = "identity_file")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// Whether `vigo.db` is in the archive (`false` with PostgreSQL).
    database: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    file: &'a Path,
    secrets: usize,
    database: bool,
    ca_certificate: bool,
}

/// Runs `vigocli backup`.
pub(crate) async fn backup(args: &BackupArgs, globals: &Globals) -> anyhow::Result<()> {
    let Backend { raw, provider } = backend::open(&globals.config)?;
    let Some((key_file, secrets_dir)) = backend::local_store(&raw) else {
        return Err(anyhow::anyhow!("the secrets backend is isopass; there is no local secret store to back up"))
            .hint("back up isopass itself; for the embedded database stop the server and copy data_dir, or use the local backend");
    };
    let encryptor = match &args.recipient {
        Some(recipient) => {
            let recipient = age::x25519::Recipient::from_str(recipient)
                .map_err(|e| anyhow::anyhow!("invalid --recipient: {e}"))?;
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .context("setting up the encryption")?
        }
        None => {
            age::Encryptor::with_user_passphrase(passphrase(args.passphrase_file.as_deref(), true)?)
        }
    };

    let dsn = provider
        .get(raw.database_dsn.path())
        .await
        .with_context(|| format!("resolving secret '{}'", raw.database_dsn.path()))?
        .value;
    let temp = with_suffix(&args.file, ".tmp");
    let snapshot = with_suffix(&args.file, ".db-snapshot");
    remove_if_there(&snapshot)?;
    let database = vigo_store::embedded_db_file(&dsn)?.is_some();
    if database {
        vigo_store::snapshot_embedded(&dsn, &snapshot)
            .await
            .context("taking a snapshot of the embedded database")?;
    } else if globals.output == Output::Text {
        println!("The database is PostgreSQL: back it up with pg_dump (it is not in the archive).");
    }
    drop(dsn);

    let written = (|| -> anyhow::Result<(usize, bool)> {
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        let age_writer = encryptor.wrap_output(BufWriter::new(out))?;
        let mut tar = tar::Builder::new(age_writer);
        let manifest = serde_json::to_vec(&Manifest {
            format: FORMAT,
            database,
        })?;
        append_bytes(&mut tar, MANIFEST, &manifest, 0o600)?;
        let mut count = 0;
        for file in secret_files(secrets_dir)? {
            let rel = file.strip_prefix(secrets_dir)?;
            tar.append_path_with_name(&file, Path::new(SECRETS).join(rel))
                .with_context(|| format!("archiving {}", file.display()))?;
            count += 1;
        }
        if database {
            tar.append_path_with_name(&snapshot, DB_NAME)
                .context("archiving the database snapshot")?;
        }
        let ca = raw.data_dir.join(CA_NAME);
        let has_ca = ca.exists();
        if has_ca {
            tar.append_path_with_name(&ca, CA_NAME)
                .with_context(|| format!("archiving {}", ca.display()))?;
        }
        let age_writer = tar.into_inner()?;
        let buffered = age_writer.finish()?;
        let out = buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        out.sync_all()?;
        Ok((count, has_ca))
    })();
    remove_if_there(&snapshot)?;
    let (count, has_ca) = match written {
        Ok(done) => done,
        Err(e) => {
            remove_if_there(&temp)?;
            return Err(e.context(format!("writing {}", args.file.display())));
        }
    };
    fs::rename(&temp, &args.file).with_context(|| format!("replacing {}", args.file.display()))?;
    match globals.output {
        Output::Json => print_json(&Summary {
            file: &args.file,
            secrets: count,
            database,
            ca_certificate: has_ca,
        })?,
        Output::Text => {
            println!(
                "Backup written to {}: {count} secret files{}{}.",
                args.file.display(),
                if database { ", the database" } else { "" },
                if has_ca { ", the CA certificate" } else { "" },
            );
            println!(
                "The master key is not in it: keep a copy of {} apart from the archive.",
                key_file.display()
            );
        }
    }
    Ok(())
}

/// Runs `vigocli restore`.
pub(crate) async fn restore(args: &RestoreArgs, globals: &Globals) -> anyhow::Result<()> {
    let raw = backend::load_config(&globals.config)?;
    let Some((key_file, secrets_dir)) = backend::local_store(&raw) else {
        bail!("the secrets backend is isopass; restore needs the local backend");
    };
    if !key_file.exists() {
        return Err(anyhow::anyhow!(
            "master key {} does not exist",
            key_file.display()
        ))
        .hint("copy the master key from its own backup to key_file (mode 0600) first; the archive does not hold it");
    }
    let db_file = raw.data_dir.join(DB_NAME);
    if LocalProvider::holds_secrets(secrets_dir)? || db_file.exists() {
        return Err(anyhow::anyhow!(
            "{} is not empty (it holds secrets or {DB_NAME})",
            raw.data_dir.display()
        ))
        .hint("restore into a new, empty data folder");
    }
    let input =
        File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let decryptor = age::Decryptor::new(BufReader::new(input))
        .with_context(|| format!("{} is not a Vigo backup (age) archive", args.file.display()))?;
    let reader: Box<dyn Read> = if decryptor.is_scrypt() {
        let identity =
            age::scrypt::Identity::new(passphrase(args.passphrase_file.as_deref(), false)?);
        Box::new(
            decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .context("decrypting the archive (wrong passphrase?)")?,
        )
    } else {
        let Some(identity_file) = &args.identity_file else {
            bail!("the archive is encrypted to a recipient; pass --identity-file");
        };
        let identities = age::IdentityFile::from_file(identity_file.display().to_string())
            .with_context(|| format!("reading {}", identity_file.display()))?
            .into_identities()
            .with_context(|| format!("reading {}", identity_file.display()))?;
        Box::new(
            decryptor
                .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .context("decrypting the archive (wrong identity?)")?,
        )
    };
    make_dir(&raw.data_dir)?;
    let mut archive = tar::Archive::new(reader);
    let (mut secrets, mut database, mut ca, mut manifest) = (0, false, false, None);
    let db_temp = with_suffix(&db_file, ".restoring");
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if name
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            bail!("the archive holds an unsafe path {}", name.display());
        }
        if name == Path::new(MANIFEST) {
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            let found: Manifest =
                serde_json::from_slice(&text).context("reading the archive's manifest")?;
            if found.format != FORMAT {
                bail!(
                    "the archive has format {}, this vigocli reads {FORMAT}",
                    found.format
                );
            }
            manifest = Some(found);
        } else if let Ok(rel) = name.strip_prefix(SECRETS) {
            let dest = secrets_dir.join(rel);
            if let Some(parent) = dest.parent() {
                make_dir(parent)?;
            }
            write_entry(&mut entry, &dest, 0o600)?;
            secrets += 1;
        } else if name == Path::new(DB_NAME) {
            write_entry(&mut entry, &db_temp, 0o600)?;
            database = true;
        } else if name == Path::new(CA_NAME) {
            write_entry(&mut entry, &raw.data_dir.join(CA_NAME), 0o644)?;
            ca = true;
        }
    }
    if manifest.is_none() {
        bail!("{} holds no Vigo backup manifest", args.file.display());
    }
    if database {
        fs::rename(&db_temp, &db_file).with_context(|| format!("placing {}", db_file.display()))?;
        move_dsn(&globals.config, &raw.database_dsn, &db_file).await?;
    }
    match globals.output {
        Output::Json => print_json(&Summary {
            file: &args.file,
            secrets,
            database,
            ca_certificate: ca,
        })?,
        Output::Text => println!(
            "Restored {secrets} secret files{}{} into {}. Start vigosrv.",
            if database { ", the database" } else { "" },
            if ca { ", the CA certificate" } else { "" },
            raw.data_dir.display()
        ),
    }
    Ok(())
}

/// Points the embedded database's DSN at `db_file` when the backup came
/// from another data folder (the key in it is kept).
async fn move_dsn(
    config: &Path,
    reference: &vigo_secrets::SecretRef,
    db_file: &Path,
) -> anyhow::Result<()> {
    let Backend { provider, .. } = backend::open(config)?;
    let path = reference.path();
    let dsn = provider
        .get(path)
        .await
        .with_context(|| format!("resolving secret '{path}' from the restored secrets (is key_file the right master key?)"))?
        .value;
    if vigo_store::embedded_db_file(&dsn)?.as_deref() == Some(db_file) {
        return Ok(());
    }
    let Some(at) = dsn.expose_secret().find('?') else {
        bail!("secret '{path}' is not an embedded database DSN with a key");
    };
    let moved = Zeroizing::new(format!(
        "sqlite://{}{}",
        db_file.display(),
        &dsn.expose_secret()[at..]
    ));
    provider
        .set(path, &SecretValue::new(moved.to_string()))
        .await
        .with_context(|| format!("updating secret '{path}' to the new database path"))?;
    Ok(())
}

/// A passphrase from `file` (`-`: stdin) or the terminal (asked twice when
/// `confirm`).
fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<SecretString> {
    let mut text = Zeroizing::new(String::new());
    match file {
        Some(p) if p == Path::new("-") => {
            io::stdin()
                .read_to_string(&mut text)
                .context("reading the passphrase from stdin")?;
        }
        Some(p) => {
            File::open(p)
                .and_then(|mut f| f.read_to_string(&mut text))
                .with_context(|| format!("reading the passphrase from {}", p.display()))?;
        }
        None => {
            if !io::stdin().is_terminal() {
                return Err(anyhow::anyhow!("no passphrase: stdin is not a terminal"))
                    .hint("pass --passphrase-file PATH (or - for stdin), or --recipient");
            }
            *text = rpassword::prompt_password("Backup passphrase (not echoed): ")?;
            if confirm {
                let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
                if *again != *text {
                    bail!("the two passphrases differ");
                }
            }
        }
    }
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Every secret file (not the lock, not temporary files), sorted.
fn secret_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && d == dir => break,
            Err(e) => return Err(e).with_context(|| format!("listing {}", d.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name == ".lock" {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)?;
    Ok(())
}

fn write_entry(entry: &mut impl Read, dest: &Path, mode: u32) -> anyhow::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    io::copy(entry, &mut out).with_context(|| format!("writing {}", dest.display()))?;
    out.set_permissions(fs::Permissions::from_mode(mode))?;
    out.sync_all()?;
    Ok(())
}

fn make_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_there(file: &Path) -> anyhow::Result<()> {
    match fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", file.display())),
    }
}

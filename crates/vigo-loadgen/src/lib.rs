//! `vigo-loadgen`: measures how many "unchanged" check-ins a running
//! `vigosrv` answers per second, and how fast.
//!
//! 1. Enrolls `--envoys` envoys through the public API, with one-time tokens
//!    it asks the admin API for (bearer token from `--admin-token-file`),
//!    `--concurrency` at a time. Keys and certificates are cached in
//!    `--cache-dir`, so later runs against the same server skip this.
//! 2. Checks every envoy in once to learn its catalog fingerprint.
//! 3. For `--duration`, `--concurrency` workers send check-ins carrying the
//!    right fingerprint (each envoy on its own mutual-TLS connection, kept
//!    alive, as real envoys do) and record each latency.
//!
//! It prints the enrollment time, check-ins per second, the latency
//! percentiles, and how many answers were not "unchanged" or failed.
//!
//! Never point it at a production server: the envoys it enrolls stay in the
//! database until revoked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use vigo_pki::CertifiedKey;
use vigo_proto::admin::NewToken;
use vigo_proto::{CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse};
use vigo_secrets::SecretValue;

/// Load generator for a running vigosrv.
#[derive(Debug, Parser)]
#[command(name = "vigo-loadgen", version, about)]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "https://localhost:8443")]
    server: String,
    /// The server's CA certificate (`<data_dir>/ca.crt`).
    #[arg(long)]
    ca: PathBuf,
    /// A file holding the admin token (`vigocli secrets get
    /// vigo/server/admin_token > FILE`); needed only to enroll new envoys.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Where envoy keys and certificates are kept between runs.
    #[arg(long, default_value = "loadgen-envoys")]
    cache_dir: PathBuf,
    /// Number of envoys.
    #[arg(long, default_value_t = 1000)]
    envoys: usize,
    /// Envoy names are `<prefix>-<n>.<domain>`.
    #[arg(long, default_value = "web-load")]
    prefix: String,
    /// Domain of the envoy names.
    #[arg(long, default_value = "example.com")]
    domain: String,
    /// Concurrent requests (enrollment and check-ins).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to send check-ins.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

/// One envoy of the run.
struct LoadEnvoy {
    name: String,
    client: reqwest::Client,
    fingerprint: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("reading {}", args.ca.display()))?;
    let base = args.server.trim_end_matches('/').to_owned();
    std::fs::create_dir_all(&args.cache_dir)
        .with_context(|| format!("creating {}", args.cache_dir.display()))?;

    let names: Vec<String> = (0..args.envoys)
        .map(|i| format!("{}-{i:05}.{}", args.prefix, args.domain))
        .collect();
    let started = Instant::now();
    let enrolled = enroll_all(&args, &base, &ca, &names).await?;
    println!(
        "enrolled {} envoys ({} new) in {:.1}s",
        enrolled.len(),
        enrolled.iter().filter(|(_, new)| *new).count(),
        started.elapsed().as_secs_f64()
    );

    // First check-in: learn each fingerprint (and let the server compile).
    let started = Instant::now();
    let mut envoys = Vec::with_capacity(enrolled.len());
    for (identity, _) in enrolled {
        envoys.push(identity);
    }
    let envoys = first_checkins(&base, envoys, args.concurrency).await?;
    println!(
        "first check-in of {} envoys in {:.1}s",
        envoys.len(),
        started.elapsed().as_secs_f64()
    );

    let envoys = Arc::new(envoys);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let not_unchanged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    let started = Instant::now();
    for _ in 0..args.concurrency {
        let envoys = Arc::clone(&envoys);
        let stop = Arc::clone(&stop);
        let next = Arc::clone(&next);
        let not_unchanged = Arc::clone(&not_unchanged);
        let failed = Arc::clone(&failed);
        let base = base.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let envoy = &envoys[next.fetch_add(1, Ordering::Relaxed) % envoys.len()];
                let sent = Instant::now();
                match checkin(&base, envoy).await {
                    Ok(CheckinResponse::Unchanged { .. }) => {}
                    Ok(CheckinResponse::Catalog { .. }) => {
                        not_unchanged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let count = latencies.len();
    if count == 0 {
        bail!("no check-in completed");
    }
    let pct = |p: f64| {
        // Rounding a percentile index; the product is within 0..count.
        let i = ((count as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{count} check-ins in {:.1}s with {} concurrent requests over {} envoys: {rate:.0} check-ins/s",
        elapsed.as_secs_f64(),
        args.concurrency,
        envoys.len()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "answers other than unchanged: {}  failed: {}",
        not_unchanged.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn checkin(base: &str, envoy: &LoadEnvoy) -> anyhow::Result<CheckinResponse> {
    let request = CheckinRequest {
        fingerprint: envoy.fingerprint.clone(),
        facts: serde_json::Map::new(),
        ..CheckinRequest::default()
    };
    let response = envoy
        .client
        .post(format!("{base}/v1/checkin"))
        .json(&request)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("check-in of {} answered {}", envoy.name, response.status());
    }
    Ok(response.json().await?)
}

async fn first_checkins(
    base: &str,
    envoys: Vec<LoadEnvoy>,
    concurrency: usize,
) -> anyhow::Result<Vec<LoadEnvoy>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for mut envoy in envoys {
        let semaphore = Arc::clone(&semaphore);
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await?;
            match checkin(&base, &envoy).await? {
                CheckinResponse::Catalog { fingerprint, .. } => {
                    envoy.fingerprint = Some(fingerprint)
                }
                CheckinResponse::Unchanged { .. } => {}
            }
            anyhow::Ok(envoy)
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}

/// Loads or enrolls every envoy; the flag says whether it was new.
async fn enroll_all(
    args: &Args,
    base: &str,
    ca: &str,
    names: &[String],
) -> anyhow::Result<Vec<(LoadEnvoy, bool)>> {
    let admin = match &args.admin_token_file {
        Some(file) => Some(Arc::new(SecretValue::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim()
                .to_owned(),
        ))),
        None => None,
    };
    let anonymous = http_client(ca, None)?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::new();
    for name in names {
        let semaphore = Arc::clone(&semaphore);
        let dir = args.cache_dir.join(name);
        let name = name.clone();
        let base = base.to_owned();
        let ca = ca.to_owned();
        let admin = admin.clone();
        let anonymous = anonymous.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await?;
            let (identity, new) = match load_cached(&dir)? {
                Some(identity) => (identity, false),
                None => {
                    let Some(admin) = admin else {
                        bail!("{name} is not enrolled yet: pass --admin-token-file");
                    };
                    let identity = enroll(&base, &anonymous, &admin, &name).await?;
                    save_cached(&dir, &identity)?;
                    (identity, true)
                }
            };
            let client = http_client(&ca, Some(&identity))?;
            anyhow::Ok((
                LoadEnvoy {
                    name,
                    client,
                    fingerprint: None,
                },
                new,
            ))
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}

async fn enroll(
    base: &str,
    http: &reqwest::Client,
    admin: &SecretValue,
    name: &str,
) -> anyhow::Result<CertifiedKey> {
    let token: NewToken = http
        .post(format!("{base}/v1/admin/envoys/token"))
        .bearer_auth(admin.expose_secret())
        .json(&serde_json::json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let (key_pem, csr_pem) =
        vigo_pki::generate_envoy_key_and_csr(&vigo_secrets::EnvoyName::parse(name)?)?;
    let request = EnrollRequest {
        name: name.to_owned(),
        csr_pem,
        token: Some(token.token),
    };
    let response = http
        .post(format!("{base}/v1/enroll"))
        .json(&request)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "enrolling {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    match response.json().await? {
        EnrollResponse::Approved { cert_pem } => Ok(CertifiedKey { cert_pem, key_pem }),
        EnrollResponse::Pending => bail!("enrolling {name}: the server left it pending"),
    }
}

fn load_cached(dir: &Path) -> anyhow::Result<Option<CertifiedKey>> {
    let cert = dir.join("envoy.crt");
    let key = dir.join("envoy.key");
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    Ok(Some(CertifiedKey {
        cert_pem: std::fs::read_to_string(&cert)?,
        key_pem: SecretValue::new(std::fs::read_to_string(&key)?),
    }))
}

fn save_cached(dir: &Path, identity: &CertifiedKey) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("envoy.key"))?;
    key.write_all(identity.key_pem.expose_secret().as_bytes())?;
    std::fs::write(dir.join("envoy.crt"), &identity.cert_pem)?;
    Ok(())
}

fn http_client(ca: &str, identity: Option<&CertifiedKey>) -> anyhow::Result<reqwest::Client> {
    let tls = vigo_pki::client_tls_config(ca, identity)?;
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build()?)
}

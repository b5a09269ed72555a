//! `vigo-loadgen` (the library behind the binary): drives a running `vigosrv` with many simulated envoys
//! and measures it.
//!
//! 1. Enrolls `--envoys` envoys through the public API, with one-time tokens
//!    it asks the admin API for (bearer token from `--admin-token-file`),
//!    `--concurrency` at a time. Keys and certificates are cached in
//!    `--cache-dir`, so later runs against the same server skip this.
//!    The first `--fanout-envoys` of them are named `<fanout-prefix>-<n>`,
//!    the others `<prefix>-<n>` (so a config repository can give only the
//!    first ones a secret).
//! 2. Checks every envoy in once to learn its catalog fingerprint.
//! 3. With `--hold-waits`, every envoy holds `GET /v1/wait` on a mutual-TLS
//!    connection of its own, re-opened whenever it is answered; an answer
//!    "check in now" makes the envoy check in, receive its catalog and
//!    report the triggered resources applied, as a real envoy does.
//! 4. Then one of three modes (`--mode`):
//!    - `burst`: for `--duration`, `--concurrency` workers send unchanged
//!      check-ins as fast as the server answers (each envoy on its own
//!      kept-alive connection); prints the rate and latency percentiles;
//!    - `steady`: for `--duration`, every envoy checks in once per
//!      `--interval` (±10 % jitter, first one at a random point of the
//!      interval), the real schedule; prints the rate and latencies;
//!    - `fanout`: needs `--hold-waits`; `--rounds` times, sets
//!      `--fanout-secret` to a new random value with `vigocli --config
//!      <server-config> secrets set PATH -` and measures, per fan-out envoy,
//!      the time from that command returning to the envoy having received
//!      its new catalog (wait answered, check-in answered with the catalog,
//!      report sent); prints p50/p99/max over the envoys.
//!
//! Connections: each envoy has one for check-ins and, with `--hold-waits`,
//! one for its wait. One source address gives about 28,000 connections to
//! one server address (the ephemeral port range), so beyond 25,000 client
//! sockets to a loopback server they are spread over 127.0.0.1,
//! 127.0.0.2, ... (`--source-addresses`, automatic by default). The
//! process raises its open-file limit (`RLIMIT_NOFILE`) to the hard limit
//! at start; raise the hard limit (`ulimit -Hn`, `LimitNOFILE`) for big
//! runs.
//!
//! Never point it at a production server: the envoys it enrolls stay in the
//! database until revoked.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use vigo_pki::CertifiedKey;
use vigo_proto::admin::NewToken;
use vigo_proto::{
    CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse, Report, ReportRequest, Summary,
    WaitResponse,
};
use vigo_secrets::SecretValue;

/// Client sockets per source address before the next one is used.
const SOCKETS_PER_SOURCE: usize = 25_000;

/// How long a request may take (a held wait is answered within 55 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Load generator for a running vigosrv.
#[derive(Debug, Parser)]
#[command(name = "vigo-loadgen", version, about)]
pub struct Args {
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
    /// Concurrent requests (enrollment, first check-ins, opening waits,
    /// and the workers of `burst`).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Burst)]
    mode: Mode,
    /// How long to send check-ins (`burst`, `steady`; with `--mode fanout`
    /// unused).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Every envoy keeps a wait open on its own connection.
    #[arg(long)]
    hold_waits: bool,
    /// Check-in interval of `steady`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How many of the envoys are named `<fanout-prefix>-<n>` (the ones
    /// whose catalog uses `--fanout-secret`).
    #[arg(long, default_value_t = 0)]
    fanout_envoys: usize,
    /// Name prefix of the fan-out envoys.
    #[arg(long, default_value = "fan-load")]
    fanout_prefix: String,
    /// The secret `fanout` sets.
    #[arg(long, default_value = "load/fanout")]
    fanout_secret: String,
    /// The server's `vigosrv.yaml`, for `vigocli --config`.
    #[arg(long)]
    server_config: Option<PathBuf>,
    /// The `vigocli` binary.
    #[arg(long, default_value = "vigocli")]
    vigocli: PathBuf,
    /// Rotations in `fanout`.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// How long a rotation may take to reach every fan-out envoy before the
    /// stragglers are counted as missing.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    fanout_timeout: Duration,
    /// Source addresses to spread client sockets over (127.0.0.1,
    /// 127.0.0.2, ...); 0: one per 25,000 sockets when the server is on
    /// loopback, else the system's choice.
    #[arg(long, default_value_t = 0)]
    source_addresses: usize,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Unchanged check-ins as fast as possible.
    Burst,
    /// Each envoy checks in once per `--interval`.
    Steady,
    /// Rotate a secret used by the fan-out envoys and time its delivery.
    Fanout,
}

/// One envoy of the run.
struct LoadEnvoy {
    name: String,
    /// Check-ins and reports.
    client: reqwest::Client,
    /// Its held wait, on a connection of its own.
    wait_client: reqwest::Client,
    fingerprint: Mutex<Option<String>>,
}

/// Counters shared by every task.
#[derive(Default)]
struct Counters {
    not_unchanged: AtomicU64,
    failed: AtomicU64,
    waits_open: AtomicUsize,
    waits_answered: AtomicU64,
    woken: AtomicU64,
    wait_errors: AtomicU64,
}

/// A catalog an envoy received after a wake-up: which envoy, when.
type Delivery = (usize, Instant);

/// What a run measured, beyond what it printed.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Check-ins answered in `burst` or `steady`.
    pub checkins: usize,
    /// Answers other than "unchanged" to those check-ins.
    pub not_unchanged: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Waits answered (`--hold-waits`).
    pub waits_answered: u64,
    /// Of those, "check in now".
    pub woken: u64,
    /// Wait requests that failed.
    pub wait_errors: u64,
    /// `fanout`: per round, the fan-out envoys the new catalog reached.
    pub fanout_reached: Vec<usize>,
    /// `fanout`: every delivery time, sorted.
    pub fanout_latencies: Vec<Duration>,
}

/// Parses `std::env::args`, raises the open-file limit and runs.
pub fn main_with_args<I, T>(args: I) -> anyhow::Result<Outcome>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = Args::try_parse_from(args)?;
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => println!("open-file limit raised from {soft} to {hard}"),
            Err(e) => eprintln!("warning: cannot raise the open-file limit ({soft}): {e}"),
        },
        Ok((soft, _)) => println!("open-file limit {soft}"),
        Err(e) => eprintln!("warning: cannot read the open-file limit: {e}"),
    }
}

/// Enrolls, checks in, holds waits and measures as `args` say.
pub async fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.mode == Mode::Fanout {
        if !args.hold_waits {
            bail!(
                "--mode fanout needs --hold-waits: the rotation reaches envoys through their waits"
            );
        }
        if args.fanout_envoys == 0 || args.fanout_envoys > args.envoys {
            bail!("--mode fanout needs --fanout-envoys between 1 and --envoys");
        }
        if args.server_config.is_none() {
            bail!(
                "--mode fanout needs --server-config (the vigosrv.yaml vigocli sets the secret with)"
            );
        }
    }
    let ca = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("reading {}", args.ca.display()))?;
    let base = args.server.trim_end_matches('/').to_owned();
    std::fs::create_dir_all(&args.cache_dir)
        .with_context(|| format!("creating {}", args.cache_dir.display()))?;

    let names: Vec<String> = (0..args.envoys)
        .map(|i| {
            let prefix = if i < args.fanout_envoys {
                &args.fanout_prefix
            } else {
                &args.prefix
            };
            format!("{prefix}-{i:05}.{}", args.domain)
        })
        .collect();
    let sockets = args.envoys * if args.hold_waits { 2 } else { 1 };
    let sources = source_addresses(&args, sockets);
    if sources.len() > 1 {
        println!(
            "spreading {sockets} client sockets over {} source addresses",
            sources.len()
        );
    }
    let started = Instant::now();
    let enrolled = enroll_all(&args, &base, &ca, &names, &sources).await?;
    println!(
        "enrolled {} envoys ({} new) in {:.1}s",
        enrolled.len(),
        enrolled.iter().filter(|(_, new)| *new).count(),
        started.elapsed().as_secs_f64()
    );

    // First check-in: learn each fingerprint (and let the server compile).
    let started = Instant::now();
    let envoys: Vec<Arc<LoadEnvoy>> = enrolled.into_iter().map(|(e, _)| Arc::new(e)).collect();
    first_checkins(&base, &envoys, args.concurrency).await?;
    println!(
        "first check-in of {} envoys in {:.1}s",
        envoys.len(),
        started.elapsed().as_secs_f64()
    );
    let envoys = Arc::new(envoys);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (deliveries_tx, deliveries) = tokio::sync::mpsc::unbounded_channel::<Delivery>();

    let mut wait_tasks = Vec::new();
    if args.hold_waits {
        let started = Instant::now();
        let opening = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
        for index in 0..envoys.len() {
            wait_tasks.push(tokio::spawn(hold_waits(
                base.clone(),
                Arc::clone(&envoys),
                index,
                Arc::clone(&counters),
                Arc::clone(&stop),
                Arc::clone(&opening),
                deliveries_tx.clone(),
            )));
        }
        while counters.waits_open.load(Ordering::Relaxed) < envoys.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "{} envoys hold a wait ({:.1}s to open them)",
            envoys.len(),
            started.elapsed().as_secs_f64()
        );
        // Let the last requests reach the server before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop(deliveries_tx);

    let mut outcome = Outcome::default();
    match args.mode {
        Mode::Burst => outcome.checkins = burst(&args, &base, &envoys, &counters).await?,
        Mode::Steady => outcome.checkins = steady(&args, &base, &envoys, &counters).await?,
        Mode::Fanout => {
            (outcome.fanout_reached, outcome.fanout_latencies) =
                fanout(&args, &envoys, deliveries).await?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in wait_tasks {
        task.abort();
    }
    println!(
        "answers other than unchanged: {}  failed: {}",
        counters.not_unchanged.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed)
    );
    if args.hold_waits {
        println!(
            "waits answered: {}  of which \"check in now\": {}  wait errors: {}",
            counters.waits_answered.load(Ordering::Relaxed),
            counters.woken.load(Ordering::Relaxed),
            counters.wait_errors.load(Ordering::Relaxed)
        );
    }
    outcome.not_unchanged = counters.not_unchanged.load(Ordering::Relaxed);
    outcome.failed = counters.failed.load(Ordering::Relaxed);
    outcome.waits_answered = counters.waits_answered.load(Ordering::Relaxed);
    outcome.woken = counters.woken.load(Ordering::Relaxed);
    outcome.wait_errors = counters.wait_errors.load(Ordering::Relaxed);
    Ok(outcome)
}

/// The source addresses client sockets are spread over (empty: the
/// system's choice).
fn source_addresses(args: &Args, sockets: usize) -> Vec<IpAddr> {
    let count = if args.source_addresses > 0 {
        args.source_addresses
    } else if server_is_loopback(&args.server) {
        sockets.div_ceil(SOCKETS_PER_SOURCE)
    } else {
        1
    };
    if count <= 1 {
        return Vec::new();
    }
    (0..count.min(250))
        .map(|i| {
            let last = u8::try_from(i + 1).unwrap_or(u8::MAX);
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
        })
        .collect()
}

fn server_is_loopback(server: &str) -> bool {
    let host = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost" || host.starts_with("127.")
}

/// `burst`: unchanged check-ins as fast as possible.
async fn burst(
    args: &Args,
    base: &str,
    envoys: &Arc<Vec<Arc<LoadEnvoy>>>,
    counters: &Arc<Counters>,
) -> anyhow::Result<usize> {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    let started = Instant::now();
    for _ in 0..args.concurrency {
        let envoys = Arc::clone(envoys);
        let stop = Arc::clone(&stop);
        let next = Arc::clone(&next);
        let counters = Arc::clone(counters);
        let base = base.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let envoy = &envoys[next.fetch_add(1, Ordering::Relaxed) % envoys.len()];
                let sent = Instant::now();
                unchanged_checkin(&base, envoy, &counters).await;
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
    print_rate(
        &format!(
            "with {} concurrent requests over {} envoys",
            args.concurrency,
            envoys.len()
        ),
        started.elapsed(),
        latencies,
    )
}

/// `steady`: each envoy checks in once per `--interval`, with jitter.
async fn steady(
    args: &Args,
    base: &str,
    envoys: &Arc<Vec<Arc<LoadEnvoy>>>,
    counters: &Arc<Counters>,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let end = tokio::time::Instant::now() + args.duration;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let mut rng = Rng::from_clock();
    for envoy in envoys.iter() {
        let envoy = Arc::clone(envoy);
        let counters = Arc::clone(counters);
        let latencies = Arc::clone(&latencies);
        let base = base.to_owned();
        let interval = args.interval;
        let first = interval.mul_f64(rng.unit());
        let mut rng = Rng(rng.next() | 1);
        tasks.push(tokio::spawn(async move {
            let mut at = tokio::time::Instant::now() + first;
            while at < end {
                tokio::time::sleep_until(at).await;
                let sent = Instant::now();
                unchanged_checkin(&base, &envoy, &counters).await;
                lock(&latencies).push(sent.elapsed());
                at += interval.mul_f64(0.9 + 0.2 * rng.unit());
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let latencies = std::mem::take(&mut *lock(&latencies));
    print_rate(
        &format!(
            "from {} envoys each checking in every {} (±10 %)",
            envoys.len(),
            humantime::format_duration(args.interval)
        ),
        started.elapsed(),
        latencies,
    )
}

/// `fanout`: rotations of a secret used by the fan-out envoys.
async fn fanout(
    args: &Args,
    envoys: &Arc<Vec<Arc<LoadEnvoy>>>,
    mut deliveries: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
) -> anyhow::Result<(Vec<usize>, Vec<Duration>)> {
    let k = args.fanout_envoys;
    let config = args
        .server_config
        .as_deref()
        .context("--server-config is required")?;
    let mut rng = Rng::from_clock();
    let mut all = Vec::new();
    let mut reached_per_round = Vec::new();
    for round in 1..=args.rounds {
        // Deliveries left over from anything before this round.
        while deliveries.try_recv().is_ok() {}
        let value = SecretValue::new(format!("loadgen-{:016x}", rng.next()));
        let set = tokio::process::Command::new(&args.vigocli)
            .arg("--config")
            .arg(config)
            .args(["secrets", "set", &args.fanout_secret, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", args.vigocli.display()))?;
        let output = feed_and_wait(set, &value).await?;
        let returned = Instant::now();
        if !output.status.success() {
            bail!(
                "vigocli secrets set {} failed: {}",
                args.fanout_secret,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut reached = vec![None; k];
        let mut count = 0;
        let mut others = 0;
        let deadline = tokio::time::Instant::now() + args.fanout_timeout;
        while count < k {
            match tokio::time::timeout_at(deadline, deliveries.recv()).await {
                Ok(Some((index, at))) if index < k => {
                    if reached[index].is_none() {
                        reached[index] = Some(at.saturating_duration_since(returned));
                        count += 1;
                    }
                }
                Ok(Some(_)) => others += 1,
                Ok(None) | Err(_) => break,
            }
        }
        reached_per_round.push(count);
        let mut latencies: Vec<Duration> = reached.iter().flatten().copied().collect();
        latencies.sort();
        if latencies.is_empty() {
            println!("round {round}: the rotation reached none of the {k} envoys");
            continue;
        }
        println!(
            "round {round}: new catalog at {count} of {k} envoys (of {} connected; {others} others woken): p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            envoys.len(),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 1.0)),
        );
        all.extend(latencies);
    }
    all.sort();
    if all.is_empty() {
        bail!("no rotation reached any envoy");
    }
    println!(
        "fan-out over {} rounds of {k} envoys: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms (from `secrets set` returning to the catalog received)",
        args.rounds,
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&all, 1.0)),
    );
    Ok((reached_per_round, all))
}

async fn feed_and_wait(
    mut child: tokio::process::Child,
    value: &SecretValue,
) -> anyhow::Result<std::process::Output> {
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().context("vigocli stdin")?;
    stdin.write_all(value.expose_secret().as_bytes()).await?;
    drop(stdin);
    Ok(child.wait_with_output().await?)
}

/// Holds envoy `index`'s wait, re-opening it when answered; after "check
/// in now", checks in, reports, and records the delivery.
async fn hold_waits(
    base: String,
    envoys: Arc<Vec<Arc<LoadEnvoy>>>,
    index: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    opening: Arc<tokio::sync::Semaphore>,
    deliveries: tokio::sync::mpsc::UnboundedSender<Delivery>,
) {
    let envoy = &envoys[index];
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let request = envoy.wait_client.get(format!("{base}/v1/wait")).send();
        let answer = if first {
            // The first requests open the connections: a bounded number at
            // once.
            let permit = opening.acquire().await;
            let pending = tokio::spawn(request);
            // Counted as open once the request is on its way.
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(permit);
            counters.waits_open.fetch_add(1, Ordering::Relaxed);
            first = false;
            pending
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r.map_err(anyhow::Error::from))
        } else {
            request.await.map_err(anyhow::Error::from)
        };
        let answer = match answer {
            Ok(response) if response.status().is_success() => response
                .json::<WaitResponse>()
                .await
                .map_err(|e| format!("reading the answer: {e}")),
            Ok(response) => Err(format!("status {}", response.status())),
            Err(e) => Err(format!("{e:#}")),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(why) => {
                if counters.wait_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("first wait error ({}): {why}", envoy.name);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        counters.waits_answered.fetch_add(1, Ordering::Relaxed);
        if answer.checkin_now {
            counters.woken.fetch_add(1, Ordering::Relaxed);
            match catalog_checkin(&base, envoy).await {
                Ok(true) => {
                    let _ = deliveries.send((index, Instant::now()));
                }
                Ok(false) => {}
                Err(_) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A check-in after a wake-up: takes the catalog, reports its triggered
/// resources applied. Returns whether a catalog came.
async fn catalog_checkin(base: &str, envoy: &LoadEnvoy) -> anyhow::Result<bool> {
    let CheckinResponse::Catalog {
        fingerprint,
        catalog,
        ..
    } = checkin(base, envoy).await?
    else {
        return Ok(false);
    };
    *lock(&envoy.fingerprint) = Some(fingerprint.clone());
    let applied: Vec<String> = catalog
        .resources
        .iter()
        .filter(|r| r.secret_triggered)
        .map(|r| r.name.clone())
        .collect();
    if applied.is_empty() {
        // Nothing to clear: a real envoy's report would change nothing
        // the server acts on.
        return Ok(true);
    }
    let report = ReportRequest {
        fingerprint,
        report: Report {
            envoy: envoy.name.clone(),
            noop: false,
            resources: Vec::new(),
            summary: Summary::default(),
            secret_triggered_applied: applied,
            duration_ms: 0,
        },
        run_request: None,
    };
    let response = envoy
        .client
        .post(format!("{base}/v1/report"))
        .json(&report)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("report of {} answered {}", envoy.name, response.status());
    }
    Ok(true)
}

/// One check-in expected to be unchanged; counts anything else.
async fn unchanged_checkin(base: &str, envoy: &LoadEnvoy, counters: &Counters) {
    match checkin(base, envoy).await {
        Ok(CheckinResponse::Unchanged { .. }) => {}
        Ok(CheckinResponse::Catalog { fingerprint, .. }) => {
            *lock(&envoy.fingerprint) = Some(fingerprint);
            counters.not_unchanged.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn print_rate(
    what: &str,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) -> anyhow::Result<usize> {
    latencies.sort();
    let count = latencies.len();
    if count == 0 {
        bail!("no check-in completed");
    }
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{count} check-ins in {:.1}s {what}: {rate:.0} check-ins/s",
        elapsed.as_secs_f64()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    Ok(count)
}

/// The `p` percentile of sorted, non-empty `values` (nearest rank).
fn percentile(values: &[Duration], p: f64) -> Duration {
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[i.min(values.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small xorshift generator for jitter and secret values.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn checkin(base: &str, envoy: &LoadEnvoy) -> anyhow::Result<CheckinResponse> {
    let request = CheckinRequest {
        fingerprint: lock(&envoy.fingerprint).clone(),
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
    envoys: &[Arc<LoadEnvoy>],
    concurrency: usize,
) -> anyhow::Result<()> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for envoy in envoys {
        let semaphore = Arc::clone(&semaphore);
        let base = base.to_owned();
        let envoy = Arc::clone(envoy);
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await?;
            // Answered with the catalog (which also clears a force-push
            // left from an earlier run) and its fingerprint.
            catalog_checkin(&base, &envoy).await?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Loads or enrolls every envoy; the flag says whether it was new.
async fn enroll_all(
    args: &Args,
    base: &str,
    ca: &str,
    names: &[String],
    sources: &[IpAddr],
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
    let anonymous = http_client(ca, None, None)?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let semaphore = Arc::clone(&semaphore);
        let dir = args.cache_dir.join(name);
        let name = name.clone();
        let base = base.to_owned();
        let ca = ca.to_owned();
        let admin = admin.clone();
        let anonymous = anonymous.clone();
        let source = (!sources.is_empty()).then(|| sources[index % sources.len()]);
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
            let client = http_client(&ca, Some(&identity), source)?;
            let wait_client = http_client(&ca, Some(&identity), source)?;
            anyhow::Ok((
                LoadEnvoy {
                    name,
                    client,
                    wait_client,
                    fingerprint: Mutex::new(None),
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

fn http_client(
    ca: &str,
    identity: Option<&CertifiedKey>,
    source: Option<IpAddr>,
) -> anyhow::Result<reqwest::Client> {
    let tls = vigo_pki::client_tls_config(ca, identity)?;
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1);
    if let Some(source) = source {
        builder = builder.local_address(source);
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_recognised() {
        assert!(server_is_loopback("https://localhost:8443"));
        assert!(server_is_loopback("https://127.0.0.1:8443/"));
        assert!(!server_is_loopback("https://vigo.example.com:8443"));
    }

    #[test]
    fn sockets_are_spread_over_loopback_sources_beyond_the_port_range() {
        let args = Args::parse_from([
            "vigo-loadgen",
            "--ca",
            "ca.crt",
            "--server",
            "https://localhost:1",
        ]);
        assert!(source_addresses(&args, 20_000).is_empty());
        let sources = source_addresses(&args, 60_000);
        assert_eq!(
            sources,
            vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            ]
        );
        let remote = Args::parse_from([
            "vigo-loadgen",
            "--ca",
            "ca.crt",
            "--server",
            "https://vigo.example.com",
        ]);
        assert!(source_addresses(&remote, 60_000).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
    }
}

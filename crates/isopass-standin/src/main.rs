//! `isopass-standin`: runs the development stand-in for the isopass secrets
//! API until interrupted. Not a product: see the library's documentation.
//!
//! The first line on stdout is `listening on <addr>`, so scripts and tests
//! that ask for port 0 can read the port. Errors go to stderr as
//! `error: ...` with exit status 1. Nothing else is printed: no request,
//! path or value is ever logged.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use isopass_standin::{StandinOptions, Transport, read_token_file, spawn};

/// DEVELOPMENT STAND-IN for the isopass secrets API, for testing Vigo only.
/// NOT a product: it stores values in plain JSON and offers none of the
/// protection of a real secrets service.
#[derive(Debug, Parser)]
#[command(name = "isopass-standin", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// File holding the bearer token clients must present.
    #[arg(long)]
    token_file: PathBuf,

    /// JSON file that keeps the secrets across restarts (written 0600);
    /// without it they live in memory only.
    #[arg(long)]
    data: Option<PathBuf>,

    /// TLS certificate chain, PEM.
    #[arg(long, requires = "tls_key", conflicts_with = "insecure_loopback")]
    tls_cert: Option<PathBuf>,

    /// TLS private key, PEM.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve plain HTTP (only on a loopback address).
    #[arg(long, required_unless_present = "tls_cert")]
    insecure_loopback: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", vigo_log::error_chain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let transport = match (args.tls_cert, args.tls_key) {
        (Some(cert_file), Some(key_file)) => Transport::Tls {
            cert_file,
            key_file,
        },
        _ => Transport::InsecureLoopback,
    };
    let options = StandinOptions {
        listen: args.listen,
        token: read_token_file(&args.token_file)?,
        transport,
        data_file: args.data,
    };
    let handle = spawn(options).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", handle.addr)?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

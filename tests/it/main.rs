//! Vigo's end-to-end tests: one test binary (as ripgrep does) that runs the
//! real `vigosrv`, `vigocli` and `vigoenvoy`, one module per area, sharing
//! [`support`].
//!
//! Run one area with `cargo test --test it MODULE::`, e.g.
//! `cargo test --test it rotation::`.

mod support;
mod wire;

mod cli_hardening;
mod config_cli;
mod converge_crash;
mod dashboard;
mod deploy;
mod enforcement;
mod engine_hardening;
mod enrollment;
mod envoy_apply;
mod facts;
mod golden;
mod hardening_server;
mod isopass;
mod lifecycle;
mod loadgen_smoke;
mod notify;
mod operator_cli;
mod partial_runs;
mod protocol;
mod replicas;
mod reports;
mod rotation;
mod run_now;
mod secret_owner;
mod secrets_cli;
mod server_start;

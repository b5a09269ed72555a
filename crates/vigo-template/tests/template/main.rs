//! Integration tests for `vigo-template`: every construct against what Go's
//! `text/template` prints, exact error positions and texts, secret pieces and
//! secret hygiene, and property tests. One binary, one module per concern.

mod common;
mod errors;
mod go_compat;
mod props;
mod render;
mod secrets;

//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the
//! SQL files at compile time, and Cargo does not watch them by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

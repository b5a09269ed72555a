//! Local AES-256-GCM backend (SPEC 4.2). Being written.

/// The master key.
#[derive(Debug)]
pub struct MasterKey;

/// Local backend.
#[derive(Debug)]
pub struct LocalProvider;

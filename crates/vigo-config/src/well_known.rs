//! The secrets the server itself owns (docs/secrets.md "First start"): generated on first start
//! with the local backend, or by `vigocli secrets bootstrap`.

use vigo_secrets::SecretPath;

/// The CA certificate (PEM); public, also written to `<data_dir>/ca.crt`.
pub const CA_CERT: &str = "vigo/tls/ca_cert";
/// The CA private key (PEM).
pub const CA_KEY: &str = "vigo/tls/ca_key";
/// The server certificate (PEM), signed by the CA.
pub const SERVER_CERT: &str = "vigo/tls/server_cert";
/// The server private key (PEM).
pub const SERVER_KEY: &str = "vigo/tls/server_key";
/// The embedded database's DSN with its random key.
pub const DB_DSN: &str = "vigo/db/dsn";
/// The bearer token of the admin API (`vigocli` uses it).
pub const ADMIN_TOKEN: &str = "vigo/server/admin_token";
/// The HMAC key of catalog fingerprints.
pub const HMAC_KEY: &str = "vigo/server/hmac_key";

/// Parses one of the constants above.
pub fn path(constant: &str) -> SecretPath {
    match SecretPath::parse(constant) {
        Ok(p) => p,
        // Only the constants of this module are passed in, and the unit test
        // below parses each of them.
        Err(e) => unreachable!("well-known secret path does not parse: {e}"),
    }
}

/// The secrets the server reads besides those its config references.
pub fn server_secrets() -> Vec<SecretPath> {
    [
        CA_CERT,
        CA_KEY,
        SERVER_CERT,
        SERVER_KEY,
        ADMIN_TOKEN,
        HMAC_KEY,
    ]
    .into_iter()
    .map(path)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constant_is_a_valid_path() {
        for c in [
            CA_CERT,
            CA_KEY,
            SERVER_CERT,
            SERVER_KEY,
            DB_DSN,
            ADMIN_TOKEN,
            HMAC_KEY,
        ] {
            assert_eq!(path(c).as_str(), c);
        }
        assert_eq!(server_secrets().len(), 6);
    }
}

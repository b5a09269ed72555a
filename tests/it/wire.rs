//! An envoy as bare wire-protocol calls, for what `vigoenvoy` never sends:
//! another key under a pending name, forged certificates, raw reports.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vigo_pki::CertifiedKey;
use vigo_secrets::SecretValue;

use crate::support::{TestDir, cli_ok};

/// An envoy speaking the wire protocol directly, to try what `vigoenvoy`
/// never would.
#[derive(Clone)]
pub(crate) struct ProtocolEnvoy {
    pub(crate) name: String,
    pub(crate) base: String,
    pub(crate) ca: String,
    pub(crate) key: SecretValue,
    pub(crate) csr: String,
    pub(crate) cert: Option<String>,
}

impl ProtocolEnvoy {
    pub(crate) fn new(dir: &TestDir, name: &str) -> Self {
        let (key, csr) = vigo_secrets::EnvoyName::parse(name)
            .map_err(|_| ())
            .and_then(|name| vigo_pki::generate_envoy_key_and_csr(&name).map_err(|_| ()))
            .unwrap_or_else(|_| (SecretValue::from("none"), "not a request".to_owned()));
        Self {
            name: name.to_owned(),
            base: format!("https://localhost:{}", dir.port),
            ca: std::fs::read_to_string(dir.ca_file()).unwrap(),
            key,
            csr,
            cert: None,
        }
    }

    /// A new envoy enrolled with a one-time token (`vigocli envoys token`),
    /// its certificate signed at once.
    pub(crate) async fn enrolled(dir: &TestDir, name: &str) -> Self {
        let mut envoy = Self::new(dir, name);
        let token = one_time_token(dir);
        let (status, body) = envoy.enroll(Some(&token)).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("approved")),
            "{body}"
        );
        envoy
    }

    pub(crate) fn with_identity(
        dir: &TestDir,
        name: &str,
        key: SecretValue,
        csr: String,
        cert: String,
    ) -> Self {
        Self {
            cert: Some(cert),
            key,
            csr,
            ..Self::new(dir, name)
        }
    }

    /// The same key asking under another name.
    pub(crate) fn with_name(&self, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            cert: None,
            ..self.clone()
        }
    }

    /// The SHA-256 fingerprint of the key, as `vigoenvoy` prints it.
    pub(crate) fn fingerprint(&self) -> String {
        vigo_pki::csr_key_fingerprint(&self.csr).unwrap()
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        let identity = self.cert.as_ref().map(|cert| CertifiedKey {
            cert_pem: cert.clone(),
            key_pem: self.key.clone(),
        });
        let tls = vigo_pki::client_tls_config(&self.ca, identity.as_ref()).unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap()
    }

    pub(crate) async fn enroll(&mut self, token: Option<&str>) -> (u16, Value) {
        let mut body = json!({"name": self.name, "csr_pem": self.csr});
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        let (status, answer) = self.post("/v1/enroll", &body).await;
        if let Some(cert) = answer["cert_pem"].as_str() {
            self.cert = Some(cert.to_owned());
        }
        (status, answer)
    }

    pub(crate) async fn checkin(&self, fingerprint: Option<&str>) -> (u16, Value) {
        let mut body = json!({"facts": {"os": "linux"}});
        if let Some(fingerprint) = fingerprint {
            body["fingerprint"] = json!(fingerprint);
        }
        self.post("/v1/checkin", &body).await
    }

    pub(crate) async fn report(&self, body: &Value) -> (u16, Value) {
        self.post("/v1/report", body).await
    }

    pub(crate) async fn wait(&self) -> (u16, Value) {
        let response = self
            .client()
            .get(format!("{}/v1/wait", self.base))
            .send()
            .await
            .expect("GET /v1/wait");
        decode(response).await
    }

    pub(crate) async fn post(&self, route: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client()
            .post(format!("{}{route}", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {route}: {e}"));
        decode(response).await
    }
}

pub(crate) async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the answer");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A runtime for the async protocol calls of a synchronous test.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A new one-time enrollment token.
pub(crate) fn one_time_token(dir: &TestDir) -> String {
    cli_ok(dir, &["envoys", "token"]).trim().to_owned()
}

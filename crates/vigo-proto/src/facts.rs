//! The facts an envoy reports at check-in: their schema, shared by the
//! envoy (which collects them), the compiler (which renders `.Facts` and
//! matches `match_facts`) and `vigocli check` (which checks templates
//! against [`Facts::stand_in`]).
//!
//! On the wire the facts are one JSON object: the built-in facts below, and
//! the envoy's custom facts (`facts.d`) under `custom`. The user-facing
//! list is in `docs/modules.md`, "Facts".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The key under which an envoy's custom facts (`facts.d`) are reported.
pub const CUSTOM: &str = "custom";

/// Maps of the schema whose keys are the host's own (interface names,
/// custom fact names): any key may appear there.
pub const OPEN_MAPS: [&str; 2] = ["networking.interfaces", CUSTOM];

/// Every fact of an envoy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The short host name (`db1`).
    pub hostname: String,
    /// The fully qualified name (`db1.example.com`).
    pub fqdn: String,
    /// The operating system, from `/etc/os-release`.
    pub os: OsFacts,
    /// The running kernel.
    pub kernel: KernelFacts,
    /// The machine architecture as the kernel names it (`x86_64`, `aarch64`).
    pub architecture: String,
    /// Processors the envoy can use.
    pub processors: ProcessorFacts,
    /// Memory.
    pub memory: MemoryFacts,
    /// Interfaces and addresses.
    pub networking: NetworkingFacts,
    /// The envoy's version.
    pub vigo_version: String,
    /// Custom facts from the envoy's `facts.d` folder, by name.
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// `os.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsFacts {
    /// The family: `debian`, `rhel`, `suse`, `arch`, `alpine`, `gentoo`,
    /// or the distribution itself when it belongs to none of them.
    pub family: String,
    /// `ID` of os-release (`debian`, `ubuntu`, `rocky`).
    pub distribution: String,
    /// `VERSION_ID` of os-release (`12`, `24.04`).
    pub release: String,
    /// `VERSION_CODENAME` of os-release (`bookworm`), or empty.
    pub codename: String,
    /// `PRETTY_NAME` of os-release.
    pub name: String,
}

/// `kernel.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// `Linux`.
    pub name: String,
    /// The release (`6.1.0-18-amd64`).
    pub release: String,
}

/// `processors.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorFacts {
    /// Logical processors available to the envoy.
    pub count: u64,
}

/// `memory.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryFacts {
    /// Total memory in bytes (`MemTotal` of `/proc/meminfo`).
    pub total_bytes: u64,
    /// The same in MiB, rounded down.
    pub total_mib: u64,
}

/// `networking.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkingFacts {
    /// The first IPv4 address of an interface other than loopback, or empty.
    pub ip: String,
    /// Every interface with an address, by name.
    pub interfaces: BTreeMap<String, InterfaceFacts>,
}

/// `networking.interfaces.NAME.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceFacts {
    /// IPv4 addresses, in the order the kernel lists them.
    pub ipv4: Vec<String>,
    /// IPv6 addresses, in the order the kernel lists them.
    pub ipv6: Vec<String>,
}

impl Facts {
    /// Facts with every built-in key present and example values: what
    /// `vigocli check` renders templates with, so that a misspelt fact is
    /// found without an envoy.
    pub fn stand_in() -> Self {
        Self {
            hostname: "envoy".into(),
            fqdn: "envoy.example".into(),
            os: OsFacts {
                family: "debian".into(),
                distribution: "debian".into(),
                release: "12".into(),
                codename: "bookworm".into(),
                name: "Debian GNU/Linux 12 (bookworm)".into(),
            },
            kernel: KernelFacts {
                name: "Linux".into(),
                release: "6.1.0".into(),
            },
            architecture: "x86_64".into(),
            processors: ProcessorFacts { count: 2 },
            memory: MemoryFacts {
                total_bytes: 4 << 30,
                total_mib: 4 << 10,
            },
            networking: NetworkingFacts {
                ip: "192.0.2.10".into(),
                interfaces: BTreeMap::from([("eth0".to_owned(), InterfaceFacts::stand_in())]),
            },
            vigo_version: env!("CARGO_PKG_VERSION").into(),
            custom: serde_json::Map::new(),
        }
    }

    /// The facts as the JSON object sent on the wire.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            // A struct of strings, numbers, lists and maps with string keys
            // always serialises to an object.
            _ => serde_json::Map::new(),
        }
    }

    /// Every built-in fact's dotted path (`os.family`), leaves only, with
    /// the open maps (`networking.interfaces`, `custom`) listed as such.
    pub fn known_paths() -> Vec<String> {
        fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) if !OPEN_MAPS.contains(&prefix) => {
                    for (key, value) in map {
                        let path = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}.{key}")
                        };
                        walk(&path, value, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut out = Vec::new();
        walk(
            "",
            &serde_json::Value::Object(Self::stand_in().to_json()),
            &mut out,
        );
        out
    }

    /// Whether `path` (dotted) names a built-in fact, or a key inside one
    /// of the open maps (`custom.role`, `networking.interfaces.eth0.ipv4`).
    pub fn is_known_path(path: &str) -> bool {
        OPEN_MAPS.iter().any(|open| {
            path.strip_prefix(open)
                .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
        }) || (!OPEN_MAPS.contains(&path) && Self::known_paths().iter().any(|known| known == path))
    }
}

impl InterfaceFacts {
    /// The example interface of [`Facts::stand_in`].
    pub fn stand_in() -> Self {
        Self {
            ipv4: vec!["192.0.2.10".into()],
            ipv6: vec!["2001:db8::10".into()],
        }
    }
}

/// The value at a dotted `path` of a facts object, if there is one.
pub fn lookup<'a>(
    facts: &'a serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Option<&'a serde_json::Value> {
    let mut parts = path.split('.');
    let mut value = facts.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_stand_in_has_every_built_in_key() {
        let paths = Facts::known_paths();
        for expected in [
            "hostname",
            "fqdn",
            "os.family",
            "os.distribution",
            "os.release",
            "os.codename",
            "os.name",
            "kernel.name",
            "kernel.release",
            "architecture",
            "processors.count",
            "memory.total_bytes",
            "memory.total_mib",
            "networking.ip",
            "networking.interfaces",
            "vigo_version",
            "custom",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} in {paths:?}"
            );
        }
        assert_eq!(paths.len(), 17, "{paths:?}");
    }

    #[test]
    fn open_maps_take_any_key() {
        assert!(Facts::is_known_path("os.family"));
        assert!(Facts::is_known_path("custom.role"));
        assert!(Facts::is_known_path("networking.interfaces.eth1.ipv4"));
        assert!(!Facts::is_known_path("os.famly"));
        assert!(!Facts::is_known_path("custom"));
        assert!(!Facts::is_known_path("custom."));
        assert!(!Facts::is_known_path("os"));
    }

    #[test]
    fn lookup_follows_dotted_paths() {
        let facts = json!({"os": {"family": "debian"}, "processors": {"count": 2}});
        let facts = facts.as_object().unwrap();
        assert_eq!(lookup(facts, "os.family"), Some(&json!("debian")));
        assert_eq!(lookup(facts, "processors.count"), Some(&json!(2)));
        assert_eq!(lookup(facts, "os.family.x"), None);
        assert_eq!(lookup(facts, "nope"), None);
    }
}

//! Collecting the facts an envoy reports at check-in: the built-in ones
//! from `/etc/os-release`, `/proc` and the interface list, and custom ones
//! from the `facts.d` folder (as Puppet's external facts and Salt's
//! grains).
//!
//! In `facts.d`, sorted by file name (a later file wins on a repeated key):
//! an executable file is run (no arguments, no standard input, the folder as
//! working directory, a minimal environment, [`SCRIPT_TIMEOUT`]) and its
//! standard output read; a non-executable `*.json` file is read as a JSON
//! object, a non-executable `*.txt` file as `KEY=VALUE` lines. Anything else
//! is ignored. Fact values are host data and can be sensitive: they are
//! never logged. A problem with a file is a [`FactWarning`] naming the file
//! and what went wrong, never what the file printed or holds; the other
//! facts are still sent.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use vigo_proto::facts::{Facts, InterfaceFacts, KernelFacts, MemoryFacts, OsFacts};

/// How long one custom fact executable may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a custom fact file or executable may give, in bytes.
pub const MAX_FACT_BYTES: usize = 1 << 20;

/// A custom fact file that could not be used. Its text names the file and
/// the cause only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactWarning {
    /// The file in `facts.d`.
    pub file: PathBuf,
    /// What went wrong (never the file's output or content).
    pub problem: String,
}

impl fmt::Display for FactWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "custom fact {}: {}; its facts are not sent",
            self.file.display(),
            self.problem
        )
    }
}

/// Every fact of this host, with the custom facts of `facts_dir`, and the
/// problems met with custom fact files.
pub async fn collect(facts_dir: &Path) -> (Facts, Vec<FactWarning>) {
    let (custom, warnings) = custom_facts(facts_dir, SCRIPT_TIMEOUT).await;
    let mut facts = built_in();
    facts.custom = custom;
    (facts, warnings)
}

/// The built-in facts.
pub fn built_in() -> Facts {
    let hostname = read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(vigo_pki::host_name);
    let short = hostname.split('.').next().unwrap_or(&hostname).to_owned();
    let fqdn = fqdn(&hostname);
    let os = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .map(|text| os_facts(&text))
        .unwrap_or_default();
    let total_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text))
        .unwrap_or(0);
    let networking = networking();
    Facts {
        hostname: short,
        fqdn,
        os,
        kernel: KernelFacts {
            name: read_trimmed("/proc/sys/kernel/ostype").unwrap_or_else(|| "Linux".into()),
            release: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        },
        architecture: nix::sys::utsname::uname()
            .ok()
            .and_then(|u| u.machine().to_str().map(str::to_owned))
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        processors: vigo_proto::facts::ProcessorFacts {
            count: std::thread::available_parallelism()
                .map(|n| n.get() as u64)
                .unwrap_or(1),
        },
        memory: MemoryFacts {
            total_bytes,
            total_mib: total_bytes >> 20,
        },
        networking,
        vigo_version: env!("CARGO_PKG_VERSION").into(),
        custom: serde_json::Map::new(),
    }
}

fn read_trimmed(file: &str) -> Option<String> {
    std::fs::read_to_string(file)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The host name with its domain: as written when it already has one, else
/// with the search domain of `/etc/hostname`'s kernel domain name, else the
/// first dotted alias of the host in `/etc/hosts`.
fn fqdn(hostname: &str) -> String {
    if hostname.contains('.') {
        return hostname.to_owned();
    }
    if let Some(domain) = read_trimmed("/proc/sys/kernel/domainname").filter(|d| d != "(none)") {
        return format!("{hostname}.{domain}");
    }
    std::fs::read_to_string("/etc/hosts")
        .ok()
        .and_then(|hosts| fqdn_from_hosts(&hosts, hostname))
        .unwrap_or_else(|| hostname.to_owned())
}

fn fqdn_from_hosts(hosts: &str, hostname: &str) -> Option<String> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let names: Vec<&str> = line.split_whitespace().skip(1).collect();
        if !names.contains(&hostname) {
            return None;
        }
        names
            .iter()
            .find(|n| n.starts_with(&format!("{hostname}.")))
            .map(|n| (*n).to_owned())
    })
}

/// `os.*` from the text of `/etc/os-release`.
fn os_facts(text: &str) -> OsFacts {
    let field = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_owned())
            .unwrap_or_default()
    };
    let distribution = field("ID").to_lowercase();
    let like = field("ID_LIKE").to_lowercase();
    let family = std::iter::once(distribution.as_str())
        .chain(like.split_whitespace())
        .find_map(family_of)
        .map_or_else(|| distribution.clone(), str::to_owned);
    OsFacts {
        family,
        distribution,
        release: field("VERSION_ID"),
        codename: field("VERSION_CODENAME"),
        name: field("PRETTY_NAME"),
    }
}

/// The family an os-release `ID` (or `ID_LIKE` word) belongs to.
fn family_of(id: &str) -> Option<&'static str> {
    Some(match id {
        "debian" | "ubuntu" => "debian",
        "rhel" | "centos" | "fedora" => "rhel",
        "suse" | "opensuse" | "sles" => "suse",
        "arch" => "arch",
        "alpine" => "alpine",
        "gentoo" => "gentoo",
        _ => return None,
    })
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Interfaces with their addresses, and the first non-loopback IPv4.
fn networking() -> vigo_proto::facts::NetworkingFacts {
    let mut out = vigo_proto::facts::NetworkingFacts::default();
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for entry in addresses {
        let Some(address) = entry.address else {
            continue;
        };
        let interface = out
            .interfaces
            .entry(entry.interface_name.clone())
            .or_insert_with(InterfaceFacts::default);
        if let Some(v4) = address.as_sockaddr_in() {
            let ip = v4.ip().to_string();
            if out.ip.is_empty() && !v4.ip().is_loopback() {
                out.ip.clone_from(&ip);
            }
            interface.ipv4.push(ip);
        } else if let Some(v6) = address.as_sockaddr_in6() {
            interface.ipv6.push(v6.ip().to_string());
        }
    }
    out.interfaces
        .retain(|_, i| !(i.ipv4.is_empty() && i.ipv6.is_empty()));
    out
}

/// The custom facts of `dir` (absent: none).
async fn custom_facts(
    dir: &Path,
    timeout: Duration,
) -> (serde_json::Map<String, serde_json::Value>, Vec<FactWarning>) {
    let mut facts = serde_json::Map::new();
    let mut warnings = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (facts, warnings),
        Err(e) => {
            warnings.push(FactWarning {
                file: dir.to_owned(),
                problem: format!("cannot list the folder: {e}"),
            });
            return (facts, warnings);
        }
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        match read_fact_file(&file, timeout).await {
            Ok(Some(found)) => facts.extend(found),
            Ok(None) => {}
            Err(problem) => warnings.push(FactWarning { file, problem }),
        }
    }
    (facts, warnings)
}

/// The facts of one file; `None` for a file that is no fact file.
async fn read_fact_file(
    file: &Path,
    timeout: Duration,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.permissions().mode() & 0o111 != 0 {
        let output = run_fact_script(file, timeout).await?;
        let text = String::from_utf8(output).map_err(|_| "its output is not UTF-8".to_owned())?;
        return parse_output(&text).map(Some);
    }
    let kind = file.extension().and_then(|e| e.to_str());
    if !matches!(kind, Some("json" | "txt")) {
        return Ok(None);
    }
    if meta.len() > MAX_FACT_BYTES as u64 {
        return Err(format!(
            "it is larger than {MAX_FACT_BYTES} bytes ({} bytes)",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    match kind {
        Some("json") => parse_json(&text).map(Some),
        _ => parse_pairs(&text).map(Some),
    }
}

/// Runs a fact executable and returns its standard output. Its standard
/// error is discarded: it is the script's own and may repeat fact values.
async fn run_fact_script(file: &Path, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut command = tokio::process::Command::new(file);
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(folder) = file.parent() {
        command.current_dir(folder);
    }
    let mut child = command.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    let pid = child.id();
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| "cannot read its output".to_owned())?;
    let run = async {
        let mut output = Vec::new();
        let mut limited = (&mut stdout).take(MAX_FACT_BYTES as u64 + 1);
        let read = limited.read_to_end(&mut output).await;
        if read.is_err() || output.len() > MAX_FACT_BYTES {
            kill_group(pid);
            return Err(match read {
                Err(e) => format!("reading its output: {e}"),
                Ok(_) => format!("it printed more than {MAX_FACT_BYTES} bytes"),
            });
        }
        let status = child
            .wait()
            .await
            .map_err(|e| format!("waiting for it: {e}"))?;
        if !status.success() {
            return Err(format!("it failed ({status})"));
        }
        Ok(output)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => {
            kill_group(pid);
            Err(format!(
                "it did not finish within {}s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

/// Kills what is left of a fact executable's process group (it was made
/// the leader of its own group, so this reaches only it and its children).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// An executable's output: a JSON object, or `KEY=VALUE` lines.
fn parse_output(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_pairs(text)
    }
}

fn parse_json(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    // serde_json's message names a position, never the value.
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| {
            format!(
                "not a JSON object (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
    if let Some(key) = map.keys().position(|k| !valid_key(k)) {
        return Err(format!(
            "key number {} is not a fact name (letters, digits and '_', not starting with a digit)",
            key + 1
        ));
    }
    Ok(map)
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped. Values are
/// strings, surrounding spaces removed.
fn parse_pairs(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut map = serde_json::Map::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE", number + 1));
        };
        let key = key.trim();
        if !valid_key(key) {
            return Err(format!(
                "line {}: the key is not a fact name (letters, digits and '_', not starting with a digit)",
                number + 1
            ));
        }
        map.insert(key.to_owned(), value.trim().into());
    }
    Ok(map)
}

/// A name a template can read as `.Facts.custom.NAME`.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    const CANARY: &str = "canary-7f3e91c2";

    fn write(dir: &Path, name: &str, text: &str, mode: u32) {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn assert_no_canary(warnings: &[FactWarning]) {
        for w in warnings {
            assert!(!w.to_string().contains(CANARY), "{w}");
        }
    }

    #[tokio::test]
    async fn issue_15_custom_facts_from_executables_and_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "10-role",
            "#!/bin/sh\necho role=web\necho '# a comment'\necho tier = front\n",
            0o755,
        );
        write(
            dir.path(),
            "20-json",
            "#!/bin/sh\necho '{\"rack\": {\"row\": 3}, \"ssd\": true}'\n",
            0o700,
        );
        write(dir.path(), "30-site.txt", "site=ams1\n\nrole=db\n", 0o644);
        write(
            dir.path(),
            "40-env.json",
            "{\"env\": \"prod\", \"n\": [1, 2]}",
            0o644,
        );
        write(dir.path(), "README.md", "not a fact file", 0o644);
        write(dir.path(), ".hidden.txt", "hidden=1\n", 0o644);
        let (facts, warnings) = custom_facts(dir.path(), SCRIPT_TIMEOUT).await;
        assert_eq!(warnings, []);
        assert_eq!(
            serde_json::Value::Object(facts),
            json!({
                "role": "db",
                "tier": "front",
                "rack": {"row": 3},
                "ssd": true,
                "site": "ams1",
                "env": "prod",
                "n": [1, 2],
            })
        );
    }

    #[tokio::test]
    async fn issue_15_a_failing_fact_warns_by_file_name_only() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fail",
            &format!("#!/bin/sh\necho token={CANARY}\necho {CANARY} >&2\nexit 3\n"),
            0o755,
        );
        write(dir.path(), "bad.txt", &format!("{CANARY}\n"), 0o644);
        write(dir.path(), "bad.json", &format!("[\"{CANARY}\"]"), 0o644);
        write(
            dir.path(),
            "badkey.txt",
            &format!("ok=1\n{CANARY}-x=2\n"),
            0o644,
        );
        write(dir.path(), "good.txt", "fine=yes\n", 0o644);
        let (facts, warnings) = custom_facts(dir.path(), SCRIPT_TIMEOUT).await;
        assert_eq!(serde_json::Value::Object(facts), json!({"fine": "yes"}));
        let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts[0].contains("bad.json") && texts[0].contains("not a JSON object"));
        assert!(texts[1].contains("bad.txt") && texts[1].contains("line 1 is not KEY=VALUE"));
        assert!(texts[2].contains("badkey.txt") && texts[2].contains("line 2"));
        assert!(
            texts[3].contains("/fail: it failed (exit status: 3)"),
            "{}",
            texts[3]
        );
        assert_no_canary(&warnings);
    }

    #[tokio::test]
    async fn issue_15_a_slow_fact_is_killed_and_the_others_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        write(
            dir.path(),
            "slow",
            &format!(
                "#!/bin/sh\necho partial={CANARY}\n(sleep 30; touch {}) &\nsleep 30\n",
                marker.display()
            ),
            0o755,
        );
        write(dir.path(), "fast.txt", "fast=1\n", 0o644);
        let started = std::time::Instant::now();
        let (facts, warnings) = custom_facts(dir.path(), Duration::from_secs(1)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(serde_json::Value::Object(facts), json!({"fast": "1"}));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .to_string()
                .contains("slow: it did not finish within 1s and was killed"),
            "{}",
            warnings[0]
        );
        assert_no_canary(&warnings);
        // The script's background child was killed with it.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_missing_folder_has_no_custom_facts() {
        let dir = tempfile::tempdir().unwrap();
        let (facts, warnings) = custom_facts(&dir.path().join("facts.d"), SCRIPT_TIMEOUT).await;
        assert!(facts.is_empty() && warnings.is_empty());
    }

    #[test]
    fn os_release_gives_family_distribution_and_release() {
        let debian = os_facts(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        );
        assert_eq!(
            debian,
            OsFacts {
                family: "debian".into(),
                distribution: "debian".into(),
                release: "12".into(),
                codename: "bookworm".into(),
                name: "Debian GNU/Linux 12 (bookworm)".into(),
            }
        );
        let rocky = os_facts("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!(
            (rocky.family.as_str(), rocky.release.as_str()),
            ("rhel", "9.3")
        );
        let mint = os_facts("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(mint.family, "debian");
        let nixos = os_facts("ID=nixos\n");
        assert_eq!(nixos.family, "nixos");
    }

    #[test]
    fn memory_fqdn_and_the_host_facts() {
        assert_eq!(
            mem_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16384 * 1024)
        );
        assert_eq!(
            fqdn_from_hosts("127.0.1.1 db1.example.com db1 # me\n", "db1").as_deref(),
            Some("db1.example.com")
        );
        assert_eq!(fqdn_from_hosts("127.0.0.1 localhost\n", "db1"), None);
        let facts = built_in();
        assert!(!facts.hostname.is_empty() && !facts.hostname.contains('.'));
        assert!(facts.processors.count >= 1);
        assert!(facts.memory.total_bytes > 0);
        assert_eq!(facts.kernel.name, "Linux");
        assert!(
            facts
                .networking
                .interfaces
                .values()
                .any(|i| i.ipv4.iter().any(|a| a == "127.0.0.1")),
            "{:?}",
            facts.networking
        );
    }
}

//! Notification mail over the real binaries and a real SMTP server
//! (docs/operations.md "Notification mail"): aiosmtpd on 127.0.0.1
//! (`fixtures/smtp_sink.py`), STARTTLS required with a certificate of the
//! test's own CA (`smtp.ca_file`), AUTH with the password of
//! `secret:vigo/smtp/password`.
//!
//! `vigocli notify test` sends a test mail; a failed run (once, not again
//! while the envoy fails the same way), a pending enrollment and an envoy
//! that stopped checking in are mailed, at most one mail per
//! `smtp.interval`; while the SMTP server is down the events are
//! kept and sent once it is back, and check-ins are answered meanwhile; a
//! rotated SMTP password is used without a restart. No secret value (the
//! SMTP passwords, a secret in the envoy's catalog) is in any mail, log or
//! output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::enrollment::printed_fingerprint;
use crate::support::{
    EnvoyHost, PATIENCE, TestDir, all_output, assert_contains, cli_ok, free_port, stderr,
};

const DB1: &str = "db1.example.com";
const WEB1: &str = "web1.example.com";
const WEB2: &str = "web2.example.com";
const SMTP_PASSWORD: &str = "canary-smtp-pw-4b1e0c";
const ROTATED_PASSWORD: &str = "canary-smtp-pw-rotated-9d2c71";
const DB_PASSWORD: &str = "canary-mail-db-5e8a3f";
/// `smtp.interval` of the test: at most one notification mail per 3 s.
const INTERVAL: Duration = Duration::from_secs(3);

/// The SMTP server of the test; killed when dropped.
struct SmtpSink {
    child: Option<Child>,
    port: u16,
    folder: PathBuf,
    /// `--mode` of the sink: `starttls`, `tls` or `plain`.
    mode: &'static str,
}

impl SmtpSink {
    /// Writes the sink's certificate (for `127.0.0.1`), its CA and the
    /// password it accepts under `folder`, then starts it on `port`.
    fn new(folder: &Path, port: u16, password: &str) -> Self {
        std::fs::create_dir_all(folder.join("mail")).unwrap();
        vigo_test_support::write_loopback_tls(folder, "Vigo test SMTP CA");
        let sink = Self {
            child: None,
            port,
            folder: folder.to_owned(),
            mode: "starttls",
        };
        sink.set_password(password);
        sink
    }

    /// From now on the sink accepts only `password`.
    fn set_password(&self, password: &str) {
        std::fs::write(self.folder.join("password"), password).unwrap();
    }

    /// Starts the sink and waits until it listens.
    fn start(&mut self) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/fixtures/smtp_sink.py"
        );
        let f = |name: &str| self.folder.join(name);
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--mode", self.mode])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--maildir")
            .arg(f("mail"))
            .arg("--cert")
            .arg(f("server.pem"))
            .arg("--key")
            .arg(f("server.key"))
            .args(["--user", "vigo"])
            .arg("--password-file")
            .arg(f("password"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting python3 for the test SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("ready {}", self.port),
            "the test SMTP server did not start; it needs Python's aiosmtpd (`python3 -m pip install aiosmtpd`, as .ci/run does)"
        );
        self.child = Some(child);
    }

    /// Stops the sink (the port refuses connections until [`Self::start`]).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every mail received so far, in arrival order, whole.
    fn mails(&self) -> Vec<(String, String)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.folder.join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect()
    }

    /// How many mails hold `needle`.
    fn count(&self, needle: &str) -> usize {
        self.mails()
            .iter()
            .filter(|(_, mail)| unfolded(mail).contains(needle))
            .count()
    }

    /// Waits for a mail holding `needle`; returns its receipt time (ns).
    fn wait_for(&self, needle: &str) -> (u128, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some((name, mail)) = self
                .mails()
                .into_iter()
                .find(|(_, mail)| unfolded(mail).contains(needle))
            {
                let received = name.split('-').next().unwrap().parse().unwrap();
                return (received, mail);
            }
            assert!(
                Instant::now() < deadline,
                "no mail with {needle:?}; mails: {:#?}",
                self.mails()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A mail's text with quoted-printable soft line breaks undone and `\n`
/// line ends, so a long line can be searched whole.
fn unfolded(mail: &str) -> String {
    mail.replace("=\r\n", "").replace("\r\n", "\n")
}

/// db1 writes a file holding a secret, then fails an exec.
fn write_repo(dir: &TestDir) {
    dir.write_repo(
        "envoys:\n  - match: \"db*.example.com\"\n    roles: [database]\n    vars:\n      db_password: \"secret:vigo/db/password\"\n  - match: \"web*.example.com\"\n    roles: [database]\n    vars:\n      db_password: \"secret:vigo/db/password\"\n",
        &[(
            "database",
            "resources:\n  - name: pg-config\n    type: file\n    target_path: {out}/db.conf\n    content: |\n      password = {{ .Vars.db_password }}\n  - name: migrate\n    type: exec\n    command: \"cat {out}/db.conf; exit 3\"\n    depends_on: [pg-config]\n",
        )],
    );
}

#[test]
fn issue_16_mail_on_failure_enrollment_and_staleness_through_an_outage_and_a_rotation() {
    let smtp_port = free_port();
    let dir = TestDir::with_config_extra(&format!(
        "checkin:\n  interval: \"1s\"\nsmtp:\n  host: \"127.0.0.1\"\n  port: {smtp_port}\n  username: \"vigo\"\n  password: \"secret:vigo/smtp/password\"\n  from: \"vigo@example.com\"\n  to: [\"ops@example.com\"]\n  ca_file: \"smtp/ca.pem\"\n  interval: \"{}s\"\n",
        INTERVAL.as_secs()
    ));
    let mut outputs = String::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    for (path, value) in [
        ("vigo/db/password", DB_PASSWORD),
        ("vigo/smtp/password", SMTP_PASSWORD),
    ] {
        let out = dir.cli_with_stdin(&["secrets", "set", path, "-"], value.as_bytes());
        assert!(out.status.success(), "{}", all_output(&out));
    }
    write_repo(&dir);
    let mut sink = SmtpSink::new(&dir.path().join("smtp"), smtp_port, SMTP_PASSWORD);
    sink.start();
    let mut server = dir.start_server(&[]);

    // The test mail, sent at once, to every recipient.
    let sent = cli_ok(&dir, &["notify", "test"]);
    assert_eq!(
        sent,
        format!("Test mail sent to ops@example.com through 127.0.0.1:{smtp_port}.\n")
    );
    outputs.push_str(&sent);
    let (_, test_mail) = sink.wait_for("Subject: [vigo] test mail");
    assert_contains(&test_mail, "X-Rcpt-To: ops@example.com");
    assert_contains(&test_mail, "From: vigo@example.com");

    // A failed run, then a pending enrollment: mailed, one mail per
    // interval at most.
    let token = cli_ok(&dir, &["envoys", "token"]);
    let db1 = EnvoyHost::new(&dir, DB1, Some(token.trim()));
    let run = db1.run_once();
    assert!(!run.status.success(), "{}", all_output(&run));
    outputs.push_str(&all_output(&run));
    let (failed_at, failed) = sink.wait_for(&format!("Run failed on envoy {DB1}"));
    assert_contains(
        &unfolded(&failed),
        "1 resource failed: exec[migrate].\n  See: vigocli reports db1.example.com --failed",
    );
    let web1 = EnvoyHost::new(&dir, WEB1, None);
    let waiting = web1.run_once();
    outputs.push_str(&all_output(&waiting));
    let fingerprint = printed_fingerprint(&all_output(&waiting));
    let (pending_at, _) = sink.wait_for(&format!(
        "vigocli envoys approve {WEB1} --fingerprint {fingerprint}"
    ));
    assert!(
        pending_at - failed_at >= INTERVAL.as_nanos(),
        "two notification mails {} ms apart; smtp.interval is {INTERVAL:?}",
        (pending_at - failed_at) / 1_000_000
    );

    // db1 stopped after its run: three intervals without a check-in.
    sink.wait_for(&format!("Envoy {DB1} stopped checking in (last check-in: "));
    let failed_line = format!("Run failed on envoy {DB1}");
    assert_eq!(
        sink.count(&failed_line),
        1,
        "one failed run, one mail: {:#?}",
        sink.mails()
    );

    // The same failure again is not mailed again.
    let run = db1.run_once();
    assert!(!run.status.success(), "{}", all_output(&run));

    // The SMTP server goes away: an event (a second host asking to enroll)
    // is kept, retried, and the server goes on answering.
    sink.stop();
    let web2 = EnvoyHost::new(&dir, WEB2, None);
    let waiting = web2.run_once();
    outputs.push_str(&all_output(&waiting));
    let fingerprint = printed_fingerprint(&all_output(&waiting));
    assert!(
        server.wait_for_log("notification mail not sent; keeping the events and retrying"),
        "{}",
        server.log()
    );
    let listed = cli_ok(&dir, &["envoys", "list"]);
    assert_contains(&listed, WEB2);
    sink.start();
    sink.wait_for(&format!(
        "vigocli envoys approve {WEB2} --fingerprint {fingerprint}"
    ));
    assert_eq!(
        sink.count(&failed_line),
        1,
        "a repeated failure was mailed again: {:#?}",
        sink.mails()
    );

    // The SMTP password rotates: the old one is refused, with one line
    // that names the SMTP server; after `secrets set` the server uses the
    // new one, without a restart.
    sink.set_password(ROTATED_PASSWORD);
    let refused = dir.cli(&["notify", "test"]);
    assert!(!refused.status.success());
    outputs.push_str(&all_output(&refused));
    let error = stderr(&refused);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with(&format!(
            "error: sending through the SMTP server 127.0.0.1:{smtp_port}: "
        )),
        "{error}"
    );
    let pid = server.pid();
    let set = dir.cli_with_stdin(
        &["secrets", "set", "vigo/smtp/password", "-"],
        ROTATED_PASSWORD.as_bytes(),
    );
    assert!(set.status.success(), "{}", all_output(&set));
    outputs.push_str(&all_output(&set));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = dir.cli(&["notify", "test"]);
        outputs.push_str(&all_output(&out));
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated SMTP password was never used: {}\n{}",
            all_output(&out),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.pid(), pid);
    assert!(server.try_status().is_none(), "{}", server.log());

    // No secret value anywhere.
    let mails: String = sink.mails().into_iter().map(|(_, m)| m).collect();
    let log = server.log();
    for canary in [SMTP_PASSWORD, ROTATED_PASSWORD, DB_PASSWORD] {
        for (what, text) in [
            ("a mail", &mails),
            ("the log", &log),
            ("an output", &outputs),
        ] {
            assert!(!text.contains(canary), "{canary} is in {what}:\n{text}");
        }
    }
    assert!(!mails.contains("password ="), "{mails}");
    for (file, bytes) in crate::support::snapshot(&dir.data_dir()) {
        for canary in [SMTP_PASSWORD, ROTATED_PASSWORD, DB_PASSWORD] {
            assert!(
                !crate::support::contains_bytes(&bytes, canary.as_bytes()),
                "{canary} is in {}",
                file.display()
            );
        }
    }
}

#[test]
fn issue_16_notify_test_without_smtp_says_what_to_configure() {
    let dir = TestDir::new();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    let _server = dir.start_server(&[]);
    let out = dir.cli(&["notify", "test"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: no mail is sent: vigosrv.yaml has no smtp section (docs/operations.md, \"Notification mail\")\n"
    );
}

/// `tls: tls` (TLS from the first byte, as on port 465) and `tls: none` (a
/// relay on this host, without a password) each deliver the test mail.
#[test]
fn issue_16_notify_test_over_implicit_tls_and_to_a_plain_local_relay() {
    for (mode, smtp) in [
        (
            "tls",
            "  tls: tls\n  username: \"vigo\"\n  password: \"secret:vigo/smtp/password\"\n  ca_file: \"smtp/ca.pem\"\n",
        ),
        ("plain", "  tls: none\n"),
    ] {
        let smtp_port = free_port();
        let dir = TestDir::with_config_extra(&format!(
            "smtp:\n  host: \"127.0.0.1\"\n  port: {smtp_port}\n  from: \"vigo@example.com\"\n  to: [\"ops@example.com\", \"oncall@example.com\"]\n{smtp}"
        ));
        cli_ok(&dir, &["secrets", "bootstrap"]);
        let out = dir.cli_with_stdin(
            &["secrets", "set", "vigo/smtp/password", "-"],
            SMTP_PASSWORD.as_bytes(),
        );
        assert!(out.status.success(), "{}", all_output(&out));
        let mut sink = SmtpSink::new(&dir.path().join("smtp"), smtp_port, SMTP_PASSWORD);
        sink.mode = mode;
        sink.start();
        let _server = dir.start_server(&[]);
        assert_eq!(
            cli_ok(&dir, &["notify", "test"]),
            format!(
                "Test mail sent to ops@example.com, oncall@example.com through 127.0.0.1:{smtp_port}.\n"
            ),
            "tls: {mode}"
        );
        let (_, mail) = sink.wait_for("Subject: [vigo] test mail");
        assert_contains(&mail, "X-Rcpt-To: ops@example.com, oncall@example.com");
    }
}

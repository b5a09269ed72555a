//! The web dashboard (docs/operations.md "Dashboard") in headless Chromium
//! through WebDriver (Debian's `chromium` and `chromium-driver`), against a
//! real vigosrv with real envoys: sign in, see an envoy whose run failed,
//! open its page, approve a pending envoy by fingerprint, sign out. A plain
//! HTTPS client checks the refusals (no session cookie, no or a wrong CSRF
//! token, a viewer approving) and the headers. Every page fetched is
//! searched for a canary secret value and for the admin token.
//!
//! Screenshots go to `target/ui-screenshots/`. Without chromedriver the
//! browser test is skipped with a reason, or fails when `CI=true` or
//! `VIGO_REQUIRE_POSTGRES=1` (a CI run must exercise it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::enrollment::printed_fingerprint;
use crate::support::{
    EnvoyHost, PATIENCE, ServerProcess, TestDir, all_output, assert_contains, cli_ok, free_port,
    stdout,
};
use crate::wire::runtime;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const FAILING: &str = "fail1.example.com";
const PENDING: &str = "web2.example.com";
/// Planted in the failing envoy's catalog: no page may show it.
const CANARY: &str = "canary-ui-5f0c9e2a71";

/// A server with one envoy whose last run failed (an exec exiting 1, next
/// to a file holding the canary and a rewritten motd) and one pending
/// request; returns the
/// folder, the server and the pending key's fingerprint.
fn fleet() -> (TestDir, ServerProcess, String) {
    let dir = TestDir::new();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    cli_ok(&dir, &["secrets", "bootstrap"]);
    cli_ok(&dir, &["secrets", "set", "vigo/app/canary", CANARY]);
    // The motd resource rewrites this: its report carries a diff.
    std::fs::write(out.join("motd"), "hello\n").unwrap();
    dir.write(
        "config/nodes.vgo",
        "envoys:\n  - match: \"fail*.example.com\"\n    roles: [broken]\n    vars:\n      token: \"secret:vigo/app/canary\"\n  - match: \"web*.example.com\"\n    roles: [web]\n",
    );
    dir.write(
        "config/modules/broken.vgo",
        &format!(
            "resources:\n  - name: app-config\n    type: file\n    target_path: {out}/app.conf\n    content: |\n      token = {{{{ .Vars.token }}}}\n    watch_secret: [\"vigo/app/canary\"]\n  - name: motd\n    type: file\n    target_path: {out}/motd\n    content: \"welcome to the fleet\\n\"\n  - name: migrate-db\n    type: exec\n    command: \"echo migration failed >&2; exit 1\"\n",
            out = out.display()
        ),
    );
    dir.write(
        "config/modules/web.vgo",
        &format!(
            "resources:\n  - name: web-index\n    type: file\n    target_path: {out}/index.html\n    content: \"hello\"\n",
            out = out.display()
        ),
    );
    let server = dir.start_server(&[]);
    let token = cli_ok(&dir, &["envoys", "token"]).trim().to_owned();
    let failing = EnvoyHost::new(&dir, FAILING, Some(&token));
    let run = failing.run_once();
    assert!(
        !run.status.success(),
        "the exec must fail: {}",
        all_output(&run)
    );
    assert_contains(&stdout(&run), "1 failed");
    let pending = EnvoyHost::new(&dir, PENDING, None);
    let run = pending.run_once();
    assert!(!run.status.success(), "web2 must wait for approval");
    let fingerprint = printed_fingerprint(&all_output(&run));
    (dir, server, fingerprint)
}

fn admin_token(dir: &TestDir) -> String {
    cli_ok(dir, &["secrets", "get", "vigo/server/admin_token"])
        .trim()
        .to_owned()
}

/// Asserts that no page holds the canary or the admin token.
fn assert_clean(pages: &[(String, String)], admin_token: &str) {
    assert!(!pages.is_empty());
    for (what, page) in pages {
        assert!(
            !page.contains(CANARY),
            "{what} shows the canary secret:\n{page}"
        );
        assert!(!page.contains(admin_token), "{what} shows the admin token");
    }
}

// --- the browser ------------------------------------------------------------------------

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or returns `None` (after printing why) when it
    /// is not installed and nothing requires the browser test.
    fn start() -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            let reason = format!(
                "{CHROMEDRIVER} or {CHROMIUM} is missing (apt-get install chromium chromium-driver)"
            );
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            if ci || vigo_test_support::postgres_required() {
                panic!(
                    "the dashboard browser test cannot run: {reason}; CI=true or VIGO_REQUIRE_POSTGRES=1 forbids skipping it"
                );
            }
            println!("skipped: {reason}");
            return None;
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1366,900",
                    // The test CA is not in the browser's store; the test
                    // only ever talks to its own server.
                    "--ignore-certificate-errors",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session with chromium")
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page's source, recorded for the canary check.
async fn source(browser: &Client, pages: &mut Vec<(String, String)>) -> String {
    let url = browser.current_url().await.unwrap().to_string();
    let html = browser.source().await.unwrap();
    pages.push((url, html.clone()));
    html
}

/// Waits until the browser shows `path` (a click's navigation finishes
/// after the click returns).
async fn wait_path(browser: &Client, path: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = browser.current_url().await.unwrap();
        if now.path() == path {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the browser stayed at {now}, not {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element `at`.
async fn click(browser: &Client, at: Locator<'_>) {
    browser.find(at).await.unwrap().click().await.unwrap();
}

/// The text of the element `at`.
async fn text(browser: &Client, at: Locator<'_>) -> String {
    browser.find(at).await.unwrap().text().await.unwrap()
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

#[test]
fn issue_16_dashboard_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let (dir, mut server, fingerprint) = fleet();
    let admin = admin_token(&dir);
    let base = format!("https://localhost:{}", dir.port);
    let profile = tempfile::tempdir().unwrap();
    let mut pages = Vec::new();
    runtime().block_on(async {
        let browser = driver.browser(profile.path()).await;
        // Not signed in: the overview sends the browser to sign in.
        browser.goto(&format!("{base}/ui/")).await.unwrap();
        wait_path(&browser, "/ui/signin").await;
        source(&browser, &mut pages).await;
        shot(&browser, "signin").await;
        browser
            .find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys(&admin)
            .await
            .unwrap();
        click(&browser, Locator::Id("signin")).await;

        // The overview: the failed envoy first, counted.
        wait_path(&browser, "/ui/").await;
        let html = source(&browser, &mut pages).await;
        assert_contains(&html, FAILING);
        let first = text(&browser, Locator::Css("#envoys tbody tr")).await;
        assert!(
            first.contains(FAILING) && first.contains("failed"),
            "{first}"
        );
        let failed_count = text(&browser, Locator::Css(".count.failed .n")).await;
        assert_eq!(failed_count, "1");
        shot(&browser, "overview").await;

        // Its page: the failed resource with its message.
        click(&browser, Locator::LinkText(FAILING)).await;
        wait_path(&browser, &format!("/ui/envoys/{FAILING}")).await;
        let html = source(&browser, &mut pages).await;
        let row = text(
            &browser,
            Locator::XPath("//table[@id='resources']//tr[td[1][contains(., 'migrate-db')]]"),
        )
        .await;
        assert!(row.contains("failed"), "{row}");
        assert_contains(&html, "broken");
        shot(&browser, "envoy").await;

        // Its recent runs, each linking to its report: the command's
        // output and the diff of the file without a secret, never the
        // content of the one with it.
        let run = text(&browser, Locator::Css("#runs tbody tr")).await;
        assert!(run.contains("failed"), "{run}");
        let link = browser
            .find(Locator::Css("#runs tbody tr a"))
            .await
            .unwrap();
        let href = link.attr("href").await.unwrap().unwrap();
        link.click().await.unwrap();
        wait_path(&browser, &href).await;
        let html = source(&browser, &mut pages).await;
        assert_contains(&html, "migration failed");
        let diff = text(&browser, Locator::Css("pre.diff")).await;
        assert_contains(&diff, "+welcome to the fleet");
        assert!(!html.contains("token = "), "{html}");
        shot(&browser, "report").await;

        // The pending request shows its key; approving needs it.
        browser
            .goto(&format!("{base}/ui/enrollments"))
            .await
            .unwrap();
        let html = source(&browser, &mut pages).await;
        assert_contains(&html, PENDING);
        assert_contains(&html, &fingerprint);
        shot(&browser, "enrollments").await;
        let form = browser
            .find(Locator::Css(&format!(
                "form[action='/ui/envoys/{PENDING}/approve']"
            )))
            .await
            .unwrap();
        form.find(Locator::Css("input[name=fingerprint]"))
            .await
            .unwrap()
            .send_keys(&fingerprint)
            .await
            .unwrap();
        form.find(Locator::Css("button.approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_path(&browser, &format!("/ui/envoys/{PENDING}")).await;
        source(&browser, &mut pages).await;

        // A rotation delivered to the failing envoy: the secrets page shows
        // when version 2 was stored and how long its delivery took.
        let rotated = dir.cli_with_stdin(
            &["secrets", "set", "vigo/app/canary", "-"],
            format!("{CANARY}-v2").as_bytes(),
        );
        assert!(rotated.status.success(), "{}", all_output(&rotated));
        let again = EnvoyHost::new(&dir, FAILING, None).run_once();
        assert_contains(&stdout(&again), "file[app-config]");

        for page in ["secrets", "config"] {
            browser.goto(&format!("{base}/ui/{page}")).await.unwrap();
            let html = source(&browser, &mut pages).await;
            if page == "secrets" {
                let row = text(
                    &browser,
                    Locator::XPath("//table[@id='secrets']//tr[td[1][.='vigo/app/canary']]"),
                )
                .await;
                assert!(
                    row.contains(" 2 ") && row.contains("1 envoy, slowest after "),
                    "{row}"
                );
                assert_contains(&html, "delivered");
            }
            shot(&browser, page).await;
        }

        click(&browser, Locator::Id("signout")).await;
        wait_path(&browser, "/ui/signin").await;
        browser.goto(&format!("{base}/ui/")).await.unwrap();
        wait_path(&browser, "/ui/signin").await;
        browser.close().await.unwrap();
    });
    let listed = cli_ok(&dir, &["envoys", "list", "--output", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let web2 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == PENDING)
        .unwrap();
    assert_eq!(web2["status"], "approved", "{listed}");
    assert_clean(&pages, &admin);
    assert!(!server.log().contains(CANARY));
    assert!(!server.log().contains(&admin));
    assert!(server.terminate().success(), "{}", server.log());
}

// --- plain HTTPS: refusals and headers --------------------------------------------------------

fn client(dir: &TestDir) -> reqwest::Client {
    let ca = std::fs::read_to_string(dir.ca_file()).unwrap();
    let tls = vigo_pki::client_tls_config(&ca, None).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(Arc::unwrap_or_clone(tls))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name=` in the `Set-Cookie` headers, with the whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let value = v.strip_prefix(&format!("{name}="))?.split(';').next()?;
            Some((value.to_owned(), v.to_owned()))
        })
}

const FORM: &str = "application/x-www-form-urlencoded";

/// `pairs` as an `application/x-www-form-urlencoded` body.
fn form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

/// A hidden field's value in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = html
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    rest.split('"').next().unwrap().to_owned()
}

/// Signs in over HTTP with `token`; the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let signin_form = http.get(format!("{base}/ui/signin")).send().await.unwrap();
    let (nonce, _) = set_cookie(&signin_form, "vigo_signin").expect("a sign-in cookie");
    let html = signin_form.text().await.unwrap();
    assert_eq!(field(&html, "signin"), nonce);
    let response = http
        .post(format!("{base}/ui/signin"))
        .header("cookie", format!("vigo_signin={nonce}"))
        .header(CONTENT_TYPE, FORM)
        .body(form(&[("token", token), ("signin", nonce.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (id, header) = set_cookie(&response, "vigo_session").expect("a session cookie");
    assert_eq!(id.len(), 64);
    assert!(
        header.contains("HttpOnly")
            && header.contains("Secure")
            && header.contains("SameSite=Strict")
            && header.contains("Path=/ui"),
        "{header}"
    );
    assert!(!header.contains(token));
    id
}

#[test]
fn issue_16_dashboard_refuses_requests_without_session_or_csrf() {
    let (dir, mut server, fingerprint) = fleet();
    let admin = admin_token(&dir);
    let viewer = "viewer-token-7d2b90c4e1f3a5";
    let base = format!("https://localhost:{}", dir.port);
    let http = client(&dir);
    let mut pages = Vec::new();
    let approve = format!("{base}/ui/envoys/{PENDING}/approve");
    runtime().block_on(async {
        // No session cookie: GET goes to sign-in, POST is refused.
        let r = http.get(format!("{base}/ui/")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], "/ui/signin");
        let r = http.post(&approve).header(CONTENT_TYPE, FORM).body(form(&[("fingerprint", fingerprint.as_str())])).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = http.post(&approve).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no body, no session");

        // Sign-in needs the form's own value, and the right token.
        let r = http
            .post(format!("{base}/ui/signin"))
            .header(CONTENT_TYPE, FORM).body(form(&[("token", admin.as_str()), ("signin", "forged")]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let signin_form = http.get(format!("{base}/ui/signin")).send().await.unwrap();
        let (nonce, _) = set_cookie(&signin_form, "vigo_signin").unwrap();
        let r = http
            .post(format!("{base}/ui/signin"))
            .header("cookie", format!("vigo_signin={nonce}"))
            .header(CONTENT_TYPE, FORM).body(form(&[("token", viewer), ("signin", nonce.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no viewer token set yet");
        assert!(set_cookie(&r, "vigo_session").is_none());

        let session = sign_in(&http, &base, &admin).await;
        let cookie = format!("vigo_session={session}");
        let r = http.get(format!("{base}/ui/enrollments")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert_eq!(csp, "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script"), "{html}");
        let csrf = field(&html, "csrf");
        pages.push(("enrollments".to_owned(), html));

        // No CSRF token, a wrong one: refused, nothing approved.
        for token in [None, Some("0".repeat(64))] {
            let mut body = vec![("fingerprint", fingerprint.clone())];
            if let Some(token) = token {
                body.push(("csrf", token));
            }
            let r = http.post(&approve).header("cookie", &cookie).header(CONTENT_TYPE, FORM).body(form(&body)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
        }
        let r = http.post(&approve).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "a session but no form");
        // The right token but a wrong fingerprint: the admin API's refusal.
        let r = http
            .post(&approve)
            .header("cookie", &cookie)
            .header(CONTENT_TYPE, FORM).body(form(&[("csrf", csrf.as_str()), ("fingerprint", &"ab".repeat(32))]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert_contains(&r.text().await.unwrap(), "comes from key");

        // A viewer may look but not approve.
        cli_ok(&dir, &["secrets", "set", "vigo/server/ui_viewer_token", viewer]);
        let viewing = format!("vigo_session={}", sign_in(&http, &base, viewer).await);
        let r = http.get(format!("{base}/ui/envoys/{FAILING}")).header("cookie", &viewing).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert_contains(&html, "viewer (read-only)");
        assert!(!html.contains("/revoke"), "a viewer gets no buttons");
        let viewer_csrf = field(&html, "csrf");
        pages.push(("envoy as viewer".to_owned(), html));
        let r = http
            .post(&approve)
            .header("cookie", &viewing)
            .header(CONTENT_TYPE, FORM).body(form(&[("csrf", viewer_csrf.as_str()), ("fingerprint", fingerprint.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        // Sign-out ends the session on the server.
        let r = http
            .post(format!("{base}/ui/signout"))
            .header("cookie", &cookie)
            .header(CONTENT_TYPE, FORM).body(form(&[("csrf", csrf.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = http.get(format!("{base}/ui/")).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // Envoy routes still need the client certificate.
        let r = http.post(format!("{base}/v1/checkin")).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    });
    let listed = cli_ok(&dir, &["envoys", "list", "--output", "json"]);
    assert!(
        listed.contains("\"pending\""),
        "nothing was approved: {listed}"
    );
    assert_clean(&pages, &admin);
    assert!(server.terminate().success(), "{}", server.log());
}

//! Partial runs (`--tags`, `--resource`): `vigoenvoy apply` on a catalog
//! file, and `vigoenvoy run --once --tags` against a real `vigosrv`, where a
//! partial run must leave the rotation triggers of what it did not apply
//! queued and undelivered.

use std::fs;

use serde_json::{Value, json};

use crate::support::{
    DB_NODES, EnvoyHost, all_output, bin, bootstrapped_with_out, cli_ok, database_module,
    envoy_apply_command, run, stderr, stdout,
};

vigo_test_support::scratch_fixture!(
    /// A catalog file, the envoy's data folder and the files it writes.
    Case
);

/// A catalog of four execs that log their name to `order.log` when they run:
/// `app` (tagged `web`) depends on `lib`, which depends on `base`; `db`
/// (tagged `db`) stands alone. Declared out of order.
fn four_steps(case: &Case) -> Value {
    let order = case.p("order.log");
    let step = |name: &str, tags: &[&str], depends_on: &[&str]| {
        json!({
            "name": name, "type": "exec", "command": format!("echo {name} >> {order}"),
            "timeout_secs": 10, "tags": tags, "depends_on": depends_on,
        })
    };
    json!({"envoy": "test1", "resources": [
        step("app", &["web"], &["lib"]),
        step("db", &["db"], &[]),
        step("lib", &[], &["base"]),
        step("base", &[], &[]),
    ]})
}

fn apply(case: &Case, catalog: &Value, extra: &[&str]) -> std::process::Output {
    run(envoy_apply_command(case, catalog).args(extra))
}

fn ran(case: &Case) -> String {
    let text = fs::read_to_string(case.path("order.log")).unwrap_or_default();
    fs::remove_file(case.path("order.log")).ok();
    text
}

#[test]
fn issue_15_apply_tags_and_resource_run_the_selection_and_its_dependencies() {
    let case = Case::new();
    let catalog = four_steps(&case);
    let order = case.p("order.log");

    let web = apply(&case, &catalog, &["--tags", "web"]);
    assert!(web.status.success(), "{}", all_output(&web));
    assert_eq!(
        stdout(&web),
        format!(
            "changed  exec[base]: ran `echo base >> {order}`\n\
             changed  exec[lib]: ran `echo lib >> {order}`\n\
             changed  exec[app]: ran `echo app >> {order}`\n\
             3 resources: 3 changed, 0 failed, 0 skipped, 0 unchanged\n"
        )
    );
    assert_eq!(ran(&case), "base\nlib\napp\n");

    // Tags as a list, names repeated: the union, in the order the whole
    // catalog would run in (declaration order where no edge decides).
    let both = apply(&case, &catalog, &["--tags", "db,web", "--resource", "lib"]);
    assert!(both.status.success(), "{}", all_output(&both));
    assert_eq!(ran(&case), "db\nbase\nlib\napp\n");
    let named = apply(&case, &catalog, &["--resource", "lib", "--resource", "db"]);
    assert!(named.status.success(), "{}", all_output(&named));
    assert_eq!(ran(&case), "db\nbase\nlib\n");
    assert!(
        stdout(&named).ends_with("3 resources: 3 changed, 0 failed, 0 skipped, 0 unchanged\n"),
        "{}",
        stdout(&named)
    );

    // Names the catalog lacks: an error naming them (exit 1), and nothing runs.
    let refused = |args: &[&str]| {
        let out = apply(&case, &catalog, args);
        assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
        let text = stderr(&out);
        let prefix = format!("error: selecting from {}: ", case.p("catalog.json"));
        text.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned()
    };
    assert_eq!(
        refused(&["--tags", "web,nginx"]),
        "no resource of the catalog is tagged 'nginx'; its tags: db, web\n"
    );
    assert_eq!(
        refused(&["--resource", "ghost"]),
        "the catalog has no resource named 'ghost'; `vigocli catalog ENVOY` lists its resources\n"
    );
    let invalid = apply(&case, &catalog, &["--tags", "web server"]);
    assert!(!invalid.status.success());
    assert!(
        stderr(&invalid).contains("invalid tag 'web server': ' ' is not allowed"),
        "{}",
        stderr(&invalid)
    );
    assert_eq!(ran(&case), "", "a refused selection ran something");
}

#[test]
fn issue_15_the_run_loop_refuses_a_selection() {
    let case = Case::new();
    // Refused before the config is read: no envoy.yaml exists here.
    let mut loop_run = std::process::Command::new(bin("vigoenvoy"));
    loop_run
        .arg("--config")
        .arg(case.path("envoy.yaml"))
        .args(["run", "--tags", "web"]);
    let out = run(&mut loop_run);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert_eq!(
        stderr(&out),
        "error: --tags and --resource apply part of the catalog once: add --once (the `run` loop always enforces the whole catalog)\n"
    );
}

/// The seed's database module with `pg-config` tagged `config` and
/// `set-db-password` tagged `password`.
fn tagged_database_module(out: &std::path::Path) -> String {
    database_module(out, "")
        .replacen(
            "    notify: [pg-restart]\n",
            "    notify: [pg-restart]\n    tags: [config]\n",
            1,
        )
        .replacen(
            "    stdin: \"secret:vigo/db/password\"\n",
            "    stdin: \"secret:vigo/db/password\"\n    tags: [password]\n",
            1,
        )
}

#[test]
fn issue_15_run_once_tags_applies_part_and_leaves_the_other_triggers_queued() {
    let (dir, out) = bootstrapped_with_out();
    let count = |name: &str| {
        fs::read_to_string(out.join(format!("{name}.log")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let show = |name: &str| -> Value {
        serde_json::from_str(&cli_ok(&dir, &["envoys", "show", name, "--output", "json"])).unwrap()
    };
    cli_ok(&dir, &["secrets", "set", "vigo/db/password", "first"]);
    dir.write("config/nodes.vgo", &format!("envoys:\n{DB_NODES}"));
    let module = tagged_database_module(&out);
    assert_eq!(module.matches("    tags: ").count(), 2, "{module}");
    dir.write("config/modules/database.vgo", &module);
    let mut server = dir.start_server(&[]);
    let token = cli_ok(&dir, &["envoys", "token"]);
    let db1 = EnvoyHost::new(&dir, "db1.example.com", Some(token.trim()));
    let first = db1.run_once();
    assert!(first.status.success(), "{}", all_output(&first));
    assert_eq!((count("restarts"), count("password-runs")), (1, 1));

    cli_ok(&dir, &["secrets", "set", "vigo/db/password", "second"]);
    assert!(
        server.wait_for_log("rotation queued paths=vigo/db/password"),
        "{}",
        server.log()
    );
    let queued = show("db1.example.com");
    assert_eq!(queued["force_push"], true, "{queued}");
    assert_eq!(
        queued["queued_triggers"],
        json!([
            "pg-config <- vigo/db/password",
            "set-db-password <- vigo/db/password"
        ]),
        "{queued}"
    );

    // A tag nothing carries: an error naming it, nothing applied.
    let unknown = run(&mut db1.command(&[], &["--once", "--tags", "nginx"]));
    assert_eq!(unknown.status.code(), Some(1), "{}", all_output(&unknown));
    assert!(
        stderr(&unknown).contains(
            "error: no resource of the catalog is tagged 'nginx'; its tags: config, password\n"
        ),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(
        fs::read_to_string(out.join("db.conf")).unwrap(),
        "password = first\n"
    );

    // Only pg-config: the file gets the new value; the exec that reads the
    // password is not run, and pg-restart, outside the selection, gets no
    // refresh (the envoy says so).
    let partial = run(&mut db1.command(&[], &["--once", "--tags", "config"]));
    assert!(partial.status.success(), "{}", all_output(&partial));
    let db_conf = out.join("db.conf");
    assert_eq!(
        stdout(&partial),
        format!(
            "changed  file[pg-config]: wrote {} (mode 0600)\n\
             1 resources: 1 changed, 0 failed, 0 skipped, 0 unchanged\n",
            db_conf.display()
        )
    );
    assert!(
        stderr(&partial).contains("the notified resource is not selected for this run"),
        "{}",
        stderr(&partial)
    );
    assert_eq!(fs::read_to_string(&db_conf).unwrap(), "password = second\n");
    assert_eq!((count("restarts"), count("password-runs")), (1, 1));

    // The applied trigger cleared; the other stays queued, and force-push
    // stays on: the next whole run brings the rotation to set-db-password.
    let after = show("db1.example.com");
    assert_eq!(after["force_push"], true, "{after}");
    assert_eq!(
        after["queued_triggers"],
        json!(["set-db-password <- vigo/db/password"]),
        "{after}"
    );

    let whole = db1.run_once();
    assert!(whole.status.success(), "{}", all_output(&whole));
    assert_eq!(count("password-runs"), 2, "{}", all_output(&whole));
    let done = show("db1.example.com");
    assert_eq!(done["force_push"], false, "{done}");
    assert_eq!(done["queued_triggers"], json!([]), "{done}");
    assert!(server.terminate().success());
}

//! The output scrubber over real commands: secret values never reach a
//! report, wherever the 64 KiB capture cut falls.

use serde_json::json;
use vigo_catalog::Catalog;
use vigo_engine::{ApplyOptions, Engine, REDACTED, Report};

/// 28 bytes; starts with a three-byte character, holds two-byte ones.
const CANARY: &str = "€-canäry-7f3a9c41-ÄÖ-vi";
/// Bytes kept of each output stream.
const LIMIT: usize = 64 * 1024;

async fn run(command: &str) -> Report {
    run_with_secret(command, CANARY).await
}

async fn run_with_secret(command: &str, secret: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let mut exec = json!({"name": "out", "type": "exec", "command": command, "timeout_secs": 30});
    exec["stdin"] = json!([{"secret": "app/canary"}]);
    let catalog: Catalog = serde_json::from_value(json!({
        "envoy": "test1",
        "resources": [exec],
        "secrets": {"app/canary": {"version": 1, "value": secret}},
    }))
    .unwrap();
    Engine::new(&dir.path().join("data"))
        .unwrap()
        .apply(&catalog, ApplyOptions::default())
        .await
}

fn stdout(report: &Report) -> &str {
    &report.resources[0].output.as_ref().unwrap().stdout
}

/// Any run of `min` or more bytes of the canary, as bytes or as the text
/// after a lossy cut.
fn holds_a_piece_of_the_canary(text: &str, min: usize) -> bool {
    let canary = CANARY.as_bytes();
    (0..canary.len()).any(|start| {
        (start + min..=canary.len()).any(|end| {
            let piece = &canary[start..end];
            text.as_bytes().windows(piece.len()).any(|w| w == piece)
        })
    })
}

/// The cut falls inside the canary's first character, so what is kept
/// starts with two continuation bytes and then 26 bytes of the value.
#[tokio::test]
async fn issue_12_item_9_a_cut_inside_a_character_of_a_secret_hides_no_piece_of_it() {
    assert_eq!(CANARY.len(), 28);
    let kept_of_canary = CANARY.len() - 1;
    let filler = LIMIT - kept_of_canary;
    let report = run(&format!(
        "head -c 5000 /dev/zero | tr '\\0' x; cat; head -c {filler} /dev/zero | tr '\\0' y"
    ))
    .await;
    let out = stdout(&report);
    assert!(
        !holds_a_piece_of_the_canary(out, 4),
        "a piece of the secret reached the report: {:?}",
        &out[..out.len().min(80)]
    );
    assert!(out.starts_with(REDACTED), "{:?}", &out[..out.len().min(80)]);
    assert!(out.len() <= LIMIT, "{} bytes", out.len());
    assert!(out.ends_with('y'));
}

/// Cuts through the canary, on a character boundary or not.
#[tokio::test]
async fn issue_12_item_9_no_cut_position_leaks_the_secret() {
    // Inside and after the €, inside the ä, inside ASCII, inside the Ö.
    for cut in [2, 3, 4, 9, 15, 21, 25] {
        let filler = LIMIT - (CANARY.len() - cut);
        let report = run(&format!(
            "head -c 100 /dev/zero | tr '\\0' x; cat; head -c {filler} /dev/zero | tr '\\0' y"
        ))
        .await;
        let out = stdout(&report);
        assert!(
            !holds_a_piece_of_the_canary(out, 4),
            "cut {cut}: {:?}",
            &out[..out.len().min(80)]
        );
        assert!(out.len() <= LIMIT, "cut {cut}: {} bytes", out.len());
    }
}

/// Replacing short values with `[REDACTED]` makes the text longer than the
/// limit: it is cut afterwards, at a character boundary.
#[tokio::test]
async fn issue_12_item_9_scrubbed_output_is_cut_after_scrubbing_at_a_character_boundary() {
    let count = LIMIT / 2;
    let report = run_with_secret(
        &format!(
            "v=$(cat); i=0; while [ $i -lt {count} ]; do printf '%s' \"$v\"; i=$((i+1)); done; printf 'é-end'"
        ),
        "k9",
    )
    .await;
    let out = stdout(&report);
    assert!(!out.contains("k9"));
    assert!(out.len() <= LIMIT, "{} bytes", out.len());
    assert!(out.ends_with(&format!("{REDACTED}é-end")));
    assert!(!out.contains('\u{FFFD}'), "a character was split");
}

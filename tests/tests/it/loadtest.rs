//! `approvd-loadtest` as a user runs it, briefly: every scenario against a real relay started
//! with the shipped `loadtest/relay.toml` — roundtrip by poll and by push (through the load
//! test's own FCM mock) on the memory store and on Redis, across two replicas, hold and fanout —
//! each must finish with zero errors and report what it measured. Speed is not asserted here;
//! BENCHMARKS.md has the figures.

use std::process::Command;

use approvd_tests::redis::{free_port, RedisServer};
use approvd_tests::{approvd_binary, RelayProcess, TempDir};

fn loadtest_binary() -> std::path::PathBuf {
    approvd_binary().with_file_name("approvd-loadtest")
}

/// The shipped relay settings for load tests, with FCM pointed at a mock on `fcm_port`.
fn relay(fcm_port: u16, extra: &[&str]) -> (RelayProcess, TempDir) {
    let dir = TempDir::new("loadtest");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let text = std::fs::read_to_string(format!("{root}/loadtest/fcm-service-account.json"))
        .expect("the load test's service account");
    let mut account: serde_json::Value = serde_json::from_str(&text).expect("json");
    account["token_uri"] = format!("http://127.0.0.1:{fcm_port}/token").into();
    let account_path = dir.0.join("fcm.json");
    std::fs::write(&account_path, account.to_string()).expect("write");
    let config = format!("{root}/loadtest/relay.toml");
    let base = format!("http://127.0.0.1:{fcm_port}");
    let account_path = account_path.display().to_string();
    let mut args = vec![
        "--config",
        &config,
        "--fcm-base-url",
        &base,
        "--fcm-service-account-file",
        &account_path,
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    (RelayProcess::start(&args), dir)
}

/// Run a scenario with `--json`; its summary (the run must exit 0, i.e. no errors).
fn run(args: &[String]) -> serde_json::Value {
    let output = Command::new(loadtest_binary())
        .args(args)
        .arg("--json")
        .output()
        .expect("run approvd-loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "approvd-loadtest {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

fn assert_clean(summary: &serde_json::Value) {
    assert_eq!(
        summary["results"]["errors"],
        serde_json::json!({}),
        "{summary}"
    );
}

/// A short roundtrip run; its summary after the common checks.
fn roundtrip(
    relays: &[&RelayProcess],
    learn: &str,
    redis: Option<&RedisServer>,
) -> serde_json::Value {
    let fcm_port = free_port();
    let mut args = strings(&[
        "roundtrip",
        "--duration",
        "2s",
        "--nases",
        "2",
        "--phones",
        "2",
    ]);
    args.extend(["--learn".to_owned(), learn.to_owned()]);
    args.extend(["--fcm-listen".to_owned(), format!("127.0.0.1:{fcm_port}")]);
    for relay in relays {
        args.extend(["--relay".to_owned(), relay.url.clone()]);
        args.extend(["--relay-pid".to_owned(), relay.pid().to_string()]);
    }
    if let Some(redis) = redis {
        args.extend(["--redis".to_owned(), redis.url()]);
    }
    let summary = run(&args);
    assert_clean(&summary);
    assert!(summary["approvals"].as_u64().unwrap_or(0) > 0, "{summary}");
    let cost = &summary["cost"];
    assert!(
        cost["relay_cpu_ms_per_approval"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    assert!(
        cost["overhead_factor"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    for name in ["roundtrip", "verdict_to_nas", "create"] {
        assert!(
            summary["results"]["latency"][name]["p99_ms"]
                .as_f64()
                .unwrap_or(0.0)
                > 0.0,
            "{name}: {summary}"
        );
    }
    summary
}

#[test]
fn roundtrip_by_poll_and_by_push_on_the_memory_store() {
    // The mock's port must be known to the relay first: the relay gets it, then the load test
    // listens on it.
    let fcm_port = free_port();
    let (relay, _dir) = relay(fcm_port, &[]);
    let polled = roundtrip(&[&relay], "poll", None);
    assert_eq!(polled["pushes"], serde_json::Value::Null);
    let args = strings(&[
        "roundtrip",
        "--duration",
        "2s",
        "--learn",
        "push",
        "--nases",
        "2",
        "--phones",
        "2",
        "--relay",
        &relay.url,
        "--relay-pid",
        &relay.pid().to_string(),
        "--fcm-listen",
        &format!("127.0.0.1:{fcm_port}"),
    ]);
    let pushed = run(&args);
    assert_clean(&pushed);
    let approvals = pushed["approvals"].as_u64().unwrap_or(0);
    assert!(approvals > 0, "{pushed}");
    // Every approval was learnt of through a push the relay sent to the mock.
    assert!(
        pushed["pushes"].as_u64().unwrap_or(0) >= approvals,
        "{pushed}"
    );
}

#[test]
fn roundtrip_on_redis_counts_round_trips_and_commands_per_approval() {
    let redis = RedisServer::start();
    let fcm_port = free_port();
    let (relay, _dir) = relay(fcm_port, &["--store", "redis", "--redis-url", &redis.url()]);
    let summary = roundtrip(&[&relay], "poll", Some(&redis));
    let cost = &summary["cost"];
    let round_trips = cost["redis_round_trips_per_approval"]
        .as_f64()
        .unwrap_or(0.0);
    let commands = cost["redis_commands_per_approval"].as_f64().unwrap_or(0.0);
    assert!(round_trips > 0.0 && commands >= round_trips, "{summary}");
    assert!(
        cost["redis_commands"]["evalsha"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
}

#[test]
fn roundtrip_across_two_replicas_nas_on_one_phone_on_the_other() {
    let redis = RedisServer::start();
    let fcm_port = free_port();
    let store = ["--store", "redis", "--redis-url", &redis.url()];
    let (a, _dir_a) = relay(fcm_port, &store);
    // Both replicas must share the handle key: B reads A's from its data directory.
    let key = a.dir.0.join("data").join("handle-keys");
    let key = key.display().to_string();
    let mut with_key = store.to_vec();
    with_key.extend(["--handle-key-file", &key]);
    let (b, _dir_b) = relay(fcm_port, &with_key);
    let summary = roundtrip(&[&a, &b], "poll", Some(&redis));
    assert_eq!(
        summary["relays"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
}

#[test]
fn hold_answers_every_held_poll_after_waking_them() {
    let fcm_port = free_port();
    let (relay, _dir) = relay(fcm_port, &[]);
    let summary = run(&strings(&[
        "hold",
        "--polls",
        "200",
        "--nases",
        "5",
        "--hold",
        "2s",
        "--wait-secs",
        "20",
        "--relay",
        &relay.url,
        "--relay-pid",
        &relay.pid().to_string(),
    ]));
    assert_clean(&summary);
    assert_eq!(
        summary["results"]["latency"]["woken"]["count"], 200,
        "{summary}"
    );
    assert!(
        summary["held_by_relay"].as_f64().unwrap_or(0.0) >= 200.0,
        "{summary}"
    );
    assert!(
        summary["rss_per_poll_bytes"].as_f64().is_some(),
        "{summary}"
    );
    assert!(
        summary["open_files_peak"].as_u64().unwrap_or(0) >= 200,
        "{summary}"
    );
}

#[test]
fn fanout_delivers_every_push_to_the_mock() {
    let fcm_port = free_port();
    let (relay, _dir) = relay(fcm_port, &[]);
    let plots = TempDir::new("loadtest-plots");
    let summary = run(&strings(&[
        "fanout",
        "--phones",
        "20",
        "--targets",
        "10",
        "--challenges",
        "30",
        "--relay",
        &relay.url,
        "--relay-pid",
        &relay.pid().to_string(),
        "--fcm-listen",
        &format!("127.0.0.1:{fcm_port}"),
        "--plot",
        &plots.0.display().to_string(),
    ]));
    assert_clean(&summary);
    assert_eq!(summary["pushes"], 300, "{summary}");
    assert!(
        summary["pushes_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
        "{summary}"
    );
    for plot in ["latency.svg", "timeline.svg"] {
        let svg = std::fs::read_to_string(plots.0.join(plot)).expect("plot written");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{plot}: {svg:.200}"
        );
    }
}

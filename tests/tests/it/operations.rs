//! What operators get, checked with the tools they use: a live scrape after real approvals,
//! denials, expiries, cancels and pushes (every new series moved; `promtool check metrics` is
//! clean; every metric the dashboard and the alert rules query is exported), the alert rules
//! under `promtool test rules` with runbooks that exist, request ids and the access log, the
//! configuration reference that must match `approvd serve --help`, the Kubernetes manifests
//! against the Kubernetes schemas, the compose file against docker-compose's schema, and the
//! systemd unit under `systemd-analyze verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use approvd_client::Outcome;
use approvd_proto::Decision;
use approvd_tests::{approvd_binary, context, pair, while_polling, RelayProcess, TempDir};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::push::{fcm, fcm_mock, fcm_relay, APP};

const WAIT: Duration = Duration::from_secs(10);

/// A file of the repository, by its path from the top.
fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// Run a tool the test run installs; a missing tool fails with what to install.
fn run_tool(program: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("{program}: {error} (scripts/test installs it; see its `checking tools` step)")
        });
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("tool output")
}

fn assert_success(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A scrape as `series with labels → value` (`name{a="b"}` exactly as exposed).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every series of `name` whose labels include each of `labels`.
fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Metric names a PromQL text mentions (ours and the process collector's).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\b(approvd_[a-z_]+|process_[a-z_]+)\b").expect("regex");
    pattern
        .find_iter(promql)
        .map(|found| found.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn a_scrape_after_real_traffic_moves_every_series_and_serves_the_dashboard_and_alerts() {
    let server = fcm_mock().await;
    // One throttled answer for this token, then success: a retry.
    Mock::given(method("POST"))
        .and(path("/v1/projects/approvd-test/messages:send"))
        .and(body_string_contains("flaky-token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let (relay, _dir) = fcm_relay(&server, &["--challenge-grace-secs", "5"]);
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "android", Some(fcm("flaky-token", APP))).await;
    let devices = std::slice::from_ref(&device);

    // Approved, while the NAS's poll is held (so a wakeup is measured).
    let approved = nas
        .request_approval(devices, &context("ann"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    let (outcome, ()) = while_polling(
        nas.wait_for_verdict(&approved, devices, WAIT),
        Duration::from_millis(300),
        async {
            let inbox = phone.inbox(WAIT).await.expect("inbox");
            let verdict = phone.answer(&inbox[0], Decision::Approve, None);
            phone.submit(&verdict).await.expect("approve");
        },
    )
    .await;
    assert_eq!(
        outcome.expect("poll"),
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
    // Denied.
    let denied = nas
        .request_approval(devices, &context("ben"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    let inbox = phone.inbox(WAIT).await.expect("inbox");
    phone
        .submit(&phone.answer(&inbox[0], Decision::Deny, None))
        .await
        .expect("deny");
    assert!(matches!(
        nas.wait_for_verdict(&denied, devices, WAIT).await,
        Ok(Some(Outcome::Denied { .. }))
    ));
    // Cancelled.
    let cancelled = nas
        .request_approval(devices, &context("cat"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    nas.cancel(&cancelled.cid).await.expect("cancel");
    // Expired.
    let expiring = nas
        .request_approval(devices, &context("dan"), false, Duration::from_secs(2))
        .await
        .expect("challenge");
    assert_eq!(
        nas.wait_for_verdict(&expiring, devices, WAIT)
            .await
            .expect("poll"),
        Some(Outcome::Expired)
    );

    let text = relay.get("/metrics").await.text().await.expect("scrape");
    let scraped = samples(&text);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        let found = value(&scraped, name, labels);
        assert!(found > 0.0, "{name} {labels:?} did not move:\n{text}");
    };
    moved(
        "approvd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    assert!(!text.contains("git_sha=\"\""), "the build names its commit");
    for outcome in ["approved", "denied", "cancelled", "expired"] {
        moved("approvd_challenges_ended_total", &[("outcome", outcome)]);
    }
    for decision in ["approved", "denied"] {
        moved(
            "approvd_approval_latency_seconds_count",
            &[("decision", decision)],
        );
    }
    moved(
        "approvd_push_total",
        &[("provider", "fcm"), ("result", "delivered")],
    );
    moved(
        "approvd_push_duration_seconds_count",
        &[("provider", "fcm")],
    );
    moved("approvd_push_retries_total", &[("provider", "fcm")]);
    moved("approvd_longpoll_wakeups_total", &[("source", "local")]);
    moved(
        "approvd_longpoll_wake_latency_seconds_count",
        &[("source", "local")],
    );
    for operation in ["create_challenge", "decide", "cancel", "inbox", "ping"] {
        moved(
            "approvd_store_operation_duration_seconds_count",
            &[("operation", operation)],
        );
    }
    moved("approvd_store_up", &[]);
    moved(
        "approvd_http_requests_total",
        &[("route", "/v1/challenges"), ("status", "201")],
    );
    moved("process_open_fds", &[]);
    moved("process_resident_memory_bytes", &[]);
    // No client-controlled value became a label.
    assert!(!text.contains(&device.device_id.to_string()));

    let lint = run_tool("promtool", &["check", "metrics"], Some(&text));
    assert_success(&lint, "promtool check metrics");

    // Every metric the dashboard and the alert rules query is one a live relay exports.
    let exported: BTreeSet<String> = scraped
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series).to_owned())
        .collect();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/approvd.json")).expect("dashboard JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let alerts = read("deploy/prometheus/alerts.yml");
    for (file, names) in [
        ("dashboard", metric_names(&queries.join("\n"))),
        ("alerts.yml", metric_names(&alerts)),
    ] {
        assert!(names.len() >= 5, "{file}: {names:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{file} queries {name}, which the relay does not export"
            );
        }
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_their_runbooks_exist() {
    let rules = repo_file("deploy/prometheus/alerts.yml");
    let tests = repo_file("deploy/prometheus/alerts.test.yml");
    let check = run_tool(
        "promtool",
        &["check", "rules", rules.to_str().expect("path")],
        None,
    );
    assert_success(&check, "promtool check rules");
    let unit = run_tool(
        "promtool",
        &["test", "rules", tests.to_str().expect("path")],
        None,
    );
    assert_success(&unit, "promtool test rules");

    // Every alert has a unit test and a runbook section in docs/operations.md.
    let alerts = read("deploy/prometheus/alerts.yml");
    let tested = read("deploy/prometheus/alerts.test.yml");
    let operations = read("docs/operations.md");
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 9, "{names:?}");
    for name in names {
        assert!(
            tested.contains(&format!("alertname: {name}")),
            "{name} has no unit test"
        );
        let runbook = format!("docs/operations.md#{}", name.to_lowercase());
        assert!(
            alerts.contains(&runbook),
            "{name} has no runbook annotation"
        );
        assert!(
            anchors.contains(&name.to_lowercase()),
            "docs/operations.md has no section for {name}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_echoed_named_in_problems_and_logged_once_per_request() {
    let relay = RelayProcess::start(&[]);
    let http = reqwest::Client::new();
    let given = http
        .get(format!("{}/healthz", relay.url))
        .header("X-Request-Id", "lb-7f3a:2")
        .send()
        .await
        .expect("healthz");
    assert_eq!(given.headers()["x-request-id"], "lb-7f3a:2");

    // Odd or long ids are replaced (a log line never carries arbitrary client text).
    for odd in ["has space", "<script>", &"a".repeat(65)] {
        let response = http
            .get(format!("{}/healthz", relay.url))
            .header("X-Request-Id", odd)
            .send()
            .await
            .expect("healthz");
        let id = response.headers()["x-request-id"].to_str().expect("ascii");
        assert_ne!(id, odd);
        assert!(id.len() >= 16 && id.len() <= 64, "{id}");
    }

    // A failed request's problem document names its id.
    let failed = http
        .post(format!("{}/v1/challenges", relay.url))
        .header("X-Request-Id", "nas-42")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(failed.status(), 401);
    assert_eq!(failed.headers()["x-request-id"], "nas-42");
    let problem: serde_json::Value = failed.json().await.expect("problem");
    assert_eq!(problem["instance"], "nas-42", "{problem}");
    let generated = http
        .get(format!("{}/nowhere", relay.url))
        .send()
        .await
        .expect("404");
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let problem: serde_json::Value = generated.json().await.expect("problem");
    assert_eq!(problem["instance"], id.as_str());

    // A long-poll is logged once, when it ends, with how long it waited.
    let nas = relay.nas();
    let (phone, _) = pair(&nas, "phone", None).await;
    assert!(phone
        .inbox(Duration::from_secs(1))
        .await
        .expect("inbox")
        .is_empty());

    let log = relay.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("approvd::access"))
        .collect();
    let line = |id: &str| {
        let found: Vec<&&str> = access
            .iter()
            .filter(|line| line.contains(&format!("request_id=\"{id}\"")))
            .collect();
        assert_eq!(found.len(), 1, "{id}: {found:?}\n{log}");
        *found[0]
    };
    let health = line("lb-7f3a:2");
    assert!(
        health.contains("route=\"/healthz\"") && health.contains("status=200"),
        "{health}"
    );
    let post = line("nas-42");
    assert!(post.contains("method=\"POST\""), "{post}");
    assert!(post.contains("status=401"), "{post}");
    let polls: Vec<&&str> = access
        .iter()
        .filter(|line| line.contains("/inbox") && line.contains("waited=true"))
        .collect();
    assert_eq!(polls.len(), 1, "{access:?}");
    let waited_ms: f64 = regex::Regex::new(r"duration_ms=([0-9.]+)")
        .expect("regex")
        .captures(polls[0])
        .and_then(|found| found[1].parse().ok())
        .expect("duration");
    assert!(waited_ms >= 900.0, "{}", polls[0]);
    // Client addresses are personal data: not logged unless asked for.
    assert!(!log.contains("client_ip"), "{log}");

    // JSON lines with the client address when asked; nothing when the access log is off.
    let json_relay = RelayProcess::start(&["--log-format", "json", "--log-client-ip", "true"]);
    http.get(format!("{}/healthz", json_relay.url))
        .header("X-Request-Id", "json-1")
        .send()
        .await
        .expect("healthz");
    let entry: serde_json::Value = json_relay
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["fields"]["request_id"] == "json-1")
        .expect("a JSON access line");
    assert_eq!(entry["target"], "approvd::access");
    assert_eq!(entry["fields"]["client_ip"], "127.0.0.1");
    assert_eq!(entry["fields"]["route"], "/healthz");
    assert_eq!(entry["fields"]["status"], 200);
    let quiet = RelayProcess::start(&["--access-log", "false"]);
    http.get(format!("{}/healthz", quiet.url))
        .send()
        .await
        .expect("healthz");
    assert!(!quiet.log().contains("approvd::access"));
}

/// The options table of docs/operations.md, rendered from `approvd serve --help`.
fn reference_from_help() -> String {
    let output = Command::new(approvd_binary())
        .args(["serve", "--help"])
        .output()
        .expect("approvd serve --help");
    let help = String::from_utf8(output.stdout).expect("utf-8");
    let flag = regex::Regex::new(r"^\s+--([a-z-]+) <([A-Z0-9]+)>$").expect("regex");
    let env = regex::Regex::new(r" \[env: ([A-Z_]+)\]").expect("regex");
    let default = regex::Regex::new(r" \[default: ([^\]]*)\]").expect("regex");
    let mut rows = vec![
        "| Flag | Environment | Default | What it does |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    let mut lines = help.lines();
    while let Some(line) = lines.next() {
        let Some(found) = flag.captures(line) else {
            continue;
        };
        let text = lines.next().unwrap_or_default().trim();
        let env_name = env
            .captures(text)
            .map_or("", |found| found.get(1).map_or("", |m| m.as_str()));
        let default_value = default
            .captures(text)
            .and_then(|found| found.get(1))
            .map_or("—".to_owned(), |m| format!("`{}`", m.as_str()));
        let what = default
            .replace(&env.replace(text, ""), "")
            .replace('|', "\\|");
        rows.push(format!(
            "| `--{} {}` | `{env_name}` | {default_value} | {} |",
            &found[1],
            &found[2],
            what.trim()
        ));
    }
    rows.join("\n")
}

#[test]
fn the_configuration_reference_matches_serve_help() {
    const BEGIN: &str = "<!-- options:begin (generated from `approvd serve --help`; APPROVD_BLESS=1 cargo test the_configuration_reference rewrites it) -->";
    const END: &str = "<!-- options:end -->";
    let expected = reference_from_help();
    assert!(expected.lines().count() > 40, "{expected}");
    let path = repo_file("docs/operations.md");
    let text = read("docs/operations.md");
    let (before, rest) = text.split_once(BEGIN).expect("the begin marker");
    let (current, after) = rest.split_once(END).expect("the end marker");
    if current.trim() != expected.trim() {
        if std::env::var_os("APPROVD_BLESS").is_some() {
            std::fs::write(&path, format!("{before}{BEGIN}\n{expected}\n{END}{after}"))
                .expect("rewrite");
        } else {
            panic!(
                "docs/operations.md's option table differs from `approvd serve --help`; rerun with \
                 APPROVD_BLESS=1 to rewrite it. Expected:\n{expected}"
            );
        }
    }
}

#[test]
fn the_kubernetes_manifests_validate_against_the_kubernetes_schemas() {
    let dir = repo_file("deploy/kubernetes");
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    let mut files: Vec<String> = kustomization
        .lines()
        .skip_while(|line| !line.starts_with("resources:"))
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect();
    assert_eq!(files.len(), 5, "{files:?}");
    files.push("secrets.example.yaml".to_owned());
    let paths: Vec<String> = files
        .iter()
        .map(|file| {
            let path = dir.join(file);
            assert!(
                path.exists(),
                "kustomization lists {file}, which is missing"
            );
            path.display().to_string()
        })
        .collect();
    let mut args = vec!["-m", "kubernetes_validate", "--strict"];
    args.extend(paths.iter().map(String::as_str));
    let output = run_tool("python3", &args, None);
    assert_success(&output, "kubernetes-validate --strict");
    let report = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "deployment/approvd",
        "service/approvd",
        "poddisruptionbudget/approvd",
        "horizontalpodautoscaler/approvd",
        "configmap/approvd",
        "secret/approvd-handle-keys",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{report}"
        );
    }
    // The probes and the hardening the issue asks for are there.
    let deployment = read("deploy/kubernetes/deployment.yaml");
    for needle in [
        "path: /readyz",
        "path: /healthz",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "secretName: approvd-handle-keys",
    ] {
        assert!(
            deployment.contains(needle),
            "deployment.yaml lacks {needle}"
        );
    }
}

#[test]
fn the_compose_file_and_its_prometheus_config_validate() {
    let compose = repo_file("deploy/compose/compose.yaml");
    let output = run_tool(
        "docker-compose",
        &["-f", compose.to_str().expect("path"), "config", "-q"],
        None,
    );
    assert_success(&output, "docker-compose config");
    // Every file it mounts from the repository exists (handle-keys is the operator's own).
    let text = read("deploy/compose/compose.yaml");
    let mount = regex::Regex::new(r"- (\.{1,2}/[^:]+):").expect("regex");
    let mut mounted = 0;
    for found in mount.captures_iter(&text) {
        let source = &found[1];
        if source == "./handle-keys" {
            continue;
        }
        assert!(
            repo_file("deploy/compose").join(source).exists(),
            "compose.yaml mounts {source}, which is missing"
        );
        mounted += 1;
    }
    assert_eq!(mounted, 5);
    // Prometheus's own check of its config, with the rules beside it as in the container.
    let dir = TempDir::new("prometheus-config");
    std::fs::copy(
        repo_file("deploy/compose/prometheus.yml"),
        dir.0.join("prometheus.yml"),
    )
    .expect("copy");
    std::fs::copy(
        repo_file("deploy/prometheus/alerts.yml"),
        dir.0.join("alerts.yml"),
    )
    .expect("copy");
    let config = dir.0.join("prometheus.yml");
    let output = run_tool(
        "promtool",
        &["check", "config", config.to_str().expect("path")],
        None,
    );
    assert_success(&output, "promtool check config");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("deploy/systemd/approvd.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/approvd serve"));
    // Verified as installed, but with the binary this test run built.
    let dir = TempDir::new("systemd");
    let path = dir.0.join("approvd.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/approvd",
            approvd_binary().to_str().expect("path"),
        ),
    )
    .expect("write unit");
    let output = run_tool(
        "systemd-analyze",
        &["verify", path.to_str().expect("path")],
        None,
    );
    assert_success(&output, "systemd-analyze verify");
    // It reports unknown keys and bad values on stderr while still exiting 0.
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(complaints.trim().is_empty(), "{complaints}");
    for needle in [
        "DynamicUser=yes",
        "StateDirectory=approvd",
        "LoadCredential=handle-keys:",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(needle), "the unit lacks {needle}");
    }
}

//! Redis as production runs it, against real servers: a TLS-only server with a private CA that
//! requires client certificates (a whole flow through the relay binary), a wrong CA or a wrong
//! password stopping startup with the option to fix, a password from a file or the environment
//! that never reaches the log, the loudly logged opt-out of certificate checks, and Sentinel:
//! over TLS with passwords, and a master killed in the middle of a stream of flows. (The store
//! conformance suite also runs on a TLS server and a TLS cluster.)

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use approvd_tests::redis::{RedisSentinels, RedisServer};
use approvd_tests::tls::TestPki;
use approvd_tests::{approvd_binary, pair, request_one, RelayProcess, TempDir};

/// `approvd serve` with `args` that must refuse to start: its exit code and stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = TempDir::new("refused");
    let mut command = Command::new(approvd_binary());
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&dir.0)
        .args(args)
        .env_remove("APPROVD_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run approvd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One approval through `relay`: pairing, challenge, inbox, verdict, outcome.
async fn one_flow(relay: &RelayProcess) {
    let nas = relay.nas();
    let (phone, device) = pair(&nas, "phone", None).await;
    let sent = request_one(&nas, &device, "tls").await;
    let received = phone
        .inbox(Duration::from_secs(5))
        .await
        .expect("inbox")
        .remove(0);
    phone
        .submit(&phone.answer(&received, approvd_proto::Decision::Approve, None))
        .await
        .expect("verdict");
    let outcome = nas
        .wait_for_verdict(&sent, std::slice::from_ref(&device), Duration::from_secs(5))
        .await
        .expect("poll");
    assert!(
        matches!(outcome, Some(approvd_client::Outcome::Approved { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_tls_only_redis_with_client_certificates_serves_a_whole_flow() {
    let pki = Arc::new(TestPki::new());
    let redis = RedisServer::start_tls(Arc::clone(&pki));
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let relay = RelayProcess::start(&[
        "--store",
        "redis",
        "--redis-url",
        &url,
        "--redis-tls-ca-file",
        &ca,
        "--redis-tls-cert-file",
        &cert,
        "--redis-tls-key-file",
        &key,
    ]);
    one_flow(&relay).await;
    assert_eq!(relay.get("/readyz").await.status(), 200);

    // The same server with another CA: startup stops and names the option.
    let dir = TempDir::new("other-ca");
    let other = TestPki::unrelated_ca(&dir.0);
    let other = other.display().to_string();
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-tls-ca-file",
            &other,
            "--redis-tls-cert-file",
            &cert,
            "--redis-tls-key-file",
            &key,
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--redis-tls-ca-file: the Redis server's certificate does not chain"),
        "{stderr}"
    );
    // Without the client certificate the server refuses the handshake.
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-tls-ca-file",
            &ca,
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("approvd: "), "{stderr}");
    // TLS settings for a connection that is not TLS are refused before anything is tried.
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--redis-tls-ca-file",
            &ca,
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis-tls-ca-file"), "{stderr}");

    // The opt-out works, and says what it costs.
    let insecure = RelayProcess::start(&[
        "--store",
        "redis",
        "--redis-url",
        &url,
        "--redis-tls-insecure",
        "true",
        "--redis-tls-cert-file",
        &cert,
        "--redis-tls-key-file",
        &key,
    ]);
    assert_eq!(insecure.get("/readyz").await.status(), 200);
    assert!(
        insecure.log().contains("certificates are NOT verified"),
        "{}",
        insecure.log()
    );
}

#[tokio::test]
async fn the_password_comes_from_a_file_or_the_environment_and_never_reaches_the_log() {
    let password = format!(
        "pw-{}",
        approvd_proto::ids::encode_b64(&approvd_proto::random_bytes::<12>())
    );
    let redis = RedisServer::start_with_password(&password);
    let url = redis.url();
    let dir = TempDir::new("password");
    let file = dir.0.join("redis-password");
    std::fs::write(&file, format!("{password}\n")).expect("write");
    let file = file.display().to_string();

    let from_file = RelayProcess::start(&[
        "--store",
        "redis",
        "--redis-url",
        &url,
        "--redis-password-file",
        &file,
    ]);
    one_flow(&from_file).await;
    let from_env = RelayProcess::start_with_env(
        &["--store", "redis", "--redis-url", &url],
        &[("APPROVD_REDIS_PASSWORD", &password)],
    );
    assert_eq!(from_env.get("/readyz").await.status(), 200);
    for relay in [&from_file, &from_env] {
        assert!(!relay.log().contains(&password), "{}", relay.log());
    }
    // A password in the URL works but is warned about and kept out of the log.
    let in_url = format!("redis://:{password}@127.0.0.1:{}/", redis.port);
    let legacy = RelayProcess::start(&["--store", "redis", "--redis-url", &in_url]);
    assert_eq!(legacy.get("/readyz").await.status(), 200);
    let log = legacy.log();
    assert!(!log.contains(&password), "{log}");
    assert!(log.contains("--redis-url carries credentials"), "{log}");

    // A wrong password stops startup naming where the password comes from.
    let wrong = dir.0.join("wrong");
    std::fs::write(&wrong, "not-it\n").expect("write");
    let wrong = wrong.display().to_string();
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-password-file",
            &wrong,
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--redis-password-file: Redis refused the credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-it"), "{stderr}");
    // Both sources at once is a configuration error; so is a missing file.
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-password-file",
            &file,
        ],
        &[("APPROVD_REDIS_PASSWORD", &password)],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains(&password), "{stderr}");
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-password-file",
            "/nonexistent/redis-password",
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--redis-password-file: /nonexistent/redis-password"),
        "{stderr}"
    );
}

/// How one flow of the stream ended.
#[derive(Debug)]
enum Ended {
    Approved,
    /// A request answered 503 (the relay had no master to write to): the caller retries.
    Unavailable,
    /// Anything else: a flow the failover lost.
    Lost(String),
}

/// One approval with a fresh challenge, or where it stopped.
async fn attempt(
    nas: &approvd_client::Nas,
    phone: &approvd_client::Phone,
    device: &approvd_client::PairedDevice,
) -> Ended {
    let classify = |error: approvd_client::ClientError| match error.problem_name() {
        Some("unavailable") => Ended::Unavailable,
        _ => Ended::Lost(error.to_string()),
    };
    let sent = match nas
        .request_approval(
            std::slice::from_ref(device),
            &approvd_tests::context("sentinel"),
            false,
            Duration::from_secs(60),
        )
        .await
    {
        Ok(sent) => sent,
        Err(error) => return classify(error),
    };
    // (The inbox also holds the challenge nobody answers, for the held poll.)
    let received = match phone.inbox(Duration::from_secs(5)).await {
        Ok(entries) => match entries
            .into_iter()
            .find(|entry| entry.entry.cid == sent.cid)
        {
            Some(entry) => entry,
            None => return Ended::Lost("the challenge never reached the inbox".to_owned()),
        },
        Err(error) => return classify(error),
    };
    if let Err(error) = phone
        .submit(&phone.answer(&received, approvd_proto::Decision::Approve, None))
        .await
    {
        return classify(error);
    }
    match nas
        .wait_for_verdict(&sent, std::slice::from_ref(device), Duration::from_secs(5))
        .await
    {
        Ok(Some(approvd_client::Outcome::Approved { .. })) => Ended::Approved,
        Ok(other) => Ended::Lost(format!("{other:?}")),
        Err(error) => classify(error),
    }
}

/// The group's data-node and Sentinel passwords in files: their paths.
fn password_files(dir: &TempDir) -> (String, String) {
    let data = dir.0.join("redis-password");
    std::fs::write(&data, RedisSentinels::PASSWORD).expect("write");
    let sentinel = dir.0.join("sentinel-password");
    std::fs::write(&sentinel, RedisSentinels::SENTINEL_PASSWORD).expect("write");
    (data.display().to_string(), sentinel.display().to_string())
}

#[tokio::test]
async fn a_tls_only_sentinel_group_with_a_private_ca_serves_a_whole_flow() {
    let pki = Arc::new(TestPki::new());
    let group = RedisSentinels::start_tls(Arc::clone(&pki));
    let dir = TempDir::new("sentinel-tls");
    let (data_password, sentinel_password) = password_files(&dir);
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let relay = RelayProcess::start(&[
        "--store",
        "redis",
        "--redis-sentinel",
        &group.nodes.join(","),
        "--redis-sentinel-master",
        RedisSentinels::MASTER,
        "--redis-tls",
        "true",
        "--redis-tls-ca-file",
        &ca,
        "--redis-tls-cert-file",
        &cert,
        "--redis-tls-key-file",
        &key,
        "--redis-password-file",
        &data_password,
        "--redis-sentinel-password-file",
        &sentinel_password,
    ]);
    one_flow(&relay).await;
    // Without TLS the Sentinels cannot be asked: startup says so, naming the option.
    let (code, stderr) = refused(
        &[
            "--store",
            "redis",
            "--redis-sentinel",
            &group.nodes.join(","),
            "--redis-password-file",
            &data_password,
            "--redis-sentinel-password-file",
            &sentinel_password,
        ],
        &[],
    );
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--redis-sentinel: no Sentinel named a reachable master"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_in_the_middle_of_a_stream_of_flows_loses_none() {
    let mut group = RedisSentinels::start();
    let nodes = group.nodes.join(",");
    let dir = TempDir::new("sentinel-passwords");
    let (data_password, sentinel_password) = password_files(&dir);
    let relay = RelayProcess::start(&[
        "--store",
        "redis",
        "--redis-sentinel",
        &nodes,
        "--redis-sentinel-master",
        RedisSentinels::MASTER,
        "--redis-password-file",
        &data_password,
        "--redis-sentinel-password-file",
        &sentinel_password,
        "--rate-challenges-per-device",
        "100000",
        "--rate-requests-per-caller",
        "100000",
    ]);
    let nas = relay.nas();
    let (mut phone, device) = pair(&nas, "phone", None).await;
    phone.set_prompt_limit(usize::MAX);
    let first_master = group.current_master().expect("a master");

    // A poll held across the failover, on a challenge nobody answers.
    let held = request_one(&nas, &device, "held").await;
    let held_poll = {
        let nas = nas.clone();
        let device = device.clone();
        tokio::spawn(async move {
            nas.wait_for_verdict(
                &held,
                std::slice::from_ref(&device),
                Duration::from_secs(20),
            )
            .await
        })
    };

    // /readyz sampled every 100 ms from the kill on: it must say 503 while there is no master.
    let readiness = {
        let url = format!("{}/readyz", relay.url);
        let http = reqwest::Client::new();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..100 {
                if let Ok(response) = http.get(&url).send().await {
                    statuses.push(response.status().as_u16());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            statuses
        })
    };
    let started = std::time::Instant::now();
    let mut killed_at = None;
    let mut first_success_after_kill = None;
    let mut endings = Vec::new();
    while started.elapsed() < Duration::from_secs(40) {
        if killed_at.is_none() && endings.len() >= 20 {
            group.master.kill();
            killed_at = Some(std::time::Instant::now());
        }
        let ended = attempt(&nas, &phone, &device).await;
        if matches!(ended, Ended::Unavailable) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let (Some(at), Ended::Approved, None) = (killed_at, &ended, first_success_after_kill) {
            first_success_after_kill = Some(at.elapsed());
        }
        endings.push(ended);
        if first_success_after_kill.is_some()
            && endings
                .iter()
                .rev()
                .take(20)
                .all(|ended| matches!(ended, Ended::Approved))
        {
            break;
        }
    }
    let Some(gap) = first_success_after_kill else {
        panic!(
            "no flow succeeded after the promotion (master now {:?}); last endings {:?}\n{}",
            group.current_master(),
            endings.iter().rev().take(5).collect::<Vec<_>>(),
            relay.log()
        );
    };
    let approved = endings
        .iter()
        .filter(|e| matches!(e, Ended::Approved))
        .count();
    let unavailable = endings
        .iter()
        .filter(|e| matches!(e, Ended::Unavailable))
        .count();
    let lost: Vec<&str> = endings
        .iter()
        .filter_map(|ended| match ended {
            Ended::Lost(reason) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    println!(
        "sentinel failover: gap {gap:?} from the kill to the next approval; {approved} approved, \
         {unavailable} answered 503, {} lost",
        lost.len()
    );
    assert!(lost.is_empty(), "flows lost in the failover: {lost:?}");
    assert_ne!(group.current_master(), Some(first_master), "a new master");
    let statuses = readiness.await.expect("readiness samples");
    assert!(
        statuses.contains(&503) && statuses.last() == Some(&200),
        "/readyz is 503 while the master is replaced, then 200: {statuses:?}"
    );
    assert!(
        relay.log().contains("the Sentinels named a new master"),
        "{}",
        relay.log()
    );
    // The held poll ended cleanly: its answer, or 503 while there was no master.
    let held = held_poll.await.expect("task");
    match held {
        Ok(None) => {}
        Err(error) => assert_eq!(error.problem_name(), Some("unavailable"), "{error}"),
        Ok(Some(outcome)) => panic!("nobody answered the held challenge: {outcome:?}"),
    }
    assert_eq!(relay.get("/readyz").await.status(), 200);

    // Wakeups survive: a poll held on the new master is woken by the verdict (pub/sub there).
    let sent = request_one(&nas, &device, "after").await;
    let entry = phone
        .inbox(Duration::from_secs(5))
        .await
        .expect("inbox")
        .into_iter()
        .find(|entry| entry.entry.cid == sent.cid)
        .expect("the new challenge");
    let woken = std::time::Instant::now();
    let (outcome, submitted) = approvd_tests::while_polling(
        nas.wait_for_verdict(
            &sent,
            std::slice::from_ref(&device),
            Duration::from_secs(10),
        ),
        Duration::from_millis(300),
        phone.submit(&phone.answer(&entry, approvd_proto::Decision::Approve, None)),
    )
    .await;
    submitted.expect("verdict");
    assert!(matches!(
        outcome.expect("poll"),
        Some(approvd_client::Outcome::Approved { .. })
    ));
    assert!(
        woken.elapsed() < Duration::from_secs(3),
        "woken by pub/sub, not by its deadline: {:?}",
        woken.elapsed()
    );
}

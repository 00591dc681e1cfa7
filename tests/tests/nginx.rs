//! The shipped nginx configuration (deploy/nginx/approvd.conf) in a real nginx, terminating TLS
//! with a certificate made for the test, in front of a relay started with
//! `--trust-forwarded-for true`: a pairing, a held long-poll woken by the verdict, and the per-IP
//! limit keyed on the address nginx forwards, all through it. Its own test binary because the
//! SDK learns to trust the test certificate from `SSL_CERT_FILE`, a process-wide setting.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use approvd_client::{Nas, Outcome};
use approvd_proto::Decision;
use approvd_tests::redis::free_port;
use approvd_tests::tls::TestPki;
use approvd_tests::{context, pair, while_polling, RelayProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// nginx running the shipped file, with only its addresses and certificate paths replaced.
struct Nginx {
    child: Child,
    url: String,
    _dir: TempDir,
    _pki: TestPki,
}

impl Nginx {
    fn start(relay: &RelayProcess) -> Self {
        let dir = TempDir::new("nginx");
        let pki = TestPki::new();
        let (cert, key) = (
            pki.server_cert.display().to_string(),
            pki.server_key.display().to_string(),
        );
        let port = free_port();
        let upstream = relay.url.trim_start_matches("http://");
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/nginx/approvd.conf"
        ))
        .expect("deploy/nginx/approvd.conf");
        let mut site = shipped.clone();
        for (from, to) in [
            ("server 127.0.0.1:8080;", format!("server {upstream};")),
            (
                "listen 443 ssl http2;",
                format!("listen 127.0.0.1:{port} ssl http2;"),
            ),
            ("listen [::]:443 ssl http2;", String::new()),
            ("/etc/approvd/tls/fullchain.pem", cert.clone()),
            ("/etc/approvd/tls/privkey.pem", key.clone()),
        ] {
            assert!(
                site.contains(from),
                "the shipped config no longer has `{from}`"
            );
            site = site.replace(from, &to);
        }
        let root = dir.0.display();
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
             {site}\n}}\n"
        );
        let conf = dir.0.join("nginx.conf");
        std::fs::write(&conf, main).expect("nginx.conf");
        let check = Command::new("nginx")
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir.0)
            .output()
            .expect("nginx (scripts/test installs it)");
        assert!(
            check.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let url = format!("https://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The SDK trusts exactly the test CA (set before any other thread of this binary
        // reads the environment: this binary runs one test).
        std::env::set_var("SSL_CERT_FILE", &pki.ca);
        Self {
            child,
            url,
            _dir: dir,
            _pki: pki,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that connects from `source` (another loopback address) and trusts `cert`.
fn client_from(source: Ipv4Addr, cert: &str) -> reqwest::Client {
    let pem = std::fs::read(cert).expect("cert");
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_whole_flow_and_the_per_ip_limit_work_through_the_shipped_nginx_config() {
    let relay = RelayProcess::start(&[
        "--trust-forwarded-for",
        "true",
        "--rate-auth-failures-per-ip",
        "5",
        "--log-client-ip",
        "true",
        "--max-wait-secs",
        "20",
    ]);
    let nginx = Nginx::start(&relay);

    // Pairing and a sign-in, every request signed over the https URL nginx serves.
    let nas = Nas::new(&nginx.url, approvd_proto::generate_signing_key()).expect("nas");
    let (phone, device) = pair(&nas, "phone", None).await;
    let devices = std::slice::from_ref(&device);
    let sent = nas
        .request_approval(devices, &context("erin"), false, Duration::from_secs(60))
        .await
        .expect("challenge");
    // The NAS's poll is held in nginx and the relay until the phone answers 1.5 s later.
    let started = Instant::now();
    let (outcome, ()) = while_polling(
        nas.wait_for_verdict(&sent, devices, WAIT),
        Duration::from_millis(1500),
        async {
            let inbox = phone.inbox(WAIT).await.expect("inbox");
            phone
                .submit(&phone.answer(&inbox[0], Decision::Approve, None))
                .await
                .expect("verdict");
        },
    )
    .await;
    assert_eq!(
        outcome.expect("poll"),
        Some(Outcome::Approved {
            device_id: device.device_id
        })
    );
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(1400) && held < WAIT,
        "the poll was answered when the verdict came, not before or at its deadline: {held:?}"
    );
    let log = relay.log();
    assert!(
        log.lines()
            .any(|line| line.contains("/v1/challenges/{cid}/verdict")
                && line.contains("waited=true")),
        "the held poll went through nginx to the relay:\n{log}"
    );

    // Unsigned requests from one client address exhaust that address's failure budget…
    let cert = std::env::var("SSL_CERT_FILE").expect("cert");
    let attacker = client_from(Ipv4Addr::new(127, 0, 0, 7), &cert);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = attacker
            .post(format!("{}/v1/challenges", nginx.url))
            .body("{}")
            .send()
            .await
            .expect("through nginx");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[7], 429, "{statuses:?}");
    // …while another client behind the same nginx is judged on its own.
    let bystander = client_from(Ipv4Addr::new(127, 0, 0, 8), &cert);
    let response = bystander
        .post(format!("{}/v1/challenges", nginx.url))
        .body("{}")
        .send()
        .await
        .expect("through nginx");
    assert_eq!(response.status(), 401);
    let log = relay.log();
    assert!(log.contains("client_ip=127.0.0.7"), "{log}");
    assert!(log.contains("client_ip=127.0.0.8"), "{log}");
}

//! The reference web sign-in page (`examples/signin-web`) in a real browser: headless Chromium
//! driven over WebDriver (`chromedriver`) types into the page while an SDK phone answers the
//! approval requests the page makes through a real agent and relay. Two-step and passwordless
//! sign-in, wrong number, deny, fraud, expiry, resend, leaving the page, offline and recovery
//! codes, an unreachable relay, no account enumeration, the per-username request budget and
//! CSRF. Screenshots of each state go to `target/tmp/signin-screenshots/` (or
//! `$APPROVD_SCREENSHOTS`, which is how `docs/images/` is refreshed).

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use approvd_client::transport::unix_now;
use approvd_client::{NasHome, Phone, ReceivedChallenge};
use approvd_proto::context::LoginKind;
use approvd_proto::Decision;
use approvd_tests::agent::start_agent;
use approvd_tests::{eventually, only_request, pair_for, workspace_binary, RelayProcess, TempDir};
use fantoccini::{Client, Locator};

/// How long the page gives the phone: short, so that the expiry case is quick.
const LIFETIME_SECS: u64 = 12;
const WAIT: Duration = Duration::from_secs(30);

/// A child process killed on drop.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `approvd-signin-web` (with `extra` flags); its base URL.
pub(crate) fn start_page(
    socket: &std::path::Path,
    users: &std::path::Path,
    dir: &TempDir,
    extra: &[&str],
) -> (Killed, String) {
    let mut child = Command::new(workspace_binary("approvd-signin-web"))
        .args(["--listen", "127.0.0.1:0", "--agent-socket"])
        .arg(socket)
        .arg("--users")
        .arg(users)
        .args(["--request-lifetime", &LIFETIME_SECS.to_string()])
        .args(["--requests-per-user", "40"])
        .args(["--request-window", "600"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.0.join("signin-web.log")).expect("log"))
        .spawn()
        .expect("spawn approvd-signin-web");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .strip_prefix("approvd-signin-web listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (Killed(child), url)
}

/// A NAS home with alice's phone paired, its agent, and the sign-in page on the agent's login
/// socket behind a trusted proxy (`--trust-forwarded-for`, so each test client chooses its
/// address), with a client that follows no redirect. Dropped: every process stopped.
pub(crate) struct AlicesPage {
    pub page: Killed,
    pub base: String,
    pub http: reqwest::Client,
    pub phone: Phone,
    pub home_path: PathBuf,
    _agent: approvd_tests::agent::AgentProcess,
    _relay: RelayProcess,
    _dir: TempDir,
}

pub(crate) async fn alices_page(label: &str, relay_args: &[&str]) -> AlicesPage {
    let relay = RelayProcess::start(relay_args);
    let dir = TempDir::new(label);
    let home_path = dir.0.join("nas");
    let home = NasHome::init(&home_path, &relay.url, "Home NAS").expect("init");
    let (phone, device, secret) =
        pair_for(&home.nas().expect("nas"), "alice", "Alice's phone", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    drop(home);
    let agent = start_agent(&home_path);
    let users =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/signin-web/users.toml");
    let (page, base) = start_page(
        &agent.login_socket,
        &users,
        &dir,
        &["--trust-forwarded-for"],
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    AlicesPage {
        page,
        base,
        http,
        phone,
        home_path,
        _agent: agent,
        _relay: relay,
        _dir: dir,
    }
}

/// `chromedriver` and every browser process it started (its process group); killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// `chromedriver` on a free port, and a headless Chromium session through it.
async fn start_browser(dir: &TempDir) -> (Driver, Client) {
    let chromedriver = which("chromedriver").unwrap_or_else(|| {
        panic!("chromedriver is missing: install the Debian packages chromium and chromium-driver (scripts/test does when run as root)")
    });
    let chromium = which("chromium").or_else(|| which("chromium-browser")).unwrap_or_else(|| {
        panic!("chromium is missing: install the Debian package chromium (scripts/test does when run as root)")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    // Its own process group: dropping it also ends the Chromium it started, even when the
    // test fails before closing the session.
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::fs::File::create(dir.0.join("chromedriver.log")).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver"),
    );
    let profile = dir.0.join("chromium-profile");
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=460,820", "--no-first-run", "--disable-extensions",
                format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let capabilities = capabilities
        .as_object()
        .cloned()
        .expect("capabilities object");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connected = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities.clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await;
        match connected {
            Ok(client) => return (driver, client),
            Err(error) if std::time::Instant::now() > deadline => {
                panic!("no WebDriver session: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("APPROVD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("signin-screenshots"))
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("signin-{name}.png")), png).expect("write screenshot");
}

/// The text of the first element matching `css`, once it contains `wanted`.
async fn text_when(browser: &Client, css: &str, wanted: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text.contains(wanted) {
                    return text;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never contained {wanted:?}; last text {last:?}");
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

/// Press a button that leaves the page, and wait until the next page (a new URL) is there.
async fn click_away(browser: &Client, css: &str) {
    let before = browser.current_url().await.expect("url");
    click(browser, css).await;
    let deadline = std::time::Instant::now() + WAIT;
    while browser.current_url().await.expect("url") == before {
        assert!(
            std::time::Instant::now() < deadline,
            "{css} did not navigate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number the page shows, once a (new) attempt page is up.
async fn shown_number(browser: &Client) -> String {
    let number = text_when(browser, "#number", "").await;
    assert!(
        number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit()),
        "{number:?}"
    );
    number
}

async fn answer(phone: &Phone, decision: Decision, number: Option<&str>) -> ReceivedChallenge {
    let received = only_request(phone, WAIT).await;
    phone
        .submit(&phone.answer(&received, decision, number))
        .await
        .expect("answer");
    received
}

async fn passwordless(browser: &Client, base: &str, user: &str) {
    browser
        .goto(&format!("{base}/passwordless"))
        .await
        .expect("page");
    type_into(browser, "#username", user).await;
    click_away(browser, "#passwordless button[type=submit]").await;
}

/// Sign in with a password; `to_phone`: the password is right, so the approval page follows.
async fn two_step(browser: &Client, base: &str, user: &str, password: &str, to_phone: bool) {
    browser.goto(&format!("{base}/login")).await.expect("page");
    type_into(browser, "#username", user).await;
    type_into(browser, "#password", password).await;
    if to_phone {
        click_away(browser, "#login button[type=submit]").await;
    } else {
        click(browser, "#login button[type=submit]").await;
    }
}

async fn sign_out(browser: &Client) {
    click_away(browser, "#logout button[type=submit]").await;
    text_when(browser, "h1", "Sign in").await;
}

async fn phone_is_idle(phone: &Phone) {
    eventually("the phone's request was withdrawn", WAIT, || async {
        approvd_tests::requests(phone.inbox(Duration::ZERO).await.expect("inbox")).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_on_the_web_page_with_their_phone() {
    // The relay allows 5 requests per phone per minute; this person signs in often.
    let mut relay = RelayProcess::start(&["--rate-challenges-per-device", "30"]);
    let dir = TempDir::new("signin-web");
    let home_path = dir.0.join("nas");
    let home = NasHome::init(&home_path, &relay.url, "Home NAS").expect("init");
    let nas = home.nas().expect("nas");
    let (phone, device, secret) = pair_for(&nas, "alice", "Alice's phone", None).await;
    home.add_device("alice", device, &secret).expect("recorded");
    let recovery = home.new_recovery_codes("alice").expect("recovery codes");
    let agent = start_agent(&home_path);

    // The shipped demo table (alice, "correct horse"), plus carol hashed by `hash-password`.
    let hashed = Command::new(workspace_binary("approvd-signin-web"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"carol's secret\n")?;
            child.wait_with_output()
        })
        .expect("hash-password");
    let hash = String::from_utf8(hashed.stdout).expect("utf-8");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/signin-web/users.toml"),
    )
    .expect("examples/signin-web/users.toml");
    let users = dir.0.join("users.toml");
    std::fs::write(&users, format!("{shipped}carol = \"{}\"\n", hash.trim())).expect("users");
    let (_page, base) = start_page(
        &agent.login_socket,
        &users,
        &dir,
        &["--requests-per-address", "120"],
    );
    let (_driver, browser) = start_browser(&dir).await;

    // Two-step: password, then the number typed on the phone.
    browser.goto(&format!("{base}/login")).await.expect("page");
    type_into(&browser, "#username", "alice").await;
    type_into(&browser, "#password", "correct horse").await;
    screenshot(&browser, "password").await;
    click_away(&browser, "#login button[type=submit]").await;
    let number = shown_number(&browser).await;
    text_when(&browser, "#phones", "Alice's phone").await;
    text_when(&browser, "#status", "Waiting for your phone").await;
    screenshot(&browser, "approve").await;
    let received = answer(&phone, Decision::Approve, Some(&number)).await;
    assert_eq!(received.context.kind, LoginKind::Login);
    assert_eq!(received.context.service, "Web sign-in");
    assert_eq!(received.context.client_ip.as_deref(), Some("127.0.0.1"));
    text_when(&browser, "#signed-in", "Signed in as alice").await;
    screenshot(&browser, "signed-in").await;
    let session = browser
        .get_named_cookie("approvd_session")
        .await
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true), "HttpOnly");
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Lax)",
        "SameSite"
    );
    sign_out(&browser).await;

    // A wrong password and an unknown user read the same; neither reaches a phone.
    two_step(&browser, &base, "alice", "wrong horse", false).await;
    let wrong_password = text_when(&browser, ".notice", "Wrong username or password").await;
    two_step(&browser, &base, "mallory", "correct horse", false).await;
    let unknown = text_when(&browser, ".notice", "Wrong username or password").await;
    assert_eq!(wrong_password, unknown);
    assert!(phone.inbox(Duration::ZERO).await.expect("inbox").is_empty());

    // carol's password is right but she has no phone: after the password, the page says so.
    two_step(&browser, &base, "carol", "carol's secret", true).await;
    text_when(&browser, "#status.ended", "No phone is paired").await;

    // Passwordless, and the phone picks a wrong number: nobody is signed in.
    passwordless(&browser, &base, "alice").await;
    let number = shown_number(&browser).await;
    text_when(&browser, "#phones", "Sent to your phones").await;
    screenshot(&browser, "passwordless").await;
    let wrong = format!("{:03}", (number.parse::<u32>().expect("digits") + 1) % 1000);
    let received = answer(&phone, Decision::Approve, Some(&wrong)).await;
    assert_eq!(received.context.kind, LoginKind::Passwordless);
    assert!(
        received.challenge.number_matching,
        "number matching is always on"
    );
    text_when(&browser, "#status.ended", "did not match").await;
    screenshot(&browser, "wrong-number").await;

    // "Send again" makes a new request; deny it.
    click_away(&browser, "#resend button").await;
    shown_number(&browser).await;
    answer(&phone, Decision::Deny, None).await;
    text_when(&browser, "#status.ended", "You denied this sign-in").await;
    screenshot(&browser, "denied").await;

    // "Send again" while waiting withdraws the old request: only the new one is on the phone.
    click_away(&browser, "#resend button").await;
    shown_number(&browser).await;
    let first = only_request(&phone, WAIT).await;
    click_away(&browser, "#resend button").await;
    let second = shown_number(&browser).await;
    let deadline = std::time::Instant::now() + WAIT;
    let pending = loop {
        let pending = phone.inbox(WAIT).await.expect("inbox");
        if pending.len() == 1 && pending[0].entry.cid != first.entry.cid {
            break pending;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only the new request is pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    phone
        .submit(&phone.answer(&pending[0], Decision::Approve, Some(&second)))
        .await
        .expect("approve");
    text_when(&browser, "#signed-in", "Signed in as alice").await;
    sign_out(&browser).await;

    // Leaving the page withdraws the request.
    passwordless(&browser, &base, "alice").await;
    shown_number(&browser).await;
    only_request(&phone, WAIT).await;
    browser.goto(&format!("{base}/login")).await.expect("away");
    phone_is_idle(&phone).await;

    // A code instead: it replaces the phone, not the password (N-2), so passwordless asks
    // for both. The right code with a wrong password is refused, a wrong code is refused,
    // and the password with the phone's offline code signs in. The code is checked inside
    // the attempt's request (N-1), which stays open until the right code ends it.
    passwordless(&browser, &base, "alice").await;
    shown_number(&browser).await;
    click_away(&browser, "#use-code").await;
    let code = phone.offline_code(unix_now()).expect("an offline code");
    type_into(&browser, "#password-input", "wrong horse").await;
    type_into(&browser, "#code-input", &code).await;
    click(&browser, "#code button[type=submit]").await;
    text_when(&browser, ".notice", "Wrong password or code").await;
    type_into(&browser, "#password-input", "correct horse").await;
    type_into(&browser, "#code-input", "000000").await;
    click(&browser, "#code button[type=submit]").await;
    text_when(&browser, ".notice", "not valid").await;
    screenshot(&browser, "code").await;
    type_into(&browser, "#password-input", "correct horse").await;
    type_into(&browser, "#code-input", &code).await;
    click_away(&browser, "#code button[type=submit]").await;
    text_when(&browser, "#signed-in", "Signed in as alice").await;
    phone_is_idle(&phone).await;
    sign_out(&browser).await;

    // Nobody answers: the page says the request expired.
    passwordless(&browser, &base, "alice").await;
    shown_number(&browser).await;
    text_when(&browser, "#status.ended", "expired").await;
    screenshot(&browser, "expired").await;

    // An account without phones looks the same as alice's: a number and a wait.
    passwordless(&browser, &base, "nobody").await;
    shown_number(&browser).await;
    text_when(&browser, "#phones", "Sent to your phones").await;
    text_when(&browser, "#status", "Waiting for your phone").await;

    // Fraud (carol): reported, nobody signed in, and "Send again" does not reach her phone:
    // the account cools down (N-3).
    let (carols_phone, device, secret) = pair_for(&nas, "carol", "Carol's phone", None).await;
    home.add_device("carol", device, &secret).expect("recorded");
    two_step(&browser, &base, "carol", "carol's secret", true).await;
    shown_number(&browser).await;
    answer(&carols_phone, Decision::Fraud, None).await;
    text_when(
        &browser,
        "#status.ended",
        "reported this sign-in as not you",
    )
    .await;
    screenshot(&browser, "fraud").await;
    click_away(&browser, "#resend button").await;
    text_when(&browser, "#status.ended", "not asked for a while").await;
    screenshot(&browser, "cooling-down").await;
    phone_is_idle(&carols_phone).await;

    // The relay is down: the page says so, and a recovery code still signs in.
    relay.kill();
    two_step(&browser, &base, "alice", "correct horse", true).await;
    text_when(&browser, "#status.ended", "cannot be reached").await;
    assert!(
        browser.find(Locator::Css("#number")).await.is_err(),
        "nothing was sent, so no number is shown"
    );
    screenshot(&browser, "unreachable").await;
    click_away(&browser, "#use-code").await;
    type_into(&browser, "#code-input", &recovery[0]).await;
    click_away(&browser, "#code button[type=submit]").await;
    text_when(&browser, "#signed-in", "Signed in as alice").await;
    sign_out(&browser).await;

    browser.close().await.expect("close");
    forms_need_their_token_and_names_have_a_budget(&base).await;

    // Behind a reverse proxy (--trust-forwarded-for) each client has its own address budget.
    let (_proxied, proxied) = start_page(
        &agent.login_socket,
        &users,
        &dir,
        &["--trust-forwarded-for", "--requests-per-address", "1"],
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (cookie, csrf) = browser_cookie_and_token(&http, &proxied).await;
    let mut statuses = Vec::new();
    for (client, user) in [
        ("198.51.100.1", "u1"),
        ("198.51.100.1", "u2"),
        ("198.51.100.2", "u3"),
    ] {
        let answer = http
            .post(format!("{proxied}/passwordless"))
            .header("cookie", &cookie)
            .header("x-forwarded-for", format!("203.0.113.66, {client}"))
            .form(&[("username", user), ("csrf", csrf.as_str())])
            .send()
            .await
            .expect("answer");
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [303, 429, 303], "budgets per forwarded address");
    drop(agent);
}

/// A fresh browser cookie from the page, and the CSRF token its forms carry.
pub(crate) async fn browser_cookie_and_token(
    http: &reqwest::Client,
    base: &str,
) -> (String, String) {
    let page = http
        .get(format!("{base}/passwordless"))
        .send()
        .await
        .expect("page");
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .expect("the browser cookie")
        .to_owned();
    let html = page.text().await.expect("html");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the CSRF field")
        .to_owned();
    (cookie, csrf)
}

/// Outside the browser: a form without its CSRF token is refused, an attempt is the starting
/// browser's only, and one username cannot cause more approval requests than its budget.
async fn forms_need_their_token_and_names_have_a_budget(base: &str) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (cookie, csrf) = browser_cookie_and_token(&http, base).await;
    let page = http
        .get(format!("{base}/passwordless"))
        .send()
        .await
        .expect("page");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let post = |form: Vec<(&'static str, String)>, cookie: Option<&str>| {
        let mut request = http.post(format!("{base}/passwordless")).form(&form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    let missing = post(vec![("username", "mallory".into())], Some(&cookie))
        .await
        .expect("answer");
    assert_eq!(missing.status(), 400, "a form without its token is refused");
    let forged = post(
        vec![("username", "mallory".into()), ("csrf", "x".repeat(43))],
        Some(&cookie),
    )
    .await
    .expect("answer");
    assert_eq!(forged.status(), 403);
    let no_cookie = post(
        vec![("username", "mallory".into()), ("csrf", csrf.clone())],
        None,
    )
    .await
    .expect("answer");
    assert_eq!(no_cookie.status(), 403, "the token is bound to its browser");

    // The budget: 40 requests per username per window (the page's flags above).
    let mut first_attempt = None;
    for sent in 0..40 {
        let answer = post(
            vec![("username", "mallory".into()), ("csrf", csrf.clone())],
            Some(&cookie),
        )
        .await
        .expect("answer");
        assert_eq!(answer.status(), 303, "request {sent}");
        first_attempt.get_or_insert(
            answer
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .expect("location")
                .to_owned(),
        );
    }
    let refused = post(
        vec![("username", "Mallory".into()), ("csrf", csrf.clone())],
        Some(&cookie),
    )
    .await
    .expect("answer");
    assert_eq!(refused.status(), 429, "the 41st request for one name");
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("Too many sign-in requests"));
    let other = post(
        vec![("username", "carol".into()), ("csrf", csrf.clone())],
        Some(&cookie),
    )
    .await
    .expect("answer");
    assert_eq!(other.status(), 303, "other names keep their own budget");
    // A burst of password checks (Argon2: ~19 MiB each) queues behind a fixed number at once:
    // each answers the wrong-password page or "busy", and the page stays up.
    let logins = (0..32).map(|_| {
        http.post(format!("{base}/login"))
            .header("cookie", &cookie)
            .form(&[
                ("username", "alice"),
                ("password", "not her password"),
                ("csrf", csrf.as_str()),
            ])
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(logins)
        .await
        .into_iter()
        .map(|answer| answer.expect("answer").status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|status| matches!(status, 200 | 503)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    let page = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);

    // One address cannot hold more than its budget of attempts, whatever the names.
    let mut spread = 0;
    let refused = loop {
        let answer = post(
            vec![
                ("username", format!("user{spread}")),
                ("csrf", csrf.clone()),
            ],
            Some(&cookie),
        )
        .await
        .expect("answer");
        if answer.status() != 303 {
            break answer;
        }
        spread += 1;
        assert!(spread <= 120, "the address budget never ran out");
    };
    assert_eq!(refused.status(), 429);
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("from your network"));

    // Another browser cannot see or finish someone's attempt.
    let attempt = first_attempt.expect("an attempt");
    let theirs = http
        .get(format!("{base}{attempt}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(theirs.status(), 404);
    let mine = http
        .get(format!("{base}{attempt}"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answer");
    assert_eq!(mine.status(), 200);
    let oversized = post(
        vec![("username", "x".repeat(10_000)), ("csrf", csrf.clone())],
        Some(&cookie),
    )
    .await
    .expect("answer");
    assert_eq!(oversized.status(), 413);
}

/// M7 and L9: wrong passwords are limited per username and per client network. A known and
/// an unknown username get the same answers (ten wrong, then `429` without a check, even for
/// the right password); one client spraying names is stopped for its whole IPv6 /64, while
/// another network still signs in. Before, guessing was unlimited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m7_wrong_passwords_are_limited_per_name_and_per_network_alike_for_every_name() {
    let AlicesPage { base, http, .. } = &alices_page("signin-guessing", &[]).await;
    let (cookie, csrf) = browser_cookie_and_token(http, base).await;
    let login = |user: String, password: &'static str, client: String| {
        let request = http
            .post(format!("{base}/login"))
            .header("cookie", &cookie)
            .header("x-forwarded-for", client)
            .form(&[
                ("username", user.as_str()),
                ("password", password),
                ("csrf", csrf.as_str()),
            ]);
        async move {
            let answer = request.send().await.expect("answer");
            (
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            )
        }
    };
    let mut seen = Vec::new();
    for user in ["alice", "zed"] {
        let mut statuses = Vec::new();
        for n in 0..11 {
            let (status, _) = login(user.into(), "wrong horse", format!("198.51.100.{n}")).await;
            statuses.push(status);
        }
        seen.push(statuses);
    }
    assert_eq!(seen[0], seen[1], "a known and an unknown name answer alike");
    assert_eq!(seen[0][..10], [200; 10]);
    assert_eq!(seen[0][10], 429, "the 11th wrong password is not checked");
    let (status, text) = login("alice".into(), "correct horse", "198.51.100.99".into()).await;
    assert_eq!(
        status, 429,
        "locked: not even the right password is checked"
    );
    assert!(text.contains("for this account"), "{text}");

    // One network spraying names: 30 wrong passwords from one /64, then that /64 is stopped
    // (another address in it too); another network still gets its password checked.
    for n in 0..30 {
        let (status, _) = login(format!("spray{n}"), "guess", format!("2001:db8:1:1::{n:x}")).await;
        assert_eq!(status, 200, "guess {n}");
    }
    let (status, text) = login("someone".into(), "guess", "2001:db8:1:1:ffff::1".into()).await;
    assert_eq!(status, 429, "the same /64");
    assert!(text.contains("from your network"), "{text}");
    let (status, _) = login("someone".into(), "guess", "2001:db8:1:2::1".into()).await;
    assert_eq!(status, 200, "another /64 is checked");
}

/// M6: one client holding status polls held the page's connections (~2,050 held polls of one
/// decoy attempt stopped it). Now an attempt holds at most 2 polls and one client network 16
/// over all its attempts; its further polls are answered at once, while another network's
/// poll is still held and the login page answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m6_one_network_holds_at_most_sixteen_status_polls_and_the_page_answers_others() {
    let AlicesPage { base, http, .. } = &alices_page("signin-held", &[]).await;
    // Decoy attempts (names with no phone): free to start, each with a status to poll.
    let attempts = |client: &'static str, count: usize| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let (cookie, csrf) = browser_cookie_and_token(&http, &base).await;
            let mut started = Vec::new();
            for n in 0..count {
                let answer = http
                    .post(format!("{base}/passwordless"))
                    .header("cookie", &cookie)
                    .header("x-forwarded-for", client)
                    .form(&[("username", format!("nobody{n}")), ("csrf", csrf.clone())])
                    .send()
                    .await
                    .expect("answer");
                started.push(
                    answer
                        .headers()
                        .get("location")
                        .and_then(|value| value.to_str().ok())
                        .expect("an attempt")
                        .to_owned(),
                );
            }
            (cookie, started)
        }
    };
    let poll = |cookie: String, attempt: String, client: &'static str| {
        let request = http
            .get(format!("{base}{attempt}/status?wait=4"))
            .header("cookie", cookie)
            .header("x-forwarded-for", client);
        async move {
            let started = std::time::Instant::now();
            let answer = request.send().await.expect("answer");
            assert_eq!(answer.status(), 200);
            started.elapsed()
        }
    };
    let (cookie, mine) = attempts("198.51.100.5", 12).await;
    let polls: Vec<_> = mine
        .iter()
        .flat_map(|attempt| [attempt.clone(), attempt.clone()])
        .map(|attempt| tokio::spawn(poll(cookie.clone(), attempt, "198.51.100.5")))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (other_cookie, theirs) = attempts("203.0.113.7", 1).await;
    let other = tokio::spawn(poll(other_cookie, theirs[0].clone(), "203.0.113.7"));
    let started = std::time::Instant::now();
    let login = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the page answers at once"
    );
    let mut held = 0;
    let mut at_once = 0;
    for poll in polls {
        let took = poll.await.expect("poll");
        // Held polls end after their 4 s; the others are answered in milliseconds.
        if took >= Duration::from_millis(2500) {
            held += 1;
        } else {
            at_once += 1;
        }
    }
    assert_eq!(
        (held, at_once),
        (16, 8),
        "one network holds 16 polls, no more"
    );
    assert!(
        other.await.expect("poll") >= Duration::from_millis(2500),
        "another network's poll is still held"
    );
}

/// M2: a passwordless name with phones was told apart by the answer's time (the real path
/// waits for the relay, ~15 ms; the decoy answered in ~2 ms). Now a decoy waits as long as a
/// recent real request took, drawn at random: the medians of eight of each are alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2_a_name_without_phones_answers_as_slowly_as_one_with() {
    let AlicesPage { base, http, .. } =
        &alices_page("signin-timing", &["--rate-challenges-per-device", "30"]).await;
    let (cookie, csrf) = browser_cookie_and_token(http, base).await;
    let timed = |user: String, n: usize| {
        let request = http
            .post(format!("{base}/passwordless"))
            .header("cookie", &cookie)
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .form(&[("username", user), ("csrf", csrf.clone())]);
        let cancel = http.clone();
        let (base, cookie, csrf) = (base.clone(), cookie.clone(), csrf.clone());
        async move {
            let started = std::time::Instant::now();
            let answer = request.send().await.expect("answer");
            let took = started.elapsed();
            assert_eq!(answer.status(), 303);
            let attempt = answer
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .expect("an attempt")
                .to_owned();
            // Withdrawn at once, so alice never has many pending.
            cancel
                .post(format!("{base}{attempt}/cancel"))
                .header("cookie", &cookie)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .expect("cancelled");
            took
        }
    };
    let mut real = Vec::new();
    let mut decoy = Vec::new();
    for n in 0..8 {
        real.push(timed("alice".to_owned(), n).await);
        decoy.push(timed(format!("zed{n}"), n + 100).await);
    }
    real.sort();
    decoy.sort();
    let (real, decoy) = (real[4], decoy[4]);
    eprintln!("passwordless answer, median of 8: alice {real:?}, a name without phones {decoy:?}");
    assert!(
        decoy * 2 >= real,
        "a decoy answers as slowly as a real request: {decoy:?} against {real:?}"
    );
}

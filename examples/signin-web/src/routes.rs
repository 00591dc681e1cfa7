//! The sign-in flow's handlers: password check, approval requests through the agent, the live
//! wait, codes, sessions. Every form is CSRF-checked; every answer is the same for known and
//! unknown accounts.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::pages;
use crate::state::{is_id, now, Attempt, Mode, Progress};
use crate::App;
use approvd_agent::api::{
    AccountName, ApprovalRequest, CodeResult, ProblemType, RequestStatus, MAX_WAIT_SECS,
};
use approvd_agent::client::ClientError;
use approvd_proto::context::LoginKind;

/// The cookie binding a browser to its CSRF token and its attempts.
const BROWSER_COOKIE: &str = "approvd_browser";
/// The signed-in session.
const SESSION_COOKIE: &str = "approvd_session";
/// A code may be typed this long after the phone request expired, seconds.
const CODE_GRACE: u64 = 300;

/// `Secure` cookies when the page is served over TLS (directly or behind a proxy that says so),
/// or always with `--secure-cookies`.
fn secure(app: &App, request: &HttpRequest) -> bool {
    app.secure_cookies || request.connection_info().scheme() == "https"
}

fn cookie(app: &App, request: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(app, request))
        .finish()
}

/// The browser's id, and the cookie to set when it had none.
fn browser(app: &App, request: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    match request.cookie(BROWSER_COOKIE) {
        Some(cookie) if is_id(cookie.value()) => (cookie.value().to_owned(), None),
        _ => {
            let id = crate::state::random_id();
            let cookie = cookie(app, request, BROWSER_COOKIE, id.clone());
            (id, Some(cookie))
        }
    }
}

fn html(
    status: actix_web::http::StatusCode,
    body: String,
    set: Option<Cookie<'static>>,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.content_type("text/html; charset=utf-8");
    if let Some(cookie) = set {
        response.cookie(cookie);
    }
    response.body(body)
}

fn ok(body: String, set: Option<Cookie<'static>>) -> HttpResponse {
    html(actix_web::http::StatusCode::OK, body, set)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A page for a problem the person can act on, with its status.
fn problem(status: actix_web::http::StatusCode, title: &str, message: &str) -> HttpResponse {
    html(status, pages::problem(title, message), None)
}

fn forbidden() -> HttpResponse {
    problem(
        actix_web::http::StatusCode::FORBIDDEN,
        "Page expired",
        "This form is stale or came from another site. Go back to the sign-in page and try again.",
    )
}

/// The browser of a form post, if the form carries its CSRF token.
fn checked_browser(app: &App, request: &HttpRequest, csrf: &str) -> Option<String> {
    let browser = request.cookie(BROWSER_COOKIE)?;
    let browser = browser.value();
    (is_id(browser) && app.state.csrf_ok(browser, csrf)).then(|| browser.to_owned())
}

fn signed_in_user(app: &App, request: &HttpRequest) -> Option<String> {
    let session = request.cookie(SESSION_COOKIE)?;
    app.state.session_user(session.value())
}

/// The client's address: the peer's, or behind a trusted proxy the right-most
/// `X-Forwarded-For` entry (the one the proxy added).
fn client_address(app: &App, request: &HttpRequest) -> Option<std::net::IpAddr> {
    let forwarded = app
        .trust_forwarded_for
        .then(|| {
            request
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok())
                .flat_map(|line| line.split(','))
                .map(str::trim)
                .rfind(|entry| !entry.is_empty())
                .and_then(|last| last.parse().ok())
        })
        .flatten();
    forwarded.or_else(|| request.peer_addr().map(|address| address.ip()))
}

/// A username as typed: trimmed; `None` when it cannot be an account name (the agent's rule,
/// `AccountName`).
fn username(typed: &str) -> Option<String> {
    AccountName::parse(typed.trim())
        .ok()
        .map(|name| name.to_string())
}

pub async fn home(app: web::Data<App>, request: HttpRequest) -> HttpResponse {
    match signed_in_user(&app, &request) {
        Some(user) => {
            let (browser, set) = browser(&app, &request);
            ok(
                pages::signed_in(&user, &app.state.csrf_token(&browser)),
                set,
            )
        }
        None => see_other("/login"),
    }
}

pub async fn login_page(app: web::Data<App>, request: HttpRequest) -> HttpResponse {
    let (browser, set) = browser(&app, &request);
    ok(pages::login(&app.state.csrf_token(&browser), None, ""), set)
}

pub async fn passwordless_page(app: web::Data<App>, request: HttpRequest) -> HttpResponse {
    let (browser, set) = browser(&app, &request);
    ok(
        pages::passwordless(&app.state.csrf_token(&browser), None),
        set,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

pub async fn login(
    app: web::Data<App>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let Some(browser) = checked_browser(&app, &request, &form.csrf) else {
        return forbidden();
    };
    match check_password(&app, &request, &form.username, &form.password).await {
        Ok(user) => start(&app, &request, &browser, &user, Mode::TwoStep).await,
        Err(Refusal::Answer(page)) => *page,
        Err(Refusal::Wrong) => ok(
            pages::login(
                &app.state.csrf_token(&browser),
                Some("Wrong username or password."),
                &form.username,
            ),
            None,
        ),
    }
}

/// Why a password was not accepted.
enum Refusal {
    /// Wrong username or password (the same for both).
    Wrong,
    /// Not checked: the answer to give (busy, too many wrong passwords).
    Answer(Box<HttpResponse>),
}

/// Check the password typed for the username typed, within the wrong-password limits per
/// username and per client network (M7): the account name, or why not. Unknown usernames are
/// checked against a dummy hash and counted exactly like real ones, so neither the time nor
/// the answers tell them apart.
async fn check_password(
    app: &App,
    request: &HttpRequest,
    typed: &str,
    password: &str,
) -> Result<String, Refusal> {
    let user = username(typed);
    let counted: String = user
        .clone()
        .unwrap_or_else(|| typed.trim().chars().take(64).collect());
    let address = client_address(app, request);
    if let Err(locked) = app.state.may_guess(&counted, address) {
        let (whose, until) = match locked {
            crate::state::Locked::User(until) => ("for this account", until),
            crate::state::Locked::Address(until) => ("from your network", until),
        };
        return Err(Refusal::Answer(Box::new(problem(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords",
            &format!(
                "Too many wrong passwords were typed {whose}. Try again in {} minute(s).",
                until.saturating_sub(now()).div_ceil(60).max(1)
            ),
        ))));
    }
    // Argon2 takes tens of milliseconds: off the async workers, a few at a time.
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        app.password_checks.acquire(),
    )
    .await;
    let Ok(Ok(_permit)) = waited else {
        return Err(Refusal::Answer(Box::new(problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many sign-ins are being checked right now. Try again in a moment.",
        ))));
    };
    let users = app.users.clone();
    let checked = user.clone();
    let password = password.to_owned();
    let right = web::block(move || users.verify(checked.as_deref(), &password))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if right => {
            app.state.right_password(&user);
            Ok(user)
        }
        _ => {
            app.state.wrong_password(&counted, address);
            Err(Refusal::Wrong)
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct PasswordlessForm {
    csrf: String,
    username: String,
}

pub async fn passwordless(
    app: web::Data<App>,
    request: HttpRequest,
    form: web::Form<PasswordlessForm>,
) -> HttpResponse {
    let Some(browser) = checked_browser(&app, &request, &form.csrf) else {
        return forbidden();
    };
    // A name that cannot be an account gets the same page as an account without phones.
    let user = username(&form.username).unwrap_or_else(|| "\u{0}invalid".to_owned());
    start(&app, &request, &browser, &user, Mode::Passwordless).await
}

/// Send an approval request for `user` and show the attempt's page.
async fn start(
    app: &App,
    request: &HttpRequest,
    browser: &str,
    user: &str,
    mode: Mode,
) -> HttpResponse {
    let address = client_address(app, request);
    match app.state.charge(user, address) {
        Ok(()) => {}
        Err(spent) => {
            let whose = match spent {
                crate::state::Spent::User => "for this account",
                crate::state::Spent::Address => "from your network",
            };
            return problem(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                &format!(
                    "Too many sign-in requests were sent {whose}. Wait a few minutes, then try again."
                ),
            );
        }
    }
    // The address the phone shows is the one the budgets use: behind a trusted proxy, the
    // client's (not the proxy's).
    let client_ip = address.map(|address| address.to_string());
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(200).collect::<String>());
    let kind = match mode {
        Mode::TwoStep => LoginKind::Login,
        Mode::Passwordless => LoginKind::Passwordless,
    };
    // A name outside the agent's rule (the decoy of a malformed username) has no phone:
    // `Err(None)`, as an account without phones is `Err(Some(no-devices))`.
    let account = AccountName::parse(user).ok();
    let sending = std::time::Instant::now();
    let created = match &account {
        None => Err(None),
        Some(account) => {
            let asked = ApprovalRequest {
                service: "Web sign-in".to_owned(),
                kind: Some(kind),
                client_ip,
                user_agent,
                number_matching: true,
                lifetime_secs: app.lifetime_secs,
                ..ApprovalRequest::sign_in(account.clone())
            };
            app.agent.create_request(&asked).await.map_err(Some)
        }
    };
    let mut attempt = Attempt {
        user: user.to_owned(),
        mode,
        browser: browser.to_owned(),
        request_id: None,
        number: decoy_number(),
        phones: Vec::new(),
        expires: now() + app.lifetime_secs,
        progress: Progress::Waiting,
    };
    let no_phone = |error: &Option<ClientError>| {
        error
            .as_ref()
            .is_none_or(|error| error.kind() == Some(ProblemType::NoDevices))
    };
    // Timing must not tell a decoy from a real request (M2): a real send is noted, a decoy
    // waits as long as a recent real one did.
    match &created {
        Ok(sent) if sent.relay_error.is_none() => app.state.note_send(sending.elapsed()),
        // (Passwordless, a cooling-down account shows the decoy too.)
        Err(error)
            if no_phone(error)
                || (mode == Mode::Passwordless
                    && error.as_ref().and_then(ClientError::kind)
                        == Some(ProblemType::AccountCoolingDown)) =>
        {
            let left = app.state.decoy_delay().saturating_sub(sending.elapsed());
            tokio::time::sleep(left).await;
        }
        Ok(_) | Err(_) => {}
    }
    match created {
        Ok(created) => {
            if let (Mode::TwoStep, Some(account)) = (mode, &account) {
                let reached: Vec<_> = created.reached().collect();
                attempt.phones = match app.agent.devices(account).await {
                    Ok(listed) => listed
                        .devices
                        .into_iter()
                        .filter(|device| reached.contains(&&device.device_id))
                        .map(|device| device.name)
                        .collect(),
                    Err(_) => Vec::new(),
                };
            }
            attempt.number = created.number.unwrap_or_default();
            attempt.expires = created.expires;
            attempt.request_id = Some(created.request_id);
            // The relay could not be reached: no phone was asked, and the agent keeps the
            // request open for a code only.
            if let Some(reason) = &created.relay_error {
                eprintln!("approvd-signin-web: the relay cannot ask {user}'s phones: {reason}");
                attempt.progress = Progress::Unreachable;
            }
        }
        // No phones (or no such account): a decoy that looks the same and expires. A person
        // who signed in with their password learns the truth.
        Err(error) if no_phone(&error) => {
            if mode == Mode::TwoStep {
                attempt.progress = Progress::Ended("no_phone");
            }
        }
        Err(Some(error)) if error.kind() == Some(ProblemType::RateLimited) => {
            attempt.progress = Progress::Ended("rate_limited");
        }
        // The account refused a recent sign-in (fraud report, wrong numbers): a person who
        // gave the password is told; a passwordless stranger sees the decoy, as for no phone.
        Err(Some(error)) if error.kind() == Some(ProblemType::AccountCoolingDown) => {
            if mode == Mode::TwoStep {
                attempt.progress = Progress::Ended("cooling_down");
            }
        }
        Err(error) => {
            let error = error.map_or_else(String::new, |error| error.to_string());
            eprintln!("approvd-signin-web: the agent cannot ask {user}'s phones: {error}");
            attempt.progress = Progress::Unreachable;
        }
    }
    match app.state.add_attempt(attempt) {
        Some(id) => see_other(&format!("/attempt/{id}")),
        None => problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many sign-ins are in progress. Try again in a minute.",
        ),
    }
}

/// Three digits, like the agent's numbers.
fn decoy_number() -> String {
    format!("{:03}", rand::random_range(0..1000u32))
}

fn gone() -> HttpResponse {
    problem(
        actix_web::http::StatusCode::NOT_FOUND,
        "Sign-in not found",
        "This sign-in request is over or belongs to another browser. Start again.",
    )
}

fn attempt_of(app: &App, request: &HttpRequest, id: &str) -> Option<Attempt> {
    let browser = request.cookie(BROWSER_COOKIE)?;
    if !is_id(id) {
        return None;
    }
    app.state.attempt(id, browser.value())
}

/// A form post about attempt `id`: it carries its browser's CSRF token and the attempt is that
/// browser's. Otherwise the page to answer with.
fn posted_attempt(
    app: &App,
    request: &HttpRequest,
    id: &str,
    csrf: &str,
) -> Result<(String, Attempt), Box<HttpResponse>> {
    let browser = checked_browser(app, request, csrf).ok_or_else(|| Box::new(forbidden()))?;
    let attempt = attempt_of(app, request, id).ok_or_else(|| Box::new(gone()))?;
    Ok((browser, attempt))
}

pub async fn attempt_page(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let Some(attempt) = attempt_of(&app, &request, &id) else {
        return gone();
    };
    ok(
        pages::attempt(&id, &attempt, &app.state.csrf_token(&attempt.browser)),
        None,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    wait: u64,
}

/// The live wait's long poll: `{status, message}`.
pub async fn attempt_status(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> HttpResponse {
    let Some(attempt) = attempt_of(&app, &request, &id) else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "status": "gone",
            "message": "This sign-in request is over. Start again.",
        }));
    };
    let answer = |status: &str, message: &str| {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "status": status, "message": message }))
    };
    // Past the held polls an attempt may have, a poll is answered at once.
    let network = client_address(&app, &request)
        .map(crate::state::network_of)
        .unwrap_or_default();
    let held = app.state.hold_poll(&id, &network);
    let wait = if held.is_some() {
        query.wait.min(MAX_WAIT_SECS)
    } else {
        0
    };
    match (&attempt.progress, &attempt.request_id) {
        (Progress::Approved, _) => answer("approved", ""),
        (Progress::Unreachable, _) => answer("unreachable", pages::UNREACHABLE),
        (Progress::Ended(status), _) => answer(status, pages::ended_message(status)),
        (Progress::Waiting, None) => {
            // A decoy: wait like a real request would, then expire like one.
            let left = attempt.expires.saturating_sub(now());
            tokio::time::sleep(std::time::Duration::from_secs(wait.min(left))).await;
            if now() >= attempt.expires {
                app.state.set_progress(&id, Progress::Ended("expired"));
                answer("expired", pages::ended_message("expired"))
            } else {
                answer("pending", "")
            }
        }
        (Progress::Waiting, Some(request_id)) => {
            match app.agent.request_status(request_id, wait).await {
                Ok(RequestStatus::Pending) => answer("pending", ""),
                Ok(RequestStatus::Approved(_)) => {
                    app.state.set_progress(&id, Progress::Approved);
                    answer("approved", "")
                }
                Ok(status) => {
                    let status = status.name();
                    app.state.set_progress(&id, Progress::Ended(status));
                    answer(status, pages::ended_message(status))
                }
                // The agent no longer knows the request (restarted without it, or forgotten):
                // the attempt is over, not waiting for ever.
                Err(error) if error.kind() == Some(ProblemType::NotFound) => {
                    app.state.set_progress(&id, Progress::Ended("expired"));
                    answer("expired", pages::ended_message("expired"))
                }
                Err(error) => {
                    eprintln!("approvd-signin-web: waiting for the agent: {error}");
                    answer(
                        "unreachable_retry",
                        "Still waiting: the approval service is not answering right now…",
                    )
                }
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Sign `user` in: the session cookie, then the signed-in page.
fn signed_in(app: &App, request: &HttpRequest, user: &str) -> HttpResponse {
    match app.state.sign_in(user) {
        Some(session) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/"))
            .cookie(cookie(app, request, SESSION_COOKIE, session))
            .finish(),
        None => problem(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many sessions are open. Try again later.",
        ),
    }
}

/// After the live wait saw an approval (or, without JavaScript, when the person says so).
pub async fn finish(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let attempt = match posted_attempt(&app, &request, &id, &form.csrf) {
        Ok((_, attempt)) => attempt,
        Err(page) => return *page,
    };
    let approved = match (&attempt.progress, &attempt.request_id) {
        (Progress::Approved, _) => true,
        (Progress::Waiting, Some(request_id)) => {
            matches!(
                app.agent.request_status(request_id, 0).await,
                Ok(RequestStatus::Approved(_))
            )
        }
        _ => false,
    };
    if !approved {
        return see_other(&format!("/attempt/{id}"));
    }
    app.state.remove_attempt(&id);
    signed_in(&app, &request, &attempt.user)
}

/// "Send again": cancel this request, make a new one.
pub async fn resend(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let (browser, attempt) = match posted_attempt(&app, &request, &id, &form.csrf) {
        Ok(posted) => posted,
        Err(page) => return *page,
    };
    if attempt.progress == Progress::Approved {
        return see_other(&format!("/attempt/{id}"));
    }
    app.state.remove_attempt(&id);
    if let Some(request_id) = &attempt.request_id {
        if let Err(error) = app.agent.cancel_request(request_id).await {
            eprintln!("approvd-signin-web: cancelling a request: {error}");
        }
    }
    start(&app, &request, &browser, &attempt.user, attempt.mode).await
}

/// "Cancel", and leaving the page (`navigator.sendBeacon`).
pub async fn cancel(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let attempt = match posted_attempt(&app, &request, &id, &form.csrf) {
        Ok((_, attempt)) => attempt,
        Err(page) => return *page,
    };
    if attempt.progress == Progress::Waiting {
        if let Some(request_id) = &attempt.request_id {
            if let Err(error) = app.agent.cancel_request(request_id).await {
                eprintln!("approvd-signin-web: cancelling a request: {error}");
            }
        }
        app.state.set_progress(&id, Progress::Ended("cancelled"));
    }
    see_other("/login")
}

pub async fn code_page(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let Some(attempt) = attempt_of(&app, &request, &id) else {
        return gone();
    };
    ok(
        pages::code(
            &id,
            &app.state.csrf_token(&attempt.browser),
            None,
            attempt.mode == Mode::Passwordless,
        ),
        None,
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
    /// Asked with the code on a passwordless attempt: a code stands in for the phone, never
    /// for the first factor (N-2).
    #[serde(default)]
    password: String,
}

/// An offline code (the phone's, works without any network) or a recovery code.
pub async fn code(
    app: web::Data<App>,
    request: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (browser, attempt) = match posted_attempt(&app, &request, &id, &form.csrf) {
        Ok(posted) => posted,
        Err(page) => return *page,
    };
    let passwordless = attempt.mode == Mode::Passwordless;
    let again = |message: &str| {
        ok(
            pages::code(
                &id,
                &app.state.csrf_token(&browser),
                Some(message),
                passwordless,
            ),
            None,
        )
    };
    if now() > attempt.expires.saturating_add(CODE_GRACE) {
        return gone();
    }
    // Passwordless, the phone was the only factor; a code replaces the phone, so the password
    // comes back as the first factor (checked, limited and counted as on the login form).
    if passwordless {
        match check_password(&app, &request, &attempt.user, &form.password).await {
            Ok(_) => {}
            Err(Refusal::Answer(page)) => return *page,
            Err(Refusal::Wrong) => return again("Wrong password or code."),
        }
    }
    // A code counts only inside the attempt's own request (the agent's rule): a decoy, or an
    // attempt whose request was never opened, has nothing to check against.
    let result = match &attempt.request_id {
        Some(request_id) => app.agent.check_code(request_id, form.code.trim()).await,
        None => Ok(CodeResult::Rejected { failures: 0 }),
    };
    match result {
        // The agent ended the request: the phones stop showing it.
        Ok(CodeResult::Accepted { .. }) => {
            app.state.remove_attempt(&id);
            signed_in(&app, &request, &attempt.user)
        }
        Ok(CodeResult::Rejected { .. }) => {
            again("That code is not valid. Check the app and try again.")
        }
        Ok(CodeResult::LockedOut { locked_until }) => again(&format!(
            "Too many wrong codes. Try again in {} minute(s).",
            locked_until.saturating_sub(now()).div_ceil(60).max(1)
        )),
        // The request took its last wrong code, or ended: a new sign-in is needed.
        Err(error) if error.kind() == Some(ProblemType::Conflict) => {
            app.state.remove_attempt(&id);
            gone()
        }
        Err(error) => {
            eprintln!("approvd-signin-web: checking a code: {error}");
            again("Codes cannot be checked right now. Try again in a moment.")
        }
    }
}

pub async fn logout(
    app: web::Data<App>,
    request: HttpRequest,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    if checked_browser(&app, &request, &form.csrf).is_none() {
        return forbidden();
    }
    if let Some(session) = request.cookie(SESSION_COOKIE) {
        app.state.sign_out(session.value());
    }
    let mut gone = cookie(&app, &request, SESSION_COOKIE, String::new());
    gone.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(gone)
        .finish()
}

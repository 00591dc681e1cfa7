//! `approvd agent`: the NAS-side daemon. Owns a NAS home while it runs: drains the relay
//! mailbox continuously (handle refreshes, dead tokens, unpairs, mutes are applied as they
//! arrive) and serves a local approval API on a Unix socket (created 0600, so only the NAS's
//! own user may call it), through which any login system can ask an account's phones to
//! approve a sign-in, wait for the end-to-end verified outcome, cancel, and check offline and
//! recovery codes. Every check on a verdict is the SDK's (`Nas::judge`); the relay is trusted
//! for nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use approvd_client::agent_api::{ApprovalRequest, CodeRequest, PairingRequest};
use approvd_client::transport::unix_now;
use approvd_client::{CodeCheck, Nas, NasHome, Outcome, PairedDevice, SentChallenge};

use approvd_proto::Cid;
use clap::Args;

/// Run the NAS agent: the mailbox loop and the local approval API.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  approvd agent --home approvd-nas\n  curl --unix-socket approvd-nas/agent.sock -X POST localhost/v1/requests -d '{\"user\":\"alice\"}'"
)]
pub struct AgentArgs {
    /// The NAS home (`approvd nas init`).
    #[arg(long, default_value = "approvd-nas")]
    pub home: PathBuf,
    /// The Unix socket of the local API (default: `<home>/agent.sock`), created 0600.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Also serve the API on this loopback TCP address (e.g. 127.0.0.1:8787), for callers
    /// that cannot use a Unix socket; requires --token-file.
    #[arg(long, requires = "token_file")]
    pub listen: Option<std::net::SocketAddr>,
    /// A file (0600) holding the bearer token TCP callers must send
    /// (`Authorization: Bearer …`), at least 16 characters.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Where pending requests are kept across restarts: `<home>/agent-requests.json`.
fn requests_path(home: &std::path::Path) -> PathBuf {
    home.join("agent-requests.json")
}

/// The API: method, path, what it does (the `/openapi.json` document is made from this).
const ROUTES: &[(&str, &str, &str)] = &[
    ("post", "/v1/pairings", "Start pairing a phone for an account: {user, ttl_secs?} → {pairing_id, uri, qr_svg, expires_at}"),
    ("get", "/v1/pairings/{id}", "Pairing status: waiting, claimed (ask for the phone's code), paired, expired, failed"),
    ("post", "/v1/pairings/{id}/confirm", "Confirm with the code the phone shows: {code} → the paired device (and recovery codes for an account's first phone)"),
    ("post", "/v1/pairings/{id}/reject", "The user refuses the phone (it is not theirs): the pairing ends, nothing is recorded"),
    ("post", "/v1/requests", "Ask an account's phones to approve: {user, service?, client_ip?, user_agent?, location?, kind?, action?, number_matching?, lifetime_secs?, devices?} → {request_id, number, expires, deliveries}"),
    ("get", "/v1/requests/{id}", "The verified outcome (?wait=N long-polls up to 25 s): pending, approved, denied, wrong_number, fraud, expired, cancelled"),
    ("delete", "/v1/requests/{id}", "Cancel a request"),
    ("get", "/v1/accounts/{user}/devices", "An account's phones"),
    ("delete", "/v1/accounts/{user}/devices/{device_id}", "Forget one of the account's phones (no more requests; its codes stop working)"),
    ("post", "/v1/accounts/{user}/recovery-codes", "A new set of recovery codes for the account, shown once; the old set stops working"),
    ("post", "/v1/accounts/{user}/offline-code", "Check an offline code: {code} → accepted, rejected or locked_out"),
    ("post", "/v1/accounts/{user}/recovery-code", "Use a recovery code: {code} → accepted, rejected or locked_out"),
    ("get", "/openapi.json", "This document"),
];

/// The OpenAPI 3.1 document of [`ROUTES`].
fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let item = paths
            .entry((*path).to_owned())
            .or_insert_with(|| serde_json::json!({}));
        item[*method] = serde_json::json!({
            "summary": summary,
            "responses": {
                "200": {"description": "JSON"},
                "default": {"description": "application/problem+json (RFC 9457)"}
            }
        });
    }
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "approvd agent",
            "description": "The NAS agent's local approval API (Unix socket; loopback TCP with a bearer token).",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
    })
}

/// Longest `wait` an outcome poll may ask for, seconds.
const MAX_WAIT: u64 = 25;

struct Pending {
    sent: SentChallenge,
    devices: Vec<PairedDevice>,
    /// The final outcome, once known (polls after it get the same answer).
    outcome: Option<Outcome>,
}

/// Where a pairing started through the API stands.
#[derive(Debug, Clone)]
enum Pairing {
    /// The QR code is shown; no phone claimed it yet.
    Waiting,
    /// A phone claimed it and the agent committed to that claim: ask the user for the code
    /// the phone shows.
    Claimed(Box<approvd_client::VerifiedClaim>),
    Paired {
        device_id: approvd_proto::DeviceId,
        name: String,
    },
    Expired,
    /// Pairing cannot complete (a claim failed the checks, or the code typed was wrong).
    Failed(String),
}

struct PairingSession {
    account: String,
    expires_at: u64,
    state: Pairing,
}

struct Agent {
    home: NasHome,
    home_dir: PathBuf,
    nas: Nas,
    label: String,
    /// Required from TCP callers (Unix-socket callers are vouched for by the socket's mode).
    token: Option<String>,
    /// Cancelled at SIGTERM: held outcome polls answer 503 at once.
    stopping: tokio_util::sync::CancellationToken,
    pending: Mutex<HashMap<Cid, Pending>>,
    pairings: Mutex<HashMap<approvd_proto::PairingId, PairingSession>>,
}

impl Agent {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keep the undecided requests on disk, so that a restarted agent still judges them.
    fn save_pending(&self) {
        let text = {
            let pending = self.pending();
            let saved: Vec<(&SentChallenge, &Vec<PairedDevice>)> = pending
                .values()
                .filter(|pending| pending.outcome.is_none() && pending.sent.expires > unix_now())
                .map(|pending| (&pending.sent, &pending.devices))
                .collect();
            serde_json::to_vec(&saved).unwrap_or_default()
        };
        if let Err(error) =
            approvd_client::files::write_atomic(&requests_path(&self.home_dir), &text, true)
        {
            log(format_args!("cannot save pending requests: {error}"));
        }
    }

    fn pairings(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<approvd_proto::PairingId, PairingSession>> {
        self.pairings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub async fn run(args: AgentArgs) -> ExitCode {
    let home = match NasHome::open(&args.home) {
        Ok(home) => home,
        Err(error) => return crate::cli::fail(&error),
    };
    let started = (|| {
        let nas = home.nas()?;
        let label = home.settings()?.label;
        home.state()?; // refuse an old or unreadable state before serving
        Ok::<_, approvd_client::ClientError>((nas, label))
    })();
    let (nas, label) = match started {
        Ok(started) => started,
        Err(error) => return crate::cli::fail(&error),
    };
    let token = match &args.token_file {
        None => None,
        Some(path) => match approvd_client::files::read_private(path) {
            Ok(bytes) if String::from_utf8_lossy(&bytes).trim().len() >= 16 => {
                Some(String::from_utf8_lossy(&bytes).trim().to_owned())
            }
            Ok(_) => {
                eprintln!(
                    "approvd agent: {}: the token must be at least 16 characters",
                    path.display()
                );
                return ExitCode::from(2);
            }
            Err(error) => return crate::cli::fail(&error),
        },
    };
    if let Some(address) = args.listen.filter(|address| !address.ip().is_loopback()) {
        eprintln!("approvd agent: --listen {address}: only a loopback address is allowed");
        return ExitCode::from(2);
    }
    let socket = args.socket.unwrap_or_else(|| args.home.join("agent.sock"));
    let _ = std::fs::remove_file(&socket);
    // Requests a previous run left undecided are judged again (their phones may answer yet).
    let pending: HashMap<Cid, Pending> = std::fs::read(requests_path(&args.home))
        .ok()
        .and_then(|bytes| {
            serde_json::from_slice::<Vec<(SentChallenge, Vec<PairedDevice>)>>(&bytes).ok()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|(sent, _)| sent.expires > unix_now())
        .map(|(sent, devices)| {
            (
                sent.cid,
                Pending {
                    sent,
                    devices,
                    outcome: None,
                },
            )
        })
        .collect();
    let agent = web::Data::new(Agent {
        home,
        home_dir: args.home.clone(),
        nas,
        label,
        token,
        stopping: tokio_util::sync::CancellationToken::new(),
        pending: Mutex::new(pending),
        pairings: Mutex::new(HashMap::new()),
    });
    let server = {
        let agent = agent.clone();
        HttpServer::new(move || {
            App::new()
                .app_data(agent.clone())
                .wrap(actix_web::middleware::from_fn(require_token))
                .app_data(web::JsonConfig::default().error_handler(|error, _| {
                    actix_web::error::InternalError::from_response(
                        "",
                        problem(400, "invalid-body", &error.to_string()),
                    )
                    .into()
                }))
                .route(
                    "/openapi.json",
                    web::get().to(|| async { HttpResponse::Ok().json(openapi()) }),
                )
                .route("/v1/pairings", web::post().to(start_pairing))
                .route("/v1/pairings/{id}", web::get().to(pairing_status))
                .route("/v1/pairings/{id}/confirm", web::post().to(confirm_pairing))
                .route("/v1/pairings/{id}/reject", web::post().to(reject_pairing))
                .route("/v1/requests", web::post().to(create_request))
                .route("/v1/requests/{id}", web::get().to(request_outcome))
                .route("/v1/requests/{id}", web::delete().to(cancel_request))
                .route("/v1/accounts/{user}/devices", web::get().to(devices))
                .route(
                    "/v1/accounts/{user}/devices/{device_id}",
                    web::delete().to(remove_device),
                )
                .route(
                    "/v1/accounts/{user}/recovery-codes",
                    web::post().to(new_recovery_codes),
                )
                .route(
                    "/v1/accounts/{user}/offline-code",
                    web::post().to(offline_code),
                )
                .route(
                    "/v1/accounts/{user}/recovery-code",
                    web::post().to(recovery_code),
                )
                .default_service(web::to(|| async {
                    problem(404, "no-route", "no such endpoint")
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .bind_uds(&socket)
        .and_then(|server| match args.listen {
            Some(address) => {
                let listener = std::net::TcpListener::bind(address)?;
                let bound = listener.local_addr()?;
                Ok((server.listen(listener)?, Some(bound)))
            }
            None => Ok((server, None)),
        })
    };
    let server = match server {
        Ok((server, tcp)) => {
            let socket_line = format!("approvd agent listening on {}", socket.display());
            let lines: Vec<String> = std::iter::once(socket_line)
                .chain(
                    tcp.iter()
                        .map(|address| format!("approvd agent listening on http://{address}")),
                )
                .collect();
            // Scripts and tests read these lines; a closed stdout must not stop the daemon.
            {
                use std::io::Write as _;
                let mut stdout = std::io::stdout();
                for line in lines {
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
            }
            server.run()
        }
        Err(error) => {
            eprintln!(
                "approvd agent: cannot listen on {}: {error}",
                socket.display()
            );
            return ExitCode::from(3);
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(error) =
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        {
            eprintln!(
                "approvd agent: cannot restrict {}: {error}",
                socket.display()
            );
            return ExitCode::from(3);
        }
    }

    let handle = server.handle();
    let mailbox = tokio::spawn(drain_mailbox(agent.clone()));
    let stopping = agent.stopping.clone();
    tokio::spawn(async move {
        approvd_relay::server::shutdown_signal().await;
        stopping.cancel();
        handle.stop(true).await;
    });
    let served = server.await;
    mailbox.abort();
    let _ = std::fs::remove_file(&socket);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("approvd agent: {error}");
            ExitCode::from(3)
        }
    }
}

/// Apply mailbox notices as they arrive; back off while the relay is unreachable.
async fn drain_mailbox(agent: web::Data<Agent>) {
    loop {
        let devices = match agent.home.devices() {
            Ok(records) => records.into_iter().map(|record| record.device).collect(),
            Err(error) => {
                log(format_args!("cannot read the devices: {error}"));
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let drained: Vec<PairedDevice> = devices;
        match agent
            .nas
            .drain_mailbox(&drained, Duration::from_secs(MAX_WAIT))
            .await
        {
            Ok(events) => {
                for event in &events {
                    log(format_args!("mailbox: {event:?}"));
                }
                if let Err(error) = agent.home.apply(&events) {
                    log(format_args!("cannot apply mailbox notices: {error}"));
                }
            }
            Err(error) => {
                log(format_args!("mailbox: {error}; retrying in 5 s"));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// One line on standard error; a closed stderr must not stop the daemon.
fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "approvd agent: {line}");
}

/// TCP callers (they have a peer address; Unix-socket callers do not) must present the token.
async fn require_token(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use subtle::ConstantTimeEq as _;
    if request.peer_addr().is_some() {
        let expected = request
            .app_data::<web::Data<Agent>>()
            .and_then(|agent| agent.token.clone());
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let allowed = match (expected, presented) {
            (Some(expected), Some(presented)) => {
                bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
            }
            _ => false,
        };
        if !allowed {
            let response = problem(
                401,
                "unauthenticated",
                "TCP callers must send `Authorization: Bearer <token from --token-file>`",
            );
            return Ok(request.into_response(response));
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

fn problem(status: u16, kind: &str, detail: &str) -> HttpResponse {
    let problem = approvd_proto::wire::Problem {
        type_uri: format!("{}{kind}", approvd_proto::wire::PROBLEM_TYPE_PREFIX),
        title: kind.replace('-', " "),
        status,
        detail: detail.to_owned(),
        field: None,
        instance: None,
    };
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .content_type("application/problem+json")
    .json(problem)
}

fn client_problem(error: &approvd_client::ClientError) -> HttpResponse {
    match error {
        approvd_client::ClientError::Protocol(error) => {
            problem(400, "invalid-field", &error.to_string())
        }
        approvd_client::ClientError::Storage { .. } => problem(500, "state", &error.to_string()),
        // The relay's per-device budget (push-bombing defence): the caller should say "wait".
        approvd_client::ClientError::Relay { status: 429, .. } => problem(
            429,
            "rate-limited",
            "the relay refuses more requests to these phones for now (push-bombing defence); try again in a minute",
        ),
        _ => problem(502, "relay", &error.to_string()),
    }
}

async fn create_request(agent: web::Data<Agent>, body: web::Json<ApprovalRequest>) -> HttpResponse {
    let body = body.into_inner();
    let devices: Vec<PairedDevice> = match agent.home.account_devices(&body.user) {
        Ok(devices) => devices
            .into_iter()
            .filter(|device| {
                body.devices.is_empty() || body.devices.contains(&device.device_id.to_string())
            })
            .collect(),
        Err(error) => return client_problem(&error),
    };
    if devices.is_empty() {
        return problem(
            404,
            "no-devices",
            &format!("`{}` has no paired phones (to ask)", body.user),
        );
    }
    let context = body.login_context(&agent.label, unix_now());
    let number_matching = body.number_matching(&context);
    let lifetime = body.lifetime();
    match agent
        .nas
        .request_approval(&devices, &context, number_matching, lifetime)
        .await
    {
        Ok(sent) => {
            let answer = serde_json::json!({
                "request_id": sent.cid,
                "number": sent.number,
                "expires": sent.expires,
                "deliveries": sent.report.deliveries,
            });
            agent.pending().insert(
                sent.cid,
                Pending {
                    sent,
                    devices,
                    outcome: None,
                },
            );
            agent.save_pending();
            HttpResponse::Created().json(answer)
        }
        Err(error) => client_problem(&error),
    }
}

#[derive(Debug, serde::Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: u64,
}

fn outcome_json(outcome: &Outcome, devices: &[PairedDevice]) -> serde_json::Value {
    let device = |device_id: &approvd_proto::DeviceId| {
        let name = devices
            .iter()
            .find(|device| device.device_id == *device_id)
            .map(|device| device.name.clone());
        serde_json::json!({ "device_id": device_id, "device_name": name })
    };
    let (status, detail) = match outcome {
        Outcome::Approved { device_id } => ("approved", device(device_id)),
        Outcome::Denied { device_id } => ("denied", device(device_id)),
        Outcome::WrongNumber { device_id } => ("wrong_number", device(device_id)),
        Outcome::FraudReported { device_id } => ("fraud", device(device_id)),
        Outcome::Expired => ("expired", serde_json::json!({})),
        Outcome::Cancelled => ("cancelled", serde_json::json!({})),
        Outcome::Invalid { reason } => ("invalid", serde_json::json!({ "reason": reason })),
    };
    let mut answer = serde_json::json!({ "status": status });
    if let (Some(answer), Some(detail)) = (answer.as_object_mut(), detail.as_object()) {
        answer.extend(detail.clone());
    }
    answer
}

async fn request_outcome(
    agent: web::Data<Agent>,
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> HttpResponse {
    let Ok(cid) = Cid::parse(&path) else {
        return problem(404, "not-found", "no such request");
    };
    let (sent, devices) = match agent.pending().get(&cid) {
        None => return problem(404, "not-found", "no such request"),
        Some(Pending {
            outcome: Some(outcome),
            devices,
            ..
        }) => return HttpResponse::Ok().json(outcome_json(outcome, devices)),
        Some(pending) => (pending.sent.clone(), pending.devices.clone()),
    };
    let wait = Duration::from_secs(query.wait.min(MAX_WAIT));
    let polled = tokio::select! {
        polled = agent.nas.wait_for_verdict(&sent, &devices, wait) => polled,
        () = agent.stopping.cancelled() => {
            let mut response = problem(
                503,
                "unavailable",
                "the agent is shutting down; ask again when it is back (the request is kept)",
            );
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
            return response;
        }
    };
    match polled {
        Ok(None) => HttpResponse::Ok().json(serde_json::json!({ "status": "pending" })),
        Ok(Some(outcome)) => {
            let answer = outcome_json(&outcome, &devices);
            if !matches!(outcome, Outcome::Invalid { .. }) {
                if let Some(pending) = agent.pending().get_mut(&cid) {
                    pending.outcome = Some(outcome);
                }
                agent.save_pending();
            }
            HttpResponse::Ok().json(answer)
        }
        Err(error) => client_problem(&error),
    }
}

async fn cancel_request(agent: web::Data<Agent>, path: web::Path<String>) -> HttpResponse {
    let Ok(cid) = Cid::parse(&path) else {
        return problem(404, "not-found", "no such request");
    };
    if !agent.pending().contains_key(&cid) {
        return problem(404, "not-found", "no such request");
    }
    match agent.nas.cancel(&cid).await {
        Ok(()) => {
            if let Some(pending) = agent.pending().get_mut(&cid) {
                pending.outcome.get_or_insert(Outcome::Cancelled);
            }
            HttpResponse::NoContent().finish()
        }
        Err(error) => client_problem(&error),
    }
}

async fn devices(agent: web::Data<Agent>, path: web::Path<String>) -> HttpResponse {
    match agent.home.state() {
        Ok(state) => {
            let devices: Vec<serde_json::Value> = state
                .of(&path)
                .map(|record| {
                    serde_json::json!({
                        "device_id": record.device.device_id,
                        "name": record.device.name,
                        "platform": record.device.platform,
                        "push_gone": record.push_gone,
                        "muted_until": record.muted_until,
                    })
                })
                .collect();
            HttpResponse::Ok().json(serde_json::json!({ "devices": devices }))
        }
        Err(error) => client_problem(&error),
    }
}

fn code_json(check: &CodeCheck) -> HttpResponse {
    let answer = match check {
        CodeCheck::Accepted { device_id } => {
            serde_json::json!({ "result": "accepted", "device_id": device_id })
        }
        CodeCheck::Rejected { failures } => {
            serde_json::json!({ "result": "rejected", "failures": failures })
        }
        CodeCheck::LockedOut { until } => {
            serde_json::json!({ "result": "locked_out", "locked_until": until })
        }
    };
    HttpResponse::Ok().json(answer)
}

async fn offline_code(
    agent: web::Data<Agent>,
    path: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> HttpResponse {
    check_code(&agent, &path, &body.code, NasHome::check_offline_code)
}

async fn recovery_code(
    agent: web::Data<Agent>,
    path: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> HttpResponse {
    check_code(&agent, &path, &body.code, NasHome::use_recovery_code)
}

/// Run one of the home's code checks for `account` and answer its result. Failures are logged
/// (never the code itself).
fn check_code(
    agent: &Agent,
    account: &str,
    code: &str,
    check: fn(&NasHome, &str, &str, u64) -> Result<CodeCheck, approvd_client::ClientError>,
) -> HttpResponse {
    match check(&agent.home, account, code.trim(), unix_now()) {
        Ok(result) => {
            match &result {
                CodeCheck::Accepted { .. } => log(format_args!("{account}: code accepted")),
                CodeCheck::Rejected { failures } => {
                    log(format_args!("{account}: wrong code ({failures} in a row)"))
                }
                CodeCheck::LockedOut { until } => log(format_args!(
                    "{account}: code refused, locked out for {} s more",
                    until.saturating_sub(unix_now())
                )),
            }
            code_json(&result)
        }
        Err(error) => client_problem(&error),
    }
}

async fn remove_device(agent: web::Data<Agent>, path: web::Path<(String, String)>) -> HttpResponse {
    let (account, device_id) = path.into_inner();
    let Ok(key) = approvd_proto::PublicKey::parse("device_id", &device_id) else {
        return problem(404, "not-found", "no such device");
    };
    match agent
        .home
        .remove_device(&account, &approvd_proto::DeviceId(key))
    {
        Ok(true) => {
            log(format_args!("{account}: removed device {device_id}"));
            HttpResponse::NoContent().finish()
        }
        Ok(false) => problem(404, "not-found", "the account has no such device"),
        Err(error) => client_problem(&error),
    }
}

async fn new_recovery_codes(agent: web::Data<Agent>, path: web::Path<String>) -> HttpResponse {
    match agent.home.new_recovery_codes(&path) {
        Ok(codes) => {
            log(format_args!("{}: new recovery codes issued", path.as_str()));
            HttpResponse::Created().json(serde_json::json!({ "recovery_codes": codes }))
        }
        Err(error) => client_problem(&error),
    }
}

async fn start_pairing(agent: web::Data<Agent>, body: web::Json<PairingRequest>) -> HttpResponse {
    let body = body.into_inner();
    if let Err(error) = agent.home.check_room(&body.user) {
        return problem(409, "too-many-phones", &error.to_string());
    }
    let ttl = body.ttl();
    let uri = match agent.nas.start_pairing(&agent.label, &body.user, ttl).await {
        Ok(uri) => uri,
        Err(error) => return client_problem(&error),
    };
    let text = uri.to_uri();
    let svg = qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(256, 256)
                .build()
        })
        .unwrap_or_default();
    agent.pairings().insert(
        uri.pairing_id,
        PairingSession {
            account: body.user,
            expires_at: uri.expires_at,
            state: Pairing::Waiting,
        },
    );
    let answer = serde_json::json!({
        "pairing_id": uri.pairing_id,
        "uri": text,
        "qr_svg": svg,
        "expires_at": uri.expires_at,
    });
    tokio::spawn(await_claim(agent.clone(), uri));
    HttpResponse::Created().json(answer)
}

/// Wait for the phone's claim until the slot expires; the SDK checks it and commits to it.
async fn await_claim(agent: web::Data<Agent>, uri: approvd_proto::pairing::PairingUri) {
    let next = loop {
        let left = uri.expires_at.saturating_sub(unix_now());
        if left == 0 {
            break Pairing::Expired;
        }
        match agent
            .nas
            .wait_for_claim(&uri, Duration::from_secs(left.min(MAX_WAIT)))
            .await
        {
            Ok(Some(verified)) => break Pairing::Claimed(Box::new(verified)),
            Ok(None) => continue,
            Err(error) => break Pairing::Failed(error.to_string()),
        }
    };
    if let Some(session) = agent.pairings().get_mut(&uri.pairing_id) {
        session.state = next;
    }
}

fn pairing_json(session: &PairingSession) -> serde_json::Value {
    let expired = matches!(session.state, Pairing::Waiting | Pairing::Claimed(_))
        && session.expires_at <= unix_now();
    match &session.state {
        _ if expired => serde_json::json!({ "status": "expired", "user": session.account }),
        Pairing::Waiting => serde_json::json!({ "status": "waiting", "user": session.account }),
        Pairing::Claimed(verified) => serde_json::json!({
            "status": "claimed",
            "user": session.account,
            "device_name": verified.device.name,
            "platform": verified.device.platform,
        }),
        Pairing::Paired { device_id, name } => serde_json::json!({
            "status": "paired",
            "user": session.account,
            "device_id": device_id,
            "device_name": name,
        }),
        Pairing::Expired => serde_json::json!({ "status": "expired", "user": session.account }),
        Pairing::Failed(reason) => {
            serde_json::json!({ "status": "failed", "user": session.account, "reason": reason })
        }
    }
}

async fn pairing_status(agent: web::Data<Agent>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = approvd_proto::PairingId::parse(&path) else {
        return problem(404, "not-found", "no such pairing");
    };
    match agent.pairings().get(&id) {
        Some(session) => HttpResponse::Ok().json(pairing_json(session)),
        None => problem(404, "not-found", "no such pairing"),
    }
}

async fn reject_pairing(agent: web::Data<Agent>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = approvd_proto::PairingId::parse(&path) else {
        return problem(404, "not-found", "no such pairing");
    };
    match agent.pairings().get_mut(&id) {
        None => problem(404, "not-found", "no such pairing"),
        Some(session) if matches!(session.state, Pairing::Paired { .. }) => {
            problem(409, "conflict", "paired already: remove the device instead")
        }
        Some(session) => {
            session.state = Pairing::Failed("rejected".to_owned());
            HttpResponse::Ok().json(pairing_json(session))
        }
    }
}

/// A phone shows its code as soon as the agent's acceptance is on the relay, a moment before
/// the agent records the claim here: a confirmation arriving in that moment waits for it (2 s
/// at most).
async fn claim_settled(agent: &Agent, id: &approvd_proto::PairingId) {
    for _ in 0..40 {
        let waiting = agent
            .pairings()
            .get(id)
            .is_some_and(|session| matches!(session.state, Pairing::Waiting));
        if !waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn confirm_pairing(
    agent: web::Data<Agent>,
    path: web::Path<String>,
    body: web::Json<CodeRequest>,
) -> HttpResponse {
    let Ok(id) = approvd_proto::PairingId::parse(&path) else {
        return problem(404, "not-found", "no such pairing");
    };
    claim_settled(&agent, &id).await;
    let (account, verified) = match agent.pairings().get(&id) {
        None => return problem(404, "not-found", "no such pairing"),
        Some(session) => match &session.state {
            Pairing::Claimed(verified) if session.expires_at > unix_now() => {
                (session.account.clone(), verified.clone())
            }
            _ => {
                return problem(
                    409,
                    "conflict",
                    "nothing to confirm: see the pairing's status",
                )
            }
        },
    };
    let confirmed = agent.nas.confirm(&verified, body.code.trim()).await;
    let (device, secret) = match confirmed {
        Ok(paired) => paired,
        Err(approvd_client::ClientError::Verification(reason)) => {
            if let Some(session) = agent.pairings().get_mut(&id) {
                session.state = Pairing::Failed(reason.clone());
            }
            return problem(400, "wrong-code", &format!("{reason}; start a new pairing"));
        }
        Err(error) => return client_problem(&error),
    };
    let first = !agent.home.has_recovery_codes(&account).unwrap_or(true);
    if let Err(error) = agent.home.add_device(&account, device.clone(), &secret) {
        return client_problem(&error);
    }
    let recovery_codes = if first {
        match agent.home.new_recovery_codes(&account) {
            Ok(codes) => Some(codes),
            Err(error) => return client_problem(&error),
        }
    } else {
        None
    };
    if let Some(session) = agent.pairings().get_mut(&id) {
        session.state = Pairing::Paired {
            device_id: device.device_id,
            name: device.name.clone(),
        };
    }
    HttpResponse::Ok().json(serde_json::json!({
        "status": "paired",
        "user": account,
        "device_id": device.device_id,
        "device_name": device.name,
        "recovery_codes": recovery_codes,
    }))
}

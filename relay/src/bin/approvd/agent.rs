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
use approvd_client::transport::unix_now;
use approvd_client::{CodeCheck, Nas, NasHome, Outcome, PairedDevice, SentChallenge};
use approvd_proto::context::{LoginContext, LoginKind};
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
}

/// Longest `wait` an outcome poll may ask for, seconds.
const MAX_WAIT: u64 = 25;

struct Pending {
    sent: SentChallenge,
    devices: Vec<PairedDevice>,
    /// The final outcome, once known (polls after it get the same answer).
    outcome: Option<Outcome>,
}

struct Agent {
    home: NasHome,
    nas: Nas,
    label: String,
    pending: Mutex<HashMap<Cid, Pending>>,
}

impl Agent {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Pending>> {
        self.pending
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
    let socket = args.socket.unwrap_or_else(|| args.home.join("agent.sock"));
    let _ = std::fs::remove_file(&socket);
    let agent = web::Data::new(Agent {
        home,
        nas,
        label,
        pending: Mutex::new(HashMap::new()),
    });
    let server = {
        let agent = agent.clone();
        HttpServer::new(move || {
            App::new()
                .app_data(agent.clone())
                .app_data(web::JsonConfig::default().error_handler(|error, _| {
                    actix_web::error::InternalError::from_response(
                        "",
                        problem(400, "invalid-body", &error.to_string()),
                    )
                    .into()
                }))
                .route("/v1/requests", web::post().to(create_request))
                .route("/v1/requests/{id}", web::get().to(request_outcome))
                .route("/v1/requests/{id}", web::delete().to(cancel_request))
                .route("/v1/accounts/{user}/devices", web::get().to(devices))
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
        .bind_uds(&socket)
    };
    let server = match server {
        Ok(server) => server.run(),
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
    {
        use std::io::Write as _;
        // Scripts and tests read this line; a closed stdout must not stop the daemon.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "approvd agent listening on {}", socket.display());
        let _ = stdout.flush();
    }
    let handle = server.handle();
    let mailbox = tokio::spawn(drain_mailbox(agent.clone()));
    tokio::spawn(async move {
        approvd_relay::server::shutdown_signal().await;
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

fn problem(status: u16, kind: &str, detail: &str) -> HttpResponse {
    let problem = approvd_proto::wire::Problem {
        type_uri: format!("{}{kind}", approvd_proto::wire::PROBLEM_TYPE_PREFIX),
        title: kind.replace('-', " "),
        status,
        detail: detail.to_owned(),
        field: None,
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
        _ => problem(502, "relay", &error.to_string()),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    user: String,
    #[serde(default = "default_service")]
    service: String,
    client_ip: Option<String>,
    user_agent: Option<String>,
    location: Option<String>,
    #[serde(default)]
    kind: Option<LoginKind>,
    action: Option<String>,
    /// Number matching for an `action` (always on for sign-ins).
    #[serde(default)]
    number_matching: bool,
    #[serde(default = "default_lifetime")]
    lifetime_secs: u64,
    /// Only these of the account's phones.
    #[serde(default)]
    devices: Vec<String>,
}

fn default_service() -> String {
    "login".to_owned()
}

fn default_lifetime() -> u64 {
    60
}

async fn create_request(agent: web::Data<Agent>, body: web::Json<RequestBody>) -> HttpResponse {
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
    let kind = body.kind.unwrap_or(if body.action.is_some() {
        LoginKind::Action
    } else {
        LoginKind::Login
    });
    let context = LoginContext {
        user: body.user,
        service: body.service,
        nas_label: agent.label.clone(),
        client_ip: body.client_ip,
        user_agent: body.user_agent,
        location: body.location,
        kind,
        action: body.action,
        time: unix_now(),
    };
    let number_matching = body.number_matching || context.requires_number_matching();
    let lifetime = Duration::from_secs(body.lifetime_secs.clamp(1, 120));
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
    match agent.nas.wait_for_verdict(&sent, &devices, wait).await {
        Ok(None) => HttpResponse::Ok().json(serde_json::json!({ "status": "pending" })),
        Ok(Some(outcome)) => {
            let answer = outcome_json(&outcome, &devices);
            if !matches!(outcome, Outcome::Invalid { .. }) {
                if let Some(pending) = agent.pending().get_mut(&cid) {
                    pending.outcome = Some(outcome);
                }
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

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
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
    body: web::Json<CodeBody>,
) -> HttpResponse {
    match agent
        .home
        .check_offline_code(&path, body.code.trim(), unix_now())
    {
        Ok(check) => code_json(&check),
        Err(error) => client_problem(&error),
    }
}

async fn recovery_code(
    agent: web::Data<Agent>,
    path: web::Path<String>,
    body: web::Json<CodeBody>,
) -> HttpResponse {
    match agent
        .home
        .use_recovery_code(&path, body.code.trim(), unix_now())
    {
        Ok(check) => code_json(&check),
        Err(error) => client_problem(&error),
    }
}

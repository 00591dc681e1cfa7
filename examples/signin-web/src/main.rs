//! `approvd-signin-web`: a reference web sign-in page for a NAS — username and password then
//! "approve on your phone", or passwordless — built only on the NAS agent's local API
//! (`approvd agent`). Owns the command line, the demo user table and the HTTP server; the flow
//! is in `routes`, the pages in `pages`, what it remembers in `state`.

mod pages;
mod routes;
mod state;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpServer};
use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use clap::{Parser, Subcommand};

/// A web sign-in page approved on the phone, on the approvd NAS agent.
///
/// Two-step (password, then the phone) and passwordless (the phone with number matching),
/// a live wait, offline and recovery codes. Reference code for a NAS's login page: it talks
/// only to `approvd agent`'s local API and keeps its state in memory.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Argon2id hash of a password read from standard input, for the users file.
    HashPassword,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  approvd agent --home approvd-nas &\n  approvd-signin-web --agent-socket approvd-nas/login.sock --users examples/signin-web/users.toml"
)]
struct ServeArgs {
    /// Address to serve the page on.
    #[arg(long, env = "APPROVD_SIGNIN_LISTEN", default_value = "127.0.0.1:8088")]
    listen: std::net::SocketAddr,
    /// The agent's login socket (sign-in requests and codes: all the page needs).
    #[arg(
        long,
        env = "APPROVD_SIGNIN_AGENT_SOCKET",
        default_value = "approvd-nas/login.sock"
    )]
    agent_socket: PathBuf,
    /// Reach the agent over loopback TCP instead (`approvd agent --listen`), e.g.
    /// http://127.0.0.1:8787; needs --agent-token-file.
    #[arg(long, env = "APPROVD_SIGNIN_AGENT_URL", requires = "agent_token_file")]
    agent_url: Option<String>,
    /// The bearer token file given to `approvd agent --token-file` (the login capability).
    #[arg(long, env = "APPROVD_SIGNIN_AGENT_TOKEN_FILE")]
    agent_token_file: Option<PathBuf>,
    /// The users file (TOML: `[users] alice = "<hash from hash-password>"`), for two-step
    /// sign-in. Passwordless sign-in works for any account with a paired phone.
    #[arg(long, env = "APPROVD_SIGNIN_USERS")]
    users: Option<PathBuf>,
    /// How long the phone has to answer, seconds (1–120).
    #[arg(long, env = "APPROVD_SIGNIN_REQUEST_LIFETIME", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    request_lifetime: u64,
    /// Approval requests one username may cause per window (known or not).
    #[arg(long, env = "APPROVD_SIGNIN_REQUESTS_PER_USER", default_value_t = 5)]
    requests_per_user: u32,
    /// Approval requests one client address may cause per window (any usernames).
    #[arg(
        long,
        env = "APPROVD_SIGNIN_REQUESTS_PER_ADDRESS",
        default_value_t = 30
    )]
    requests_per_address: u32,
    /// The window of --requests-per-user and --requests-per-address, seconds.
    #[arg(long, env = "APPROVD_SIGNIN_REQUEST_WINDOW", default_value_t = 600)]
    request_window: u64,
    /// Take the client's address (per-address budget, the address the phone shows) from the
    /// right-most `X-Forwarded-For` entry: set it behind a reverse proxy, or every client
    /// shares the proxy's address and budget.
    #[arg(long, env = "APPROVD_SIGNIN_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Always mark cookies `Secure` (they are anyway when the page is reached over https,
    /// including through a proxy that sets X-Forwarded-Proto).
    #[arg(long, env = "APPROVD_SIGNIN_SECURE_COOKIES")]
    secure_cookies: bool,
}

/// The demo user table: username → Argon2id PHC hash.
#[derive(Debug)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// Checked for unknown usernames so that they take as long as known ones.
    dummy: String,
    /// Argon2 working memory, reused: one buffer per check running at once (at most
    /// [`PASSWORD_CHECKS`]), allocated once and never freed. A fresh 19 MiB buffer per check
    /// stays in the allocator's heap after it is freed, and a flood of wrong passwords grew
    /// the page to ~2 GB.
    scratch: std::sync::Mutex<Vec<Vec<argon2::Block>>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: HashMap<String, String>,
}

fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

impl Users {
    fn load(path: Option<&std::path::Path>) -> Result<Self, String> {
        let file = match path {
            None => UsersFile {
                users: HashMap::new(),
            },
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
                toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?
            }
        };
        for (user, hash) in &file.users {
            PasswordHash::new(hash)
                .map_err(|error| format!("users file: the hash of `{user}`: {error}"))?;
        }
        let dummy =
            hash("approvd dummy password").map_err(|error| format!("cannot hash: {error}"))?;
        Ok(Self {
            hashes: file.users,
            dummy,
            scratch: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether `password` is `user`'s; as slow for an unknown user as for a known one.
    pub fn verify(&self, user: Option<&str>, password: &str) -> bool {
        let known = user.and_then(|user| self.hashes.get(user));
        let stored = known.unwrap_or(&self.dummy);
        let matches = PasswordHash::new(stored)
            .is_ok_and(|parsed| self.matches(&parsed, password.as_bytes()));
        known.is_some() && matches
    }

    /// Argon2 of `password` under `stored`'s algorithm, parameters and salt, in a reused
    /// buffer, compared in constant time with `stored`'s hash.
    fn matches(&self, stored: &PasswordHash<'_>, password: &[u8]) -> bool {
        let (Some(expected), Some(salt)) = (stored.hash, stored.salt) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            argon2::Algorithm::try_from(stored.algorithm),
            argon2::Params::try_from(stored),
        ) else {
            return false;
        };
        let version = stored
            .version
            .and_then(|version| argon2::Version::try_from(version).ok())
            .unwrap_or_default();
        let mut memory = self.take_scratch(params.block_count());
        let mut out = vec![0u8; expected.len()];
        let hashed = argon2::Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..]);
        self.return_scratch(memory);
        hashed.is_ok() && bool::from(subtle::ConstantTimeEq::ct_eq(&out[..], expected.as_bytes()))
    }

    fn take_scratch(&self, blocks: usize) -> Vec<argon2::Block> {
        let reused = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut memory = reused.unwrap_or_default();
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        memory
    }

    fn return_scratch(&self, memory: Vec<argon2::Block>) {
        let mut pool = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < PASSWORD_CHECKS {
            pool.push(memory);
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    pub agent: approvd_agent::client::AgentClient,
    pub users: Arc<Users>,
    pub state: state::State,
    pub lifetime_secs: u64,
    pub secure_cookies: bool,
    /// Client addresses come from `X-Forwarded-For` (behind a reverse proxy).
    pub trust_forwarded_for: bool,
    /// Password checks at once: each Argon2 check takes ~19 MiB and tens of milliseconds, so
    /// a flood of logins must queue instead of taking the machine.
    pub password_checks: tokio::sync::Semaphore,
}

/// Password checks run at once.
pub const PASSWORD_CHECKS: usize = 4;

/// A form that cannot be read: a page saying so (413 when too large), never a bare error.
fn form_error(
    error: actix_web::error::UrlencodedError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    let status = match error {
        actix_web::error::UrlencodedError::Overflow { .. } => {
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => actix_web::http::StatusCode::BAD_REQUEST,
    };
    let page = pages::problem(
        "Form not accepted",
        "The form was incomplete or too large. Go back to the sign-in page and try again.",
    );
    let response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page);
    actix_web::error::InternalError::from_response(error, response).into()
}

/// Headers on every answer: no framing, no caching of pages with tokens, no referrers, and
/// nothing loaded from anywhere but here.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        let mut password = String::new();
        if let Err(error) = std::io::stdin().read_to_string(&mut password) {
            eprintln!("approvd-signin-web: cannot read the password: {error}");
            return ExitCode::from(2);
        }
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            eprintln!("approvd-signin-web: the password is empty (pipe it on standard input)");
            return ExitCode::from(2);
        }
        return match hash(password) {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("approvd-signin-web: cannot hash: {error}");
                ExitCode::from(3)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("approvd-signin-web: cannot start: {error}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(serve(cli.serve))
}

async fn serve(args: ServeArgs) -> ExitCode {
    let endpoint = match (&args.agent_url, &args.agent_token_file) {
        (Some(url), Some(file)) => match std::fs::read_to_string(file) {
            Ok(token) => approvd_agent::client::Endpoint::Tcp {
                url: url.clone(),
                token: token.trim().to_owned(),
            },
            Err(error) => {
                eprintln!("approvd-signin-web: {}: {error}", file.display());
                return ExitCode::from(2);
            }
        },
        _ => approvd_agent::client::Endpoint::Socket(args.agent_socket.clone()),
    };
    let users = match Users::load(args.users.as_deref()) {
        Ok(users) => users,
        Err(error) => {
            eprintln!("approvd-signin-web: {error}");
            return ExitCode::from(2);
        }
    };
    let agent = match approvd_agent::client::AgentClient::new(endpoint) {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("approvd-signin-web: {error}");
            return ExitCode::from(3);
        }
    };
    let app = web::Data::new(App {
        agent,
        users: Arc::new(users),
        state: state::State::new(state::Budget {
            requests: args.requests_per_user,
            per_address: args.requests_per_address,
            window_secs: args.request_window,
        }),
        lifetime_secs: args.request_lifetime,
        secure_cookies: args.secure_cookies,
        trust_forwarded_for: args.trust_forwarded_for,
        password_checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS),
    });
    let server = HttpServer::new(move || {
        let mut headers = actix_web::middleware::DefaultHeaders::new();
        for header in SECURITY_HEADERS {
            headers = headers.add(*header);
        }
        actix_web::App::new()
            .app_data(app.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(4096)
                    .error_handler(form_error),
            )
            .app_data(web::PayloadConfig::default().limit(4096))
            .wrap(headers)
            .route("/", web::get().to(routes::home))
            .route("/login", web::get().to(routes::login_page))
            .route("/login", web::post().to(routes::login))
            .route("/passwordless", web::get().to(routes::passwordless_page))
            .route("/passwordless", web::post().to(routes::passwordless))
            .route("/logout", web::post().to(routes::logout))
            .route("/attempt/{id}", web::get().to(routes::attempt_page))
            .route(
                "/attempt/{id}/status",
                web::get().to(routes::attempt_status),
            )
            .route("/attempt/{id}/finish", web::post().to(routes::finish))
            .route("/attempt/{id}/resend", web::post().to(routes::resend))
            .route("/attempt/{id}/cancel", web::post().to(routes::cancel))
            .route("/attempt/{id}/code", web::get().to(routes::code_page))
            .route("/attempt/{id}/code", web::post().to(routes::code))
            .route(
                "/static/signin.css",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
                        .body(pages::STYLE)
                }),
            )
            .route(
                "/static/signin.js",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
                        .body(pages::SCRIPT)
                }),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound()
                    .content_type("text/html; charset=utf-8")
                    .body(pages::problem("Not found", "There is no such page."))
            }))
    })
    .workers(2)
    .max_connections(1024)
    .client_request_timeout(std::time::Duration::from_secs(10))
    .shutdown_timeout(2);
    let server = match server.bind(args.listen) {
        Ok(server) => server,
        Err(error) => {
            eprintln!(
                "approvd-signin-web: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::from(3);
        }
    };
    for address in server.addrs() {
        println!("approvd-signin-web listening on http://{address}");
    }
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("approvd-signin-web: {error}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_in_reused_memory_under_each_hashs_own_parameters() {
        let alice = hash("correct horse").expect("hash");
        // A hash made elsewhere with other parameters (less memory, two lanes) still verifies.
        let params = argon2::Params::new(4096, 2, 2, None).expect("params");
        let salt = SaltString::encode_b64(&[7u8; 16]).expect("salt");
        let carol =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(b"carol pass", &salt)
                .expect("hash")
                .to_string();
        let users = Users {
            hashes: HashMap::from([("alice".to_owned(), alice), ("carol".to_owned(), carol)]),
            dummy: hash("approvd dummy password").expect("hash"),
            scratch: std::sync::Mutex::new(Vec::new()),
        };
        for _ in 0..2 {
            assert!(users.verify(Some("alice"), "correct horse"));
            assert!(!users.verify(Some("alice"), "correct horse "));
            assert!(users.verify(Some("carol"), "carol pass"));
            assert!(!users.verify(Some("carol"), "correct horse"));
            assert!(!users.verify(Some("nobody"), "approvd dummy password"));
            assert!(!users.verify(None, "correct horse"));
        }
        let pool = users.scratch.lock().expect("pool");
        assert_eq!(
            pool.len(),
            1,
            "one check at a time needs one buffer, reused"
        );
        assert_eq!(pool[0].len(), argon2::Params::default().block_count());
    }
}

//! `approvd agent`'s lifecycle: its options, opening the NAS home (private to its user),
//! the one-agent-per-home lock (`<home>/agent.lock`), binding the Unix socket (created 0600
//! under a 0177 umask, in a directory no other user can write) and the optional loopback TCP
//! listener, serving `http::app`, the mailbox task, and a clean stop at SIGTERM or SIGINT (held
//! polls answer 503 at once). Every failure is a [`RunError`] for the binary to print and turn
//! into an exit status; nothing here exits.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{web, HttpServer};
use clap::Args;

use crate::service::{self, Keep, Service};

/// Run the NAS agent: the mailbox loop and the local approval API.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  approvd agent --home approvd-nas\n  curl --unix-socket approvd-nas/agent.sock -X POST localhost/v1/requests -d '{\"user\":\"alice\"}'\n\nThe API is described at GET /openapi.json."
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
    pub listen: Option<SocketAddr>,
    /// A file (0600) holding the bearer token TCP callers must send
    /// (`Authorization: Bearer …`), at least 16 characters.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Home(#[from] service::Error),
    #[error("{path}: {reason}")]
    Token { path: PathBuf, reason: String },
    #[error("--listen {0}: only a loopback address is allowed")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {place}: {error}")]
    Listen {
        place: String,
        error: std::io::Error,
    },
    #[error(
        "another agent serves this NAS home (it holds {0}); stop it first, or give this one \
         another --home"
    )]
    AlreadyRunning(PathBuf),
    #[error(
        "{0}: other users can write to this directory, so they could replace the agent's \
         socket; put the socket in a directory only the NAS's user can write (e.g. the home)"
    )]
    OpenSocketDir(PathBuf),
    #[error("{0}")]
    Serve(std::io::Error),
}

impl RunError {
    /// The exit status: 2 for options to fix, 3 for what went wrong while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Token { .. } | RunError::NotLoopback(_) | RunError::OpenSocketDir(_) => 2,
            RunError::Home(_)
            | RunError::AlreadyRunning(_)
            | RunError::Listen { .. }
            | RunError::Serve(_) => 3,
        }
    }
}

/// The shortest bearer token accepted.
const MIN_TOKEN: usize = 16;

fn read_token(path: &std::path::Path) -> Result<Arc<str>, RunError> {
    let refused = |reason: String| RunError::Token {
        path: path.to_owned(),
        reason,
    };
    let bytes =
        approvd_client::files::read_private(path).map_err(|error| refused(error.to_string()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| refused("the token is not UTF-8".to_owned()))?;
    let token = text.trim();
    if token.len() < MIN_TOKEN {
        return Err(refused(format!(
            "the token must be at least {MIN_TOKEN} characters"
        )));
    }
    Ok(Arc::from(token))
}

/// Run the agent until `shutdown` resolves.
pub async fn run(
    args: AgentArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    if let Some(address) = args.listen.filter(|address| !address.ip().is_loopback()) {
        return Err(RunError::NotLoopback(address));
    }
    // The lock first: a second agent must not touch the requests file or the socket.
    let _instance = hold_instance_lock(&args.home)?;
    let service = web::Data::from(Service::open(&args.home, Keep::OnDisk)?);
    let socket = args.socket.unwrap_or_else(|| args.home.join("agent.sock"));
    check_socket_dir(&socket)?;
    let _ = std::fs::remove_file(&socket);
    let document = Arc::new(
        serde_json::to_value(crate::http::document())
            .map_err(|error| RunError::Serve(error.into()))?,
    );
    let listen_error = |place: String| move |error| RunError::Listen { place, error };
    let server = {
        let service = service.clone();
        // The socket is born 0600: no moment exists in which another user could connect.
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = HttpServer::new(move || {
            crate::http::app(service.clone(), token.clone(), document.clone())
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .bind_uds(&socket);
        nix::sys::stat::umask(umask);
        bound.map_err(listen_error(socket.display().to_string()))?
    };
    let (server, tcp) = match args.listen {
        Some(address) => {
            let listener =
                std::net::TcpListener::bind(address).map_err(listen_error(address.to_string()))?;
            let bound = listener
                .local_addr()
                .map_err(listen_error(address.to_string()))?;
            let server = server
                .listen(listener)
                .map_err(listen_error(address.to_string()))?;
            (server, Some(bound))
        }
        None => (server, None),
    };
    restrict(&socket).map_err(listen_error(socket.display().to_string()))?;
    let server = server.run();
    // Scripts and tests read these lines; a closed stdout must not stop the daemon.
    {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "approvd agent listening on {}", socket.display());
        if let Some(address) = tcp {
            let _ = writeln!(stdout, "approvd agent listening on http://{address}");
        }
        let _ = stdout.flush();
    }
    let handle = server.handle();
    let mailbox = tokio::spawn(service.clone().into_inner().keep_mailbox_applied());
    let stopping = {
        let service = service.clone();
        tokio::spawn(async move {
            shutdown.await;
            service.stop();
            handle.stop(true).await;
        })
    };
    let served = server.await;
    stopping.abort();
    mailbox.abort();
    let _ = std::fs::remove_file(&socket);
    served.map_err(RunError::Serve)
}

/// Hold `<home>/agent.lock` for as long as the agent runs (closing it at exit releases it):
/// a second agent on the same home is refused, instead of taking the socket over and deleting
/// it when it stops.
fn hold_instance_lock(home: &std::path::Path) -> Result<std::fs::File, RunError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = home.join("agent.lock");
    let failed = |error: std::io::Error| {
        RunError::Home(service::Error::State(
            approvd_client::ClientError::Storage {
                path: path.display().to_string(),
                message: error.to_string(),
            },
        ))
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .map_err(failed)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunError::AlreadyRunning(path)),
        Err(std::fs::TryLockError::Error(error)) => Err(failed(error)),
    }
}

/// Refuse a socket directory that other users can write (they could swap the socket for one
/// of theirs between runs); a sticky one like /tmp too, since its files' owners can.
fn check_socket_dir(socket: &std::path::Path) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = socket
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mode = std::fs::metadata(dir)
        .map_err(|error| RunError::Listen {
            place: socket.display().to_string(),
            error,
        })?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(RunError::OpenSocketDir(dir.to_owned()));
    }
    Ok(())
}

/// Only the NAS's own user may connect to the socket (it is born so; this keeps it so).
fn restrict(socket: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

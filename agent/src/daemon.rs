//! `approvd agent`'s lifecycle: its options, opening the NAS home (private to its user),
//! the one-agent-per-home lock (`<home>/agent.lock`), binding the admin and login Unix sockets
//! (created 0600 under a 0177 umask, in a directory no other user can write; the login one
//! 0660 for `--login-group`) and the optional loopback TCP listener, their access rules, serving `http::app`, the mailbox task, and a clean stop at SIGTERM or SIGINT (held
//! polls answer 503 at once). Every failure is a [`RunError`] for the binary to print and turn
//! into an exit status; nothing here exits.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{web, HttpServer};
use clap::Args;

use crate::access::{Access, Admits, Capability, Socket};
use crate::service::{self, Keep, Service};

/// Run the NAS agent: the mailbox loop and the local approval API.
#[derive(Debug, Args)]
#[command(after_help = "Two capabilities, each on its own socket:\n  \
        admin (--socket, 0600): everything — pairing phones, recovery codes, removing phones\n  \
        login (--login-socket): sign-in requests and the codes typed into them, nothing else\n\
        Give a login system (PAM, a sign-in page) the login socket only. Each socket also \
        checks the caller's uid (SO_PEERCRED): the agent's user, root, and for the login \
        socket the members of --login-group.\n\n\
        Example:\n  approvd agent --home approvd-nas\n  \
        curl --unix-socket approvd-nas/login.sock -X POST localhost/v1/requests -d '{\"user\":\"alice\"}'\n\n\
        The API is described at GET /openapi.json.")]
pub struct AgentArgs {
    /// The NAS home (`approvd nas init`).
    #[arg(long, default_value = "approvd-nas")]
    pub home: PathBuf,
    /// The admin socket (default: `<home>/agent.sock`), created 0600: every route.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The login socket (default: `<home>/login.sock`): sign-in requests and codes only.
    /// Created 0600, or 0660 with --login-group; put it in a directory the login system can
    /// reach (the home is private), e.g. /run/approvd/login.sock.
    #[arg(long)]
    pub login_socket: Option<PathBuf>,
    /// The group whose members may use the login socket (it is made 0660 and this group's);
    /// membership is read once, at start.
    #[arg(long, value_name = "GROUP")]
    pub login_group: Option<String>,
    /// Also serve the API on this loopback TCP address (e.g. 127.0.0.1:8787), for callers
    /// that cannot use a Unix socket; needs --token-file or --admin-token-file.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A file (0600) holding the bearer token of TCP login callers
    /// (`Authorization: Bearer …`), at least 16 characters.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A file (0600) holding the bearer token of TCP admin callers; without it, TCP gives
    /// login only.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
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
    #[error("--listen needs --token-file (login) or --admin-token-file (admin)")]
    NoToken,
    #[error("--login-group: {0}")]
    Group(String),
    #[error("{0}")]
    Serve(std::io::Error),
}

impl RunError {
    /// The exit status: 2 for options to fix, 3 for what went wrong while running.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Token { .. }
            | RunError::NotLoopback(_)
            | RunError::OpenSocketDir(_)
            | RunError::NoToken
            | RunError::Group(_) => 2,
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
    let login_token = args.token_file.as_deref().map(read_token).transpose()?;
    let admin_token = args
        .admin_token_file
        .as_deref()
        .map(read_token)
        .transpose()?;
    if args.listen.is_some() && login_token.is_none() && admin_token.is_none() {
        return Err(RunError::NoToken);
    }
    if let Some(address) = args.listen.filter(|address| !address.ip().is_loopback()) {
        return Err(RunError::NotLoopback(address));
    }
    let login_admits = args
        .login_group
        .as_deref()
        .map(crate::access::group_admits)
        .transpose()
        .map_err(RunError::Group)?;
    // The lock first: a second agent must not touch the requests file or the sockets.
    let _instance = hold_instance_lock(&args.home)?;
    let service = web::Data::from(Service::open(&args.home, Keep::OnDisk)?);
    let admin_socket = args.socket.unwrap_or_else(|| args.home.join("agent.sock"));
    let login_socket = args
        .login_socket
        .unwrap_or_else(|| args.home.join("login.sock"));
    for socket in [&admin_socket, &login_socket] {
        check_socket_dir(socket)?;
        let _ = std::fs::remove_file(socket);
    }
    let access = web::Data::new(Access {
        sockets: vec![
            Socket {
                path: admin_socket.clone(),
                capability: Capability::Admin,
                admits: Admits::default(),
            },
            Socket {
                path: login_socket.clone(),
                capability: Capability::Login,
                admits: login_admits.clone().unwrap_or_default(),
            },
        ],
        own_uid: nix::unistd::geteuid().as_raw(),
        login_token,
        admin_token,
    });
    let document = Arc::new(crate::http::served_document());
    let listen_error = |place: String| move |error| RunError::Listen { place, error };
    let server = {
        let (service, on_connect) = (service.clone(), access.clone());
        let access = access.clone();
        // The sockets are born 0600: no moment exists in which another user could connect.
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = HttpServer::new(move || {
            crate::http::app(service.clone(), access.clone(), document.clone())
        })
        .on_connect(move |connection, data| on_connect.on_connect(connection, data))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2);
        // `listen_uds`, not `bind_uds`: only it runs `on_connect` (the peer's uid).
        let listeners = std::os::unix::net::UnixListener::bind(&admin_socket)
            .map_err(listen_error(admin_socket.display().to_string()))
            .and_then(|admin| {
                std::os::unix::net::UnixListener::bind(&login_socket)
                    .map(|login| (admin, login))
                    .map_err(listen_error(login_socket.display().to_string()))
            });
        nix::sys::stat::umask(umask);
        let (admin, login) = listeners?;
        bound
            .listen_uds(admin)
            .and_then(|server| server.listen_uds(login))
            .map_err(listen_error(login_socket.display().to_string()))?
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
    restrict(&admin_socket, None).map_err(listen_error(admin_socket.display().to_string()))?;
    let login_gid = login_admits.and_then(|admits| admits.gid);
    restrict(&login_socket, login_gid).map_err(listen_error(login_socket.display().to_string()))?;
    let server = server.run();
    // Scripts and tests read these lines; a closed stdout must not stop the daemon.
    {
        let mut stdout = std::io::stdout();
        let _ = writeln!(
            stdout,
            "approvd agent listening on {} (admin: every route)",
            admin_socket.display()
        );
        let _ = writeln!(
            stdout,
            "approvd agent listening on {} (login: sign-in requests and codes)",
            login_socket.display()
        );
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
    let _ = std::fs::remove_file(&admin_socket);
    let _ = std::fs::remove_file(&login_socket);
    served.map_err(RunError::Serve)
}

/// Hold `<home>/agent.lock` for as long as the agent runs (closing it at exit releases it):
/// a second agent on the same home is refused, instead of taking the socket over and deleting
/// it when it stops.
pub fn hold_instance_lock(home: &std::path::Path) -> Result<std::fs::File, RunError> {
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

/// Only the NAS's own user may connect to a socket (it is born so; this keeps it so), and with
/// `group` that group's members too (0660).
fn restrict(socket: &std::path::Path, group: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = match group {
        Some(gid) => {
            std::os::unix::fs::chown(socket, None, Some(gid))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode))
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

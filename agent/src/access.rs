//! Who may call the local API, and what: the two capabilities (login: sign-in requests and
//! the codes typed into them; admin: everything, pairings and recovery codes included), which
//! a caller holds by the socket it connected to (checked against its `SO_PEERCRED` uid and
//! gid) or the bearer token it sent over TCP, the route each capability reaches, and the log
//! line of every admin change. `http` wraps every route in [`authorize`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::web;

use crate::http::ApiError;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// Create, read and cancel sign-in requests, and check a code inside one: what a login
    /// system (PAM, a sign-in page) needs, and nothing that adds a phone or a code.
    Login,
    /// Everything: pairings, recovery codes, device removal, and what login may do.
    Admin,
}

impl Capability {
    /// The capability a route needs: sign-in requests, reading an account's phones (a sign-in
    /// page names the phones it asked) and the document are login's; pairing, recovery codes
    /// and removing a phone are admin's (so is any path not listed, which answers 404 anyway).
    pub fn needed_for(method: &actix_web::http::Method, path: &str) -> Capability {
        let reads_devices = method == actix_web::http::Method::GET
            && path
                .strip_prefix("/v1/accounts/")
                .and_then(|rest| rest.strip_suffix("/devices"))
                .is_some_and(|user| !user.is_empty() && !user.contains('/'));
        let login = path == "/openapi.json"
            || path == "/v1/requests"
            || path.starts_with("/v1/requests/")
            || reads_devices;
        if login {
            Capability::Login
        } else {
            Capability::Admin
        }
    }

    fn name(self) -> &'static str {
        match self {
            Capability::Login => "login",
            Capability::Admin => "admin",
        }
    }
}

/// Which uids and gids a socket admits, besides the agent's own uid and root.
#[derive(Debug, Clone, Default)]
pub struct Admits {
    pub uids: HashSet<u32>,
    pub gid: Option<u32>,
}

/// One Unix socket of the API and the capability it gives.
#[derive(Debug, Clone)]
pub struct Socket {
    pub path: PathBuf,
    pub capability: Capability,
    pub admits: Admits,
}

/// Everything [`authorize`] needs: the sockets, the agent's own uid, and the TCP tokens.
#[derive(Debug, Default)]
pub struct Access {
    pub sockets: Vec<Socket>,
    pub own_uid: u32,
    /// `--token-file`: TCP callers presenting it hold login.
    pub login_token: Option<Arc<str>>,
    /// `--admin-token-file`: TCP callers presenting it hold admin.
    pub admin_token: Option<Arc<str>>,
}

/// Who is on a connection, found when it was accepted ([`Access::on_connect`]).
#[derive(Debug, Clone)]
pub enum Peer {
    /// A Unix-socket caller the socket admits.
    Unix { capability: Capability, uid: u32 },
    /// A Unix-socket caller whose uid this socket does not admit (its mode was loosened, or
    /// the peer's credentials could not be read): every call answers 403.
    Refused { uid: Option<u32>, socket: PathBuf },
}

impl Access {
    /// Note who connected, for [`authorize`]: a Unix socket's capability and the peer's
    /// `SO_PEERCRED` uid and gid. TCP connections get nothing here (their token decides).
    pub fn on_connect(
        &self,
        connection: &dyn std::any::Any,
        data: &mut actix_web::dev::Extensions,
    ) {
        let Some(stream) = connection.downcast_ref::<tokio::net::UnixStream>() else {
            return;
        };
        let local = stream
            .local_addr()
            .ok()
            .and_then(|address| address.as_pathname().map(PathBuf::from));
        let socket = local
            .as_ref()
            .and_then(|local| self.sockets.iter().find(|socket| &socket.path == local));
        let credentials = stream.peer_cred().ok();
        let peer = match (socket, credentials) {
            (Some(socket), Some(credentials))
                if self.admits(&socket.admits, credentials.uid(), credentials.gid()) =>
            {
                Peer::Unix {
                    capability: socket.capability,
                    uid: credentials.uid(),
                }
            }
            (socket, credentials) => {
                let peer = Peer::Refused {
                    uid: credentials.map(|credentials| credentials.uid()),
                    socket: socket
                        .map(|socket| socket.path.clone())
                        .or(local)
                        .unwrap_or_default(),
                };
                tracing::warn!("{peer:?}: connection refused by the socket's uid check");
                peer
            }
        };
        data.insert(peer);
    }

    fn admits(&self, admits: &Admits, uid: u32, gid: u32) -> bool {
        uid == self.own_uid || uid == 0 || admits.uids.contains(&uid) || admits.gid == Some(gid)
    }

    /// The capability a TCP caller's `Authorization: Bearer …` gives, compared in constant
    /// time with each token.
    fn by_token(&self, presented: Option<&str>) -> Option<Capability> {
        use subtle::ConstantTimeEq as _;
        let presented = presented?;
        let matches = |token: &Option<Arc<str>>| {
            token
                .as_deref()
                .is_some_and(|token| bool::from(token.as_bytes().ct_eq(presented.as_bytes())))
        };
        if matches(&self.admin_token) {
            Some(Capability::Admin)
        } else if matches(&self.login_token) {
            Some(Capability::Login)
        } else {
            None
        }
    }
}

/// The uids of a group's members (from the group database, read once at start) and its gid.
pub fn group_admits(name: &str) -> Result<Admits, String> {
    let group = nix::unistd::Group::from_name(name)
        .map_err(|error| format!("group `{name}`: {error}"))?
        .ok_or_else(|| format!("no group `{name}` on this system"))?;
    let mut uids = HashSet::new();
    for member in &group.mem {
        if let Ok(Some(user)) = nix::unistd::User::from_name(member) {
            uids.insert(user.uid.as_raw());
        }
    }
    Ok(Admits {
        uids,
        gid: Some(group.gid.as_raw()),
    })
}

/// The middleware: find the caller's capability (socket or token), refuse a route it does
/// not reach with `403 not-allowed` (a TCP caller without a token: `401`), and log every
/// admin change with who made it.
pub async fn authorize(
    request: ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let Some(access) = request.app_data::<web::Data<Access>>().cloned() else {
        let refusal = ApiError::NotAllowed("the agent has no access rules".to_owned());
        return Ok(request.error_response(refusal));
    };
    let needed = Capability::needed_for(request.method(), request.path());
    let peer = request.conn_data::<Peer>().cloned();
    let (held, who) = match peer {
        Some(Peer::Unix { capability, uid }) => (capability, format!("uid {uid}")),
        Some(Peer::Refused { uid, socket }) => {
            let uid = uid.map_or_else(|| "an unknown uid".to_owned(), |uid| format!("uid {uid}"));
            return Ok(request.error_response(ApiError::NotAllowed(format!(
                "{uid} may not use {}: only the agent's user, root and the socket's group may",
                socket.display()
            ))));
        }
        None => {
            let presented = request
                .headers()
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::trim);
            match access.by_token(presented) {
                Some(capability) => (capability, format!("a TCP {} token", capability.name())),
                None => return Ok(request.error_response(ApiError::Unauthenticated)),
            }
        }
    };
    if held < needed {
        tracing::warn!(
            "{who} ({} capability) refused {} {}",
            held.name(),
            request.method(),
            request.path()
        );
        let refusal = ApiError::NotAllowed(format!(
            "this socket or token gives the {} capability; {} {} needs {}",
            held.name(),
            request.method(),
            request.path(),
            needed.name()
        ));
        return Ok(request.error_response(refusal));
    }
    let change = needed == Capability::Admin && request.method() != actix_web::http::Method::GET;
    let line = change.then(|| format!("admin: {} {} by {who}", request.method(), request.path()));
    let response = next.call(request).await?.map_into_boxed_body();
    if let Some(line) = line {
        tracing::info!("{line}: {}", response.status().as_u16());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_login_and_everything_else_is_admin() {
        use actix_web::http::Method;
        for (method, path) in [
            (Method::POST, "/v1/requests"),
            (Method::GET, "/v1/requests/abc"),
            (Method::DELETE, "/v1/requests/abc"),
            (Method::POST, "/v1/requests/abc/code"),
            (Method::GET, "/v1/accounts/alice/devices"),
            (Method::GET, "/openapi.json"),
        ] {
            assert_eq!(
                Capability::needed_for(&method, path),
                Capability::Login,
                "{method} {path}"
            );
        }
        for (method, path) in [
            (Method::POST, "/v1/pairings"),
            (Method::GET, "/v1/pairings/x"),
            (Method::POST, "/v1/pairings/x/confirm"),
            (Method::DELETE, "/v1/accounts/alice/devices/x"),
            (Method::GET, "/v1/accounts/alice/devices/x"),
            (Method::POST, "/v1/accounts/alice/devices"),
            (Method::POST, "/v1/accounts/alice/recovery-codes"),
            (Method::POST, "/v1/accounts/alice/approvals"),
            (Method::GET, "/v1/accounts//devices"),
            (Method::POST, "/v1/requestsx"),
            (Method::GET, "/"),
        ] {
            assert_eq!(
                Capability::needed_for(&method, path),
                Capability::Admin,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn tokens_give_their_own_capability_only() {
        let access = Access {
            login_token: Some(Arc::from("login-token-0123456789")),
            admin_token: Some(Arc::from("admin-token-0123456789")),
            ..Access::default()
        };
        assert_eq!(
            access.by_token(Some("login-token-0123456789")),
            Some(Capability::Login)
        );
        assert_eq!(
            access.by_token(Some("admin-token-0123456789")),
            Some(Capability::Admin)
        );
        assert_eq!(access.by_token(Some("admin-token-012345678")), None);
        assert_eq!(access.by_token(None), None);
    }
}

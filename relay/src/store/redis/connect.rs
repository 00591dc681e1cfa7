//! How the Redis store connects: where (a standalone URL, Cluster seeds, or Sentinel nodes and a
//! master name — followed by `sentinel`), over what (TLS with a private CA, a client certificate, or the loudly logged
//! opt-out of verification), as whom (an ACL user and a password from a file or the
//! environment, never from the URL's log line or `Debug`), and what a refusal at startup means
//! in terms of the option to fix.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo as _, PushInfo, RedisError};
use tokio::sync::mpsc::UnboundedSender;

use super::{unavailable, Conn};
use crate::store::StoreError;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://host:port/` or `rediss://…` (RESP3 is requested automatically).
    Standalone(String),
    /// Seed nodes of a Redis Cluster, `host:port` (or full `redis[s]://` URLs).
    Cluster(Vec<String>),
    /// Sentinel nodes (`host:port`) and the name of the master they watch.
    Sentinel { nodes: Vec<String>, master: String },
}

/// TLS settings. A standalone server uses TLS when its URL is `rediss://`; Cluster nodes,
/// Sentinels and the master they name when `enabled`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// TLS to Cluster nodes, Sentinels and the master they name.
    pub enabled: bool,
    /// CA certificates (PEM) the servers' certificates must chain to; else the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for servers that require mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Do not verify servers' certificates (tests only).
    pub insecure: bool,
}

/// A password, given inline (environment) or as a file whose first line it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Inline(String),
    File(PathBuf),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Password(<redacted>)"),
            Self::File(path) => write!(f, "Password(file {})", path.display()),
        }
    }
}

/// Who the relay is to Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisAuth {
    /// ACL user; `None` is the `default` user.
    pub username: Option<String>,
    pub password: Option<Password>,
    /// Sentinel's own password, when its nodes require one.
    pub sentinel_password: Option<Password>,
}

/// Everything about a connection besides the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisOptions {
    pub tls: RedisTls,
    pub auth: RedisAuth,
}

/// Why the store could not be connected at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting is wrong: the message says which option to fix.
    #[error("--{option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The settings with their files read.
pub(super) struct Resolved {
    pub certificates: Option<redis::TlsCertificates>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sentinel_password: Option<String>,
    pub tls: RedisTls,
}

fn read(option: &'static str, path: &std::path::Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|error| ConnectError::Option {
        option,
        message: format!("{}: {error}", path.display()),
    })
}

fn password(
    option: &'static str,
    password: &Option<Password>,
) -> Result<Option<String>, ConnectError> {
    Ok(match password {
        None => None,
        Some(Password::Inline(text)) => Some(text.clone()),
        Some(Password::File(path)) => {
            let text =
                String::from_utf8(read(option, path)?).map_err(|_| ConnectError::Option {
                    option,
                    message: format!("{}: not UTF-8", path.display()),
                })?;
            let line = text.lines().next().unwrap_or_default().to_owned();
            if line.is_empty() {
                return Err(ConnectError::Option {
                    option,
                    message: format!("{}: the first line is empty", path.display()),
                });
            }
            Some(line)
        }
    })
}

/// Read the files the options name.
pub(super) fn resolve(options: &RedisOptions) -> Result<Resolved, ConnectError> {
    let tls = &options.tls;
    let root_cert = match &tls.ca_file {
        None => None,
        Some(path) => Some(read("redis-tls-ca-file", path)?),
    };
    let client_tls = match &tls.client_cert {
        None => None,
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read("redis-tls-cert-file", cert)?,
            client_key: read("redis-tls-key-file", key)?,
        }),
    };
    let any = root_cert.is_some() || client_tls.is_some();
    let certificates = any.then_some(redis::TlsCertificates {
        client_tls,
        root_cert,
    });
    if tls.insecure {
        tracing::warn!(
            "--redis-tls-insecure: Redis servers' certificates are NOT verified; anyone on the \
             network path can read and change the relay's state (use only in tests)"
        );
    }
    Ok(Resolved {
        certificates,
        username: options.auth.username.clone(),
        password: password("redis-password-file", &options.auth.password)?,
        sentinel_password: password(
            "redis-sentinel-password-file",
            &options.auth.sentinel_password,
        )?,
        tls: tls.clone(),
    })
}

/// A refusal at connect time, named by the option that fixes it when it is about TLS or
/// credentials.
pub(super) fn explain(error: &RedisError, resolved: &Resolved) -> ConnectError {
    let text = error.to_string();
    let lower = text.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        let message = if resolved.tls.ca_file.is_some() {
            format!("the Redis server's certificate does not chain to this CA ({text})")
        } else {
            format!(
                "the Redis server's certificate is not trusted by the system's roots ({text}); \
                 give the CA that signed it"
            )
        };
        return ConnectError::Option {
            option: "redis-tls-ca-file",
            message,
        };
    }
    if lower.contains("wrongpass") || lower.contains("noauth") || lower.contains("authentication") {
        return ConnectError::Option {
            option: "redis-password-file",
            message: format!(
                "Redis refused the credentials ({text}); check --redis-username and the password \
                 (--redis-password-file or APPROVD_REDIS_PASSWORD)"
            ),
        };
    }
    ConnectError::Store(unavailable(error.clone()))
}

/// `url` with RESP3 asked for (pub/sub pushes arrive on the command connection).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}protocol=resp3")
    }
}

/// Which credentials a connection presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// A data node (standalone, a master): the ACL user and password.
    Data,
    /// A Sentinel: its own password.
    Sentinel,
}

/// A client for one server at `info`, with `role`'s credentials and the TLS settings applied
/// (TLS when `info` is a `TcpTls` address).
pub(super) fn client(
    info: redis::ConnectionInfo,
    resolved: &Resolved,
    role: Role,
) -> Result<redis::Client, RedisError> {
    let mut settings = info.redis_settings().clone();
    let (username, password) = match role {
        Role::Data => (&resolved.username, &resolved.password),
        Role::Sentinel => (&None, &resolved.sentinel_password),
    };
    if let Some(username) = username {
        settings = settings.set_username(username);
    }
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let mut info = info.set_redis_settings(settings);
    if let ConnectionAddr::TcpTls { host, port, .. } = info.addr().clone() {
        if resolved.tls.insecure {
            info = info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params: None,
            });
        }
        if let Some(certificates) = &resolved.certificates {
            return redis::Client::build_with_tls(info, certificates.clone());
        }
    }
    redis::Client::open(info)
}

/// The address of `host:port`, over TLS when `tls`.
pub(super) fn address(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// A connection manager for `client` that sends pushes (pub/sub messages) to `pushes`.
pub(super) async fn manager(
    client: redis::Client,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_push_sender(pushes);
    ConnectionManager::new_with_config(client, config).await
}

/// Connect to a standalone server.
pub(super) async fn standalone(
    url: &str,
    resolved: &Resolved,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) -> Result<Conn, ConnectError> {
    let info = with_resp3(url)
        .as_str()
        .into_connection_info()
        .map_err(|error| ConnectError::Option {
            option: "redis-url",
            message: error.to_string(),
        })?;
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. })
        && (resolved.tls.ca_file.is_some() || resolved.tls.client_cert.is_some())
    {
        return Err(ConnectError::Option {
            option: "redis-url",
            message: "TLS settings are given but the URL is not rediss://".to_owned(),
        });
    }
    let client = client(info, resolved, Role::Data).map_err(|error| explain(&error, resolved))?;
    let manager = manager(client, timeout, pushes)
        .await
        .map_err(|error| explain(&error, resolved))?;
    Ok(Conn::Standalone(manager))
}

/// Connect to a Redis Cluster through its seed nodes.
pub(super) async fn cluster(
    nodes: &[String],
    resolved: &Resolved,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) -> Result<Conn, ConnectError> {
    let scheme = if resolved.tls.enabled {
        "rediss"
    } else {
        "redis"
    };
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| {
            if node.contains("://") {
                node.clone()
            } else {
                format!("{scheme}://{node}/")
            }
        })
        .collect();
    let mut builder = redis::cluster::ClusterClientBuilder::new(urls)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .push_sender(pushes);
    if let Some(username) = &resolved.username {
        builder = builder.username(username);
    }
    if let Some(password) = &resolved.password {
        builder = builder.password(password);
    }
    if resolved.tls.enabled {
        builder = builder.tls(if resolved.tls.insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        });
    }
    if let Some(certificates) = &resolved.certificates {
        builder = builder.certs(certificates.clone());
    }
    let client = builder.build().map_err(|error| explain(&error, resolved))?;
    let connection = client
        .get_async_connection()
        .await
        .map_err(|error| explain(&error, resolved))?;
    Ok(Conn::Cluster(connection))
}

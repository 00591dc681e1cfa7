//! Redis Sentinel: the master is whichever server the Sentinels name right now. Owns the shared
//! handle to the current master's connection, and the watcher that asks the Sentinels every
//! half second (at once after a command failed) and, when they name another server, connects
//! there, swaps the handle and announces a disconnection so waiters resubscribe on the new
//! master. Between the old master's death and the promotion, commands fail as
//! `StoreError::Unavailable` (503 + Retry-After) — nothing is written to a demoted server.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, PushInfo, PushKind, RedisError};
use tokio::sync::mpsc::UnboundedSender;

use super::connect::{self, ConnectError, Resolved};

/// How often the Sentinels are asked who the master is.
const POLL: Duration = Duration::from_millis(500);

/// The current master's connection, kept current by the watcher.
pub(super) struct Failover {
    /// The connection to the server the Sentinels named last, and its address.
    current: Mutex<(ConnectionManager, String)>,
    /// Wakes the watcher early (a command failed).
    check: tokio::sync::Notify,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sentinel(master at {})", self.address())
    }
}

impl Failover {
    /// The current master's connection (cheap clone).
    pub(super) fn connection(&self) -> ConnectionManager {
        self.current.lock().expect("sentinel lock").0.clone()
    }

    fn address(&self) -> String {
        self.current.lock().expect("sentinel lock").1.clone()
    }

    /// A command failed: ask the Sentinels now rather than at the next tick.
    pub(super) fn command_failed(&self) {
        self.check.notify_one();
    }
}

fn sentinel_addresses(nodes: &[String]) -> Result<Vec<ConnectionAddr>, ConnectError> {
    nodes
        .iter()
        .map(|node| {
            let (host, port) = node
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                .ok_or_else(|| ConnectError::Option {
                    option: "redis-sentinel",
                    message: format!("`{node}` is not host:port"),
                })?;
            Ok(ConnectionAddr::Tcp(host, port))
        })
        .collect()
}

/// Ask the Sentinels for the master: a client for it and its address.
async fn master(sentinel: &mut SentinelClient) -> Result<(redis::Client, String), RedisError> {
    let client = sentinel.async_get_client().await?;
    let address = client.get_connection_info().addr().to_string();
    Ok((client, address))
}

/// Connect to the master the Sentinels at `nodes` name for `name`, and keep following it.
pub(super) async fn connect(
    nodes: &[String],
    name: &str,
    resolved: &Resolved,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) -> Result<Arc<Failover>, ConnectError> {
    let mut builder =
        SentinelClientBuilder::new(sentinel_addresses(nodes)?, name, SentinelServerType::Master)
            .map_err(|error| connect::explain(&error, resolved))?
            // Pub/sub pushes arrive on the command connection (RESP3).
            .set_client_to_redis_protocol(redis::ProtocolVersion::RESP3);
    if let Some(username) = &resolved.username {
        builder = builder.set_client_to_redis_username(username);
    }
    if let Some(password) = &resolved.password {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(password) = &resolved.sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    let mut sentinel = builder
        .build()
        .map_err(|error| connect::explain(&error, resolved))?;
    let (client, address) = master(&mut sentinel)
        .await
        .map_err(|error| ConnectError::Option {
            option: "redis-sentinel",
            message: format!("no Sentinel named a master for `{name}`: {error}"),
        })?;
    let manager = connect::manager(client, timeout, pushes.clone())
        .await
        .map_err(|error| connect::explain(&error, resolved))?;
    tracing::info!(master = %address, "redis: connected to the master the Sentinels name");
    let failover = Arc::new(Failover {
        current: Mutex::new((manager, address)),
        check: tokio::sync::Notify::new(),
    });
    tokio::spawn(watch(Arc::downgrade(&failover), sentinel, timeout, pushes));
    Ok(failover)
}

/// Follow the master until the store is dropped.
async fn watch(
    failover: Weak<Failover>,
    mut sentinel: SentinelClient,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) {
    loop {
        let Some(current) = failover.upgrade() else {
            return;
        };
        // Held for at most one tick: the store's end is noticed at the next.
        let _ = tokio::time::timeout(POLL, current.check.notified()).await;
        let (client, address) = match master(&mut sentinel).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%error, "no Sentinel answered; asking again");
                continue;
            }
        };
        if address == current.address() {
            continue;
        }
        match connect::manager(client, timeout, pushes.clone()).await {
            Ok(manager) => {
                let old = current.address();
                *current.current.lock().expect("sentinel lock") = (manager, address.clone());
                tracing::warn!(from = %old, to = %address, "redis: the Sentinels named a new master; switched");
                // Subscriptions lived on the old connection: waiters re-read and resubscribe.
                let _ = pushes.send(PushInfo {
                    kind: PushKind::Disconnection,
                    data: Vec::new(),
                });
            }
            Err(error) => {
                tracing::warn!(%error, master = %address, "redis: cannot reach the new master yet");
            }
        }
    }
}

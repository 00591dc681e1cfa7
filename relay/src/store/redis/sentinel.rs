//! Redis Sentinel: the master is whichever server the Sentinels name right now. Owns the shared
//! handle to the current master's connection, and the watcher that asks the Sentinels every
//! half second (at once after a command failed) and, when they name another server, connects
//! there, swaps the handle and announces a disconnection so waiters resubscribe on the new
//! master. Between the old master's death and the promotion, commands fail as
//! `StoreError::Unavailable` (503 + Retry-After) — nothing is written to a demoted server.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{IntoConnectionInfo as _, PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::connect::{self, ConnectError, Resolved, Role};

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

/// Where the Sentinels listen, and how the relay finds the master through them.
struct Sentinels {
    nodes: Vec<(String, u16)>,
    name: String,
    timeout: Duration,
}

impl Sentinels {
    fn parse(nodes: &[String], name: &str, timeout: Duration) -> Result<Self, ConnectError> {
        let nodes = nodes
            .iter()
            .map(|node| {
                node.rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                    .ok_or_else(|| ConnectError::Option {
                        option: "redis-sentinel",
                        message: format!("`{node}` is not host:port"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            nodes,
            name: name.to_owned(),
            timeout,
        })
    }

    /// Ask each Sentinel in turn for the master, and check that the server it names says it
    /// is one (a Sentinel can lag behind a failover). A client for it and its `host:port`.
    async fn master(&self, resolved: &Resolved) -> Result<(redis::Client, String), String> {
        let mut last = "no Sentinel answered".to_owned();
        for (host, port) in &self.nodes {
            match self.ask(host, *port, resolved).await {
                Ok(found) => return Ok(found),
                Err(error) => last = format!("{host}:{port}: {error}"),
            }
        }
        Err(last)
    }

    async fn ask(
        &self,
        host: &str,
        port: u16,
        resolved: &Resolved,
    ) -> Result<(redis::Client, String), String> {
        let tls = resolved.tls.enabled;
        let text = |error: redis::RedisError| error.to_string();
        let info = connect::address(host.to_owned(), port, tls)
            .into_connection_info()
            .map_err(text)?;
        let sentinel = connect::client(info, resolved, Role::Sentinel).map_err(text)?;
        let named: Option<(String, u16)> = self
            .query(
                &sentinel,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.name),
            )
            .await?;
        let (master_host, master_port) =
            named.ok_or_else(|| format!("knows no master named `{}`", self.name))?;
        let info = connect::address(master_host.clone(), master_port, tls)
            .into_connection_info()
            .map_err(text)?
            .set_redis_settings(
                // Pub/sub pushes arrive on the command connection.
                redis::RedisConnectionInfo::default().set_protocol(redis::ProtocolVersion::RESP3),
            );
        let master = connect::client(info, resolved, Role::Data).map_err(text)?;
        let role: Vec<Value> = self.query(&master, &redis::cmd("ROLE")).await?;
        match role.first() {
            Some(Value::BulkString(role)) if role == b"master" => {
                Ok((master, format!("{master_host}:{master_port}")))
            }
            _ => Err(format!("{master_host}:{master_port} is not (yet) a master")),
        }
    }

    /// One command on a short-lived connection, within the timeout.
    async fn query<T: redis::FromRedisValue>(
        &self,
        client: &redis::Client,
        command: &redis::Cmd,
    ) -> Result<T, String> {
        let work = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            command.query_async::<T>(&mut connection).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

/// Connect to the master the Sentinels at `nodes` name for `name`, and keep following it.
pub(super) async fn connect(
    nodes: &[String],
    name: &str,
    resolved: Resolved,
    timeout: Duration,
    pushes: UnboundedSender<PushInfo>,
) -> Result<Arc<Failover>, ConnectError> {
    let sentinels = Sentinels::parse(nodes, name, timeout)?;
    let (client, address) =
        sentinels
            .master(&resolved)
            .await
            .map_err(|error| ConnectError::Option {
                option: "redis-sentinel",
                message: format!("no Sentinel named a reachable master `{name}`: {error}"),
            })?;
    let manager = connect::manager(client, timeout, pushes.clone())
        .await
        .map_err(|error| connect::explain(&error, &resolved))?;
    tracing::info!(master = %address, "redis: connected to the master the Sentinels name");
    let failover = Arc::new(Failover {
        current: Mutex::new((manager, address)),
        check: tokio::sync::Notify::new(),
    });
    tokio::spawn(watch(
        Arc::downgrade(&failover),
        sentinels,
        resolved,
        pushes,
    ));
    Ok(failover)
}

/// Follow the master until the store is dropped.
async fn watch(
    failover: Weak<Failover>,
    sentinels: Sentinels,
    resolved: Resolved,
    pushes: UnboundedSender<PushInfo>,
) {
    loop {
        let Some(current) = failover.upgrade() else {
            return;
        };
        // Held for at most one tick: the store's end is noticed at the next.
        let _ = tokio::time::timeout(POLL, current.check.notified()).await;
        let (client, address) = match sentinels.master(&resolved).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(%error, "no master found through the Sentinels; asking again");
                continue;
            }
        };
        if address == current.address() {
            continue;
        }
        match connect::manager(client, sentinels.timeout, pushes.clone()).await {
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

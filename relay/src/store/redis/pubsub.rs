//! Cross-replica wakeups for [`RedisStore`](super::RedisStore): one subscription per replica,
//! multiplexed onto the local [`Notifier`]. Owns the set of subscribed channels, the task that
//! routes published hints to local waiters (and wakes everyone after a disconnect), and the
//! janitor that unsubscribes channels nobody waits for. Messages are hints; the keys are the truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{keys, unavailable, Conn};
use crate::store::notify::{unix_now_us, WakeSource};
use crate::store::{Notifier, StoreError, Topic, Watch};

/// Channels this replica is subscribed to, and the topic each announces.
type Subscriptions = Arc<Mutex<HashMap<String, Topic>>>;

/// The wakeup side of the Redis store.
#[derive(Debug)]
pub(super) struct PubSub {
    /// Local waiters; woken by hints from Redis.
    notifier: Arc<Notifier>,
    /// Channels subscribed on the connection; emptied when it drops so waiters resubscribe.
    subscriptions: Subscriptions,
}

impl PubSub {
    /// Start routing the connection's pushes (`pushed`) to local waiters, and the janitor.
    pub(super) fn start(conn: &Conn, pushed: UnboundedReceiver<PushInfo>) -> Self {
        let pubsub = Self {
            notifier: Notifier::new(),
            subscriptions: Arc::default(),
        };
        tokio::spawn(route(
            pushed,
            Arc::clone(&pubsub.notifier),
            Arc::clone(&pubsub.subscriptions),
        ));
        tokio::spawn(janitor(
            conn.clone(),
            Arc::downgrade(&pubsub.notifier),
            Arc::clone(&pubsub.subscriptions),
        ));
        pubsub
    }

    pub(super) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Register a local waiter and make sure this replica is subscribed to its channel.
    pub(super) async fn watch(&self, conn: &Conn, topic: Topic) -> Result<Watch, StoreError> {
        let watch = self.notifier.watch(topic.clone());
        let name = keys::channel(&topic);
        let is_new = self
            .subscriptions
            .lock()
            .expect("subscriptions")
            .insert(name.clone(), topic)
            .is_none();
        if is_new {
            let result = match &mut conn.clone() {
                Conn::Standalone(conn) => conn.subscribe(&name).await,
                Conn::Cluster(conn) => conn.ssubscribe(&name).await,
                Conn::Sentinel(failover) => failover.connection().subscribe(&name).await,
            };
            if let Err(error) = result {
                self.subscriptions
                    .lock()
                    .expect("subscriptions")
                    .remove(&name);
                return Err(unavailable(error));
            }
        }
        Ok(watch)
    }
}

/// Announce a write (a hint; failure only delays waiters until their deadline re-read). The
/// message is the write's time in unix µs, so receivers can measure the wakeup's latency.
pub(super) async fn publish(conn: &Conn, topic: &Topic) {
    let name = keys::channel(topic);
    let command = match conn {
        Conn::Standalone(_) | Conn::Sentinel(_) => "PUBLISH",
        Conn::Cluster(_) => "SPUBLISH",
    };
    let result: Result<i64, _> = redis::cmd(command)
        .arg(&name)
        .arg(unix_now_us())
        .query_async(&mut conn.clone())
        .await;
    if let Err(error) = result {
        tracing::debug!(%error, channel = %name, "publish failed");
    }
}

/// Route published hints to local waiters; after a disconnect, forget the subscriptions
/// (waiters resubscribe when they re-register) and wake everyone to re-read.
async fn route(
    mut pushed: UnboundedReceiver<PushInfo>,
    notifier: Arc<Notifier>,
    subscriptions: Subscriptions,
) {
    while let Some(push) = pushed.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let text = |value: Option<&Value>| match value {
                    Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
                    _ => None,
                };
                let name = text(push.data.first());
                // A foreign or older publisher's message has no time: count it as instant.
                let written_us = text(push.data.get(1))
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or_else(unix_now_us);
                let topic = name.and_then(|name| {
                    subscriptions
                        .lock()
                        .expect("subscriptions")
                        .get(&name)
                        .cloned()
                });
                if let Some(topic) = topic {
                    notifier.notify_from(&topic, WakeSource::Redis, written_us);
                }
            }
            PushKind::Disconnection => {
                subscriptions.lock().expect("subscriptions").clear();
                notifier.notify_all();
            }
            _ => {}
        }
    }
}

/// Every few seconds, drop subscriptions nobody on this replica waits for; ends with the store.
async fn janitor(
    mut conn: Conn,
    notifier: std::sync::Weak<Notifier>,
    subscriptions: Subscriptions,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Some(notifier) = notifier.upgrade() else {
            return;
        };
        let watched: Vec<String> = notifier.topics().iter().map(keys::channel).collect();
        drop(notifier);
        let idle: Vec<String> = {
            let mut subscribed = subscriptions.lock().expect("subscriptions");
            let idle: Vec<String> = subscribed
                .keys()
                .filter(|name| !watched.contains(name))
                .cloned()
                .collect();
            for name in &idle {
                subscribed.remove(name);
            }
            idle
        };
        for name in idle {
            let _ = match &mut conn {
                Conn::Standalone(conn) => conn.unsubscribe(&name).await,
                Conn::Cluster(conn) => conn.sunsubscribe(&name).await,
                Conn::Sentinel(failover) => failover.connection().unsubscribe(&name).await,
            };
        }
    }
}

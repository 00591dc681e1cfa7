//! Cross-replica wakeups for [`RedisStore`](super::RedisStore): one subscription per replica,
//! multiplexed onto the local [`Notifier`]. Owns the set of subscribed channels, the task that
//! routes published hints to local waiters (and wakes everyone after a disconnect), and the
//! janitor that unsubscribes channels nobody waits for. Messages are hints; the keys are the truth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{keys, unavailable, Conn};
use crate::store::notify::{unix_now_us, WakeSource};
use crate::store::{Notifier, StoreError, Topic, Watch};

/// Channels this replica is subscribed to, and the topic each announces. An async lock held
/// across each SUBSCRIBE and UNSUBSCRIBE round trip: so a channel is in the map only once its
/// subscription is confirmed (a second waiter of the same topic cannot return, re-read and miss
/// a write before the first waiter's SUBSCRIBE took effect), and the janitor's decision that a
/// channel is idle and its UNSUBSCRIBE cannot interleave with a new waiter's registration.
type Subscriptions = Arc<tokio::sync::Mutex<HashMap<String, Topic>>>;

/// Which topic each subscribed channel announces, for routing messages without waiting for
/// the lock above (entries may outlive their subscription briefly: messages are hints).
type Routes = Arc<Mutex<HashMap<String, Topic>>>;

/// The wakeup side of the Redis store.
#[derive(Debug)]
pub(super) struct PubSub {
    /// Local waiters; woken by hints from Redis.
    notifier: Arc<Notifier>,
    /// Channels subscribed on the connection; emptied when it drops so waiters resubscribe.
    subscriptions: Subscriptions,
    routes: Routes,
    /// The store's count of requests sent to Redis.
    round_trips: Arc<AtomicU64>,
}

impl PubSub {
    /// Start routing the connection's pushes (`pushed`) to local waiters, and the janitor.
    pub(super) fn start(
        conn: &Conn,
        pushed: UnboundedReceiver<PushInfo>,
        round_trips: Arc<AtomicU64>,
    ) -> Self {
        let pubsub = Self {
            notifier: Notifier::new(),
            subscriptions: Arc::default(),
            routes: Arc::default(),
            round_trips: Arc::clone(&round_trips),
        };
        tokio::spawn(route(
            pushed,
            Arc::clone(&pubsub.notifier),
            Arc::clone(&pubsub.subscriptions),
            Arc::clone(&pubsub.routes),
        ));
        tokio::spawn(janitor(
            conn.clone(),
            Arc::downgrade(&pubsub.notifier),
            Arc::clone(&pubsub.subscriptions),
            Arc::clone(&pubsub.routes),
            round_trips,
        ));
        pubsub
    }

    pub(super) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Register a local waiter and make sure this replica is subscribed to its channel before
    /// returning (the caller re-reads the state next).
    pub(super) async fn watch(&self, conn: &Conn, topic: Topic) -> Result<Watch, StoreError> {
        let watch = self.notifier.watch(topic.clone());
        let name = keys::channel(&topic);
        let mut subscribed = self.subscriptions.lock().await;
        if subscribed.contains_key(&name) {
            return Ok(watch);
        }
        lock(&self.routes).insert(name.clone(), topic.clone());
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let result = match &mut conn.clone() {
            Conn::Standalone(conn) => conn.subscribe(&name).await,
            Conn::Cluster(conn) => conn.ssubscribe(&name).await,
            Conn::Sentinel(failover) => failover.connection().subscribe(&name).await,
        };
        match result {
            Ok(()) => {
                subscribed.insert(name, topic);
                Ok(watch)
            }
            Err(error) => {
                lock(&self.routes).remove(&name);
                Err(unavailable(error))
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The command that announces a write: `PUBLISH`, or `SPUBLISH` on a cluster (sharded pub/sub
/// keeps each message on the shard of the keys it announces). The message is the write's time
/// in unix µs, so receivers can measure the wakeup's latency.
pub(super) fn publish_command(conn: &Conn) -> &'static str {
    match conn {
        Conn::Standalone(_) | Conn::Sentinel(_) => "PUBLISH",
        Conn::Cluster(_) => "SPUBLISH",
    }
}

/// Route published hints to local waiters; after a disconnect, forget the subscriptions
/// (waiters resubscribe when they re-register) and wake everyone to re-read.
async fn route(
    mut pushed: UnboundedReceiver<PushInfo>,
    notifier: Arc<Notifier>,
    subscriptions: Subscriptions,
    routes: Routes,
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
                let topic = name.and_then(|name| lock(&routes).get(&name).cloned());
                if let Some(topic) = topic {
                    notifier.notify_from(&topic, WakeSource::Redis, written_us);
                }
            }
            PushKind::Disconnection => {
                subscriptions.lock().await.clear();
                lock(&routes).clear();
                notifier.notify_all();
            }
            _ => {}
        }
    }
}

/// Every few seconds, drop subscriptions nobody on this replica waits for; ends with the store.
/// Holds the subscription lock from reading who waits until the UNSUBSCRIBEs are answered.
async fn janitor(
    mut conn: Conn,
    notifier: std::sync::Weak<Notifier>,
    subscriptions: Subscriptions,
    routes: Routes,
    round_trips: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let mut subscribed = subscriptions.lock().await;
        let Some(notifier) = notifier.upgrade() else {
            return;
        };
        let watched: std::collections::HashSet<String> =
            notifier.topics().iter().map(keys::channel).collect();
        drop(notifier);
        let idle: Vec<String> = subscribed
            .keys()
            .filter(|name| !watched.contains(*name))
            .cloned()
            .collect();
        if idle.is_empty() {
            continue;
        }
        // One command for all of them on a single server; per channel on a cluster, where each
        // shard channel lives on its own node.
        let requests = match conn {
            Conn::Cluster(_) => idle.len() as u64,
            _ => 1,
        };
        round_trips.fetch_add(requests, Ordering::Relaxed);
        let result = match &mut conn {
            Conn::Standalone(conn) => conn.unsubscribe(&idle).await,
            Conn::Sentinel(failover) => failover.connection().unsubscribe(&idle).await,
            Conn::Cluster(conn) => {
                let mut result = Ok(());
                for name in &idle {
                    result = result.and(conn.sunsubscribe(name).await);
                }
                result
            }
        };
        if result.is_ok() {
            let mut routes = lock(&routes);
            for name in &idle {
                subscribed.remove(name);
                routes.remove(name);
            }
        }
        // On failure they stay subscribed as far as we know; the next round tries again.
    }
}

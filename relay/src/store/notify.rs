//! In-process wakeups for long-polls: a waiter registers interest in a [`Topic`] *before* it
//! re-reads the store, and every store write that could satisfy it calls [`Notifier::notify`]
//! after the write. That order makes a lost wakeup impossible. Owns the waiter registry; a
//! waiter that is dropped (client gone, request cancelled) unregisters itself at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use approvd_proto::{Cid, DeviceId, NasId, PairingId};
use tokio::sync::watch;

/// Something a long-poll can wait for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A pairing slot was claimed or confirmed.
    Pairing(PairingId),
    /// A challenge was decided or cancelled.
    Challenge(Cid),
    /// A device's inbox got an entry.
    Inbox(DeviceId),
    /// A NAS's mailbox got an entry.
    Mailbox(NasId),
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Pairing(id) => write!(f, "pairing:{id}"),
            Topic::Challenge(cid) => write!(f, "challenge:{cid}"),
            Topic::Inbox(device) => write!(f, "inbox:{device}"),
            Topic::Mailbox(nas) => write!(f, "mailbox:{nas}"),
        }
    }
}

/// Where a wakeup came from (the `source` label of the wakeup metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WakeSource {
    /// A write in this process.
    #[default]
    Local,
    /// A write on another replica, announced through Redis pub/sub.
    Redis,
    /// The pub/sub connection dropped and came back: every waiter re-reads.
    Reconnect,
}

impl WakeSource {
    pub fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Redis => "redis",
            Self::Reconnect => "reconnect",
        }
    }
}

/// The latest wakeup of a topic: what a woken waiter learns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wake {
    version: u64,
    /// When the write happened, unix µs (for redis: as the writing replica stamped it).
    pub written_us: u64,
    pub source: WakeSource,
}

/// Now, in unix µs.
pub fn unix_now_us() -> u64 {
    crate::clock::system_now_us()
}

/// The registry of waiters, shared by a store and all its [`Watch`]es.
#[derive(Debug, Default)]
pub struct Notifier {
    /// The latest wakeup per watched topic; removed when its last waiter goes.
    /// A std mutex: held only for map operations, never across an await.
    topics: Mutex<HashMap<Topic, watch::Sender<Wake>>>,
}

impl Notifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Register a waiter for `topic`. Call this before re-reading the state it waits for.
    pub fn watch(self: &Arc<Self>, topic: Topic) -> Watch {
        let mut topics = self.topics.lock().expect("notifier lock");
        let sender = topics
            .entry(topic.clone())
            .or_insert_with(|| watch::channel(Wake::default()).0);
        Watch {
            receiver: sender.subscribe(),
            topic,
            notifier: Arc::clone(self),
        }
    }

    /// Wake every waiter of `topic` (after the write in this process that concerns them).
    pub fn notify(&self, topic: &Topic) {
        self.notify_from(topic, WakeSource::Local, unix_now_us());
    }

    /// Wake every waiter of `topic` for a write made at `written_us` (unix µs) seen via `source`.
    pub fn notify_from(&self, topic: &Topic, source: WakeSource, written_us: u64) {
        let topics = self.topics.lock().expect("notifier lock");
        if let Some(sender) = topics.get(topic) {
            sender.send_modify(|wake| wake.bump(source, written_us));
        }
    }

    /// Wake every waiter of every topic (used when a store reconnects and may have missed
    /// messages: waiters re-read, which is always safe).
    pub fn notify_all(&self) {
        let now = unix_now_us();
        let topics = self.topics.lock().expect("notifier lock");
        for sender in topics.values() {
            sender.send_modify(|wake| wake.bump(WakeSource::Reconnect, now));
        }
    }

    /// Number of registered waiters (a gauge for operators and for tests).
    pub fn waiters(&self) -> usize {
        let topics = self.topics.lock().expect("notifier lock");
        topics.values().map(watch::Sender::receiver_count).sum()
    }

    /// Topics with at least one waiter.
    pub fn topics(&self) -> Vec<Topic> {
        let topics = self.topics.lock().expect("notifier lock");
        topics.keys().cloned().collect()
    }
}

impl Wake {
    fn bump(&mut self, source: WakeSource, written_us: u64) {
        *self = Self {
            version: self.version.wrapping_add(1),
            written_us,
            source,
        };
    }
}

/// One registered waiter. Dropping it unregisters it.
#[derive(Debug)]
pub struct Watch {
    receiver: watch::Receiver<Wake>,
    topic: Topic,
    notifier: Arc<Notifier>,
}

impl Watch {
    /// Resolves when the topic was notified after this watch was registered (or after the last
    /// `changed` returned), with that wakeup.
    pub async fn changed(&mut self) -> Wake {
        // The sender lives in the registry as long as this receiver exists, so this only
        // errors if the registry were dropped; treat that as a wakeup (the caller re-reads).
        let _ = self.receiver.changed().await;
        *self.receiver.borrow_and_update()
    }

    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut topics = self.notifier.topics.lock().expect("notifier lock");
        // Our own receiver is still alive here, so "1" means we are the last waiter.
        if topics
            .get(&self.topic)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            topics.remove(&self.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notify_after_watch_wakes_and_drop_unregisters() {
        let notifier = Notifier::new();
        let topic = Topic::Challenge(approvd_proto::Cid([1; 16]));
        let mut watch = notifier.watch(topic.clone());
        assert_eq!(notifier.waiters(), 1);
        notifier.notify(&topic);
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("woken");
        drop(watch);
        assert_eq!(notifier.waiters(), 0);
        assert!(notifier.topics().is_empty());
    }

    #[tokio::test]
    async fn a_notify_before_watch_does_not_wake_but_one_between_watch_and_wait_does() {
        let notifier = Notifier::new();
        let topic = Topic::Inbox(approvd_proto::vectors::Keys::fixed().device_id());
        notifier.notify(&topic);
        let mut watch = notifier.watch(topic.clone());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), watch.changed())
                .await
                .is_err()
        );
        // Notified after registering but before awaiting: not lost.
        notifier.notify(&topic);
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("woken");
    }
}

//! [`RedisStore`]: the production store — standalone Redis or Redis Cluster, shared by every
//! relay replica. Owns every Redis key, the Lua scripts that make decisions atomic, and the
//! cross-replica wakeups (one pub/sub subscription per replica, multiplexed onto the local
//! [`Notifier`]). No blocking commands; explicit connect and response timeouts; reconnects by
//! itself (a Redis outage turns into `StoreError::Unavailable`, i.e. 503 + Retry-After).
//!
//! Keys (`{…}` is the Redis Cluster hash tag; every key has a TTL):
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `approvd:nonce:<key>` | string | signature expiry + skew | a seen request nonce (`SET NX`) |
//! | `approvd:rate:<bucket>` | string | until the bucket is full again | GCRA theoretical arrival time, ms |
//! | `approvd:pairing:{<id>}` | string | slot lifetime + 60 s | slot JSON |
//! | `approvd:pairing:{<id>}:claim` | string | same as slot | first claim JSON (`SET NX`) |
//! | `approvd:pairing:{<id>}:confirm` | string | same as slot | confirmation JSON (`SET NX`) |
//! | `approvd:ch:{<cid>}` | string | expiry + grace | challenge JSON (targets, body hash) |
//! | `approvd:ch:{<cid>}:state` | string | same | `pending`, `cancelled` or `d<verdict JSON>` |
//! | `approvd:ch:{<cid>}:deliveries` | string | same | delivery report JSON |
//! | `approvd:inbox:{<device_id>}` | hash | longest entry | cid → `{deadline_ms, entry}` |
//! | `approvd:mute:{<nas_id>}:<device_id>` | string | until the mute ends | mute end, unix s |
//! | `approvd:mbox:{<nas_id>}` | stream | newest entry | notices; old ones trimmed by `MINID` |
//!
//! Wakeup channels are `approvd:ev:<topic>:{<id>}` (same slot as the keys they announce):
//! `PUBLISH` on a standalone server, `SPUBLISH`/`SSUBSCRIBE` on a cluster. A waiter subscribes
//! before it re-reads; writers write, then publish. Messages are hints — the keys are the truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use approvd_proto::wire::{
    InboxEntry, MailboxEntry, Notice, PairingClaimed, PairingConfirmation, SignedVerdict,
    TargetDelivery,
};
use approvd_proto::{Cid, DeviceId, NasId, PairingId};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushKind, RedisError, RedisFuture, Script, Value};

use super::{
    CancelOutcome, ChallengeState, ClaimOutcome, ConfirmOutcome, CreateOutcome, DecideOutcome,
    Notifier, PairingSlot, PairingState, Rate, RateDecision, Store, StoreError, StoredChallenge,
    Topic, Watch,
};

/// Where to connect.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// `redis://host:port/` (RESP3 is requested automatically).
    Standalone(String),
    /// Seed nodes of a Redis Cluster, `host:port`.
    Cluster(Vec<String>),
}

/// One multiplexed connection, either kind.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The Lua scripts (each touches keys of one hash tag only).
struct Scripts {
    rate: Script,
    claim: Script,
    confirm: Script,
    create: Script,
    decide: Script,
    cancel: Script,
    inbox_add: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS[1] bucket; ARGV interval_ms, burst_ms, now_ms, consume → {allowed, retry_after_ms}
            rate: Script::new(
                r"local now = tonumber(ARGV[3])
                  local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[3])
                  if tat < now then tat = now end
                  local new_tat = tat + tonumber(ARGV[1])
                  local ahead = new_tat - now
                  if ahead > tonumber(ARGV[2]) then return {0, ahead - tonumber(ARGV[2])} end
                  if ARGV[4] == '1' then
                    redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', math.max(ahead, 1)))
                  end
                  return {1, 0}",
            ),
            // KEYS slot, claim; ARGV claim JSON
            claim: Script::new(
                r"local ttl = redis.call('PTTL', KEYS[1])
                  if ttl <= 0 then return 'missing' end
                  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ttl) then return 'stored' end
                  return 'claimed'",
            ),
            // KEYS slot, claim, confirm; ARGV confirmation JSON
            confirm: Script::new(
                r"local ttl = redis.call('PTTL', KEYS[1])
                  if ttl <= 0 then return 'missing' end
                  if redis.call('EXISTS', KEYS[2]) == 0 then return 'not_claimed' end
                  if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ttl) then return 'stored' end
                  return 'confirmed'",
            ),
            // KEYS challenge, state, deliveries; ARGV challenge JSON, deliveries JSON, ttl_ms
            create: Script::new(
                r"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
                  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
                  redis.call('SET', KEYS[2], 'pending', 'PX', ARGV[3])
                  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
                  return 1",
            ),
            // KEYS state; ARGV verdict JSON. First verdict wins.
            decide: Script::new(
                r"local state = redis.call('GET', KEYS[1])
                  if not state then return 'missing' end
                  if state == 'pending' then
                    redis.call('SET', KEYS[1], 'd' .. ARGV[1], 'KEEPTTL')
                    return 'accepted'
                  end
                  if state == 'cancelled' then return 'cancelled' end
                  return 'decided'",
            ),
            // KEYS state
            cancel: Script::new(
                r"local state = redis.call('GET', KEYS[1])
                  if not state then return 'missing' end
                  if state == 'pending' then
                    redis.call('SET', KEYS[1], 'cancelled', 'KEEPTTL')
                    return 'cancelled'
                  end
                  if state == 'cancelled' then return 'already_cancelled' end
                  return 'decided'",
            ),
            // KEYS inbox; ARGV cid, value JSON, ttl_ms: add and keep the key alive for the longest entry
            inbox_add: Script::new(
                r"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
                  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
                    redis.call('PEXPIRE', KEYS[1], ARGV[3])
                  end
                  return 1",
            ),
        }
    }
}

/// Channels this replica is subscribed to, and the topic each announces.
type Subscriptions = Arc<Mutex<HashMap<String, Topic>>>;

/// The Redis-backed store. See the module documentation.
pub struct RedisStore {
    /// Commands and subscriptions (multiplexed; cheap to clone).
    conn: Conn,
    notifier: Arc<Notifier>,
    /// Channels subscribed on `conn`; emptied when the connection drops so waiters resubscribe.
    subscriptions: Subscriptions,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Standalone(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        write!(f, "RedisStore({kind})")
    }
}

fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn data(error: impl std::fmt::Display) -> StoreError {
    StoreError::Data(error.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store records serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(data)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn channel(topic: &Topic) -> String {
    match topic {
        Topic::Pairing(id) => format!("approvd:ev:pairing:{{{id}}}"),
        Topic::Challenge(cid) => format!("approvd:ev:ch:{{{cid}}}"),
        Topic::Inbox(device) => format!("approvd:ev:inbox:{{{device}}}"),
        Topic::Mailbox(nas) => format!("approvd:ev:mbox:{{{nas}}}"),
    }
}

fn pairing_keys(id: &PairingId) -> [String; 3] {
    let base = format!("approvd:pairing:{{{id}}}");
    [format!("{base}:claim"), format!("{base}:confirm"), base]
}

fn challenge_keys(cid: &Cid) -> [String; 3] {
    let base = format!("approvd:ch:{{{cid}}}");
    [format!("{base}:state"), format!("{base}:deliveries"), base]
}

fn inbox_key(device_id: &DeviceId) -> String {
    format!("approvd:inbox:{{{device_id}}}")
}

fn mailbox_key(nas_id: &NasId) -> String {
    format!("approvd:mbox:{{{nas_id}}}")
}

/// An inbox hash value: the entry and when the store must forget it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<T> {
    deadline_ms: u64,
    entry: T,
}

impl RedisStore {
    /// Connect with `timeout` for connecting and for every response.
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> Result<Self, StoreError> {
        let (pushes, mut pushed) = tokio::sync::mpsc::unbounded_channel();
        let conn = match target {
            RedisTarget::Standalone(url) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                let url = if url.contains("protocol=") {
                    url.clone()
                } else {
                    format!("{url}{separator}protocol=resp3")
                };
                let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_push_sender(pushes);
                Conn::Standalone(
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(unavailable)?,
                )
            }
            RedisTarget::Cluster(nodes) => {
                let urls: Vec<String> = nodes
                    .iter()
                    .map(|node| format!("redis://{node}/"))
                    .collect();
                let client = redis::cluster::ClusterClientBuilder::new(urls)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .push_sender(pushes)
                    .build()
                    .map_err(unavailable)?;
                Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
            }
        };
        let notifier = Notifier::new();
        let subscriptions: Subscriptions = Arc::default();
        // Route published hints to local waiters; after a disconnect, forget the subscriptions
        // (waiters resubscribe when they re-register) and wake everyone to re-read.
        let listener_notifier = Arc::clone(&notifier);
        let listener_subscriptions = Arc::clone(&subscriptions);
        tokio::spawn(async move {
            while let Some(push) = pushed.recv().await {
                match push.kind {
                    PushKind::Message | PushKind::SMessage => {
                        let name = push.data.first().and_then(|value| match value {
                            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
                            _ => None,
                        });
                        let topic = name.and_then(|name| {
                            listener_subscriptions
                                .lock()
                                .expect("subscriptions")
                                .get(&name)
                                .cloned()
                        });
                        if let Some(topic) = topic {
                            listener_notifier.notify(&topic);
                        }
                    }
                    PushKind::Disconnection => {
                        listener_subscriptions
                            .lock()
                            .expect("subscriptions")
                            .clear();
                        listener_notifier.notify_all();
                    }
                    _ => {}
                }
            }
        });
        let store = Self {
            conn,
            notifier,
            subscriptions,
            scripts: Scripts::new(),
        };
        store.spawn_janitor();
        Ok(store)
    }

    /// Every few seconds, drop subscriptions nobody on this replica waits for.
    fn spawn_janitor(&self) {
        let mut conn = self.conn.clone();
        let notifier = Arc::downgrade(&self.notifier);
        let subscriptions = Arc::clone(&self.subscriptions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(notifier) = notifier.upgrade() else {
                    return;
                };
                let watched: Vec<String> = notifier.topics().iter().map(channel).collect();
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
                    };
                }
            }
        });
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// Announce a write (a hint; failure only delays waiters until their deadline re-read).
    async fn publish(&self, topic: &Topic) {
        let name = channel(topic);
        let command = match self.conn {
            Conn::Standalone(_) => "PUBLISH",
            Conn::Cluster(_) => "SPUBLISH",
        };
        let result: Result<i64, StoreError> =
            self.query(redis::cmd(command).arg(&name).arg("")).await;
        if let Err(error) = result {
            tracing::debug!(%error, channel = %name, "publish failed");
        }
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn remember_nonce(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(format!("approvd:nonce:{key}"))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn rate_limit(
        &self,
        key: &str,
        rate: Rate,
        now_ms: u64,
        consume: bool,
    ) -> Result<RateDecision, StoreError> {
        let (allowed, retry_after_ms): (i64, i64) = self
            .run(
                &self.scripts.rate,
                &[&format!("approvd:rate:{key}")],
                &[
                    &rate.interval_ms().to_string(),
                    &rate.burst_ms().to_string(),
                    &now_ms.to_string(),
                    if consume { "1" } else { "0" },
                ],
            )
            .await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            retry_after_ms: u64::try_from(retry_after_ms).unwrap_or(0),
        })
    }

    async fn create_pairing(&self, slot: &PairingSlot, ttl: Duration) -> Result<bool, StoreError> {
        let [_, _, key] = pairing_keys(&slot.pairing_id);
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(to_json(slot))
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn pairing(&self, pairing_id: &PairingId) -> Result<Option<PairingState>, StoreError> {
        let [claim, confirm, slot] = pairing_keys(pairing_id);
        let (slot, claim, confirm): (Option<String>, Option<String>, Option<String>) = self
            .query(redis::cmd("MGET").arg(&slot).arg(&claim).arg(&confirm))
            .await?;
        let Some(slot) = slot else { return Ok(None) };
        Ok(Some(PairingState {
            slot: from_json(&slot)?,
            claimed: claim.as_deref().map(from_json).transpose()?,
            confirmation: confirm.as_deref().map(from_json).transpose()?,
        }))
    }

    async fn claim_pairing(
        &self,
        pairing_id: &PairingId,
        claimed: &PairingClaimed,
    ) -> Result<ClaimOutcome, StoreError> {
        let [claim, _, slot] = pairing_keys(pairing_id);
        let outcome: String = self
            .run(&self.scripts.claim, &[&slot, &claim], &[&to_json(claimed)])
            .await?;
        Ok(match outcome.as_str() {
            "stored" => {
                self.publish(&Topic::Pairing(*pairing_id)).await;
                ClaimOutcome::Stored
            }
            "claimed" => ClaimOutcome::AlreadyClaimed,
            _ => ClaimOutcome::Missing,
        })
    }

    async fn confirm_pairing(
        &self,
        pairing_id: &PairingId,
        confirmation: &PairingConfirmation,
    ) -> Result<ConfirmOutcome, StoreError> {
        let [claim, confirm, slot] = pairing_keys(pairing_id);
        let outcome: String = self
            .run(
                &self.scripts.confirm,
                &[&slot, &claim, &confirm],
                &[&to_json(confirmation)],
            )
            .await?;
        Ok(match outcome.as_str() {
            "stored" => {
                self.publish(&Topic::Pairing(*pairing_id)).await;
                ConfirmOutcome::Stored
            }
            "confirmed" => ConfirmOutcome::AlreadyConfirmed,
            "not_claimed" => ConfirmOutcome::NotClaimed,
            _ => ConfirmOutcome::Missing,
        })
    }

    async fn create_challenge(
        &self,
        challenge: &StoredChallenge,
        ttl: Duration,
    ) -> Result<CreateOutcome, StoreError> {
        let [state, deliveries, key] = challenge_keys(&challenge.cid);
        let created: i64 = self
            .run(
                &self.scripts.create,
                &[&key, &state, &deliveries],
                &[
                    &to_json(challenge),
                    &to_json(&challenge.deliveries),
                    &millis(ttl).to_string(),
                ],
            )
            .await?;
        if created == 0 {
            let existing = self
                .challenge(&challenge.cid)
                .await?
                .ok_or_else(|| data("a challenge vanished between create and read"))?;
            return Ok(CreateOutcome::Exists(Box::new(existing)));
        }
        let deadline_ms = now_ms() + millis(ttl);
        for target in challenge.targets.iter().filter(|target| target.in_inbox) {
            let value = Stored {
                deadline_ms,
                entry: challenge.inbox_entry(target),
            };
            let _: i64 = self
                .run(
                    &self.scripts.inbox_add,
                    &[&inbox_key(&target.device_id)],
                    &[
                        &challenge.cid.to_string(),
                        &to_json(&value),
                        &millis(ttl).to_string(),
                    ],
                )
                .await?;
            self.publish(&Topic::Inbox(target.device_id)).await;
        }
        Ok(CreateOutcome::Created)
    }

    async fn challenge(&self, cid: &Cid) -> Result<Option<StoredChallenge>, StoreError> {
        let [state, deliveries, key] = challenge_keys(cid);
        let (challenge, state, deliveries): (Option<String>, Option<String>, Option<String>) = self
            .query(redis::cmd("MGET").arg(&key).arg(&state).arg(&deliveries))
            .await?;
        let (Some(challenge), Some(state)) = (challenge, state) else {
            return Ok(None);
        };
        let mut challenge: StoredChallenge = from_json(&challenge)?;
        challenge.state = match state.as_str() {
            "pending" => ChallengeState::Pending,
            "cancelled" => ChallengeState::Cancelled,
            decided => ChallengeState::Decided {
                verdict: Box::new(from_json(
                    decided
                        .strip_prefix('d')
                        .ok_or_else(|| data("bad challenge state"))?,
                )?),
            },
        };
        if let Some(deliveries) = deliveries {
            challenge.deliveries = from_json(&deliveries)?;
        }
        Ok(Some(challenge))
    }

    async fn record_deliveries(
        &self,
        cid: &Cid,
        deliveries: &[TargetDelivery],
    ) -> Result<(), StoreError> {
        let [_, key, _] = challenge_keys(cid);
        let _: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(to_json(&deliveries))
                    .arg("XX")
                    .arg("KEEPTTL"),
            )
            .await?;
        Ok(())
    }

    async fn decide(
        &self,
        cid: &Cid,
        verdict: &SignedVerdict,
    ) -> Result<DecideOutcome, StoreError> {
        let [state, _, _] = challenge_keys(cid);
        let outcome: String = self
            .run(&self.scripts.decide, &[&state], &[&to_json(verdict)])
            .await?;
        Ok(match outcome.as_str() {
            "accepted" => {
                self.publish(&Topic::Challenge(*cid)).await;
                self.remove_from_inboxes(cid).await?;
                DecideOutcome::Accepted
            }
            "decided" => DecideOutcome::AlreadyDecided,
            "cancelled" => DecideOutcome::Cancelled,
            _ => DecideOutcome::Missing,
        })
    }

    async fn cancel(&self, cid: &Cid) -> Result<CancelOutcome, StoreError> {
        let [state, _, _] = challenge_keys(cid);
        let outcome: String = self.run(&self.scripts.cancel, &[&state], &[]).await?;
        Ok(match outcome.as_str() {
            "cancelled" => {
                self.publish(&Topic::Challenge(*cid)).await;
                self.remove_from_inboxes(cid).await?;
                CancelOutcome::Cancelled
            }
            "already_cancelled" => CancelOutcome::AlreadyCancelled,
            "decided" => CancelOutcome::AlreadyDecided,
            _ => CancelOutcome::Missing,
        })
    }

    async fn inbox(
        &self,
        device_id: &DeviceId,
        now_unix: u64,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let key = inbox_key(device_id);
        let fields: HashMap<String, String> = self.query(redis::cmd("HGETALL").arg(&key)).await?;
        let now = now_ms();
        let mut entries = Vec::with_capacity(fields.len());
        let mut stale = Vec::new();
        for (cid, value) in fields {
            let stored: Stored<InboxEntry> = from_json(&value)?;
            if stored.deadline_ms <= now {
                stale.push(cid);
            } else if stored.entry.expires > now_unix {
                entries.push(stored.entry);
            }
        }
        if !stale.is_empty() {
            let _: i64 = self.query(redis::cmd("HDEL").arg(&key).arg(&stale)).await?;
        }
        entries.sort_by_key(|entry| (entry.created, entry.cid));
        Ok(entries)
    }

    async fn drop_inbox_from(
        &self,
        device_id: &DeviceId,
        nas_id: &NasId,
    ) -> Result<(), StoreError> {
        let key = inbox_key(device_id);
        let fields: HashMap<String, String> = self.query(redis::cmd("HGETALL").arg(&key)).await?;
        let mut drop = Vec::new();
        for (cid, value) in fields {
            let stored: Stored<InboxEntry> = from_json(&value)?;
            if stored.entry.nas_id == *nas_id {
                drop.push(cid);
            }
        }
        if !drop.is_empty() {
            let _: i64 = self.query(redis::cmd("HDEL").arg(&key).arg(&drop)).await?;
        }
        Ok(())
    }

    async fn set_mute(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
        until: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(format!("approvd:mute:{{{nas_id}}}:{device_id}"))
                    .arg(until)
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(())
    }

    async fn muted_until(
        &self,
        nas_id: &NasId,
        device_id: &DeviceId,
    ) -> Result<Option<u64>, StoreError> {
        self.query(redis::cmd("GET").arg(format!("approvd:mute:{{{nas_id}}}:{device_id}")))
            .await
    }

    async fn post_notice(
        &self,
        nas_id: &NasId,
        notice: &Notice,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = mailbox_key(nas_id);
        let now = now_ms();
        let value = to_json(&Stored {
            deadline_ms: now + millis(ttl),
            entry: (at, notice),
        });
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("n")
            .arg(value)
            .ignore()
            .cmd("XTRIM")
            .arg(&key)
            .arg("MINID")
            .arg(now.saturating_sub(millis(ttl)))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .ignore();
        let _: () = pipeline
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        self.publish(&Topic::Mailbox(*nas_id)).await;
        Ok(())
    }

    async fn mailbox(&self, nas_id: &NasId) -> Result<Vec<MailboxEntry>, StoreError> {
        let key = mailbox_key(nas_id);
        let range: redis::streams::StreamRangeReply = self
            .query(redis::cmd("XRANGE").arg(&key).arg("-").arg("+"))
            .await?;
        let now = now_ms();
        let mut entries = Vec::with_capacity(range.ids.len());
        for item in range.ids {
            let Some(Value::BulkString(bytes)) = item.map.get("n") else {
                return Err(data("mailbox entry without a notice"));
            };
            let stored: Stored<(u64, Notice)> = from_json(&String::from_utf8_lossy(bytes))?;
            if stored.deadline_ms > now {
                let (at, notice) = stored.entry;
                entries.push(MailboxEntry {
                    id: item.id,
                    at,
                    notice,
                });
            }
        }
        Ok(entries)
    }

    async fn ack_mailbox(&self, nas_id: &NasId, ids: &[String]) -> Result<(), StoreError> {
        // Only stream-id-shaped strings reach XDEL (anything else cannot be ours).
        let valid: Vec<&String> = ids
            .iter()
            .filter(|id| {
                id.split_once('-').is_some_and(|(ms, seq)| {
                    !ms.is_empty()
                        && !seq.is_empty()
                        && ms.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit())
                })
            })
            .collect();
        if !valid.is_empty() {
            let _: i64 = self
                .query(redis::cmd("XDEL").arg(mailbox_key(nas_id)).arg(&valid))
                .await?;
        }
        Ok(())
    }

    async fn watch(&self, topic: Topic) -> Result<Watch, StoreError> {
        let watch = self.notifier.watch(topic.clone());
        let name = channel(&topic);
        let is_new = self
            .subscriptions
            .lock()
            .expect("subscriptions")
            .insert(name.clone(), topic)
            .is_none();
        if is_new {
            let result = match &mut self.conn.clone() {
                Conn::Standalone(conn) => conn.subscribe(&name).await,
                Conn::Cluster(conn) => conn.ssubscribe(&name).await,
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

    fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

impl RedisStore {
    /// Remove a decided or cancelled challenge from its targets' inboxes (one slot each).
    async fn remove_from_inboxes(&self, cid: &Cid) -> Result<(), StoreError> {
        let [_, _, key] = challenge_keys(cid);
        let challenge: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        let Some(challenge) = challenge else {
            return Ok(());
        };
        let challenge: StoredChallenge = from_json(&challenge)?;
        for target in &challenge.targets {
            let _: i64 = self
                .query(
                    redis::cmd("HDEL")
                        .arg(inbox_key(&target.device_id))
                        .arg(cid.to_string()),
                )
                .await?;
        }
        Ok(())
    }
}

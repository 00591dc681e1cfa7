//! [`RedisStore`]: the production store — standalone Redis, Redis Cluster or a master behind
//! Redis Sentinel (over TLS, with credentials: `connect`, `sentinel`), shared by every
//! relay replica. Owns every Redis key, the Lua scripts that make decisions atomic, and the
//! cross-replica wakeups (one pub/sub subscription per replica, multiplexed onto the local
//! [`Notifier`]). No blocking commands; explicit connect and response timeouts; reconnects by
//! itself (a Redis outage turns into `StoreError::Unavailable`, i.e. 503 + Retry-After).
//!
//! Keys (`{…}` is the Redis Cluster hash tag; every key has a TTL; `keys` builds them and a test
//! checks them against this table):
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `approvd:nonce:{<keyid>}:<nonce>` | string | signature expiry + skew | a seen request nonce (`SET NX PX` in the admission script) |
//! | `approvd:rate:caller:{<keyid>}` | string | until the bucket refills | GCRA theoretical arrival time (µs) of a signer's request budget, charged by the admission script with the nonce |
//! | `approvd:rate:challenges:{<device_id>}` | string | same | a device's challenge budget, charged with its mute read (`reserve`) |
//! | `approvd:rate:create:{create}:<id>` | string | same | creations per IP (`<id>` an IP) and relay-wide (`all`), charged in order by one script |
//! | `approvd:rate:<limit>:<id>` | string | same | the other budgets: `authfail` (per IP), `refresh` (per device), `forward` (per downstream relay) |
//! | `approvd:pairing:{<pairing_id>}` | string | slot lifetime + 60 s | slot JSON |
//! | `approvd:pairing:{<pairing_id>}:claim` | string | the slot's remaining TTL | first claim (`SET NX` in Lua) |
//! | `approvd:pairing:{<pairing_id>}:accept` | string | the slot's remaining TTL | the NAS's acceptance of the claim (`SET NX` in Lua, after the claim) |
//! | `approvd:pairing:{<pairing_id>}:confirm` | string | the slot's remaining TTL | confirmation (`SET NX` in Lua, after the acceptance) |
//! | `approvd:ch:{<cid>}` | string | expiry + grace | challenge JSON (targets, body hash) |
//! | `approvd:ch:{<cid>}:state` | string | same | `pending` / `cancelled` / `d<verdict>`: the first-verdict-wins script flips it once |
//! | `approvd:ch:{<cid>}:deliveries` | string | same | delivery report |
//! | `approvd:inbox:{<device_id>}` | hash | longest entry | cid → `{deadline_ms, entry}`; stale fields dropped on read |
//! | `approvd:mute:{<device_id>}:<nas_id>` | string | until the mute ends | mute end (unix s) |
//! | `approvd:mbox:{<nas_id>}` | stream | newest entry (7 days) | mailbox notices, at most 500 (`MAXLEN`); `XTRIM MINID` drops expired ones |
//! | `approvd:mbox:{<nas_id>}:latest` | hash | same | `<kind>:<device_id>` → id of the newest notice of that kind for that device (a newer one replaces it) |
//!
//! Wakeup channels are `approvd:ev:<kind>:{<id>}` (same slot as the keys they announce):
//! `PUBLISH` on a standalone server, `SPUBLISH`/`SSUBSCRIBE` on a cluster (`pubsub`). A waiter
//! subscribes before it re-reads; writers write, then publish. Messages are hints — the keys are
//! the truth. The Lua scripts are the `lua/*.lua` files beside this one; a reply a script cannot
//! give is a [`StoreError::Data`], never a guess.

mod connect;
mod keys;
mod pubsub;
mod sentinel;

pub use connect::{ConnectError, Password, RedisAuth, RedisOptions, RedisTarget, RedisTls};

use std::collections::HashMap;
use std::time::Duration;

use approvd_proto::wire::{
    InboxEntry, MailboxEntry, Notice, PairingClaimed, SignedVerdict, TargetDelivery,
};
use approvd_proto::{Cid, DeviceId, NasId, PairingId};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use super::{
    Admitted, Bucket, CancelOutcome, ChallengeState, ClaimOutcome, CreateOutcome, DecideOutcome,
    Nonce, Notifier, PairingSlot, PairingState, PairingStep, Rate, RateDecision, Reservation,
    StepOutcome, Store, StoreError, StoredChallenge, Topic, Watch, MAILBOX_CAP,
};
use pubsub::PubSub;

/// One multiplexed connection, any kind.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    /// The master the Sentinels name, followed across failovers.
    Sentinel(std::sync::Arc<sentinel::Failover>),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conn::Standalone(_) => f.write_str("standalone"),
            Conn::Cluster(_) => f.write_str("cluster"),
            Conn::Sentinel(failover) => write!(f, "{failover:?}"),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
            Conn::Sentinel(failover) => {
                let failover = std::sync::Arc::clone(failover);
                Box::pin(async move {
                    let result = failover.connection().req_packed_command(cmd).await;
                    if result.is_err() {
                        failover.command_failed();
                    }
                    result
                })
            }
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
            Conn::Sentinel(failover) => {
                let failover = std::sync::Arc::clone(failover);
                Box::pin(async move {
                    let result = failover
                        .connection()
                        .req_packed_commands(pipeline, offset, count)
                        .await;
                    if result.is_err() {
                        failover.command_failed();
                    }
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
            Conn::Sentinel(failover) => failover.connection().get_db(),
        }
    }
}

/// One Lua script: its code (for `EVAL` when Redis has lost its script cache) and the prepared
/// script (`EVALSHA`).
struct Lua {
    code: &'static str,
    script: Script,
}

impl Lua {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            script: Script::new(code),
        }
    }
}

/// A script whose code begins with the shared GCRA function (`lua/gcra.lua`).
macro_rules! with_gcra {
    ($file:literal) => {
        concat!(include_str!("lua/gcra.lua"), include_str!($file))
    };
}

/// A script whose code begins with the shared target listing (`lua/targets.lua`).
macro_rules! with_targets {
    ($file:literal) => {
        concat!(include_str!("lua/targets.lua"), include_str!($file))
    };
}

/// The Lua scripts (`lua/*.lua`; each touches keys of one hash tag only).
struct Scripts {
    rate: Lua,
    admit: Lua,
    take_in_order: Lua,
    reserve: Lua,
    claim: Lua,
    step: Lua,
    create: Lua,
    decide: Lua,
    cancel: Lua,
    inbox_add: Lua,
    post_notice: Lua,
}

impl Scripts {
    fn new() -> Self {
        Self {
            rate: Lua::new(with_gcra!("lua/rate.lua")),
            admit: Lua::new(with_gcra!("lua/admit.lua")),
            take_in_order: Lua::new(with_gcra!("lua/take_in_order.lua")),
            reserve: Lua::new(with_gcra!("lua/reserve.lua")),
            claim: Lua::new(include_str!("lua/claim.lua")),
            step: Lua::new(include_str!("lua/pairing_step.lua")),
            create: Lua::new(include_str!("lua/create.lua")),
            decide: Lua::new(with_targets!("lua/decide.lua")),
            cancel: Lua::new(with_targets!("lua/cancel.lua")),
            inbox_add: Lua::new(include_str!("lua/inbox_add.lua")),
            post_notice: Lua::new(include_str!("lua/post_notice.lua")),
        }
    }
}

/// One request of a [`RedisStore::batch`]: a script or a command, with the key that routes it.
enum Step<'a> {
    Script {
        lua: &'a Lua,
        keys: Vec<String>,
        args: Vec<String>,
    },
    Command {
        /// The key or channel whose slot the command belongs to.
        route: String,
        cmd: Cmd,
    },
}

impl Step<'_> {
    fn route(&self) -> &str {
        match self {
            Step::Script { keys, .. } => keys.first().map_or("", String::as_str),
            Step::Command { route, .. } => route,
        }
    }

    /// Add this step to `pipe`, as `EVAL` with the code when `eval`.
    fn add_to(&self, pipe: &mut Pipeline, eval: bool) {
        match self {
            Step::Script { lua, keys, args } => {
                let command = if eval {
                    pipe.cmd("EVAL").arg(lua.code)
                } else {
                    pipe.cmd("EVALSHA").arg(lua.script.get_hash())
                };
                command.arg(keys.len()).arg(keys).arg(args);
            }
            Step::Command { cmd, .. } => {
                pipe.add_command(cmd.clone());
            }
        }
    }
}

/// The wakeup of `topic` as a batch step (`PUBLISH`, or `SPUBLISH` on a cluster).
fn publish_step(conn: &Conn, topic: &Topic) -> Step<'static> {
    let channel = keys::channel(topic);
    let mut cmd = redis::cmd(pubsub::publish_command(conn));
    cmd.arg(&channel).arg(crate::store::notify::unix_now_us());
    Step::Command {
        route: channel,
        cmd,
    }
}

/// The Redis-backed store. See the module documentation.
pub struct RedisStore {
    /// Commands and subscriptions (multiplexed; cheap to clone).
    conn: Conn,
    /// Wakeups: local waiters and this replica's subscriptions.
    pubsub: PubSub,
    scripts: Scripts,
    /// Requests sent (each command, script, pipeline or (un)subscription is one round trip;
    /// shared with `pubsub`).
    round_trips: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({:?})", self.conn)
    }
}

fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn data(error: impl std::fmt::Display) -> StoreError {
    StoreError::Data(error.to_string())
}

/// A script replied something it cannot reply: a bug or a foreign writer, never an outcome.
fn unexpected(script: &str, reply: &str) -> StoreError {
    StoreError::Data(format!("the {script} script replied `{reply}`"))
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
    crate::clock::system_now_us() / 1000
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
        Self::connect_with(target, &RedisOptions::default(), timeout)
            .await
            .map_err(|error| match error {
                ConnectError::Store(error) => error,
                other => StoreError::Unavailable(other.to_string()),
            })
    }

    /// [`RedisStore::connect`] with TLS and credentials; a refusal names the option to fix.
    pub async fn connect_with(
        target: &RedisTarget,
        options: &RedisOptions,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let resolved = connect::resolve(options)?;
        let (pushes, pushed) = tokio::sync::mpsc::unbounded_channel();
        let conn = match target {
            RedisTarget::Standalone(url) => {
                connect::standalone(url, &resolved, timeout, pushes).await?
            }
            RedisTarget::Cluster(nodes) => {
                connect::cluster(nodes, &resolved, timeout, pushes).await?
            }
            RedisTarget::Sentinel { nodes, master } => {
                Conn::Sentinel(sentinel::connect(nodes, master, resolved, timeout, pushes).await?)
            }
        };
        let round_trips = std::sync::Arc::default();
        Ok(Self {
            pubsub: PubSub::start(&conn, pushed, std::sync::Arc::clone(&round_trips)),
            conn,
            scripts: Scripts::new(),
            round_trips,
        })
    }

    fn sent(&self, requests: u64) {
        self.round_trips
            .fetch_add(requests, std::sync::atomic::Ordering::Relaxed);
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.sent(1);
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        lua: &Lua,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, StoreError> {
        self.sent(1);
        let mut invocation = lua.script.prepare_invoke();
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

    async fn rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
        consume: bool,
    ) -> Result<RateDecision, StoreError> {
        let (allowed, retry_after_us): (i64, i64) = self
            .run(
                &self.scripts.rate,
                &[&keys::rate(bucket)],
                &[
                    &rate.interval_us().to_string(),
                    &rate.burst_us().to_string(),
                    &now_us.to_string(),
                    if consume { "1" } else { "0" },
                ],
            )
            .await?;
        decision("rate", allowed, retry_after_us)
    }

    /// Send `steps` in as few round trips as the deployment allows: one pipeline on a single
    /// server; on a cluster one pipeline per hash tag, all at once. Each step's own reply (or
    /// error) comes back in order. Scripts go as `EVALSHA`; those Redis no longer knows (after a
    /// restart or failover) are sent again once as `EVAL`, which caches them — with the
    /// commands (wakeups, deletions) that followed them, so those still come after.
    async fn batch(&self, steps: &[Step<'_>]) -> Result<Vec<Value>, StoreError> {
        let mut replies = self.send(steps, false).await?;
        let unknown: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| {
                matches!(reply, Err(error) if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
            })
            .map(|(index, _)| index)
            .collect();
        if let Some(&first) = unknown.first() {
            // The commands after the first unknown script go again too, after it: a wakeup
            // published before the write it announces would wake waiters to nothing.
            let unknown: Vec<usize> = (first..steps.len())
                .filter(|index| {
                    unknown.contains(index) || matches!(steps[*index], Step::Command { .. })
                })
                .collect();
            let again: Vec<&Step<'_>> = unknown.iter().map(|index| &steps[*index]).collect();
            let retried = self.send(&again, true).await?;
            for (index, reply) in unknown.into_iter().zip(retried) {
                replies[index] = reply;
            }
        }
        replies
            .into_iter()
            .map(|reply| reply.map_err(unavailable))
            .collect()
    }

    async fn send<'s, S: std::borrow::Borrow<Step<'s>> + Sync>(
        &self,
        steps: &[S],
        eval: bool,
    ) -> Result<Vec<redis::RedisResult<Value>>, StoreError> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let groups: Vec<Vec<usize>> = match self.conn {
            Conn::Cluster(_) => {
                let mut by_tag: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
                for (index, step) in steps.iter().enumerate() {
                    let tag = keys::hash_tag(step.borrow().route());
                    match by_tag
                        .iter_mut()
                        .find(|(group, _)| *group == tag && tag.is_some())
                    {
                        Some((_, members)) => members.push(index),
                        None => by_tag.push((tag, vec![index])),
                    }
                }
                by_tag.into_iter().map(|(_, members)| members).collect()
            }
            _ => vec![(0..steps.len()).collect()],
        };
        self.sent(groups.len() as u64);
        let sends = groups.iter().map(|members| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for index in members {
                steps[*index].borrow().add_to(&mut pipe, eval);
            }
            let mut conn = self.conn.clone();
            async move {
                pipe.query_async::<Vec<redis::RedisResult<Value>>>(&mut conn)
                    .await
                    .map_err(unavailable)
            }
        });
        let answers = futures_util::future::try_join_all(sends).await?;
        let mut replies: Vec<Option<redis::RedisResult<Value>>> =
            (0..steps.len()).map(|_| None).collect();
        for (members, answer) in groups.iter().zip(answers) {
            if answer.len() != members.len() {
                return Err(data("a pipeline answered a different number of replies"));
            }
            for (index, reply) in members.iter().zip(answer) {
                replies[*index] = Some(reply);
            }
        }
        Ok(replies
            .into_iter()
            .map(|reply| reply.expect("every step answered"))
            .collect())
    }

    /// Announce a write (a hint; failure only delays waiters until their deadline re-read).
    async fn publish(&self, topic: &Topic) {
        if let Err(error) = self.batch(&[publish_step(&self.conn, topic)]).await {
            tracing::debug!(%error, ?topic, "publish failed");
        }
    }

    /// After a challenge ended: wake its verdict pollers and clear it from its targets' inboxes
    /// (`devices` as the ending script listed them), in one batch.
    async fn ended(&self, cid: &Cid, devices: &[String]) -> Result<(), StoreError> {
        let mut steps = vec![publish_step(&self.conn, &Topic::Challenge(*cid))];
        for device in devices {
            let mut cmd = redis::cmd("HDEL");
            let inbox = keys::inbox_of(device);
            cmd.arg(&inbox).arg(cid.to_string());
            steps.push(Step::Command { route: inbox, cmd });
        }
        self.batch(&steps).await?;
        Ok(())
    }
}

/// A GCRA reply `{allowed, retry_after_us}` as a decision.
fn decision(script: &str, allowed: i64, retry_after_us: i64) -> Result<RateDecision, StoreError> {
    let allowed = match allowed {
        1 => true,
        0 => false,
        other => return Err(unexpected(script, &other.to_string())),
    };
    Ok(RateDecision {
        allowed,
        retry_after_ms: u64::try_from(retry_after_us).unwrap_or(0).div_ceil(1000),
    })
}

/// The replies of a script that ends a challenge: its outcome, then the targets' device ids.
fn outcome_and_devices(
    reply: Vec<String>,
    script: &str,
) -> Result<(String, Vec<String>), StoreError> {
    let mut reply = reply.into_iter();
    let outcome = reply.next().ok_or_else(|| unexpected(script, "nothing"))?;
    Ok((outcome, reply.collect()))
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn admit(
        &self,
        nonce: &Nonce,
        nonce_ttl: Duration,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<Admitted, StoreError> {
        let reply: Vec<i64> = self
            .run(
                &self.scripts.admit,
                &[&keys::nonce(nonce), &keys::rate(bucket)],
                &[
                    &millis(nonce_ttl).to_string(),
                    &rate.interval_us().to_string(),
                    &rate.burst_us().to_string(),
                    &now_us.to_string(),
                ],
            )
            .await?;
        match reply.as_slice() {
            [0] => Ok(Admitted::Replayed),
            [1, allowed, retry_after_us] => Ok(Admitted::Fresh(decision(
                "admit",
                *allowed,
                *retry_after_us,
            )?)),
            other => Err(unexpected("admit", &format!("{other:?}"))),
        }
    }

    async fn take_in_order(
        &self,
        buckets: &[(Bucket, Rate)],
        now_us: u64,
    ) -> Result<Option<(usize, RateDecision)>, StoreError> {
        let names: Vec<String> = buckets
            .iter()
            .map(|(bucket, _)| keys::rate(bucket))
            .collect();
        let one_tag = names
            .first()
            .and_then(|first| keys::hash_tag(first))
            .is_some_and(|tag| names.iter().all(|name| keys::hash_tag(name) == Some(tag)));
        if !one_tag {
            // Buckets in different slots cannot share a script: one at a time, in order.
            for (index, (bucket, rate)) in buckets.iter().enumerate() {
                let decision = self.rate(bucket, *rate, now_us, true).await?;
                if !decision.allowed {
                    return Ok(Some((index, decision)));
                }
            }
            return Ok(None);
        }
        let mut args = vec![now_us.to_string()];
        for (_, rate) in buckets {
            args.push(rate.interval_us().to_string());
            args.push(rate.burst_us().to_string());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (refused, retry_after_us): (i64, i64) =
            self.run(&self.scripts.take_in_order, &names, &args).await?;
        match usize::try_from(refused) {
            Ok(0) => Ok(None),
            Ok(position) if position <= buckets.len() => Ok(Some((
                position - 1,
                decision("take_in_order", 0, retry_after_us)?,
            ))),
            _ => Err(unexpected("take_in_order", &refused.to_string())),
        }
    }

    async fn reserve_targets(
        &self,
        nas_id: &NasId,
        devices: &[DeviceId],
        rate: Rate,
        now_us: u64,
    ) -> Result<Vec<Reservation>, StoreError> {
        let args = vec![
            rate.interval_us().to_string(),
            rate.burst_us().to_string(),
            now_us.to_string(),
        ];
        let steps: Vec<Step<'_>> = devices
            .iter()
            .map(|device_id| Step::Script {
                lua: &self.scripts.reserve,
                keys: vec![
                    keys::rate(&Bucket::DeviceChallenges(*device_id)),
                    keys::mute(nas_id, device_id),
                ],
                args: args.clone(),
            })
            .collect();
        self.batch(&steps)
            .await?
            .into_iter()
            .map(|reply| {
                let (allowed, retry_after_us, muted): (i64, i64, i64) =
                    redis::FromRedisValue::from_redis_value(reply)
                        .map_err(|error| unexpected("reserve", &error.to_string()))?;
                Ok(Reservation {
                    rate: decision("reserve", allowed, retry_after_us)?,
                    muted_until: u64::try_from(muted).ok(),
                })
            })
            .collect()
    }

    fn round_trips(&self) -> Option<u64> {
        Some(self.round_trips.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn remember_nonce(&self, nonce: &Nonce, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(keys::nonce(nonce))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn check_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        self.rate(bucket, rate, now_us, false).await
    }

    async fn take_rate(
        &self,
        bucket: &Bucket,
        rate: Rate,
        now_us: u64,
    ) -> Result<RateDecision, StoreError> {
        self.rate(bucket, rate, now_us, true).await
    }

    async fn create_pairing(&self, slot: &PairingSlot, ttl: Duration) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(keys::pairing(&slot.pairing_id).slot)
                    .arg(to_json(slot))
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn pairing(&self, pairing_id: &PairingId) -> Result<Option<PairingState>, StoreError> {
        let keys = keys::pairing(pairing_id);
        type Values = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (slot, claim, accept, confirm): Values = self
            .query(
                redis::cmd("MGET")
                    .arg(&keys.slot)
                    .arg(&keys.claim)
                    .arg(&keys.accept)
                    .arg(&keys.confirm),
            )
            .await?;
        let Some(slot) = slot else { return Ok(None) };
        Ok(Some(PairingState {
            slot: from_json(&slot)?,
            claimed: claim.as_deref().map(from_json).transpose()?,
            acceptance: accept.as_deref().map(from_json).transpose()?,
            confirmation: confirm.as_deref().map(from_json).transpose()?,
        }))
    }

    async fn claim_pairing(
        &self,
        pairing_id: &PairingId,
        claimed: &PairingClaimed,
    ) -> Result<ClaimOutcome, StoreError> {
        let keys = keys::pairing(pairing_id);
        let outcome: String = self
            .run(
                &self.scripts.claim,
                &[&keys.slot, &keys.claim],
                &[&to_json(claimed)],
            )
            .await?;
        match outcome.as_str() {
            "stored" => {
                self.publish(&Topic::Pairing(*pairing_id)).await;
                Ok(ClaimOutcome::Stored)
            }
            "claimed" => Ok(ClaimOutcome::AlreadyClaimed),
            "missing" => Ok(ClaimOutcome::Missing),
            other => Err(unexpected("claim", other)),
        }
    }

    async fn advance_pairing(
        &self,
        pairing_id: &PairingId,
        step: &PairingStep,
    ) -> Result<StepOutcome, StoreError> {
        let keys = keys::pairing(pairing_id);
        let (before, key, value) = match step {
            PairingStep::Accept(acceptance) => (&keys.claim, &keys.accept, to_json(acceptance)),
            PairingStep::Confirm(confirmation) => {
                (&keys.accept, &keys.confirm, to_json(confirmation))
            }
        };
        let outcome: String = self
            .run(&self.scripts.step, &[&keys.slot, before, key], &[&value])
            .await?;
        match outcome.as_str() {
            "stored" => {
                self.publish(&Topic::Pairing(*pairing_id)).await;
                Ok(StepOutcome::Stored)
            }
            "done" => Ok(StepOutcome::AlreadyDone),
            "not_ready" => Ok(StepOutcome::NotReady),
            "missing" => Ok(StepOutcome::Missing),
            other => Err(unexpected("pairing step", other)),
        }
    }

    async fn create_challenge(
        &self,
        challenge: &StoredChallenge,
        ttl: Duration,
    ) -> Result<CreateOutcome, StoreError> {
        let keys = keys::challenge(&challenge.cid);
        let created: i64 = self
            .run(
                &self.scripts.create,
                &[&keys.record, &keys.state, &keys.deliveries],
                &[
                    &to_json(challenge),
                    &to_json(&challenge.deliveries),
                    &millis(ttl).to_string(),
                ],
            )
            .await?;
        match created {
            1 => {}
            0 => {
                let existing = self
                    .challenge(&challenge.cid)
                    .await?
                    .ok_or_else(|| data("a challenge vanished between create and read"))?;
                return Ok(CreateOutcome::Exists(Box::new(existing)));
            }
            other => return Err(unexpected("create", &other.to_string())),
        }
        let deadline_ms = now_ms() + millis(ttl);
        let mut steps = Vec::new();
        for target in challenge.targets.iter().filter(|target| target.in_inbox) {
            let value = Stored {
                deadline_ms,
                entry: challenge.inbox_entry(target),
            };
            steps.push(Step::Script {
                lua: &self.scripts.inbox_add,
                keys: vec![keys::inbox(&target.device_id)],
                args: vec![
                    challenge.cid.to_string(),
                    to_json(&value),
                    millis(ttl).to_string(),
                ],
            });
            steps.push(publish_step(&self.conn, &Topic::Inbox(target.device_id)));
        }
        self.batch(&steps).await?;
        Ok(CreateOutcome::Created)
    }

    async fn challenge(&self, cid: &Cid) -> Result<Option<StoredChallenge>, StoreError> {
        let keys = keys::challenge(cid);
        let (record, state, deliveries): (Option<String>, Option<String>, Option<String>) = self
            .query(
                redis::cmd("MGET")
                    .arg(&keys.record)
                    .arg(&keys.state)
                    .arg(&keys.deliveries),
            )
            .await?;
        let (Some(record), Some(state)) = (record, state) else {
            return Ok(None);
        };
        let mut challenge: StoredChallenge = from_json(&record)?;
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
        let _: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(keys::challenge(cid).deliveries)
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
        let keys = keys::challenge(cid);
        let reply: Vec<String> = self
            .run(
                &self.scripts.decide,
                &[&keys.state, &keys.record],
                &[&to_json(verdict)],
            )
            .await?;
        let (outcome, devices) = outcome_and_devices(reply, "decide")?;
        match outcome.as_str() {
            "accepted" => {
                self.ended(cid, &devices).await?;
                Ok(DecideOutcome::Accepted)
            }
            "decided" => Ok(DecideOutcome::AlreadyDecided),
            "cancelled" => Ok(DecideOutcome::Cancelled),
            "missing" => Ok(DecideOutcome::Missing),
            other => Err(unexpected("decide", other)),
        }
    }

    async fn cancel(&self, cid: &Cid) -> Result<CancelOutcome, StoreError> {
        let keys = keys::challenge(cid);
        let reply: Vec<String> = self
            .run(&self.scripts.cancel, &[&keys.state, &keys.record], &[])
            .await?;
        let (outcome, devices) = outcome_and_devices(reply, "cancel")?;
        match outcome.as_str() {
            "cancelled" => {
                self.ended(cid, &devices).await?;
                Ok(CancelOutcome::Cancelled)
            }
            "already_cancelled" => Ok(CancelOutcome::AlreadyCancelled),
            "decided" => Ok(CancelOutcome::AlreadyDecided),
            "missing" => Ok(CancelOutcome::Missing),
            other => Err(unexpected("cancel", other)),
        }
    }

    async fn inbox(
        &self,
        device_id: &DeviceId,
        now_unix: u64,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let key = keys::inbox(device_id);
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
        let key = keys::inbox(device_id);
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
                    .arg(keys::mute(nas_id, device_id))
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
        self.query(redis::cmd("GET").arg(keys::mute(nas_id, device_id)))
            .await
    }

    async fn post_notice(
        &self,
        nas_id: &NasId,
        notice: &Notice,
        at: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let value = to_json(&Stored {
            deadline_ms: now + millis(ttl),
            entry: (at, notice),
        });
        let (kind, device_id) = notice.coalescing_key();
        let _: String = self
            .run(
                &self.scripts.post_notice,
                &[&keys::mailbox(nas_id), &keys::mailbox_latest(nas_id)],
                &[
                    &format!("{kind}:{device_id}"),
                    &value,
                    &now.saturating_sub(millis(ttl)).to_string(),
                    &millis(ttl).to_string(),
                    &MAILBOX_CAP.to_string(),
                ],
            )
            .await?;
        self.publish(&Topic::Mailbox(*nas_id)).await;
        Ok(())
    }

    async fn mailbox(&self, nas_id: &NasId, limit: usize) -> Result<Vec<MailboxEntry>, StoreError> {
        let key = keys::mailbox(nas_id);
        let range: redis::streams::StreamRangeReply = self
            .query(
                redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit),
            )
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
                .query(redis::cmd("XDEL").arg(keys::mailbox(nas_id)).arg(&valid))
                .await?;
        }
        Ok(())
    }

    async fn watch(&self, topic: Topic) -> Result<Watch, StoreError> {
        self.pubsub.watch(&self.conn, topic).await
    }

    fn notifier(&self) -> &std::sync::Arc<Notifier> {
        self.pubsub.notifier()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

//! The relay's use cases — request admission, pairing, challenges and verdicts, inboxes, device
//! notices, the NAS mailbox — as functions of [`Deps`] and typed requests from an already
//! authenticated caller. Knows nothing of HTTP: no status codes, headers or extractors; refusals
//! are [`Error`]s whose meaning the HTTP layer maps to responses. Reaches state only through
//! `Store` and push providers only through `push::Dispatcher`.

pub mod access;
pub mod challenges;
pub mod devices;
mod error;
pub mod forward;
pub mod mailbox;
pub mod pairings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use approvd_proto::ids::{PublicKey, Sig};
use approvd_proto::SignedMessage;
use tokio_util::sync::CancellationToken;

pub use error::Error;

use crate::clock::Clock;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;
use crate::push::Dispatcher;
use crate::push_handle::HandleKeys;
use crate::store::notify::unix_now_us;
use crate::store::{Bucket, RateDecision, Store, Topic};

/// What the use cases run on, shared by every request.
#[derive(Debug)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub handles: HandleKeys,
    pub push: Dispatcher,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub limits: LimitsConfig,
    /// Web Push, when this relay has a VAPID key: the key registrations must name and the
    /// endpoints it may send to (checked when a handle is minted).
    pub webpush: Option<WebPushIdentity>,
    /// Cancelled at shutdown: every long-poll selects on it and ends with
    /// [`Error::ShuttingDown`] at once.
    pub shutdown: CancellationToken,
}

/// What a Web Push registration is checked against.
#[derive(Debug, Clone)]
pub struct WebPushIdentity {
    /// The VAPID public key (base64url): a registration's `topic`.
    pub public_key: String,
    pub policy: crate::push::webpush::EndpointPolicy,
}

/// Refuse a push registration this relay could never push to (Web Push: no VAPID key here,
/// another key's subscription, an endpoint off the allow-list or resolving only to internal
/// addresses), with a clear `400` at registration rather than a silent failure at push time.
/// (The push itself resolves again, through the same filter: a name re-pointed inside later
/// is never connected to.)
pub async fn check_registration(
    deps: &Deps,
    push: Option<&approvd_proto::wire::PushRegistration>,
) -> Result<(), Error> {
    let Some(push) = push else { return Ok(()) };
    if push.provider != approvd_proto::wire::PushProvider::Webpush {
        return Ok(());
    }
    let Some(webpush) = &deps.webpush else {
        return Err(Error::field(
            "push.provider",
            "this relay has no Web Push (its operator set no --webpush-vapid-key-file)",
        ));
    };
    if push.topic != webpush.public_key {
        return Err(Error::field(
            "push.topic",
            "is not this relay's VAPID public key (GET /v1/push/webpush): subscribe with it",
        ));
    }
    let subscription = crate::push::webpush::Subscription::parse(
        &push.token,
        push.p256dh.as_deref().unwrap_or_default(),
        push.auth.as_deref().unwrap_or_default(),
        &webpush.policy,
    )
    .map_err(|error| {
        let field = match error {
            crate::push::webpush::SubscriptionError::BadP256dh => "push.p256dh",
            crate::push::webpush::SubscriptionError::BadAuth => "push.auth",
            _ => "push.token",
        };
        Error::field(field, error.to_string())
    })?;
    let resolver = crate::push::webpush::PublicOnly {
        allow_private: webpush.policy.allow_private,
    };
    let host = subscription
        .endpoint
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        reqwest::dns::Resolve::resolve(
            &resolver,
            host.parse()
                .map_err(|_| Error::field("push.token", "`endpoint` host is not a host name"))?,
        ),
    )
    .await;
    match lookup {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(Error::field("push.token", format!("`endpoint`: {error}"))),
        Err(_) => Err(Error::field(
            "push.token",
            "`endpoint` host could not be resolved within 3 s",
        )),
    }
}

impl Deps {
    /// One request against `bucket` at its configured rate; a refusal is counted and becomes
    /// [`Error::RateLimited`].
    async fn take(&self, bucket: &Bucket) -> Result<(), Error> {
        let limit = bucket.limit();
        let decision = self
            .store
            .take_rate(bucket, self.limits.rate(limit), self.clock.now_us())
            .await?;
        self.refuse_if_limited(bucket, decision)
    }

    fn refuse_if_limited(&self, bucket: &Bucket, decision: RateDecision) -> Result<(), Error> {
        if decision.allowed {
            return Ok(());
        }
        let limit = bucket.limit();
        self.metrics
            .rate_limited
            .with_label_values(&[limit.metric_label()])
            .inc();
        Err(Error::RateLimited {
            limit,
            retry_after_secs: decision.retry_after_ms.div_ceil(1000),
        })
    }

    /// Is the relay ready to serve: not shutting down, and the store answers?
    pub async fn ready(&self) -> Result<(), Error> {
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        self.store.ping().await?;
        Ok(())
    }

    /// The Prometheus text exposition, with the long-poll waiters gauge read now and the store
    /// pinged (so `approvd_store_up` is current even when no request has used the store).
    pub async fn metrics_text(&self) -> String {
        // The outcome lands in `approvd_store_up` (the store is metered).
        let _ = self.store.ping().await;
        let waiters = i64::try_from(self.store.notifier().waiters()).unwrap_or(i64::MAX);
        self.metrics.longpoll_waiters.set(waiters);
        if let Some(sent) = self.store.round_trips() {
            // One scrape at a time brings the counter up to date (two would add the same gap).
            static UPDATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _updating = UPDATING
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let counted = self.metrics.store_round_trips.get();
            self.metrics
                .store_round_trips
                .inc_by(sent.saturating_sub(counted));
        }
        self.metrics.render()
    }

    /// Wait up to `wait` (capped by `--max-wait-secs`) for `read` to produce a value,
    /// re-reading whenever `topic` is notified.
    ///
    /// The waiter is registered *before* each read, so a write between the read and the wait is
    /// never missed. `read` may end the poll early with an error (e.g. expired). At the deadline
    /// it reads once more and returns that (`None`: nothing yet). Ends with
    /// [`Error::ShuttingDown`] when the relay shuts down. Dropping the future (client gone) drops
    /// the waiter at once.
    async fn long_poll<T, F, Fut>(
        &self,
        topic: Topic,
        wait: Duration,
        mut read: F,
    ) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        self.long_poll_until(topic, wait, || {
            let reading = read();
            async move { Ok((reading.await?, None)) }
        })
        .await
    }

    /// [`Deps::long_poll`] whose `read` also says when the state will change by itself (unix s,
    /// e.g. a challenge's expiry): the poll then wakes by that time (plus a second) to read
    /// again, however long `wait` is.
    async fn long_poll_until<T, F, Fut>(
        &self,
        topic: Topic,
        wait: Duration,
        mut read: F,
    ) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Option<T>, Option<u64>), Error>>,
    {
        let wait = wait.min(self.limits.max_wait);
        let mut deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut watch = if wait.is_zero() {
                None
            } else {
                Some(self.store.watch(topic.clone()).await?)
            };
            let (value, changes_at) = read().await?;
            if value.is_some() {
                return Ok(value);
            }
            let Some(watch) = watch.as_mut() else {
                return Ok(None);
            };
            if let Some(changes_at) = changes_at {
                let after = Duration::from_secs(changes_at.saturating_sub(self.clock.now()) + 1);
                deadline = deadline.min(tokio::time::Instant::now() + after);
            }
            tokio::select! {
                wake = watch.changed() => {
                    let source = wake.source.label();
                    self.metrics.longpoll_wakeups.with_label_values(&[source]).inc();
                    let latency_us = unix_now_us().saturating_sub(wake.written_us);
                    self.metrics
                        .wake_latency
                        .with_label_values(&[source])
                        .observe(latency_us as f64 / 1e6);
                }
                // One last read: state can change with time alone (a challenge expiring).
                () = tokio::time::sleep_until(deadline) => return Ok(read().await?.0),
                () = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
            }
        }
    }
}

/// Verify a signed protocol message: the one place a bad signature becomes an error.
/// `field` names the signature in the request, `signer` the key it must verify under.
fn check_signature<M: SignedMessage>(
    message: &M,
    key: &PublicKey,
    sig: &Sig,
    field: impl Into<String>,
    signer: &str,
) -> Result<(), Error> {
    message
        .verify(key, sig)
        .map_err(|_| Error::InvalidSignature {
            field: field.into(),
            detail: format!(
                "the {} signature does not verify under {signer}",
                M::TAG.as_str()
            ),
        })
}

#[cfg(test)]
pub(crate) mod testing {
    //! A [`Deps`] on the memory store with a fixed clock and a log or recording push sender, for
    //! use-case unit tests that need no process or socket.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use approvd_proto::wire::PushRegistration;

    use super::Deps;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use crate::push::{
        DispatchLimits, Dispatcher, LogSender, PushMessage, PushResult, PushRoutes, PushSender,
    };
    use crate::push_handle::HandleKeys;
    use crate::store::MemoryStore;

    /// A clock the test sets (unix µs).
    #[derive(Debug, Default)]
    pub struct FixedClock(pub AtomicU64);

    impl FixedClock {
        pub fn advance_secs(&self, seconds: u64) {
            self.0.fetch_add(seconds * 1_000_000, Ordering::SeqCst);
        }
    }

    impl Clock for FixedClock {
        fn now_us(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// A push provider that records what it is asked to send and answers `result`.
    #[derive(Debug)]
    pub struct RecordingSender {
        pub result: PushResult,
        /// (token, message) of every push, in order.
        pub sent: Mutex<Vec<(String, PushMessage)>>,
    }

    impl RecordingSender {
        pub fn answering(result: PushResult) -> Arc<Self> {
            Arc::new(Self {
                result,
                sent: Mutex::new(Vec::new()),
            })
        }

        /// The pushes sent so far, once the background ones had a moment to run.
        pub async fn sent(&self) -> Vec<(String, PushMessage)> {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            self.sent.lock().expect("recorder").clone()
        }
    }

    #[async_trait::async_trait]
    impl PushSender for RecordingSender {
        fn name(&self) -> &'static str {
            "recording"
        }

        async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult {
            self.sent
                .lock()
                .expect("recorder")
                .push((registration.token.clone(), *message));
            self.result.clone()
        }
    }

    /// Dependencies with the default limits, at unix time `now`, pushing to the log.
    pub fn deps(now: u64) -> (Deps, Arc<FixedClock>) {
        deps_pushing_to(now, Arc::new(LogSender))
    }

    /// Dependencies with the default limits, at unix time `now`, pushing through `sender`.
    pub fn deps_pushing_to(now: u64, sender: Arc<dyn PushSender>) -> (Deps, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock(AtomicU64::new(now * 1_000_000)));
        let store: Arc<dyn crate::store::Store> = Arc::new(MemoryStore::new());
        let metrics = Metrics::new();
        let config = Config::defaults();
        let keys = HandleKeys::parse("test", &HandleKeys::generate_file_text()).expect("keys");
        let push = Dispatcher::new(
            PushRoutes::all(sender),
            Arc::clone(&store),
            metrics.clone(),
            clock.clone(),
            DispatchLimits {
                budget: config.push.budget,
                mailbox_ttl: super::mailbox::MAILBOX_TTL,
                in_flight: config.push.in_flight,
            },
        );
        let deps = Deps {
            store,
            handles: keys,
            push,
            metrics,
            clock: clock.clone(),
            limits: config.limits,
            webpush: None,
            shutdown: tokio_util::sync::CancellationToken::new(),
        };
        (deps, clock)
    }
}

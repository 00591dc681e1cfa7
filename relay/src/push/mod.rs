//! Push delivery: the [`PushSender`] trait every provider implements, the payload (only
//! `{v, cid}`), and the [`Dispatcher`] that sends to a challenge's targets concurrently within a
//! time budget, through local credentials or an upstream relay. Handlers reach APNs/FCM only
//! through this module.

pub mod apns;
pub mod fcm;
pub mod log;
pub mod retry;
pub mod upstream;
pub mod webpush;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use approvd_proto::wire::PushKind;
use approvd_proto::wire::{Delivery, Notice, PushProvider, PushRegistration};
use approvd_proto::{Cid, DeviceId, NasId};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Store;

pub use log::LogSender;

/// What a push says: only the challenge id (and, for a dismissal, that it is one). The phone
/// fetches everything else from its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushMessage {
    pub cid: Cid,
    /// Unix time after which the push is pointless (providers drop it then).
    pub expires: u64,
    pub kind: PushKind,
}

impl PushMessage {
    /// The data every provider carries: `{"v": 1, "cid": "<base64url>"}`, plus `"dismiss": 1`
    /// for a dismissal.
    pub fn data(&self) -> serde_json::Value {
        match self.kind {
            PushKind::Alert => serde_json::json!({ "v": 1, "cid": self.cid }),
            PushKind::Dismiss => serde_json::json!({ "v": 1, "cid": self.cid, "dismiss": 1 }),
        }
    }
}

/// How one push attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    /// Accepted by the provider.
    Delivered,
    /// Not sent: the development sender only logged it.
    Logged,
    /// The provider says the token is dead.
    Gone,
    /// Not delivered; `alarm` marks configuration/credential trouble an operator must fix.
    Failed { reason: String, alarm: bool },
}

impl PushResult {
    /// The delivery reported to the NAS.
    pub fn delivery(&self) -> Delivery {
        match self {
            PushResult::Delivered => Delivery::Pushed,
            PushResult::Logged => Delivery::Logged,
            PushResult::Gone => Delivery::Gone,
            PushResult::Failed { .. } => Delivery::Failed,
        }
    }

    /// Every `result` label of `approvd_push_total`.
    pub const LABELS: [&'static str; 5] =
        ["delivered", "logged", "gone", "failed_config", "failed"];

    pub fn label(&self) -> &'static str {
        match self {
            PushResult::Delivered => "delivered",
            PushResult::Logged => "logged",
            PushResult::Gone => "gone",
            PushResult::Failed { alarm: true, .. } => "failed_config",
            PushResult::Failed { alarm: false, .. } => "failed",
        }
    }
}

/// A provider client's error with its causes but without the URL: the URL is long and
/// repeated, and for Web Push it is the endpoint, a capability to push to that browser.
pub(crate) fn describe_http_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
    .to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// One push provider.
#[async_trait::async_trait]
pub trait PushSender: Send + Sync + std::fmt::Debug {
    /// Short name for logs and metrics (`apns`, `fcm`, `log`).
    fn name(&self) -> &'static str;
    /// Send `message` to `registration`. Must return by `message.expires` at the latest.
    async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult;
}

/// One target to push to.
#[derive(Debug, Clone)]
pub struct PushJob {
    pub device_id: DeviceId,
    pub registration: PushRegistration,
}

/// A sender and the label of the credential it pushes with (for metrics and logs).
#[derive(Debug, Clone)]
struct Route {
    sender: Arc<dyn PushSender>,
    credential: Arc<str>,
}

/// Which sender serves which app: `(provider, topic)` → sender; then the upstream relay, if
/// any; then an optional fallback.
#[derive(Debug, Clone, Default)]
pub struct PushRoutes {
    routes: HashMap<(PushProvider, String), Route>,
    /// Serves every topic without a local credential by forwarding it to another relay
    /// (`--push-upstream`).
    upstream: Option<Route>,
    /// Serves every unrouted topic (the development log sender); `None` in production, where
    /// an unknown topic is a configuration alarm.
    fallback: Option<Arc<dyn PushSender>>,
}

impl PushRoutes {
    /// Everything goes to `sender` (development: log only).
    pub fn all(sender: Arc<dyn PushSender>) -> Self {
        Self {
            routes: HashMap::new(),
            upstream: None,
            fallback: Some(sender),
        }
    }

    /// Send pushes for `topic` of `provider` through `sender`, which uses the credential
    /// labelled `credential`.
    pub fn route(
        &mut self,
        provider: PushProvider,
        topic: &str,
        sender: Arc<dyn PushSender>,
        credential: &str,
    ) {
        let route = Route {
            sender,
            credential: Arc::from(credential),
        };
        self.routes.insert((provider, topic.to_owned()), route);
    }

    /// Forward every topic that has no local credential through `sender` (the upstream relay).
    pub fn forward_to(&mut self, sender: Arc<dyn PushSender>) {
        self.upstream = Some(Route {
            credential: Arc::from(sender.name()),
            sender,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.upstream.is_none() && self.fallback.is_none()
    }

    /// The sender for a registration and its credential's label (`None`: no credential serves
    /// its topic).
    pub fn sender(
        &self,
        registration: &PushRegistration,
    ) -> Option<(Arc<dyn PushSender>, Arc<str>)> {
        self.local(registration).or_else(|| {
            self.upstream
                .as_ref()
                .map(|route| (Arc::clone(&route.sender), Arc::clone(&route.credential)))
        })
    }

    /// The sender for a registration on this relay's own credentials (or the development log
    /// sender), never the upstream: what a push forwarded to this relay uses, so two relays
    /// that name each other upstream cannot pass a push back and forth.
    fn local(&self, registration: &PushRegistration) -> Option<(Arc<dyn PushSender>, Arc<str>)> {
        match self
            .routes
            .get(&(registration.provider, registration.topic.clone()))
        {
            Some(route) => Some((Arc::clone(&route.sender), Arc::clone(&route.credential))),
            None if self.upstream.is_some() => None,
            None => self
                .fallback
                .as_ref()
                .map(|sender| (Arc::clone(sender), Arc::from(sender.name()))),
        }
    }
}

/// Limits of the [`Dispatcher`].
#[derive(Debug, Clone, Copy)]
pub struct DispatchLimits {
    /// How long a create request waits for push results.
    pub budget: Duration,
    /// How long a `push_gone` notice lives.
    pub mailbox_ttl: Duration,
    /// Pushes in flight at once.
    pub in_flight: usize,
}

/// Runs pushes for challenges: concurrently, within a budget, under a global in-flight limit.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    routes: PushRoutes,
    /// Where dead tokens are reported (as `push_gone` mailbox notices).
    store: Arc<dyn Store>,
    metrics: Metrics,
    /// Dates `push_gone` notices: when the dead token was learned.
    clock: Arc<dyn Clock>,
    limits: DispatchLimits,
    /// Bounds pushes in flight across all requests, so a burst cannot open unbounded
    /// connections to APNs/FCM.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Dispatcher {
    pub fn new(
        routes: PushRoutes,
        store: Arc<dyn Store>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        limits: DispatchLimits,
    ) -> Self {
        Self {
            routes,
            store,
            metrics,
            clock,
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.in_flight.max(1))),
            limits,
        }
    }

    /// Send every job concurrently; wait at most `budget` for results. Jobs still running then
    /// are reported `pending` and finish in the background. A dead token also becomes a
    /// `push_gone` notice in the NAS's mailbox, whenever it is learned.
    pub async fn dispatch(
        &self,
        jobs: Vec<PushJob>,
        message: PushMessage,
        nas_id: NasId,
    ) -> Vec<(DeviceId, Delivery)> {
        let budget = self.limits.budget;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut pending: Vec<DeviceId> = Vec::with_capacity(jobs.len());
        for job in jobs {
            pending.push(job.device_id);
            self.spawn(job, message, nas_id, Some(sender.clone()));
        }
        drop(sender);
        let mut outcomes: Vec<(DeviceId, Delivery)> = Vec::with_capacity(pending.len());
        let deadline = tokio::time::Instant::now() + budget;
        while outcomes.len() < pending.len() {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) | Err(_) => break,
            }
        }
        for device_id in pending {
            if !outcomes.iter().any(|(done, _)| *done == device_id) {
                outcomes.push((device_id, Delivery::Pending));
            }
        }
        outcomes
    }

    /// Send dismissals in the background (nobody waits for them).
    pub fn dismiss(&self, jobs: Vec<PushJob>, message: PushMessage, nas_id: NasId) {
        for job in jobs {
            self.spawn(job, message, nas_id, None);
        }
    }

    /// Send one push forwarded by a downstream relay, on this relay's own credentials only
    /// (never on to its own upstream), under the same in-flight limit and metrics. No mailbox
    /// notice: the downstream relay posts it to its NAS when it learns the token is gone.
    pub async fn send_forwarded(
        &self,
        registration: &PushRegistration,
        message: &PushMessage,
    ) -> PushResult {
        let route = self.routes.local(registration);
        send(route, &self.in_flight, &self.metrics, registration, message).await
    }

    /// Send one push in a task; report its delivery on `results` if given. A dead token also
    /// becomes a `push_gone` notice in the NAS's mailbox.
    fn spawn(
        &self,
        job: PushJob,
        message: PushMessage,
        nas_id: NasId,
        results: Option<tokio::sync::mpsc::UnboundedSender<(DeviceId, Delivery)>>,
    ) {
        let route = self.routes.sender(&job.registration);
        let in_flight = Arc::clone(&self.in_flight);
        let store = Arc::clone(&self.store);
        let metrics = self.metrics.clone();
        let clock = Arc::clone(&self.clock);
        let mailbox_ttl = self.limits.mailbox_ttl;
        tokio::spawn(async move {
            let result = send(route, &in_flight, &metrics, &job.registration, &message).await;
            if result == PushResult::Gone {
                let notice = Notice::PushGone {
                    device_id: job.device_id,
                };
                let at = clock.now();
                if let Err(error) = store.post_notice(&nas_id, &notice, at, mailbox_ttl).await {
                    tracing::warn!(%error, "could not record a dead push token");
                }
            }
            if let Some(results) = results {
                // The receiver is gone when the budget ran out: the result is then only logged.
                let _ = results.send((job.device_id, result.delivery()));
            }
        });
    }
}

/// Send one push through `route` (`None`: no credential serves its topic, a configuration
/// alarm) within the in-flight limit; count and log its result.
async fn send(
    route: Option<(Arc<dyn PushSender>, Arc<str>)>,
    in_flight: &tokio::sync::Semaphore,
    metrics: &Metrics,
    registration: &PushRegistration,
    message: &PushMessage,
) -> PushResult {
    let (name, credential, result) = match route {
        Some((sender, credential)) => {
            // The semaphore is never closed.
            let _permit = in_flight.acquire().await;
            let started = std::time::Instant::now();
            let result = sender.send(registration, message).await;
            metrics
                .push_duration
                .with_label_values(&[sender.name()])
                .observe(started.elapsed().as_secs_f64());
            (sender.name(), credential, result)
        }
        None => (
            "none",
            Arc::from("none"),
            PushResult::Failed {
                reason: format!(
                    "no credentials for {:?} topic `{}`: add it to the relay's push configuration",
                    registration.provider, registration.topic
                ),
                alarm: true,
            },
        ),
    };
    metrics
        .pushes
        .with_label_values(&[name, &credential, result.label()])
        .inc();
    if let PushResult::Failed { reason, alarm } = &result {
        tracing::warn!(provider = name, credential = &*credential, %reason, alarm, "push failed");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(topic: &str) -> PushRegistration {
        PushRegistration {
            provider: PushProvider::Fcm,
            token: "t".to_owned(),
            topic: topic.to_owned(),
            p256dh: None,
            auth: None,
        }
    }

    #[test]
    fn local_credentials_first_then_the_upstream_but_never_upstream_for_a_forwarded_push() {
        let mut routes = PushRoutes::default();
        routes.route(PushProvider::Fcm, "local.app", Arc::new(LogSender), "local");
        routes.forward_to(Arc::new(LogSender));
        let label = |found: Option<(Arc<dyn PushSender>, Arc<str>)>| {
            found.map(|(_, credential)| credential.to_string())
        };
        assert_eq!(
            label(routes.sender(&registration("local.app"))).as_deref(),
            Some("local")
        );
        assert_eq!(
            label(routes.sender(&registration("other.app"))).as_deref(),
            Some("log")
        );
        assert_eq!(
            label(routes.local(&registration("local.app"))).as_deref(),
            Some("local")
        );
        // What a downstream forwarded is pushed here or not at all.
        assert_eq!(label(routes.local(&registration("other.app"))), None);
        // Without an upstream, the development fallback serves every topic.
        let development = PushRoutes::all(Arc::new(LogSender));
        assert_eq!(
            label(development.local(&registration("any.app"))).as_deref(),
            Some("log")
        );
    }
}

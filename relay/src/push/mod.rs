//! Push delivery: the [`PushSender`] trait every provider implements, the payload (only
//! `{v, cid}`), and the [`Dispatcher`] that sends to a challenge's targets concurrently within a
//! time budget. Handlers reach APNs/FCM only through this module.

pub mod apns;
pub mod fcm;
pub mod log;
pub mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use approvd_proto::wire::{Delivery, Notice, PushProvider, PushRegistration};
use approvd_proto::{Cid, DeviceId, NasId};

use crate::metrics::Metrics;
use crate::store::Store;

pub use log::LogSender;

/// What a push says: only the challenge id. The phone fetches everything else from its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushMessage {
    pub cid: Cid,
    /// Unix time after which the push is pointless (providers drop it then).
    pub expires: u64,
}

impl PushMessage {
    /// The data every provider carries: `{"v": 1, "cid": "<base64url>"}`.
    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({ "v": 1, "cid": self.cid })
    }
}

/// How one push attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    /// Accepted by the provider.
    Delivered,
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
            PushResult::Gone => Delivery::Gone,
            PushResult::Failed { .. } => Delivery::Failed,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            PushResult::Delivered => "delivered",
            PushResult::Gone => "gone",
            PushResult::Failed { alarm: true, .. } => "failed_config",
            PushResult::Failed { alarm: false, .. } => "failed",
        }
    }
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

/// Picks the sender for each provider and runs pushes.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    senders: HashMap<PushProvider, Arc<dyn PushSender>>,
    /// Where dead tokens are reported (as `push_gone` mailbox notices).
    store: Arc<dyn Store>,
    metrics: Metrics,
    /// How long a create request waits for push results.
    budget: Duration,
    /// How long a `push_gone` notice lives.
    mailbox_ttl: Duration,
}

impl Dispatcher {
    /// Every provider handled by `sender` (the development setup: log only).
    pub fn all(
        sender: Arc<dyn PushSender>,
        store: Arc<dyn Store>,
        metrics: Metrics,
        budget: Duration,
        mailbox_ttl: Duration,
    ) -> Self {
        let senders = [PushProvider::Apns, PushProvider::Fcm]
            .into_iter()
            .map(|provider| (provider, Arc::clone(&sender)))
            .collect();
        Self {
            senders,
            store,
            metrics,
            budget,
            mailbox_ttl,
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
        let budget = self.budget;
        let mailbox_ttl = self.mailbox_ttl;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut pending: Vec<DeviceId> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Some(provider_sender) = self.senders.get(&job.registration.provider).cloned()
            else {
                continue;
            };
            pending.push(job.device_id);
            let results = sender.clone();
            let store = Arc::clone(&self.store);
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let result = provider_sender.send(&job.registration, &message).await;
                metrics
                    .pushes
                    .with_label_values(&[provider_sender.name(), result.label()])
                    .inc();
                if let PushResult::Failed { reason, alarm } = &result {
                    tracing::warn!(provider = provider_sender.name(), %reason, alarm, "push failed");
                }
                if result == PushResult::Gone {
                    let notice = Notice::PushGone {
                        device_id: job.device_id,
                    };
                    let at = message.expires.saturating_sub(60);
                    if let Err(error) = store.post_notice(&nas_id, &notice, at, mailbox_ttl).await {
                        tracing::warn!(%error, "could not record a dead push token");
                    }
                }
                // The receiver is gone when the budget ran out: the result is then only logged.
                let _ = results.send((job.device_id, result.delivery()));
            });
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
}

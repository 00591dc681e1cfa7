//! [`ApnsSender`]: Apple Push Notification service through `a2` (token auth from a `.p8` key,
//! ring crypto, one long-lived HTTP/2 client per environment). Owns the payload (a generic
//! localized alert with `mutable-content`, custom keys `v` and `cid` only; push type alert,
//! priority 10, expiration = challenge expiry, collapse id = cid) and the classification of
//! APNs answers. `a2` cannot be pointed at a mock, so the client sits behind [`ApnsClient`] and
//! tests hand-build `a2::Response`s.

use std::sync::Arc;

use a2::request::notification::{
    CollapseId, DefaultNotificationBuilder, NotificationBuilder as _, NotificationOptions,
    Priority, PushType,
};
use a2::request::payload::Payload;
use a2::response::ErrorReason;
use approvd_proto::wire::PushRegistration;

use super::retry::{Attempt, RetryPolicy};
use super::{PushKind, PushMessage, PushResult, PushSender};

/// The localization key of the alert; the app shows its own text for it.
pub const LOC_KEY: &str = "APPROVD_SIGNIN_REQUEST";

/// What the sender needs from an APNs client.
#[async_trait::async_trait]
pub trait ApnsClient: Send + Sync + std::fmt::Debug {
    async fn send(&self, payload: Payload<'_>) -> Result<a2::Response, a2::Error>;
}

/// The real client.
pub struct A2Client(pub a2::Client);

impl std::fmt::Debug for A2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("A2Client")
    }
}

#[async_trait::async_trait]
impl ApnsClient for A2Client {
    async fn send(&self, payload: Payload<'_>) -> Result<a2::Response, a2::Error> {
        self.0.send(payload).await
    }
}

/// One environment's client settings; the configured request timeout reaches a2 here.
fn client_config(sandbox: bool, request_timeout_secs: u64) -> a2::ClientConfig {
    a2::ClientConfig {
        endpoint: if sandbox {
            a2::Endpoint::Sandbox
        } else {
            a2::Endpoint::Production
        },
        request_timeout_secs: Some(request_timeout_secs.max(1)),
        // Keep the HTTP/2 connection to APNs open between bursts.
        pool_idle_timeout_secs: Some(600),
    }
}

impl A2Client {
    /// Token-authenticated client for one environment; `request_timeout` reaches a2's client.
    pub fn token(
        p8_pem: &[u8],
        key_id: &str,
        team_id: &str,
        sandbox: bool,
        request_timeout_secs: u64,
    ) -> Result<Self, a2::Error> {
        a2::Client::token(
            p8_pem,
            key_id,
            team_id,
            client_config(sandbox, request_timeout_secs),
        )
        .map(Self)
    }

    /// Certificate-authenticated client for one environment.
    pub fn certificate(
        cert_pem: &[u8],
        key_pem: &[u8],
        sandbox: bool,
        request_timeout_secs: u64,
    ) -> Result<Self, a2::Error> {
        a2::Client::certificate_parts(
            cert_pem,
            key_pem,
            client_config(sandbox, request_timeout_secs),
        )
        .map(Self)
    }
}

/// The notification for one challenge: an alert, or a silent background dismissal.
pub fn build_payload<'a>(
    token: &'a str,
    topic: &'a str,
    cid: &'a str,
    expires: u64,
    kind: PushKind,
) -> Result<Payload<'a>, a2::Error> {
    let (push_type, priority) = match kind {
        PushKind::Alert => (PushType::Alert, Priority::High),
        // Apple requires priority 5 for background pushes.
        PushKind::Dismiss => (PushType::Background, Priority::Normal),
    };
    let options = NotificationOptions {
        apns_push_type: Some(push_type),
        apns_priority: Some(priority),
        apns_expiration: Some(expires),
        apns_topic: Some(topic),
        apns_collapse_id: Some(CollapseId::new(cid)?),
        ..Default::default()
    };
    let builder = DefaultNotificationBuilder::new();
    let builder = match kind {
        PushKind::Alert => builder.set_loc_key(LOC_KEY).set_mutable_content(),
        PushKind::Dismiss => builder.set_content_available(),
    };
    let mut payload = builder.build(token, options);
    payload.add_custom_data("v", &1)?;
    payload.add_custom_data("cid", &cid)?;
    if kind == PushKind::Dismiss {
        payload.add_custom_data("dismiss", &1)?;
    }
    Ok(payload)
}

/// APNs's answer → what to do (one table; see ARCHITECTURE.md). A 410 is a dead token whatever
/// the body says; token/topic/certificate trouble is an operator alarm, never `gone` (one bad
/// configuration must not make the NAS forget every phone).
pub fn classify(result: Result<a2::Response, a2::Error>) -> Attempt {
    let response = match result {
        Ok(response) if response.code == 200 => return Attempt::Done(PushResult::Delivered),
        Ok(response) | Err(a2::Error::ResponseError(response)) => response,
        Err(error) => {
            return Attempt::Retry {
                after: None,
                reason: format!("APNs request failed: {error}"),
            }
        }
    };
    let reason = response.error.as_ref().map(|body| &body.reason);
    let described = format!("APNs answered {} ({:?})", response.code, reason);
    match (response.code, reason) {
        (410, _) => Attempt::Done(PushResult::Gone),
        (429 | 500 | 503, _) => Attempt::Retry {
            after: None,
            reason: described,
        },
        (403, _)
        | (
            400,
            Some(
                ErrorReason::BadDeviceToken
                | ErrorReason::DeviceTokenNotForTopic
                | ErrorReason::TopicDisallowed
                | ErrorReason::MissingTopic,
            ),
        ) => Attempt::Done(PushResult::Failed {
            reason: described,
            alarm: true,
        }),
        _ => Attempt::Done(PushResult::Failed {
            reason: described,
            alarm: false,
        }),
    }
}

/// Sends pushes through APNs.
#[derive(Debug, Clone)]
pub struct ApnsSender {
    client: Arc<dyn ApnsClient>,
    retry: RetryPolicy,
}

impl ApnsSender {
    pub fn new(client: Arc<dyn ApnsClient>, retry: RetryPolicy) -> Self {
        Self { client, retry }
    }
}

#[async_trait::async_trait]
impl PushSender for ApnsSender {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult {
        let cid = message.cid.to_string();
        self.retry
            .run(message.expires, || async {
                match build_payload(
                    &registration.token,
                    &registration.topic,
                    &cid,
                    message.expires,
                    message.kind,
                ) {
                    Ok(payload) => classify(self.client.send(payload).await),
                    Err(error) => Attempt::Done(PushResult::Failed {
                        reason: format!("cannot build the APNs payload: {error}"),
                        alarm: false,
                    }),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use a2::response::{ErrorBody, Response};
    use std::sync::Mutex;

    fn response(code: u16, reason: Option<ErrorReason>) -> Result<a2::Response, a2::Error> {
        let response = Response {
            code,
            apns_id: None,
            error: reason.map(|reason| ErrorBody {
                reason,
                timestamp: Some(1_700_000_000),
            }),
        };
        if code == 200 {
            Ok(response)
        } else {
            Err(a2::Error::ResponseError(response))
        }
    }

    #[test]
    fn every_answer_is_classified_once() {
        assert_eq!(
            classify(response(200, None)),
            Attempt::Done(PushResult::Delivered)
        );
        assert_eq!(
            classify(response(410, Some(ErrorReason::Unregistered))),
            Attempt::Done(PushResult::Gone)
        );
        // An unknown reason parses as no body: the 410 alone decides.
        assert_eq!(
            classify(response(410, None)),
            Attempt::Done(PushResult::Gone)
        );
        for reason in [
            ErrorReason::BadDeviceToken,
            ErrorReason::DeviceTokenNotForTopic,
            ErrorReason::TopicDisallowed,
        ] {
            assert!(matches!(
                classify(response(400, Some(reason))),
                Attempt::Done(PushResult::Failed { alarm: true, .. })
            ));
        }
        assert!(matches!(
            classify(response(403, Some(ErrorReason::ExpiredProviderToken))),
            Attempt::Done(PushResult::Failed { alarm: true, .. })
        ));
        assert!(matches!(
            classify(response(400, Some(ErrorReason::PayloadEmpty))),
            Attempt::Done(PushResult::Failed { alarm: false, .. })
        ));
        for code in [429, 500, 503] {
            assert!(
                matches!(classify(response(code, None)), Attempt::Retry { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            classify(Err(a2::Error::RequestTimeout(5))),
            Attempt::Retry { .. }
        ));
    }

    #[test]
    fn the_payload_carries_only_v_and_cid_and_the_right_options() {
        let cid = "AAECAwQFBgcICQoLDA0ODw";
        let payload = build_payload(
            "00ff",
            "dev.approvd.app",
            cid,
            1_800_000_000,
            PushKind::Alert,
        )
        .expect("payload");
        let json: serde_json::Value = serde_json::from_str(
            &a2::request::payload::PayloadLike::to_json_string(&payload).expect("json"),
        )
        .expect("valid");
        assert_eq!(
            json,
            serde_json::json!({
                "aps": { "alert": { "loc-key": LOC_KEY }, "mutable-content": 1 },
                "v": 1,
                "cid": cid,
            })
        );
        let options = &payload.options;
        assert!(matches!(options.apns_push_type, Some(PushType::Alert)));
        assert!(matches!(options.apns_priority, Some(Priority::High)));
        assert_eq!(options.apns_expiration, Some(1_800_000_000));
        assert_eq!(options.apns_topic, Some("dev.approvd.app"));
        assert_eq!(
            options.apns_collapse_id.as_ref().map(|id| id.value),
            Some(cid)
        );
        assert_eq!(payload.device_token, "00ff");

        let dismiss = build_payload(
            "00ff",
            "dev.approvd.app",
            cid,
            1_800_000_000,
            PushKind::Dismiss,
        )
        .expect("payload");
        let json: serde_json::Value = serde_json::from_str(
            &a2::request::payload::PayloadLike::to_json_string(&dismiss).expect("json"),
        )
        .expect("valid");
        assert_eq!(
            json,
            // a2 writes `mutable-content: 0` (off) on every payload without it.
            serde_json::json!({"aps": {"content-available": 1, "mutable-content": 0}, "v": 1, "cid": cid, "dismiss": 1})
        );
        assert!(matches!(
            dismiss.options.apns_push_type,
            Some(PushType::Background)
        ));
        assert!(matches!(
            dismiss.options.apns_priority,
            Some(Priority::Normal)
        ));
    }

    /// Answers from a script, records payloads.
    #[derive(Debug, Default)]
    struct FakeApns {
        answers: Mutex<Vec<Result<a2::Response, a2::Error>>>,
        payloads: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl ApnsClient for FakeApns {
        async fn send(&self, payload: Payload<'_>) -> Result<a2::Response, a2::Error> {
            self.payloads
                .lock()
                .expect("lock")
                .push(a2::request::payload::PayloadLike::to_json_string(&payload).expect("json"));
            self.answers.lock().expect("lock").remove(0)
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_then_delivered() {
        let fake = Arc::new(FakeApns::default());
        *fake.answers.lock().expect("lock") = vec![
            response(429, Some(ErrorReason::TooManyRequests)),
            response(500, None),
            response(200, None),
        ];
        let sender = ApnsSender::new(
            fake.clone(),
            RetryPolicy {
                max_tries: 4,
                base_delay: std::time::Duration::from_millis(1),
                time_scale: 1.0,
                retries: None,
            },
        );
        let registration = PushRegistration {
            provider: approvd_proto::wire::PushProvider::Apns,
            token: "00ff".into(),
            topic: "t".into(),
            p256dh: None,
            auth: None,
        };
        let message = PushMessage {
            cid: approvd_proto::Cid([1; 16]),
            expires: u64::MAX / 2,
            kind: PushKind::Alert,
        };
        assert_eq!(
            sender.send(&registration, &message).await,
            PushResult::Delivered
        );
        assert_eq!(fake.payloads.lock().expect("lock").len(), 3);
    }

    /// Two Apple teams on one relay: each topic's pushes go through its own team's client,
    /// and the push metric names each credential by its label.
    #[tokio::test]
    async fn each_team_pushes_its_own_topics() {
        use crate::push::{DispatchLimits, Dispatcher, PushJob, PushRoutes};
        let acme = Arc::new(FakeApns::default());
        let globex = Arc::new(FakeApns::default());
        *acme.answers.lock().expect("lock") = vec![response(200, None), response(200, None)];
        *globex.answers.lock().expect("lock") = vec![response(200, None)];
        let mut routes = PushRoutes::default();
        for (client, topic, label) in [
            (&acme, "com.acme.approvd", "acme-ios"),
            (&globex, "com.globex.signin", "globex-ios"),
        ] {
            let client: Arc<dyn ApnsClient> = client.clone();
            let sender = Arc::new(ApnsSender::new(client, RetryPolicy::default()));
            routes.route(
                approvd_proto::wire::PushProvider::Apns,
                topic,
                sender,
                label,
            );
        }
        let metrics = crate::metrics::Metrics::new();
        let dispatcher = Dispatcher::new(
            routes,
            Arc::new(crate::store::MemoryStore::new()),
            metrics.clone(),
            Arc::new(crate::clock::SystemClock),
            DispatchLimits {
                budget: std::time::Duration::from_secs(5),
                mailbox_ttl: std::time::Duration::from_secs(60),
                in_flight: 8,
            },
        );
        let key = |seed: u8| {
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes()
        };
        let job = |seed: u8, topic: &str| PushJob {
            device_id: approvd_proto::DeviceId::from_bytes(&key(seed)).expect("a key"),
            registration: PushRegistration {
                provider: approvd_proto::wire::PushProvider::Apns,
                token: format!("{seed:02x}"),
                topic: topic.to_owned(),
                p256dh: None,
                auth: None,
            },
        };
        let message = PushMessage {
            cid: approvd_proto::Cid([2; 16]),
            expires: u64::MAX / 2,
            kind: PushKind::Alert,
        };
        let deliveries = dispatcher
            .dispatch(
                vec![
                    job(1, "com.acme.approvd"),
                    job(2, "com.acme.approvd"),
                    job(3, "com.globex.signin"),
                ],
                message,
                approvd_proto::NasId::from_bytes(&key(9)).expect("a key"),
            )
            .await;
        assert!(deliveries
            .iter()
            .all(|(_, delivery)| *delivery == approvd_proto::wire::Delivery::Pushed));
        assert_eq!(acme.payloads.lock().expect("lock").len(), 2);
        assert_eq!(globex.payloads.lock().expect("lock").len(), 1);
        let delivered = |label: &str| {
            metrics
                .pushes
                .with_label_values(&["apns", label, "delivered"])
                .get()
        };
        assert_eq!((delivered("acme-ios"), delivered("globex-ios")), (2, 1));
    }
}

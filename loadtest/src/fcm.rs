//! The local FCM HTTP v1 stand-in the relay pushes to: an OAuth token endpoint and
//! `messages:send`, served over HTTP/1.1 or HTTP/2 (prior knowledge) on one port. Each push
//! wakes the simulated phone that registered its token, the way a real FCM delivery wakes an
//! app, and is counted (and, for `fanout`, timed).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

/// The project id the relay's service account names (see `loadtest/fcm-service-account.json`).
pub const PROJECT: &str = "approvd-loadtest";
/// The app id (push topic) the simulated phones register with.
pub const APP: &str = "dev.approvd.loadtest";

/// One push as the mock saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub cid: String,
}

/// What the mock knows: who to wake per token, and what arrived.
#[derive(Debug, Default)]
pub struct MockState {
    phones: RwLock<HashMap<String, mpsc::UnboundedSender<String>>>,
    pub alerts: AtomicU64,
    pub dismissals: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub unknown_tokens: AtomicU64,
    pub malformed: AtomicU64,
    /// Alert arrivals, kept only when `record` is on (fanout).
    arrivals: Mutex<Option<Vec<Arrival>>>,
}

impl MockState {
    /// Wake `sender` with the challenge id of every alert push to `token`.
    pub fn register(&self, token: &str, sender: mpsc::UnboundedSender<String>) {
        self.phones
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(token.to_owned(), sender);
    }

    /// Start keeping every alert's arrival time (for send latencies).
    pub fn record(&self) {
        *self.arrivals() = Some(Vec::new());
    }

    /// The arrivals kept since [`MockState::record`].
    pub fn take_arrivals(&self) -> Vec<Arrival> {
        self.arrivals().take().unwrap_or_default()
    }

    fn arrivals(&self) -> std::sync::MutexGuard<'_, Option<Vec<Arrival>>> {
        self.arrivals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pushed(&self, body: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        let message = &value["message"];
        let (Some(token), Some(cid)) = (message["token"].as_str(), message["data"]["cid"].as_str())
        else {
            return false;
        };
        if message["data"]["dismiss"].as_str() == Some("1") {
            self.dismissals.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.alerts.fetch_add(1, Ordering::Relaxed);
        if let Some(arrivals) = self.arrivals().as_mut() {
            arrivals.push(Arrival {
                at: Instant::now(),
                cid: cid.to_owned(),
            });
        }
        let phones = self
            .phones
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match phones.get(token) {
            Some(phone) => {
                let _ = phone.send(cid.to_owned());
            }
            None => {
                self.unknown_tokens.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

/// A running mock.
#[derive(Debug)]
pub struct FcmMock {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl FcmMock {
    /// Listen on `addr` (port 0: any free port) and serve until the process ends.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| anyhow::anyhow!("the FCM mock cannot listen on {addr}: {error}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::default());
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, Arc::clone(&state))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state })
    }

    /// The base URL to give the relay (`--fcm-base-url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn json(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<MockState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let post = request.method() == hyper::Method::POST;
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let send_path = format!("/v1/projects/{PROJECT}/messages:send");
    Ok(match (post, path.as_str()) {
        (true, "/token") => {
            state.tokens_issued.fetch_add(1, Ordering::Relaxed);
            json(
                200,
                &serde_json::json!({"access_token": "loadtest", "expires_in": 3600}),
            )
        }
        (true, path) if path == send_path => {
            if state.pushed(&body) {
                json(
                    200,
                    &serde_json::json!({"name": format!("projects/{PROJECT}/messages/1")}),
                )
            } else {
                state.malformed.fetch_add(1, Ordering::Relaxed);
                json(
                    400,
                    &serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT"}}),
                )
            }
        }
        _ => json(
            404,
            &serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND"}}),
        ),
    })
}

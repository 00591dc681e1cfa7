//! The malicious relay's outward face: an HTTP proxy in front of a real relay that records every
//! exchange and lets a test rewrite any answer (body or status) before the NAS or phone SDK
//! sees it. Requests reach the real relay unchanged (they are signed; what a relay stores is
//! only ever seen by the other party through an answer, so rewriting answers is rewriting
//! everything the relay can say).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request and the answer the client got.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The route template from `ROUTES`, e.g. `GET /v1/challenges/{cid}/verdict`.
    pub route: String,
    /// The request body as the client sent it.
    pub request: Vec<u8>,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Exchange {
    /// The answer as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Rewrites one answer; returns whether it did (a rule that did not apply stays armed).
pub type Rewrite = Box<dyn FnMut(&mut Exchange) -> bool + Send>;

#[derive(Default)]
struct State {
    /// `(route, rewrite)`: the first armed rule for the route is applied once, then dropped.
    rules: Vec<(String, Rewrite)>,
    log: Vec<Exchange>,
}

/// A proxy URL for the SDK, forwarding to `relay_url`.
pub struct MaliciousRelay {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MaliciousRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `ROUTES` template `path` matches (`{…}` matches one segment).
fn route_of(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    approvd_relay::http::routes::ROUTES
        .iter()
        .find(|(route_method, template)| {
            let parts: Vec<&str> = template.split('/').collect();
            *route_method == method
                && parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
        .map_or_else(
            || format!("{method} {path}"),
            |(method, template)| format!("{method} {template}"),
        )
}

impl MaliciousRelay {
    pub async fn start(relay_url: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = relay_url.to_owned();
        let client = reqwest::Client::new();
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, client, upstream) =
                    (Arc::clone(&shared), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(
                            request,
                            Arc::clone(&state),
                            client.clone(),
                            upstream.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state, task }
    }

    /// Apply `rewrite` to the next answer on `route` (e.g. `GET /v1/inbox`).
    pub fn once(&self, route: &str, rewrite: impl FnMut(&mut Exchange) -> bool + Send + 'static) {
        self.state
            .lock()
            .expect("proxy state")
            .rules
            .push((route.to_owned(), Box::new(rewrite)));
    }

    /// Answer the next request on `route` with `status` and `body` (whatever the relay said).
    pub fn answer_once(&self, route: &str, status: u16, body: Vec<u8>) {
        self.once(route, move |exchange| {
            exchange.status = status;
            exchange.body = body.clone();
            true
        });
    }

    /// [`MaliciousRelay::answer_once`] with `value` as JSON and status 200.
    pub fn answer_json_once(&self, route: &str, value: &impl serde::Serialize) {
        self.answer_once(route, 200, serde_json::to_vec(value).expect("json"));
    }

    /// Drop the rules not applied yet.
    pub fn disarm(&self) {
        self.state.lock().expect("proxy state").rules.clear();
    }

    /// Every exchange on `route` so far, as the clients saw them.
    pub fn seen(&self, route: &str) -> Vec<Exchange> {
        self.state
            .lock()
            .expect("proxy state")
            .log
            .iter()
            .filter(|exchange| exchange.route == route)
            .cloned()
            .collect()
    }
}

async fn forward(
    request: hyper::Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |value| value.as_str())
        .to_owned();
    let method = parts.method.as_str().to_owned();
    let mut outgoing = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        format!("{upstream}{path_and_query}"),
    );
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let request = body.to_vec();
    let (status, body) = match outgoing.body(request.clone()).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap_or_default().to_vec())
        }
        Err(_) => (502, Vec::new()),
    };
    let mut exchange = Exchange {
        route: route_of(&method, parts.uri.path()),
        request,
        status,
        body,
    };
    {
        let mut state = state.lock().expect("proxy state");
        let rules = &mut state.rules;
        if let Some(index) = rules.iter().position(|(route, _)| *route == exchange.route) {
            if (rules[index].1)(&mut exchange) {
                drop(rules.remove(index));
            }
        }
        state.log.push(exchange.clone());
    }
    let content_type = if exchange.status >= 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    let response = hyper::Response::builder()
        .status(exchange.status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(exchange.body)))
        .expect("response");
    Ok(response)
}

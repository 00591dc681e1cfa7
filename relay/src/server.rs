//! Starting the relay: turn a [`Config`] into the application state (store, handle keys, push
//! senders, admission key), bind the listener, and run until a shutdown signal. `main` and the
//! in-process demo share this; nothing here parses flags or sets up logging.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::web;
use approvd_proto::wire::PushProvider;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{
    ApnsAuth, ApnsConfig, Config, FcmAccount, FcmConfig, HttpConfig, PushConfig, StoreConfig,
    UpstreamConfig, UpstreamToken, WebPushConfig,
};
use crate::http::auth::AUTH_FAILURE_REASONS;
use crate::http::tokens::{BearerJwt, RevokedTokens, TokenPurpose};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::push::apns::{A2Client, ApnsSender};
use crate::push::fcm::FcmSender;
use crate::push::retry::RetryPolicy;
use crate::push::upstream::{signing_key_from_pem, TokenSource, UpstreamSender};
use crate::push::webpush::{EndpointPolicy, Vapid, WebPushSender};
use crate::push::{DispatchLimits, Dispatcher, LogSender, PushResult, PushRoutes, PushSender};
use crate::push_handle::{HandleError, HandleKeys};
use crate::service::mailbox::MAILBOX_TTL;
use crate::service::Deps;
use crate::service::WebPushIdentity;
use crate::store::{
    ConnectError, Limit, MemoryStore, MeteredStore, RedisStore, RedisTarget, Store,
};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Handle(#[from] HandleError),
    #[error("--admission-key-file {path}: {message}")]
    Admission { path: String, message: String },
    #[error("--bind {address}: {error}")]
    Bind {
        address: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
    #[error("cannot reach the store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A push credential that turned out unusable when it was loaded.
    #[error("push credential `{label}`: {error}")]
    Credential {
        label: String,
        error: Box<StartError>,
    },
    /// An option that turned out wrong when it was used (a credential file, a store setting).
    #[error("--{option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
}

/// The target as it may be logged: a URL's password is replaced.
fn redacted(target: &RedisTarget) -> String {
    match target {
        RedisTarget::Standalone(url) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<credentials>@{host}"),
                None => url.clone(),
            },
            None => url.clone(),
        },
        RedisTarget::Cluster(nodes) => nodes.join(","),
        RedisTarget::Sentinel { nodes, master } => format!("{master} via {}", nodes.join(",")),
    }
}

/// A credential file, or an error naming its option.
fn read_file(option: &'static str, path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|error| StartError::Option {
        option,
        message: format!("{}: {error}", path.display()),
    })
}

/// The operator's token checks: admission of NAS calls and forwarding for downstream relays,
/// each on only with its key file, and never with one key for both (N-5: a purpose is in
/// every token, but one key for both still lets a leaked signing step mint either kind).
/// Startup says which are on.
fn operator_keys(config: &Config) -> Result<(Option<BearerJwt>, Option<BearerJwt>), StartError> {
    let admission_pem = match &config.admission_key_file {
        None => None,
        Some(path) => Some(std::fs::read(path).map_err(|error| StartError::Admission {
            path: path.display().to_string(),
            message: error.to_string(),
        })?),
    };
    let forward_pem = match &config.push.forward_key_file {
        None => None,
        Some(path) => Some(read_file("push-forward-key-file", path)?),
    };
    let revoked = match &config.revoked_tokens_file {
        None => None,
        Some(path) => {
            let list = RevokedTokens::open(path).map_err(|message| StartError::Option {
                option: "revoked-tokens-file",
                message,
            })?;
            tracing::info!(file = %path.display(), revoked = list.len(), "revoked tokens: list read");
            Some(Arc::new(list))
        }
    };
    if let (Some(admission), Some(forward)) = (&admission_pem, &forward_pem) {
        if pem_body(admission) == pem_body(forward) {
            return Err(StartError::Option {
                option: "push-forward-key-file",
                message: "is the same key as --admission-key-file: give forwarding tokens a \
                          key of their own (openssl genpkey -algorithm ed25519)"
                    .to_owned(),
            });
        }
    }
    let admission = match (&config.admission_key_file, admission_pem) {
        (Some(path), Some(pem)) => {
            let verifier = BearerJwt::from_pem(&pem, TokenPurpose::Admission, revoked.clone())
                .map_err(|message| StartError::Admission {
                    path: path.display().to_string(),
                    message,
                })?;
            tracing::info!(key = %path.display(), "admission: on, NAS calls need a token of purpose admission");
            Some(verifier)
        }
        _ => {
            tracing::info!(
                "admission: off, any NAS key may use this relay (--admission-key-file turns it on)"
            );
            None
        }
    };
    let forwarding = match (&config.push.forward_key_file, forward_pem) {
        (Some(path), Some(pem)) => {
            let verifier = BearerJwt::from_pem(&pem, TokenPurpose::Forward, revoked.clone())
                .map_err(|message| StartError::Option {
                    option: "push-forward-key-file",
                    message: format!("{}: {message}", path.display()),
                })?;
            tracing::info!(key = %path.display(), "push forwarding: on, for downstream relays at POST /v1/push/forward");
            Some(verifier)
        }
        _ => {
            tracing::info!("push forwarding: off");
            None
        }
    };
    Ok((admission, forwarding))
}

/// A PEM file's base64 body without its armour lines and whitespace: the same key in two
/// files compares equal however it was wrapped.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(|line| line.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// One APNs sender per environment (production, sandbox) that has topics, routed by topic.
fn apns_routes(
    apns: &ApnsConfig,
    push: &PushConfig,
    retry: RetryPolicy,
    routes: &mut PushRoutes,
) -> Result<(), StartError> {
    let (option, pem, cert_key) = match &apns.auth {
        ApnsAuth::Token { key_file, .. } => {
            ("apns-key-file", read_file("apns-key-file", key_file)?, None)
        }
        ApnsAuth::Certificate {
            cert_file,
            key_file,
        } => (
            "apns-cert-file",
            read_file("apns-cert-file", cert_file)?,
            Some(read_file("apns-cert-key-file", key_file)?),
        ),
    };
    let timeout_secs = push.timeout.as_secs().max(1);
    for (topics, sandbox) in [(&apns.topics, false), (&apns.sandbox_topics, true)] {
        if topics.is_empty() {
            continue;
        }
        let client = match (&apns.auth, &cert_key) {
            (
                ApnsAuth::Token {
                    key_id, team_id, ..
                },
                _,
            ) => A2Client::token(&pem, key_id, team_id, sandbox, timeout_secs)
                .map_err(|error| format!("not a usable APNs .p8 key: {error}")),
            (ApnsAuth::Certificate { .. }, Some(key)) => {
                A2Client::certificate(&pem, key, sandbox, timeout_secs)
                    .map_err(|error| format!("not a usable APNs certificate and key: {error}"))
            }
            (ApnsAuth::Certificate { .. }, None) => {
                Err("the certificate's key was not read".to_owned())
            }
        }
        .map_err(|message| StartError::Option { option, message })?;
        let sender: Arc<dyn PushSender> =
            Arc::new(ApnsSender::new(Arc::new(client), retry.clone()));
        for topic in topics {
            routes.route(PushProvider::Apns, topic, Arc::clone(&sender), &apns.label);
        }
        tracing::info!(credential = %apns.label, ?topics, sandbox, "push: APNs");
    }
    Ok(())
}

/// The FCM sender for the configured service account, routed by app id.
fn fcm_routes(
    fcm: &FcmConfig,
    push: &PushConfig,
    retry: RetryPolicy,
    routes: &mut PushRoutes,
) -> Result<(), StartError> {
    let (option, json) = match &fcm.account {
        FcmAccount::File(path) => (
            "fcm-service-account-file",
            std::fs::read_to_string(path).map_err(|error| StartError::Option {
                option: "fcm-service-account-file",
                message: format!("{}: {error}", path.display()),
            })?,
        ),
        FcmAccount::Inline(inline) => ("fcm-service-account", inline.0.clone()),
    };
    let sender = FcmSender::new(&json, &fcm.base_url, fcm.allow_http, push.timeout, retry)
        .map_err(|error| StartError::Option {
            option,
            message: error.to_string(),
        })?;
    let sender: Arc<dyn PushSender> = Arc::new(sender);
    for app_id in &fcm.app_ids {
        routes.route(PushProvider::Fcm, app_id, Arc::clone(&sender), &fcm.label);
    }
    tracing::info!(credential = %fcm.label, app_ids = ?fcm.app_ids, "push: FCM");
    Ok(())
}

/// The operator's VAPID identity from `--webpush-vapid-key-file` (the file is never logged).
fn vapid(webpush: &WebPushConfig) -> Result<Vapid, StartError> {
    let pem = read_file("webpush-vapid-key-file", &webpush.vapid_key_file)?;
    Vapid::from_pem(&pem, &webpush.subject).map_err(|message| StartError::Option {
        option: "webpush-vapid-key-file",
        message: format!("{}: {message}", webpush.vapid_key_file.display()),
    })
}

/// The endpoint policy of `--webpush-allowed-hosts` and `--webpush-allow-private`.
fn endpoint_policy(webpush: &WebPushConfig) -> EndpointPolicy {
    EndpointPolicy {
        allowed_hosts: webpush.allowed_hosts.clone(),
        allow_private: webpush.allow_private,
    }
}

/// What Web Push registrations are checked against, when Web Push is configured.
pub fn webpush_identity(push: &PushConfig) -> Result<Option<WebPushIdentity>, StartError> {
    let Some(webpush) = &push.webpush else {
        return Ok(None);
    };
    Ok(Some(WebPushIdentity {
        public_key: vapid(webpush)?.public_key().to_owned(),
        policy: endpoint_policy(webpush),
    }))
}

/// The Web Push sender: routed by the VAPID public key (a registration's `topic`).
fn webpush_routes(
    webpush: &WebPushConfig,
    push: &PushConfig,
    retry: RetryPolicy,
    routes: &mut PushRoutes,
) -> Result<(), StartError> {
    let vapid = vapid(webpush)?;
    let ca = match &webpush.ca_file {
        None => None,
        Some(path) => Some(read_file("webpush-ca-file", path)?),
    };
    let sender = WebPushSender::new(
        vapid,
        endpoint_policy(webpush),
        ca.as_deref(),
        push.timeout,
        retry,
    )
    .map_err(|message| StartError::Option {
        option: "webpush-vapid-key-file",
        message,
    })?;
    let public_key = sender.public_key().to_owned();
    routes.route(
        PushProvider::Webpush,
        &public_key,
        Arc::new(sender),
        "webpush",
    );
    tracing::info!(
        public_key = %public_key,
        allowed_hosts = webpush.allowed_hosts.len(),
        allow_private = webpush.allow_private,
        "push: Web Push"
    );
    Ok(())
}

/// The push routes the configuration asks for (log-only when it names no credentials).
pub fn push_routes(push: &PushConfig, metrics: &Metrics) -> Result<PushRoutes, StartError> {
    let retry = |provider: &str| RetryPolicy {
        max_tries: push.max_tries,
        retries: Some(metrics.push_retries.with_label_values(&[provider])),
        ..RetryPolicy::default()
    };
    let mut routes = PushRoutes::default();
    let named = |label: &str| {
        let label = label.to_owned();
        move |error: StartError| StartError::Credential {
            label,
            error: Box::new(error),
        }
    };
    for apns in &push.apns {
        apns_routes(apns, push, retry("apns"), &mut routes).map_err(named(&apns.label))?;
        metrics.create_push_series("apns", &apns.label, &PushResult::LABELS);
    }
    for fcm in &push.fcm {
        fcm_routes(fcm, push, retry("fcm"), &mut routes).map_err(named(&fcm.label))?;
        metrics.create_push_series("fcm", &fcm.label, &PushResult::LABELS);
    }
    if let Some(webpush) = &push.webpush {
        webpush_routes(webpush, push, retry("webpush"), &mut routes)?;
        metrics.create_push_series("webpush", "webpush", &PushResult::LABELS);
    }
    if let Some(upstream) = &push.upstream {
        routes.forward_to(upstream_sender(upstream, push)?);
        metrics.create_push_series("upstream", "upstream", &PushResult::LABELS);
        tracing::info!(url = %upstream.url, "push: apps without a credential here are forwarded upstream");
    }
    if routes.is_empty() {
        tracing::info!("push: no APNs/FCM credentials configured; pushes are logged, not sent");
        metrics.create_push_series("log", "log", &PushResult::LABELS);
        return Ok(PushRoutes::all(Arc::new(LogSender)));
    }
    Ok(routes)
}

/// The sender that forwards pushes to the upstream relay, with its token read.
fn upstream_sender(
    upstream: &UpstreamConfig,
    push: &PushConfig,
) -> Result<Arc<dyn PushSender>, StartError> {
    let token = match &upstream.token {
        UpstreamToken::File(path) => {
            TokenSource::file(path.clone()).map_err(|error| StartError::Option {
                option: "push-upstream-token-file",
                message: error.to_string(),
            })?
        }
        UpstreamToken::Inline(token) => {
            TokenSource::inline(&token.0).map_err(|error| StartError::Option {
                option: "push-upstream-token",
                message: error.to_string(),
            })?
        }
    };
    let pem = read_file("push-upstream-key-file", &upstream.key_file)?;
    let key = signing_key_from_pem(&pem).map_err(|message| StartError::Option {
        option: "push-upstream-key-file",
        message: format!("{}: {message}", upstream.key_file.display()),
    })?;
    let sender = UpstreamSender::new(&upstream.url, token, key, push.timeout).map_err(|error| {
        StartError::Option {
            option: "push-upstream",
            message: error.to_string(),
        }
    })?;
    Ok(Arc::new(sender))
}

/// Connect the configured store.
async fn connect_store(store: &StoreConfig) -> Result<Arc<dyn Store>, StartError> {
    Ok(match store {
        StoreConfig::Memory => {
            tracing::info!("store: embedded memory (one replica; state is lost on restart)");
            Arc::new(MemoryStore::new())
        }
        StoreConfig::Redis {
            target,
            options,
            timeout,
        } => {
            if matches!(target, RedisTarget::Standalone(url) if url.contains('@')) {
                tracing::warn!(
                    "--redis-url carries credentials: prefer --redis-username and \
                     --redis-password-file (a URL shows in process lists and shell history)"
                );
            }
            let store = RedisStore::connect_with(target, options, *timeout)
                .await
                .map_err(|error| match error {
                    ConnectError::Store(error) => StartError::Store(error),
                    ConnectError::Option { option, message } => {
                        StartError::Option { option, message }
                    }
                })?;
            tracing::info!(target = %redacted(target), tls = ?options.tls, "store: redis");
            Arc::new(store)
        }
    })
}

/// Build the application state from the configuration (connects to Redis when configured),
/// recording into `metrics` (created first, so logging can count into it too).
pub async fn build_state(config: &Config, metrics: Metrics) -> Result<AppState, StartError> {
    let (handles, generated) =
        HandleKeys::load_or_generate(config.handles.key_file.as_deref(), &config.handles.data_dir)?;
    if generated {
        tracing::warn!(
            path = %config.handles.data_dir.join("handle-keys").display(),
            "generated a new push-handle key; every replica must share one key file \
             (pass --handle-key-file in production)"
        );
    }
    let limits: Vec<&str> = Limit::ALL
        .iter()
        .map(|limit| limit.metric_label())
        .collect();
    metrics.create_series(&AUTH_FAILURE_REASONS, &limits);
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(
        connect_store(&config.store).await?,
        metrics.clone(),
    ));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let push = Dispatcher::new(
        push_routes(&config.push, &metrics)?,
        Arc::clone(&store),
        metrics.clone(),
        Arc::clone(&clock),
        DispatchLimits {
            budget: config.push.budget,
            mailbox_ttl: MAILBOX_TTL,
            in_flight: config.push.in_flight,
        },
    );
    let (admission, forwarding) = operator_keys(config)?;
    Ok(AppState {
        deps: Deps {
            store,
            handles,
            push,
            metrics,
            clock,
            limits: config.limits,
            webpush: webpush_identity(&config.push)?,
            shutdown: CancellationToken::new(),
        },
        trust_forwarded_for: config.http.trust_forwarded_for,
        body_timeout: config.http.request_timeout,
        admission,
        forwarding,
        access_log: config.log.access_log,
        log_client_ip: config.log.client_ip,
    })
}

/// Bind the configured address.
pub fn bind(config: &Config) -> Result<TcpListener, StartError> {
    let address = config.http.bind;
    let listener =
        TcpListener::bind(address).map_err(|error| StartError::Bind { address, error })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serve `state` on `listener` as `http` says until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    http: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    crate::http::run(listener, web::Data::new(state), http, shutdown).await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

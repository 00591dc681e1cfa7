//! Starting the relay: turn a [`Config`] into the application state (store, handle keys, push
//! senders, admission key), bind the listener, and run until a shutdown signal. `main` and the
//! in-process demo share this; nothing here parses flags or sets up logging.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::{Config, StoreKind};
use crate::handle::{HandleError, HandleKeys};
use crate::http::auth::Admission;
use crate::http::AppState;
use crate::metrics::Metrics;
use approvd_proto::wire::PushProvider;

use crate::config::list;
use crate::push::apns::{A2Client, ApnsSender};
use crate::push::fcm::FcmSender;
use crate::push::retry::RetryPolicy;
use crate::push::{DispatchLimits, Dispatcher, LogSender, PushRoutes, PushSender};
use crate::store::{MemoryStore, RedisStore, RedisTarget, Store};

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
    #[error("--{option}: {message}")]
    Push {
        option: &'static str,
        message: String,
    },
}

/// The push routes the configuration asks for (log-only when it names no credentials).
fn push_routes(config: &Config) -> Result<PushRoutes, StartError> {
    let timeout = std::time::Duration::from_millis(config.push_timeout_ms);
    let retry = RetryPolicy {
        max_tries: config.push_max_tries,
        ..RetryPolicy::default()
    };
    let mut routes = PushRoutes::default();
    let read = |option: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|error| StartError::Push {
            option,
            message: format!("{}: {error}", path.display()),
        })
    };
    let apns_credentials = match (
        &config.apns_key_file,
        &config.apns_cert_file,
        &config.apns_cert_key_file,
    ) {
        (Some(key), _, _) => Some(("apns-key-file", read("apns-key-file", key)?, None)),
        (None, Some(cert), Some(key)) => Some((
            "apns-cert-file",
            read("apns-cert-file", cert)?,
            Some(read("apns-cert-key-file", key)?),
        )),
        _ => None,
    };
    if let Some((option, pem, cert_key)) = apns_credentials {
        let key_id = config.apns_key_id.as_deref().unwrap_or_default();
        let team_id = config.apns_team_id.as_deref().unwrap_or_default();
        for (topics, sandbox) in [
            (list(&config.apns_topics), false),
            (list(&config.apns_sandbox_topics), true),
        ] {
            if topics.is_empty() {
                continue;
            }
            let timeout_secs = timeout.as_secs().max(1);
            let client = match &cert_key {
                None => A2Client::token(&pem, key_id, team_id, sandbox, timeout_secs)
                    .map_err(|error| format!("not a usable APNs .p8 key: {error}")),
                Some(key) => A2Client::certificate(&pem, key, sandbox, timeout_secs)
                    .map_err(|error| format!("not a usable APNs certificate and key: {error}")),
            }
            .map_err(|message| StartError::Push { option, message })?;
            let sender: Arc<dyn PushSender> = Arc::new(ApnsSender::new(Arc::new(client), retry));
            for topic in &topics {
                routes.route(PushProvider::Apns, topic, Arc::clone(&sender));
            }
            tracing::info!(?topics, sandbox, "push: APNs");
        }
    }
    let account = match (
        &config.fcm_service_account_file,
        &config.fcm_service_account,
    ) {
        (Some(path), _) => Some((
            "fcm-service-account-file",
            std::fs::read_to_string(path).map_err(|error| StartError::Push {
                option: "fcm-service-account-file",
                message: format!("{}: {error}", path.display()),
            })?,
        )),
        (None, Some(inline)) => Some(("fcm-service-account", inline.0.clone())),
        (None, None) => None,
    };
    if let Some((option, json)) = account {
        let sender = FcmSender::new(
            &json,
            &config.fcm_base_url,
            config.fcm_allow_http,
            timeout,
            retry,
        )
        .map_err(|error| StartError::Push {
            option,
            message: error.to_string(),
        })?;
        let sender: Arc<dyn PushSender> = Arc::new(sender);
        let app_ids = list(&config.fcm_app_ids);
        for app_id in &app_ids {
            routes.route(PushProvider::Fcm, app_id, Arc::clone(&sender));
        }
        tracing::info!(?app_ids, "push: FCM");
    }
    if routes.is_empty() {
        tracing::info!("push: no APNs/FCM credentials configured; pushes are logged, not sent");
        return Ok(PushRoutes::all(Arc::new(LogSender)));
    }
    Ok(routes)
}

/// Build the application state from the configuration (connects to Redis when configured).
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let (handles, generated) =
        HandleKeys::load_or_generate(config.handle_key_file.as_deref(), &config.data_dir)?;
    if generated {
        tracing::warn!(
            path = %config.data_dir.join("handle-keys").display(),
            "generated a new push-handle key; every replica must share one key file \
             (pass --handle-key-file in production)"
        );
    }
    let store: Arc<dyn Store> = match config.store {
        StoreKind::Memory => {
            tracing::info!("store: embedded memory (one replica; state is lost on restart)");
            Arc::new(MemoryStore::new())
        }
        StoreKind::Redis => {
            let target = match (&config.redis_url, &config.redis_cluster) {
                (Some(url), _) => RedisTarget::Standalone(url.clone()),
                (None, Some(nodes)) => RedisTarget::Cluster(
                    nodes
                        .split(',')
                        .map(|node| node.trim().to_owned())
                        .filter(|node| !node.is_empty())
                        .collect(),
                ),
                (None, None) => unreachable!("validated: --store redis has an address"),
            };
            let timeout = std::time::Duration::from_millis(config.redis_timeout_ms);
            let store = RedisStore::connect(&target, timeout).await?;
            tracing::info!(?target, "store: redis");
            Arc::new(store)
        }
    };
    let metrics = Metrics::new();
    let push = Dispatcher::new(
        push_routes(&config)?,
        Arc::clone(&store),
        metrics.clone(),
        DispatchLimits {
            budget: std::time::Duration::from_millis(config.push_budget_ms),
            mailbox_ttl: crate::http::MAILBOX_TTL,
            in_flight: config.push_in_flight,
        },
    );
    let admission = match &config.admission_key_file {
        None => None,
        Some(path) => {
            let admission_error = |message: String| StartError::Admission {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|error| admission_error(error.to_string()))?;
            Some(Admission::from_pem(&pem).map_err(admission_error)?)
        }
    };
    Ok(AppState {
        config,
        store,
        handles,
        push,
        metrics,
        clock: Arc::new(SystemClock),
        admission,
        shutdown: CancellationToken::new(),
    })
}

/// Bind the configured address.
pub fn bind(config: &Config) -> Result<TcpListener, StartError> {
    let listener = TcpListener::bind(config.bind).map_err(|error| StartError::Bind {
        address: config.bind,
        error,
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serve `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    crate::http::run(listener, web::Data::new(state), shutdown).await?;
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

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
use crate::push::{Dispatcher, LogSender};
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
    tracing::info!("push: no APNs/FCM credentials configured; pushes are logged, not sent");
    let metrics = Metrics::new();
    let push = Dispatcher::all(
        Arc::new(LogSender),
        Arc::clone(&store),
        metrics.clone(),
        std::time::Duration::from_millis(config.push_budget_ms),
        crate::http::MAILBOX_TTL,
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

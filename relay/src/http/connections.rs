//! Bounded connections: a cap on open connections per client IP, enforced the moment a
//! connection is accepted (one over the cap is shut down at once, so it costs a file descriptor
//! for microseconds, not until a timeout), and the total cap derived from the process's file
//! descriptor limit with a reserve kept free for the store, push providers and health checks.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;

use crate::metrics::Metrics;

/// File descriptors never handed to client connections: the store's and push providers'
/// connections, the listener, logs, and room for a health check under attack.
pub const FD_RESERVE: u64 = 64;

/// Counts open connections per peer IP and refuses those over the cap.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    /// 0: no per-IP cap.
    max_per_ip: usize,
    /// Open connections per IP; an entry leaves with its last connection.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    metrics: Metrics,
}

/// Held in a connection's extensions for its lifetime; frees the connection's place on drop.
struct Place {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection counts");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimiter {
    pub fn new(max_per_ip: usize, metrics: Metrics) -> Self {
        Self {
            max_per_ip,
            open: Arc::default(),
            metrics,
        }
    }

    /// Called by the server for every accepted connection (`HttpServer::on_connect`).
    pub fn on_connect(&self, connection: &dyn Any, extensions: &mut Extensions) {
        if self.max_per_ip == 0 {
            return;
        }
        let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let ip = peer.ip();
        let admitted = {
            let mut open = self.open.lock().expect("connection counts");
            let count = open.entry(ip).or_insert(0);
            if *count < self.max_per_ip {
                *count += 1;
                true
            } else {
                false
            }
        };
        if admitted {
            extensions.insert(Place {
                ip,
                open: Arc::clone(&self.open),
            });
        } else {
            self.metrics.connections_refused.inc();
            // Reads now end at once: the server closes the connection without waiting for a
            // request head that may never come.
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Raise the soft file-descriptor limit to the hard one and return how many client connections
/// the process can hold (the limit less [`FD_RESERVE`]), or `None` when it cannot be read.
pub fn connection_budget() -> Option<u64> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    Some(soft.saturating_sub(FD_RESERVE).max(16))
}

//! The store conformance suite, unchanged, against a real standalone `redis-server` and a real
//! 3-master Redis Cluster (one of each per test binary, shared by the checks: they use fresh ids).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use approvd_relay::store::{RedisStore, RedisTarget, Store};
use approvd_tests::redis::{RedisCluster, RedisServer};

fn standalone() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

async fn connect(target: RedisTarget) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(&target, Duration::from_secs(2))
            .await
            .expect("connect"),
    )
}

mod standalone {
    use super::*;
    approvd_relay::store_conformance_tests!(connect(RedisTarget::Standalone(standalone().url())));
}

mod cluster {
    use super::*;
    approvd_relay::store_conformance_tests!(connect(RedisTarget::Cluster(cluster().seeds())));
}

//! The store conformance suite against the embedded memory store.

approvd_relay::store_conformance_tests!(async {
    std::sync::Arc::new(approvd_relay::store::MemoryStore::new())
});

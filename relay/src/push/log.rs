//! [`LogSender`]: the development push sender. It logs the exact data it would send (`{v, cid}`)
//! with the provider and topic — never the token — and reports it `logged`, never `pushed`.

use approvd_proto::wire::PushRegistration;

use super::{PushMessage, PushResult, PushSender};

/// Logs pushes instead of sending them.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSender;

#[async_trait::async_trait]
impl PushSender for LogSender {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, registration: &PushRegistration, message: &PushMessage) -> PushResult {
        tracing::info!(
            provider = ?registration.provider,
            topic = %registration.topic,
            data = %message.data(),
            "push (log only, not sent)"
        );
        PushResult::Logged
    }
}

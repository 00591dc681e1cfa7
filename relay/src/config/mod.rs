//! The relay's configuration as types: [`Config`] and one sub-config per subsystem (HTTP, store,
//! limits, push, handles, logging), built from the option table in `options` and checked on the
//! way, so an invalid combination (Redis without an address, an APNs key without its team) cannot
//! be represented after loading. Precedence: flag > environment > file > default. Loading is a
//! pure function of (flags, environment map, file text); nothing here reads the process
//! environment except [`Config::from_process`].

mod credentials;
mod options;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use credentials::FLAG_LABEL;
use options::{list, Options, Sources};
pub use options::{ConfigValue, LogFormat, OptionSpec, Secret, ServeArgs, StoreKind, OPTIONS};

use crate::store::{Limit, Rate};
pub use crate::store::{Password, RedisAuth, RedisOptions, RedisTarget, RedisTls};

/// What is wrong with the configuration; every message names the flag, variable or key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
}

/// The resolved configuration of `approvd serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub push: PushConfig,
    pub handles: HandlesConfig,
    /// The operator's admission key (PEM), when NAS requests must carry an admission JWT.
    pub admission_key_file: Option<PathBuf>,
    /// The operator's list of revoked token ids, when there is one.
    pub revoked_tokens_file: Option<PathBuf>,
    pub log: LogConfig,
}

/// The listener and its workers.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// Worker threads; 0 = one per CPU core.
    pub workers: usize,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy the operator runs).
    pub trust_forwarded_for: bool,
    /// Deadline for a request's head, and again for its body.
    pub request_timeout: Duration,
    /// Open connections per peer IP; 0: no cap.
    pub max_connections_per_ip: usize,
    /// After SIGTERM, how long to keep answering before the listener closes.
    pub shutdown_drain: Duration,
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq)]
// Built once at startup: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum StoreConfig {
    /// Embedded, in this process.
    Memory,
    /// Redis, with TLS and credentials, and a timeout for connecting and for every reply.
    Redis {
        target: RedisTarget,
        options: RedisOptions,
        timeout: Duration,
    },
}

/// Time windows and rate limits of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Longest a long-poll waits.
    pub max_wait: Duration,
    /// Allowed clock difference between callers and the relay, seconds.
    pub clock_skew_secs: u64,
    /// How long a challenge is kept after it expires.
    pub challenge_grace: Duration,
    pub auth_failures_per_ip: Rate,
    pub requests_per_caller: Rate,
    pub challenges_per_device: Rate,
    pub refreshes_per_device: Rate,
    pub creations_per_ip: Rate,
    pub creations_global: Rate,
    pub forwards_per_downstream: Rate,
}

impl LimitsConfig {
    /// The configured rate of `limit`.
    pub fn rate(&self, limit: Limit) -> Rate {
        match limit {
            Limit::AuthFailuresPerIp => self.auth_failures_per_ip,
            Limit::RequestsPerCaller => self.requests_per_caller,
            Limit::ChallengesPerDevice => self.challenges_per_device,
            Limit::RefreshesPerDevice => self.refreshes_per_device,
            Limit::CreationsPerIp => self.creations_per_ip,
            Limit::CreationsGlobal => self.creations_global,
            Limit::ForwardsPerDownstream => self.forwards_per_downstream,
        }
    }
}

/// Push providers and how pushes are run.
#[derive(Debug, Clone, PartialEq)]
pub struct PushConfig {
    /// Every APNs credential, each routed by its topics.
    pub apns: Vec<ApnsConfig>,
    /// Every FCM service account, each routed by its app ids.
    pub fcm: Vec<FcmConfig>,
    /// Timeout of every request to a provider.
    pub timeout: Duration,
    /// Tries per push.
    pub max_tries: u32,
    /// Pushes in flight at once, across all challenges.
    pub in_flight: usize,
    /// How long a challenge-create request waits for push results.
    pub budget: Duration,
    /// The relay that pushes for apps without a local credential.
    pub upstream: Option<UpstreamConfig>,
    /// Web Push with the operator's VAPID key, when configured.
    pub webpush: Option<WebPushConfig>,
    /// The public key that signs downstream relays' forwarding tokens: when set, this relay
    /// serves `POST /v1/push/forward`.
    pub forward_key_file: Option<PathBuf>,
}

/// Web Push (`--webpush-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebPushConfig {
    pub vapid_key_file: PathBuf,
    pub subject: String,
    pub allowed_hosts: Vec<crate::push::webpush::HostPattern>,
    pub allow_private: bool,
    pub ca_file: Option<PathBuf>,
}

/// The upstream relay pushes are forwarded to.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Its base URL, checked: https, or http to loopback.
    pub url: String,
    pub token: UpstreamToken,
    /// This relay's private key (PEM) that signs each forwarded push.
    pub key_file: PathBuf,
}

/// Where the forwarding token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamToken {
    File(PathBuf),
    /// The token itself (a secret).
    Inline(Secret),
}

/// APNs credentials and the topics they push to.
#[derive(Debug, Clone, PartialEq)]
pub struct ApnsConfig {
    /// Names the credential in metrics and logs (`default` for the flags' own).
    pub label: String,
    pub auth: ApnsAuth,
    /// Topics pushed through production APNs.
    pub topics: Vec<String>,
    /// Topics pushed through the APNs sandbox.
    pub sandbox_topics: Vec<String>,
}

/// How the relay authenticates to APNs.
#[derive(Debug, Clone, PartialEq)]
pub enum ApnsAuth {
    /// A `.p8` token key with its key id and team id.
    Token {
        key_file: PathBuf,
        key_id: String,
        team_id: String,
    },
    /// A client certificate and its private key (PEM).
    Certificate {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
}

/// An FCM service account and the app ids it pushes to.
#[derive(Debug, Clone, PartialEq)]
pub struct FcmConfig {
    /// Names the credential in metrics and logs (`default` for the flags' own).
    pub label: String,
    pub account: FcmAccount,
    pub app_ids: Vec<String>,
    pub base_url: String,
    pub allow_http: bool,
}

/// Where the service-account JSON comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FcmAccount {
    File(PathBuf),
    /// The JSON itself (a secret).
    Inline(Secret),
}

/// The push-handle key file, or where to generate one.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlesConfig {
    pub key_file: Option<PathBuf>,
    pub data_dir: PathBuf,
}

/// Logging.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `tracing` filter directive.
    pub filter: String,
    pub format: LogFormat,
    /// One line per request at target `approvd::access`.
    pub access_log: bool,
    /// Access-log lines name the client IP.
    pub client_ip: bool,
}

/// A refusal naming the flag to fix.
fn invalid<T>(flag: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        source_name: format!("--{flag}"),
        message: message.to_owned(),
    })
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl Config {
    /// Merge flags, an environment map and the config file text (if any), then check and type.
    pub fn load(
        args: &ServeArgs,
        env: &HashMap<String, String>,
        file: Option<(&Path, &str)>,
    ) -> Result<Self, ConfigError> {
        let mut file = file
            .map(|(path, text)| options::parse_file(path, text))
            .transpose()?;
        let credentials = match file.as_mut() {
            Some((path, table)) => credentials::take(path, table)?,
            None => credentials::FileCredentials::default(),
        };
        let options = Options::from_sources(&Sources { args, env, file })?;
        Self::from_options(options, credentials, env)
    }

    /// [`Config::load`] with this process's environment and the file named by `--config` or
    /// `APPROVD_CONFIG`.
    pub fn from_process(args: &ServeArgs) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(name, _)| name.starts_with("APPROVD_"))
            .collect();
        let path = args
            .config
            .clone()
            .or_else(|| env.get("APPROVD_CONFIG").map(PathBuf::from));
        match path {
            None => Self::load(args, &env, None),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::File {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
                Self::load(args, &env, Some((&path, &text)))
            }
        }
    }

    /// The defaults (what `approvd serve` with no flags runs with).
    pub fn defaults() -> Self {
        Self::load(&ServeArgs::default(), &HashMap::new(), None).expect("defaults are valid")
    }

    fn from_options(
        options: Options,
        credentials: credentials::FileCredentials,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        if options.request_timeout_secs == 0 || options.request_timeout_secs > 300 {
            return invalid("request-timeout-secs", "must be between 1 and 300");
        }
        if options.shutdown_drain_secs > 300 {
            return invalid("shutdown-drain-secs", "must be at most 300");
        }
        let limits = limits(&options)?;
        let store = store(&options)?;
        let push = push(&options, credentials, env)?;
        Ok(Self {
            http: HttpConfig {
                bind: options.bind,
                workers: options.workers,
                trust_forwarded_for: options.trust_forwarded_for,
                request_timeout: Duration::from_secs(options.request_timeout_secs),
                max_connections_per_ip: options.max_connections_per_ip,
                shutdown_drain: Duration::from_secs(options.shutdown_drain_secs),
            },
            store,
            limits,
            push,
            handles: HandlesConfig {
                key_file: options.handle_key_file,
                data_dir: options.data_dir,
            },
            admission_key_file: options.admission_key_file,
            revoked_tokens_file: options.revoked_tokens_file,
            log: LogConfig {
                filter: options.log,
                format: options.log_format,
                access_log: options.access_log,
                client_ip: options.log_client_ip,
            },
        })
    }
}

fn limits(options: &Options) -> Result<LimitsConfig, ConfigError> {
    if options.max_wait_secs == 0 || options.max_wait_secs > 300 {
        return invalid("max-wait-secs", "must be between 1 and 300");
    }
    if options.clock_skew_secs > 600 {
        return invalid("clock-skew-secs", "must be at most 600");
    }
    if options.challenge_grace_secs > 3600 {
        return invalid("challenge-grace-secs", "must be at most 3600");
    }
    let rate = |flag: &str, per_minute: u32| {
        if per_minute == 0 {
            return invalid(flag, "must be at least 1 per minute");
        }
        if per_minute > Rate::MAX_PER_MINUTE {
            return invalid(flag, "must be at most 10000000 per minute");
        }
        Ok(Rate { per_minute })
    };
    Ok(LimitsConfig {
        max_wait: Duration::from_secs(options.max_wait_secs),
        clock_skew_secs: options.clock_skew_secs,
        challenge_grace: Duration::from_secs(options.challenge_grace_secs),
        challenges_per_device: rate(
            "rate-challenges-per-device",
            options.rate_challenges_per_device,
        )?,
        refreshes_per_device: rate(
            "rate-refreshes-per-device",
            options.rate_refreshes_per_device,
        )?,
        requests_per_caller: rate("rate-requests-per-caller", options.rate_requests_per_caller)?,
        auth_failures_per_ip: rate(
            "rate-auth-failures-per-ip",
            options.rate_auth_failures_per_ip,
        )?,
        creations_per_ip: rate("rate-creations-per-ip", options.rate_creations_per_ip)?,
        creations_global: rate("rate-creations-global", options.rate_creations_global)?,
        forwards_per_downstream: rate(
            "rate-forwards-per-downstream",
            options.rate_forwards_per_downstream,
        )?,
    })
}

fn store(options: &Options) -> Result<StoreConfig, ConfigError> {
    let mut given = Vec::new();
    if let Some(url) = &options.redis_url {
        given.push(("redis-url", RedisTarget::Standalone(url.clone())));
    }
    if let Some(nodes) = &options.redis_cluster {
        given.push((
            "redis-cluster",
            RedisTarget::Cluster(list(&Some(nodes.clone()))),
        ));
    }
    if let Some(nodes) = &options.redis_sentinel {
        given.push((
            "redis-sentinel",
            RedisTarget::Sentinel {
                nodes: list(&Some(nodes.clone())),
                master: options.redis_sentinel_master.clone(),
            },
        ));
    }
    let target = match (options.store, given.len()) {
        (StoreKind::Memory, 0) => None,
        (StoreKind::Memory, _) => {
            return invalid(
                "store",
                "is `memory`, but a Redis address is set: add --store redis",
            )
        }
        (StoreKind::Redis, 0) => {
            return invalid(
                "store",
                "`redis` needs --redis-url, --redis-cluster or --redis-sentinel",
            )
        }
        (StoreKind::Redis, 1) => given.pop().map(|(_, target)| target),
        (StoreKind::Redis, _) => {
            return invalid(
                given[1].0,
                "give one of --redis-url, --redis-cluster and --redis-sentinel, not several",
            )
        }
    };
    if options.redis_timeout_ms == 0 || options.redis_timeout_ms > 60_000 {
        return invalid("redis-timeout-ms", "must be between 1 and 60000");
    }
    let Some(target) = target else {
        return Ok(StoreConfig::Memory);
    };
    Ok(StoreConfig::Redis {
        options: redis_options(options, &target)?,
        target,
        timeout: millis(options.redis_timeout_ms),
    })
}

/// TLS and credentials for Redis.
fn redis_options(options: &Options, target: &RedisTarget) -> Result<RedisOptions, ConfigError> {
    let client_cert = match (&options.redis_tls_cert_file, &options.redis_tls_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return invalid("redis-tls-key-file", "is needed with --redis-tls-cert-file")
        }
        (None, Some(_)) => {
            return invalid("redis-tls-cert-file", "is needed with --redis-tls-key-file")
        }
    };
    let password = match (&options.redis_password, &options.redis_password_file) {
        (Some(_), Some(_)) => {
            return invalid(
                "redis-password-file",
                "give either a password file or APPROVD_REDIS_PASSWORD, not both",
            )
        }
        (Some(secret), None) => Some(Password::Inline(secret.0.clone())),
        (None, Some(path)) => Some(Password::File(path.clone())),
        (None, None) => None,
    };
    if options.redis_sentinel_password_file.is_some()
        && !matches!(target, RedisTarget::Sentinel { .. })
    {
        return invalid("redis-sentinel-password-file", "is for --redis-sentinel");
    }
    if let RedisTarget::Standalone(_) = target {
        if options.redis_tls {
            return invalid(
                "redis-tls",
                "is for --redis-cluster; give a rediss:// URL instead",
            );
        }
    }
    let tls_settings =
        options.redis_tls_ca_file.is_some() || client_cert.is_some() || options.redis_tls_insecure;
    let uses_tls = match target {
        RedisTarget::Standalone(url) => url.starts_with("rediss://"),
        RedisTarget::Cluster(_) | RedisTarget::Sentinel { .. } => options.redis_tls,
    };
    if tls_settings && !uses_tls {
        return invalid(
            "redis-tls-ca-file",
            "TLS settings are given, but the connection is not TLS (use a rediss:// URL, or \
             --redis-tls true with --redis-cluster or --redis-sentinel)",
        );
    }
    Ok(RedisOptions {
        tls: RedisTls {
            enabled: options.redis_tls,
            ca_file: options.redis_tls_ca_file.clone(),
            client_cert,
            insecure: options.redis_tls_insecure,
        },
        auth: RedisAuth {
            username: options.redis_username.clone(),
            password,
            sentinel_password: options
                .redis_sentinel_password_file
                .clone()
                .map(Password::File),
        },
    })
}

fn push(
    options: &Options,
    file: credentials::FileCredentials,
    env: &HashMap<String, String>,
) -> Result<PushConfig, ConfigError> {
    let (apns, fcm) = credentials::typed(
        apns(options)?,
        fcm(options)?,
        file,
        env,
        &options.fcm_base_url,
        options.fcm_allow_http,
    )?;
    if options.push_max_tries == 0 || options.push_max_tries > 10 {
        return invalid("push-max-tries", "must be between 1 and 10");
    }
    if options.push_in_flight == 0 {
        return invalid("push-in-flight", "must be at least 1");
    }
    if options.push_timeout_ms == 0 || options.push_timeout_ms > 60_000 {
        return invalid("push-timeout-ms", "must be between 1 and 60000");
    }
    if options.push_budget_ms > 30_000 {
        return invalid("push-budget-ms", "must be at most 30000");
    }
    Ok(PushConfig {
        apns,
        fcm,
        timeout: millis(options.push_timeout_ms),
        max_tries: options.push_max_tries,
        in_flight: options.push_in_flight,
        budget: millis(options.push_budget_ms),
        upstream: upstream(options)?,
        webpush: webpush(options)?,
        forward_key_file: options.push_forward_key_file.clone(),
    })
}

fn webpush(options: &Options) -> Result<Option<WebPushConfig>, ConfigError> {
    let mut allowed_hosts = Vec::new();
    for host in list(&Some(options.webpush_allowed_hosts.clone())) {
        match crate::push::webpush::HostPattern::parse(&host) {
            Ok(pattern) => allowed_hosts.push(pattern),
            Err(message) => return invalid("webpush-allowed-hosts", &message),
        }
    }
    match (&options.webpush_vapid_key_file, &options.webpush_subject) {
        (None, None) => Ok(None),
        (None, Some(_)) => invalid(
            "webpush-subject",
            "names the contact in VAPID tokens, which needs --webpush-vapid-key-file",
        ),
        (Some(_), None) => invalid(
            "webpush-vapid-key-file",
            "needs --webpush-subject (mailto: or https: contact of the relay's operator)",
        ),
        (Some(path), Some(subject)) => {
            if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
                return invalid("webpush-subject", "must be a mailto: or https: URL");
            }
            Ok(Some(WebPushConfig {
                vapid_key_file: path.clone(),
                subject: subject.clone(),
                allowed_hosts,
                allow_private: options.webpush_allow_private,
                ca_file: options.webpush_ca_file.clone(),
            }))
        }
    }
}

fn upstream(options: &Options) -> Result<Option<UpstreamConfig>, ConfigError> {
    let token = match (
        &options.push_upstream_token_file,
        &options.push_upstream_token,
    ) {
        (Some(_), Some(_)) => {
            return invalid(
                "push-upstream-token",
                "give --push-upstream-token-file or APPROVD_PUSH_UPSTREAM_TOKEN, not both",
            )
        }
        (Some(path), None) => Some(UpstreamToken::File(path.clone())),
        (None, Some(token)) => Some(UpstreamToken::Inline(token.clone())),
        (None, None) => None,
    };
    if options.push_upstream.is_none() && options.push_upstream_key_file.is_some() {
        return invalid(
            "push-upstream-key-file",
            "signs forwarded pushes, which needs --push-upstream",
        );
    }
    match (&options.push_upstream, token) {
        (None, None) => Ok(None),
        (None, Some(_)) => invalid(
            "push-upstream-token-file",
            "a forwarding token needs --push-upstream (the relay it is for)",
        ),
        (Some(_), None) => invalid(
            "push-upstream",
            "needs --push-upstream-token-file (the token the upstream's operator issued)",
        ),
        (Some(url), Some(token)) => {
            let url = match crate::push::upstream::check_upstream_url(url) {
                Ok(url) => url,
                Err(error) => return invalid("push-upstream", &error.to_string()),
            };
            let Some(key_file) = options.push_upstream_key_file.clone() else {
                return invalid(
                    "push-upstream",
                    "needs --push-upstream-key-file (this relay's Ed25519 key, which signs \
                     each forwarded push: openssl genpkey -algorithm ed25519)",
                );
            };
            Ok(Some(UpstreamConfig {
                url,
                token,
                key_file,
            }))
        }
    }
}

fn apns(options: &Options) -> Result<Option<ApnsConfig>, ConfigError> {
    let topics = list(&options.apns_topics);
    let sandbox_topics = list(&options.apns_sandbox_topics);
    let has_topics = !topics.is_empty() || !sandbox_topics.is_empty();
    let auth = match (
        &options.apns_key_file,
        &options.apns_cert_file,
        &options.apns_cert_key_file,
    ) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return invalid(
                "apns-cert-file",
                "use a token key (--apns-key-file) or a certificate, not both",
            )
        }
        (Some(key_file), None, None) => {
            let Some(key_id) = options.apns_key_id.clone() else {
                return invalid("apns-key-id", "is required with --apns-key-file");
            };
            let Some(team_id) = options.apns_team_id.clone() else {
                return invalid("apns-team-id", "is required with --apns-key-file");
            };
            Some(ApnsAuth::Token {
                key_file: key_file.clone(),
                key_id,
                team_id,
            })
        }
        (None, cert, key) => {
            if options.apns_key_id.is_some() || options.apns_team_id.is_some() {
                return invalid("apns-key-file", "is required when APNs options are set");
            }
            match (cert, key) {
                (Some(cert_file), Some(key_file)) => Some(ApnsAuth::Certificate {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                }),
                (None, None) => None,
                _ => {
                    return invalid(
                        "apns-cert-key-file",
                        "--apns-cert-file and --apns-cert-key-file go together",
                    )
                }
            }
        }
    };
    match auth {
        Some(_) if !has_topics => invalid(
            "apns-topics",
            "name the app bundle ids this key pushes to (or --apns-sandbox-topics)",
        ),
        None if has_topics => invalid("apns-key-file", "is required when APNs options are set"),
        None => Ok(None),
        Some(auth) => Ok(Some(ApnsConfig {
            label: credentials::FLAG_LABEL.to_owned(),
            auth,
            topics,
            sandbox_topics,
        })),
    }
}

fn fcm(options: &Options) -> Result<Option<FcmConfig>, ConfigError> {
    let app_ids = list(&options.fcm_app_ids);
    let account = match (
        &options.fcm_service_account_file,
        &options.fcm_service_account,
    ) {
        (Some(_), Some(_)) => {
            return invalid(
                "fcm-service-account",
                "give the service account as a file or inline, not both",
            )
        }
        (Some(path), None) => Some(FcmAccount::File(path.clone())),
        (None, Some(inline)) => Some(FcmAccount::Inline(inline.clone())),
        (None, None) => None,
    };
    match account {
        Some(_) if app_ids.is_empty() => invalid(
            "fcm-app-ids",
            "name the app ids this service account pushes to",
        ),
        None if !app_ids.is_empty() => {
            invalid("fcm-service-account-file", "is required with --fcm-app-ids")
        }
        None => Ok(None),
        Some(account) => Ok(Some(FcmConfig {
            label: credentials::FLAG_LABEL.to_owned(),
            account,
            app_ids,
            base_url: options.fcm_base_url.clone(),
            allow_http: options.fcm_allow_http,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&'static str, &str)]) -> ServeArgs {
        ServeArgs {
            config: None,
            values: pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_run_with_zero_setup() {
        let config = Config::defaults();
        assert_eq!(config.http.bind, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(config.store, StoreConfig::Memory);
        assert_eq!(config.limits.max_wait, Duration::from_secs(30));
        assert_eq!(config.handles.key_file, None);
        assert!(config.push.apns.is_empty());
        assert!(config.push.fcm.is_empty());
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = Some((
            Path::new("relay.toml"),
            "max_wait_secs = 10\nclock_skew_secs = 20\nchallenge_grace_secs = 5\n",
        ));
        let env = env(&[
            ("APPROVD_MAX_WAIT_SECS", "11"),
            ("APPROVD_CLOCK_SKEW_SECS", "21"),
        ]);
        let config = Config::load(&args(&[("max_wait_secs", "12")]), &env, file).expect("loads");
        assert_eq!(config.limits.max_wait, Duration::from_secs(12), "flag");
        assert_eq!(config.limits.clock_skew_secs, 21, "env");
        assert_eq!(
            config.limits.challenge_grace,
            Duration::from_secs(5),
            "file"
        );
        assert_eq!(config.push.budget, Duration::from_millis(2000), "default");
    }

    #[test]
    fn errors_name_what_to_fix() {
        let error = Config::load(&args(&[]), &env(&[("APPROVD_MAX_WAIT_SECS", "soon")]), None)
            .expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("APPROVD_MAX_WAIT_SECS: `soon`"),
            "{error}"
        );
        let error =
            Config::load(&args(&[("max_wait_secs", "0")]), &env(&[]), None).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--max-wait-secs: must be between 1 and 300"
        );
        let error = Config::load(
            &args(&[]),
            &env(&[]),
            Some((Path::new("r.toml"), "max_wiat_secs = 1")),
        )
        .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "config file r.toml: unknown option `max_wiat_secs`"
        );
        let error = Config::load(
            &args(&[]),
            &env(&[]),
            Some((Path::new("r.toml"), "bind = [1]")),
        )
        .expect_err("refused");
        assert!(error.to_string().contains("`bind` in r.toml"), "{error}");
        let error =
            Config::load(&args(&[("store", "mongo")]), &env(&[]), None).expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("--store: `mongo` is not a known store"),
            "{error}"
        );
    }

    /// The documented default allow-list is the one the relay uses, and Web Push options come
    /// in pairs.
    #[test]
    fn web_push_defaults_to_the_public_push_services_and_needs_key_and_subject() {
        let config = Config::load(
            &args(&[
                ("webpush_vapid_key_file", "vapid.pem"),
                ("webpush_subject", "mailto:ops@example.com"),
            ]),
            &env(&[]),
            None,
        )
        .expect("config");
        let webpush = config.push.webpush.expect("web push");
        assert_eq!(
            webpush.allowed_hosts,
            crate::push::webpush::EndpointPolicy::default().allowed_hosts
        );
        assert!(!webpush.allow_private);
        for (given, error) in [
            (
                vec![("webpush_subject", "mailto:ops@example.com")],
                "--webpush-subject",
            ),
            (
                vec![("webpush_vapid_key_file", "vapid.pem")],
                "--webpush-vapid-key-file: needs --webpush-subject",
            ),
            (
                vec![
                    ("webpush_vapid_key_file", "vapid.pem"),
                    ("webpush_subject", "ops@example.com"),
                ],
                "--webpush-subject: must be a mailto: or https: URL",
            ),
            (
                vec![("webpush_allowed_hosts", "push.example, 10.0.0.1")],
                "--webpush-allowed-hosts",
            ),
        ] {
            let refused = Config::load(&args(&given), &env(&[]), None).expect_err(error);
            assert!(refused.to_string().starts_with(error), "{refused}");
        }
    }

    /// L5 (issue 27): an empty key file option is an error, not "admission off".
    #[test]
    fn an_empty_security_option_is_an_error_not_off() {
        for (env_name, what) in [
            ("APPROVD_ADMISSION_KEY_FILE", "admission"),
            ("APPROVD_PUSH_FORWARD_KEY_FILE", "forwarding"),
        ] {
            for empty in ["", "  "] {
                let error =
                    Config::load(&args(&[]), &env(&[(env_name, empty)]), None).expect_err(what);
                assert!(
                    error
                        .to_string()
                        .starts_with(&format!("{env_name}: is set but empty")),
                    "{error}"
                );
            }
        }
        let error =
            Config::load(&args(&[("admission_key_file", "")]), &env(&[]), None).expect_err("flag");
        assert!(error
            .to_string()
            .starts_with("--admission-key-file: is set but empty"));
        let error = Config::load(
            &args(&[]),
            &env(&[]),
            Some((Path::new("r.toml"), "admission_key_file = \"\"")),
        )
        .expect_err("file");
        assert!(error.to_string().contains("is set but empty"), "{error}");
        // Unset, they are off, and other optional files stay optional when empty.
        let config = Config::load(&args(&[]), &env(&[("APPROVD_HANDLE_KEY_FILE", "")]), None)
            .expect("loads");
        assert_eq!(config.admission_key_file, None);
    }

    #[test]
    fn push_options_must_come_complete() {
        let error = Config::load(&args(&[("apns_key_file", "k.p8")]), &env(&[]), None)
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--apns-key-id: is required with --apns-key-file"
        );
        let error =
            Config::load(&args(&[("apns_topics", "a.b")]), &env(&[]), None).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--apns-key-file: is required when APNs options are set"
        );
        let error = Config::load(
            &args(&[]),
            &env(&[("APPROVD_FCM_SERVICE_ACCOUNT", "{}")]),
            None,
        )
        .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--fcm-app-ids: name the app ids this service account pushes to"
        );
        let config = Config::load(
            &args(&[("fcm_app_ids", "a, b")]),
            &env(&[(
                "APPROVD_FCM_SERVICE_ACCOUNT",
                "{\"private_key\":\"secret\"}",
            )]),
            None,
        )
        .expect("valid");
        let fcm = config.push.fcm.first().expect("fcm configured");
        assert_eq!(fcm.app_ids, vec!["a", "b"]);
        assert!(
            !format!("{config:?}").contains("secret"),
            "inline secrets are redacted"
        );
    }

    #[test]
    fn store_and_apns_choices_become_types() {
        let config = Config::load(
            &args(&[
                ("store", "redis"),
                ("redis_cluster", "a:1, b:2,,"),
                ("apns_cert_file", "c.pem"),
                ("apns_cert_key_file", "k.pem"),
                ("apns_sandbox_topics", "x.y"),
            ]),
            &env(&[]),
            None,
        )
        .expect("valid");
        assert_eq!(
            config.store,
            StoreConfig::Redis {
                target: RedisTarget::Cluster(vec!["a:1".to_owned(), "b:2".to_owned()]),
                options: RedisOptions::default(),
                timeout: Duration::from_millis(2000),
            }
        );
        let apns = config.push.apns.first().expect("apns configured").clone();
        assert_eq!(
            apns.auth,
            ApnsAuth::Certificate {
                cert_file: "c.pem".into(),
                key_file: "k.pem".into()
            }
        );
        assert!(apns.topics.is_empty());
        assert_eq!(apns.sandbox_topics, vec!["x.y"]);
        let error = Config::load(
            &args(&[("store", "redis"), ("redis_url", "redis://a/")]),
            &env(&[("APPROVD_REDIS_CLUSTER", "b:1")]),
            None,
        )
        .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--redis-cluster: give one of --redis-url, --redis-cluster and --redis-sentinel, not several"
        );
        assert_eq!(
            config.limits.rate(Limit::ChallengesPerDevice),
            Rate { per_minute: 5 }
        );
        let error = Config::load(
            &args(&[("rate_requests_per_caller", "10000001")]),
            &env(&[]),
            None,
        )
        .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "--rate-requests-per-caller: must be at most 10000000 per minute"
        );
    }

    #[test]
    fn every_option_has_a_distinct_flag_env_and_valid_default() {
        for option in OPTIONS {
            assert_eq!(option.flag, option.name.replace('_', "-"));
            assert_eq!(
                option.env,
                format!("APPROVD_{}", option.name.to_uppercase())
            );
            assert!(!option.help.trim().is_empty(), "{}", option.name);
        }
        // Defaults parse (defaults() would panic otherwise).
        let _ = Config::defaults();
    }

    #[test]
    fn redis_tls_credentials_and_sentinel_become_types_or_name_the_option() {
        let load = |pairs: &[(&'static str, &str)], environment: &[(&str, &str)]| {
            Config::load(&args(pairs), &env(environment), None)
        };
        let config = load(
            &[
                ("store", "redis"),
                ("redis_sentinel", "s1:26379, s2:26379"),
                ("redis_sentinel_password_file", "/run/sentinel-pw"),
                ("redis_username", "relay"),
            ],
            &[("APPROVD_REDIS_PASSWORD", "hunter2")],
        )
        .expect("valid");
        let StoreConfig::Redis {
            target, options, ..
        } = config.store
        else {
            panic!("redis")
        };
        assert_eq!(
            target,
            RedisTarget::Sentinel {
                nodes: vec!["s1:26379".to_owned(), "s2:26379".to_owned()],
                master: "mymaster".to_owned(),
            }
        );
        assert_eq!(
            options.auth,
            RedisAuth {
                username: Some("relay".to_owned()),
                password: Some(Password::Inline("hunter2".to_owned())),
                sentinel_password: Some(Password::File("/run/sentinel-pw".into())),
            }
        );
        assert!(!format!("{options:?}").contains("hunter2"), "redacted");

        let config = load(
            &[
                ("store", "redis"),
                ("redis_cluster", "a:1"),
                ("redis_tls", "true"),
                ("redis_tls_ca_file", "ca.pem"),
                ("redis_tls_cert_file", "c.pem"),
                ("redis_tls_key_file", "k.pem"),
            ],
            &[],
        )
        .expect("valid");
        let StoreConfig::Redis { options, .. } = config.store else {
            panic!("redis")
        };
        assert_eq!(
            options.tls,
            RedisTls {
                enabled: true,
                ca_file: Some("ca.pem".into()),
                client_cert: Some(("c.pem".into(), "k.pem".into())),
                insecure: false,
            }
        );

        for (pairs, environment, message) in [
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "redis://a/"),
                    ("redis_tls_ca_file", "ca.pem"),
                ],
                vec![],
                "--redis-tls-ca-file: TLS settings are given, but the connection is not TLS",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "rediss://a/"),
                    ("redis_tls_cert_file", "c.pem"),
                ],
                vec![],
                "--redis-tls-key-file: is needed with --redis-tls-cert-file",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "rediss://a/"),
                    ("redis_tls", "true"),
                ],
                vec![],
                "--redis-tls: is for --redis-cluster",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "redis://a/"),
                    ("redis_password_file", "pw"),
                ],
                vec![("APPROVD_REDIS_PASSWORD", "x")],
                "--redis-password-file: give either",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "redis://a/"),
                    ("redis_sentinel_password_file", "pw"),
                ],
                vec![],
                "--redis-sentinel-password-file: is for --redis-sentinel",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_sentinel", "s:1"),
                    ("redis_tls_ca_file", "ca.pem"),
                ],
                vec![],
                "--redis-tls-ca-file: TLS settings are given, but the connection is not TLS",
            ),
            (
                vec![
                    ("store", "redis"),
                    ("redis_url", "redis://a/"),
                    ("redis_sentinel", "s:1"),
                ],
                vec![],
                "--redis-sentinel: give one of",
            ),
        ] {
            let error = load(&pairs, &environment).expect_err(message);
            assert!(error.to_string().starts_with(message), "{error}");
        }
    }
}

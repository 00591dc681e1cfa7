//! The option table: one entry per `approvd serve` option, from which the flags (and `--help`),
//! the `APPROVD_*` environment variables, the TOML file keys, the defaults and the flat
//! [`Options`] record are all generated, plus the text parsing of each value and the merge of the
//! three sources in precedence order. Knows nothing of what the options mean together: the
//! typed [`Config`](super::Config) is built from [`Options`] in `config/mod.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Parsing one option value from text (flags, env vars and file values are all text here).
pub trait ConfigValue: Sized {
    fn parse_value(text: &str) -> Result<Self, String>;
}

macro_rules! from_str_value {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            fn parse_value(text: &str) -> Result<Self, String> {
                text.trim().parse::<$ty>().map_err(|error| format!("`{text}`: {error}"))
            }
        }
    )*};
}
from_str_value!(u64, u32, usize, SocketAddr);

impl ConfigValue for bool {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(format!("`{other}` is not true or false")),
        }
    }
}

impl ConfigValue for String {
    fn parse_value(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl ConfigValue for PathBuf {
    fn parse_value(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        Ok(PathBuf::from(text))
    }
}

/// An optional value: the empty string means "not set".
impl<T: ConfigValue> ConfigValue for Option<T> {
    fn parse_value(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            T::parse_value(text).map(Some)
        }
    }
}

/// A configuration value that is a secret: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl ConfigValue for Secret {
    fn parse_value(text: &str) -> Result<Self, String> {
        Ok(Self(text.to_owned()))
    }
}

/// A comma-separated list (`a,b,c`), trimmed, without empty items.
pub(super) fn list(text: &Option<String>) -> Vec<String> {
    text.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl ConfigValue for LogFormat {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("`{other}` is not `text` or `json`")),
        }
    }
}

/// Which store holds the relay's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Embedded, in this process: no setup, one replica only.
    Memory,
    /// Redis (standalone or Cluster), shared by any number of replicas.
    Redis,
}

impl ConfigValue for StoreKind {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text.trim() {
            "memory" => Ok(Self::Memory),
            "redis" => Ok(Self::Redis),
            other => Err(format!(
                "`{other}` is not a known store (known: memory, redis)"
            )),
        }
    }
}

/// One option: its name (file key; flag is the name with dashes), env var, default and help.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub value_name: &'static str,
    pub help: &'static str,
}

macro_rules! options {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:literal, $flag:literal, $env:literal, $value_name:literal; )*) => {
        /// Every option's value as merged from the sources, before it is checked and typed.
        #[derive(Debug, Clone, PartialEq)]
        pub(super) struct Options {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
        }

        /// Every option of `approvd serve`, in `--help` order.
        pub const OPTIONS: &[OptionSpec] = &[
            $( OptionSpec {
                name: stringify!($name),
                flag: $flag,
                env: $env,
                default: $default,
                value_name: $value_name,
                help: concat!($($doc, "\n"),+),
            }, )*
        ];

        impl Options {
            pub(super) fn from_sources(sources: &Sources<'_>) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $name: sources.get::<$ty>(stringify!($name))?, )*
                })
            }
        }
    };
}

options! {
    /// Address and port to listen on. Use 0.0.0.0:8080 to listen on every interface, port 0 for
    /// any free port (the chosen address is printed on startup).
    bind: SocketAddr = "127.0.0.1:8080", "bind", "APPROVD_BIND", "ADDR";
    /// Where the relay keeps files it creates itself (the generated handle key).
    data_dir: PathBuf = "approvd-data", "data-dir", "APPROVD_DATA_DIR", "DIR";
    /// Push-handle key file. Each line is `<kid> <base64url 32-byte key>` with an optional
    /// `accept-until=<unix time>`; the first line mints new handles, later lines are old keys
    /// still accepted. Without it a key is generated in --data-dir (fine for one replica; every
    /// replica of a deployment must share one key file).
    handle_key_file: Option<PathBuf> = "", "handle-key-file", "APPROVD_HANDLE_KEY_FILE", "FILE";
    /// Where state lives: `memory` (embedded, one replica) or `redis` (shared by replicas; give
    /// --redis-url, --redis-cluster or --redis-sentinel).
    store: StoreKind = "memory", "store", "APPROVD_STORE", "KIND";
    /// Standalone Redis, e.g. `redis://10.0.0.5:6379/` (`rediss://` for TLS).
    redis_url: Option<String> = "", "redis-url", "APPROVD_REDIS_URL", "URL";
    /// Redis Cluster seed nodes, comma-separated `host:port` (Redis 7 or newer).
    redis_cluster: Option<String> = "", "redis-cluster", "APPROVD_REDIS_CLUSTER", "NODES";
    /// Redis Sentinel nodes, comma-separated `host:port`: the relay connects to the master they
    /// name for --redis-sentinel-master and follows it when they fail over.
    redis_sentinel: Option<String> = "", "redis-sentinel", "APPROVD_REDIS_SENTINEL", "NODES";
    /// The master's name in the Sentinels' configuration.
    redis_sentinel_master: String = "mymaster", "redis-sentinel-master", "APPROVD_REDIS_SENTINEL_MASTER", "NAME";
    /// File whose first line is the Sentinels' own password (`requirepass` in sentinel.conf).
    redis_sentinel_password_file: Option<PathBuf> = "", "redis-sentinel-password-file", "APPROVD_REDIS_SENTINEL_PASSWORD_FILE", "FILE";
    /// Use TLS to the --redis-cluster nodes, or to the --redis-sentinel Sentinels and the master
    /// they name (a standalone server: give a rediss:// URL).
    redis_tls: bool = "false", "redis-tls", "APPROVD_REDIS_TLS", "BOOL";
    /// CA certificates (PEM) that the Redis servers' certificates must chain to (private CAs);
    /// without it, the system's roots.
    redis_tls_ca_file: Option<PathBuf> = "", "redis-tls-ca-file", "APPROVD_REDIS_TLS_CA_FILE", "PEM";
    /// Client certificate (PEM) for Redis servers that require one (mutual TLS); with
    /// --redis-tls-key-file.
    redis_tls_cert_file: Option<PathBuf> = "", "redis-tls-cert-file", "APPROVD_REDIS_TLS_CERT_FILE", "PEM";
    /// The private key (PEM) of --redis-tls-cert-file.
    redis_tls_key_file: Option<PathBuf> = "", "redis-tls-key-file", "APPROVD_REDIS_TLS_KEY_FILE", "PEM";
    /// Do not verify the Redis servers' certificates. For tests only: anyone on the network path
    /// could then read and change the relay's state. Logged as a warning at startup.
    redis_tls_insecure: bool = "false", "redis-tls-insecure", "APPROVD_REDIS_TLS_INSECURE", "BOOL";
    /// Redis ACL user name (without it, the `default` user).
    redis_username: Option<String> = "", "redis-username", "APPROVD_REDIS_USERNAME", "NAME";
    /// File whose first line is the Redis password: keeps it out of URLs, the process list and
    /// shell history.
    redis_password_file: Option<PathBuf> = "", "redis-password-file", "APPROVD_REDIS_PASSWORD_FILE", "FILE";
    /// The Redis password itself, for secret stores that inject environment variables (set
    /// APPROVD_REDIS_PASSWORD; as a flag it would show in the process list).
    redis_password: Option<Secret> = "", "redis-password", "APPROVD_REDIS_PASSWORD", "PASSWORD";
    /// Timeout for connecting to Redis and for every Redis reply, in milliseconds.
    redis_timeout_ms: u64 = "2000", "redis-timeout-ms", "APPROVD_REDIS_TIMEOUT_MS", "MS";
    /// Longest a long-poll may wait, in seconds (clients ask with ?wait=).
    max_wait_secs: u64 = "30", "max-wait-secs", "APPROVD_MAX_WAIT_SECS", "SECS";
    /// Allowed clock difference between callers and the relay, in seconds.
    clock_skew_secs: u64 = "60", "clock-skew-secs", "APPROVD_CLOCK_SKEW_SECS", "SECS";
    /// How long a challenge is kept after it expires, so late pollers learn "expired" rather
    /// than "unknown", in seconds.
    challenge_grace_secs: u64 = "30", "challenge-grace-secs", "APPROVD_CHALLENGE_GRACE_SECS", "SECS";
    /// Challenges per device per minute (push-bombing defence). Further targets are reported
    /// `rate_limited`; a request whose every target is limited gets 429.
    rate_challenges_per_device: u32 = "5", "rate-challenges-per-device", "APPROVD_RATE_CHALLENGES_PER_DEVICE", "N";
    /// Push-registration refreshes per device per minute (each posts a notice to the NAS).
    rate_refreshes_per_device: u32 = "10", "rate-refreshes-per-device", "APPROVD_RATE_REFRESHES_PER_DEVICE", "N";
    /// Requests per caller key (NAS or device) per minute.
    rate_requests_per_caller: u32 = "120", "rate-requests-per-caller", "APPROVD_RATE_REQUESTS_PER_CALLER", "N";
    /// Failed authentications per source IP per minute before that IP gets 429.
    rate_auth_failures_per_ip: u32 = "30", "rate-auth-failures-per-ip", "APPROVD_RATE_AUTH_FAILURES_PER_IP", "N";
    /// Pairing slots plus challenges created per source IP per minute (keys are free to make,
    /// so this bounds what one client can create; raise it for a proxy without
    /// --trust-forwarded-for, or for many NASes behind one address).
    rate_creations_per_ip: u32 = "600", "rate-creations-per-ip", "APPROVD_RATE_CREATIONS_PER_IP", "N";
    /// Pairing slots plus challenges created per minute on this relay (all replicas together).
    rate_creations_global: u32 = "60000", "rate-creations-global", "APPROVD_RATE_CREATIONS_GLOBAL", "N";
    /// How long a challenge-create request waits for push results before answering `pending`
    /// for the rest, in milliseconds.
    push_budget_ms: u64 = "2000", "push-budget-ms", "APPROVD_PUSH_BUDGET_MS", "MS";
    /// APNs token key (`.p8` file from Apple) for the topics below.
    apns_key_file: Option<PathBuf> = "", "apns-key-file", "APPROVD_APNS_KEY_FILE", "P8";
    /// The APNs key's id (10 characters, from the Apple developer account).
    apns_key_id: Option<String> = "", "apns-key-id", "APPROVD_APNS_KEY_ID", "ID";
    /// The Apple developer team id.
    apns_team_id: Option<String> = "", "apns-team-id", "APPROVD_APNS_TEAM_ID", "ID";
    /// APNs client certificate (PEM), instead of a token key; with --apns-cert-key-file.
    apns_cert_file: Option<PathBuf> = "", "apns-cert-file", "APPROVD_APNS_CERT_FILE", "PEM";
    /// The private key (PEM) of --apns-cert-file.
    apns_cert_key_file: Option<PathBuf> = "", "apns-cert-key-file", "APPROVD_APNS_CERT_KEY_FILE", "PEM";
    /// App bundle ids (APNs topics) pushed through production APNs, comma-separated.
    apns_topics: Option<String> = "", "apns-topics", "APPROVD_APNS_TOPICS", "IDS";
    /// App bundle ids pushed through the APNs sandbox (development builds), comma-separated.
    apns_sandbox_topics: Option<String> = "", "apns-sandbox-topics", "APPROVD_APNS_SANDBOX_TOPICS", "IDS";
    /// FCM service-account key file (JSON from the Firebase console).
    fcm_service_account_file: Option<PathBuf> = "", "fcm-service-account-file", "APPROVD_FCM_SERVICE_ACCOUNT_FILE", "JSON";
    /// The same service-account JSON inline (for secret stores that inject environment variables).
    fcm_service_account: Option<Secret> = "", "fcm-service-account", "APPROVD_FCM_SERVICE_ACCOUNT", "JSON";
    /// App ids (push topics) sent through FCM with that service account, comma-separated.
    fcm_app_ids: Option<String> = "", "fcm-app-ids", "APPROVD_FCM_APP_IDS", "IDS";
    /// FCM base URL (change only to point at a test double). A plain-http stand-in must speak
    /// HTTP/2 without TLS (prior knowledge, as wiremock does), and so must the service
    /// account's `token_uri` then: an HTTP/1.1-only server gets no request through.
    fcm_base_url: String = "https://fcm.googleapis.com", "fcm-base-url", "APPROVD_FCM_BASE_URL", "URL";
    /// Allow plain-http FCM and token URLs (local tests only; they must speak HTTP/2 prior
    /// knowledge, see --fcm-base-url).
    fcm_allow_http: bool = "false", "fcm-allow-http", "APPROVD_FCM_ALLOW_HTTP", "BOOL";
    /// Push to browsers (Web Push, RFC 8030) with this VAPID key: a P-256 private key in PEM
    /// (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256). Its public key is
    /// served at GET /v1/push/webpush for pages to subscribe with. Needs --webpush-subject.
    webpush_vapid_key_file: Option<PathBuf> = "", "webpush-vapid-key-file", "APPROVD_WEBPUSH_VAPID_KEY_FILE", "PEM";
    /// The contact push services see in VAPID tokens: a mailto: or https: URL of the
    /// relay's operator.
    webpush_subject: Option<String> = "", "webpush-subject", "APPROVD_WEBPUSH_SUBJECT", "URL";
    /// Hosts Web Push endpoints may name, comma-separated; `*.name` allows any host below
    /// name. Default: the public push services of Chrome, Firefox, Safari and Edge.
    webpush_allowed_hosts: String = "fcm.googleapis.com,updates.push.services.mozilla.com,web.push.apple.com,*.push.apple.com,*.notify.windows.com", "webpush-allowed-hosts", "APPROVD_WEBPUSH_ALLOWED_HOSTS", "HOSTS";
    /// Let Web Push endpoints resolve to loopback, private or link-local addresses (a push
    /// service inside the operator's network, or tests). Off: such endpoints are refused.
    webpush_allow_private: bool = "false", "webpush-allow-private", "APPROVD_WEBPUSH_ALLOW_PRIVATE", "BOOL";
    /// Also trust this CA (PEM) for Web Push endpoints (a push service behind the operator's
    /// own CA, or tests).
    webpush_ca_file: Option<PathBuf> = "", "webpush-ca-file", "APPROVD_WEBPUSH_CA_FILE", "PEM";
    /// Timeout of every request to APNs, FCM or a Web Push service, in milliseconds.
    push_timeout_ms: u64 = "5000", "push-timeout-ms", "APPROVD_PUSH_TIMEOUT_MS", "MS";
    /// Tries per push (throttled or unavailable answers are retried with backoff, never past
    /// the challenge's expiry).
    push_max_tries: u32 = "4", "push-max-tries", "APPROVD_PUSH_MAX_TRIES", "N";
    /// Pushes in flight at once, across all challenges.
    push_in_flight: usize = "256", "push-in-flight", "APPROVD_PUSH_IN_FLIGHT", "N";
    /// Forward pushes for apps this relay has no credentials for to the approvd relay at this
    /// URL (https://; plain http:// only to loopback), which pushes them with the app
    /// publisher's credentials. It learns each push token and when it is pushed, never a login's
    /// context or verdict. Needs --push-upstream-token-file and --push-upstream-key-file.
    push_upstream: Option<String> = "", "push-upstream", "APPROVD_PUSH_UPSTREAM", "URL";
    /// This relay's own Ed25519 private key (PEM, PKCS#8: openssl genpkey -algorithm ed25519)
    /// that signs every forwarded push; the upstream's operator binds the forwarding token to
    /// its public key (approvd token --bind-key), so the token alone is useless to anyone else.
    push_upstream_key_file: Option<PathBuf> = "", "push-upstream-key-file", "APPROVD_PUSH_UPSTREAM_KEY_FILE", "PEM";
    /// File whose first line is the forwarding token (a JWT) the upstream's operator issued for
    /// this relay. Read again whenever it changes: renew the token by replacing the file, no
    /// restart.
    push_upstream_token_file: Option<PathBuf> = "", "push-upstream-token-file", "APPROVD_PUSH_UPSTREAM_TOKEN_FILE", "FILE";
    /// The forwarding token itself, for secret stores that inject environment variables (set
    /// APPROVD_PUSH_UPSTREAM_TOKEN; as a flag it would show in the process list).
    push_upstream_token: Option<Secret> = "", "push-upstream-token", "APPROVD_PUSH_UPSTREAM_TOKEN", "JWT";
    /// Serve POST /v1/push/forward for downstream relays (off without it): each must send a
    /// forwarding JWT (Authorization: Bearer) signed by this public key (PEM, Ed25519 or
    /// P-256), whose `sub` names the downstream in rate limits and logs, and sign the request
    /// with the key the token is bound to (`cnf.jkt`).
    push_forward_key_file: Option<PathBuf> = "", "push-forward-key-file", "APPROVD_PUSH_FORWARD_KEY_FILE", "PEM";
    /// Forwarded pushes per downstream relay per minute.
    rate_forwards_per_downstream: u32 = "600", "rate-forwards-per-downstream", "APPROVD_RATE_FORWARDS_PER_DOWNSTREAM", "N";
    /// Require NAS requests to carry an admission JWT (Authorization: Bearer) signed by this
    /// operator public key (PEM, Ed25519 or P-256), with `sub` = the caller's nas_id.
    admission_key_file: Option<PathBuf> = "", "admission-key-file", "APPROVD_ADMISSION_KEY_FILE", "PEM";
    /// Refuse admission and forwarding tokens whose `jti` is listed in this file (one per
    /// line, `#` comments; `approvd token` prints each token's jti). Read again whenever it
    /// changes, so a revocation takes effect within seconds, without a restart.
    revoked_tokens_file: Option<PathBuf> = "", "revoked-tokens-file", "APPROVD_REVOKED_TOKENS_FILE", "FILE";
    /// Take the client IP for per-IP limits from the right-most X-Forwarded-For entry, all header
    /// lines read as one list (only behind one proxy you run, which appends the address it saw).
    trust_forwarded_for: bool = "false", "trust-forwarded-for", "APPROVD_TRUST_FORWARDED_FOR", "BOOL";
    /// Deadline for a request's head, and again for its body, in seconds: a client that sends
    /// more slowly gets 408 and its connection is closed.
    request_timeout_secs: u64 = "10", "request-timeout-secs", "APPROVD_REQUEST_TIMEOUT_SECS", "SECS";
    /// Open connections per client IP address (the TCP peer: behind a proxy every client shares
    /// the proxy's address, so raise it or set 0 for no cap). Over the cap a connection is
    /// closed as soon as it is accepted.
    max_connections_per_ip: usize = "64", "max-connections-per-ip", "APPROVD_MAX_CONNECTIONS_PER_IP", "N";
    /// After SIGTERM: how long the relay keeps accepting and answering (every answer with
    /// `Connection: close`; /readyz and long-polls answer 503) while load balancers move away,
    /// before it stops accepting and lets every request already begun finish (at most 5 s of
    /// keep-alive, twice the request timeout and 5 s of handling more: 30 s by default), seconds.
    shutdown_drain_secs: u64 = "1", "shutdown-drain-secs", "APPROVD_SHUTDOWN_DRAIN_SECS", "SECS";
    /// HTTP worker threads (0 = one per CPU core).
    workers: usize = "0", "workers", "APPROVD_WORKERS", "N";
    /// Log filter, e.g. `info` or `approvd_relay=debug,info`.
    log: String = "info", "log", "APPROVD_LOG", "FILTER";
    /// Log format: `text` or `json`.
    log_format: LogFormat = "text", "log-format", "APPROVD_LOG_FORMAT", "FORMAT";
    /// Write one access-log line per request (method, route pattern, status, duration, request
    /// id; long-polls once, when they end), at target `approvd::access`.
    access_log: bool = "true", "access-log", "APPROVD_ACCESS_LOG", "BOOL";
    /// Add the client IP address to access-log lines (off by default: it is personal data).
    log_client_ip: bool = "false", "log-client-ip", "APPROVD_LOG_CLIENT_IP", "BOOL";
}

/// The `serve` flags as given on the command line (only those present).
#[derive(Debug, Clone, Default)]
pub struct ServeArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// Option name → flag value.
    pub values: BTreeMap<&'static str, String>,
}

impl clap::Args for ServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let command = command.arg(
            clap::Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Read options from this TOML file (keys are the option names with underscores) [env: APPROVD_CONFIG]"),
        );
        OPTIONS.iter().fold(command, |command, option| {
            command.arg(
                clap::Arg::new(option.name)
                    .long(option.flag)
                    .value_name(option.value_name)
                    .help(format!(
                        "{} [env: {}]{}",
                        option
                            .help
                            .lines()
                            .map(str::trim)
                            .collect::<Vec<_>>()
                            .join(" "),
                        option.env,
                        if option.default.is_empty() {
                            String::new()
                        } else {
                            format!(" [default: {}]", option.default)
                        }
                    )),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            self.config = Some(path.clone());
        }
        for option in OPTIONS {
            if let Some(value) = matches.get_one::<String>(option.name) {
                self.values.insert(option.name, value.clone());
            }
        }
        Ok(())
    }
}

/// The three textual sources, consulted in precedence order.
pub(super) struct Sources<'a> {
    pub args: &'a ServeArgs,
    pub env: &'a HashMap<String, String>,
    pub file: Option<(&'a Path, toml::Table)>,
}

impl Sources<'_> {
    fn get<T: ConfigValue>(&self, name: &'static str) -> Result<T, ConfigError> {
        let option = OPTIONS
            .iter()
            .find(|option| option.name == name)
            .expect("every Config field is in OPTIONS");
        let (text, source_name) = if let Some(value) = self.args.values.get(name) {
            (value.clone(), format!("--{}", option.flag))
        } else if let Some(value) = self.env.get(option.env) {
            (value.clone(), option.env.to_owned())
        } else if let Some(value) = self.file.as_ref().and_then(|(_, table)| table.get(name)) {
            let path = self
                .file
                .as_ref()
                .map(|(path, _)| path.display().to_string());
            let source_name = format!("`{name}` in {}", path.unwrap_or_default());
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                _ => {
                    return Err(ConfigError::Invalid {
                        source_name,
                        message: "must be a string, integer or boolean".to_owned(),
                    })
                }
            };
            (text, source_name)
        } else {
            (
                option.default.to_owned(),
                format!("default of --{}", option.flag),
            )
        };
        let explicit = !source_name.starts_with("default of");
        if explicit && text.trim().is_empty() && SECURITY_OPTIONS.contains(&name) {
            return Err(ConfigError::Invalid {
                source_name,
                message: "is set but empty: name a key file, or unset it to turn this check off"
                    .to_owned(),
            });
        }
        T::parse_value(&text).map_err(|message| ConfigError::Invalid {
            source_name,
            message,
        })
    }
}

/// Options that turn a security check on: set to the empty string they are an error, not
/// "off" (an `APPROVD_ADMISSION_KEY_FILE=` left empty by a template must not open the relay).
const SECURITY_OPTIONS: [&str; 4] = [
    "admission_key_file",
    "push_forward_key_file",
    "revoked_tokens_file",
    "push_upstream_key_file",
];

/// Parse the config file's text into its table, refusing keys that are not options.
pub(super) fn parse_file<'a>(
    path: &'a Path,
    text: &str,
) -> Result<(&'a Path, toml::Table), ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| file_error(error.message().to_owned()))?;
    // `push` holds the credential lists (`[[push.apns]]`, `[[push.fcm]]`; config/credentials.rs).
    if let Some(unknown) = table.keys().find(|key| {
        key.as_str() != "push" && !OPTIONS.iter().any(|option| option.name == key.as_str())
    }) {
        return Err(file_error(format!("unknown option `{unknown}`")));
    }
    Ok((path, table))
}

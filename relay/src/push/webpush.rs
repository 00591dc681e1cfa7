//! Web Push (RFC 8030) building blocks, provider `webpush`: a subscription's parts
//! (`endpoint`, `p256dh`, `auth`), message encryption (RFC 8291, `aes128gcm` of RFC 8188), the
//! operator's VAPID identity and its per-origin tokens (RFC 8292), and the checks that keep an
//! attacker-supplied endpoint from pointing the relay anywhere but a public push service (an
//! allow-list of hosts, no IP literals, and a resolver that refuses private addresses).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use aes_gcm::aead::AeadInPlace as _;
use aes_gcm::KeyInit as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;

/// The record size written in the `aes128gcm` header (one record carries the whole message).
const RECORD_SIZE: u32 = 4096;
/// Longest plaintext one record may carry: the record size less the AEAD tag and the
/// padding delimiter (RFC 8188 §2).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 16 - 1;
/// How long a VAPID token is valid (RFC 8292 allows at most 24 h).
pub const VAPID_LIFETIME_SECS: u64 = 12 * 3600;
/// A cached VAPID token is replaced this long before it expires.
const VAPID_RENEW_BEFORE_SECS: u64 = 3600;
/// Most push-service origins with a cached VAPID token (an allow-list pattern such as
/// `*.notify.windows.com` covers many hosts); past it the cache starts over.
const MAX_CACHED_ORIGINS: usize = 1024;

/// Why a subscription or an endpoint is refused (at registration, never at push time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("`endpoint` is not a URL")]
    NotUrl,
    #[error("`endpoint` must use https://")]
    NotHttps,
    #[error("`endpoint` names an IP address; push services are named by host name")]
    IpLiteral,
    #[error(
        "`endpoint` host `{0}` is not a push service this relay allows (--webpush-allowed-hosts)"
    )]
    HostNotAllowed(String),
    #[error("`endpoint` carries a user name, password or fragment")]
    Credentials,
    #[error("`p256dh` is not an uncompressed P-256 public key (65 bytes, base64url)")]
    BadP256dh,
    #[error("`auth` is not a 16-byte secret (base64url)")]
    BadAuth,
}

/// A browser's push subscription (`PushSubscription.toJSON()`), checked.
#[derive(Clone)]
pub struct Subscription {
    pub endpoint: reqwest::Url,
    /// The user agent's ECDH key (`p256dh`).
    pub ua_public: p256::PublicKey,
    /// The user agent's authentication secret (`auth`).
    pub auth: [u8; 16],
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint is a capability to push to this browser: never in logs.
        f.debug_struct("Subscription")
            .field("host", &self.endpoint.host_str())
            .finish_non_exhaustive()
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    // Browsers give unpadded base64url; some libraries pad it.
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

impl Subscription {
    /// Check a subscription's parts against `policy`.
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        policy: &EndpointPolicy,
    ) -> Result<Self, SubscriptionError> {
        let endpoint = policy.check(endpoint)?;
        let ua_public = decode(p256dh)
            .filter(|bytes| bytes.len() == 65 && bytes[0] == 0x04)
            .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or(SubscriptionError::BadP256dh)?;
        let auth = decode(auth)
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .ok_or(SubscriptionError::BadAuth)?;
        Ok(Self {
            endpoint,
            ua_public,
            auth,
        })
    }

    /// The endpoint's origin (`https://host[:port]`): a VAPID token's `aud`.
    pub fn origin(&self) -> String {
        self.endpoint.origin().ascii_serialization()
    }
}

/// Encrypt `plaintext` for `subscription` (RFC 8291 with `aes128gcm`): a fresh ephemeral key
/// and salt each time. The result is the request body.
pub fn encrypt(plaintext: &[u8], subscription: &Subscription) -> Vec<u8> {
    let ephemeral = loop {
        // A uniformly random 32-byte string is a valid scalar but with probability ~2^-32.
        if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
            break key;
        }
    };
    encrypt_with(
        plaintext,
        &subscription.ua_public,
        &subscription.auth,
        &ephemeral,
        rand::random(),
    )
}

/// [`encrypt`] with a given ephemeral key and salt (RFC 8291 Appendix A checks it).
fn encrypt_with(
    plaintext: &[u8],
    ua_public: &p256::PublicKey,
    auth: &[u8; 16],
    as_secret: &p256::SecretKey,
    salt: [u8; 16],
) -> Vec<u8> {
    debug_assert!(plaintext.len() <= MAX_PLAINTEXT);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());
    let ua_bytes = ua_public.to_encoded_point(false);
    let as_bytes = as_secret.public_key().to_encoded_point(false);
    // RFC 8291 §3.4: IKM = HKDF(salt = auth, ikm = ecdh_secret, info = key_info, L = 32).
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_bytes.as_bytes());
    key_info.extend_from_slice(as_bytes.as_bytes());
    let mut ikm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .expect("32 bytes is a valid HKDF-SHA-256 length");
    // RFC 8188 §2.2: CEK and nonce from the salt and IKM.
    let content = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    content
        .expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .expect("valid length");
    content
        .expand(b"Content-Encoding: nonce\0", &mut nonce)
        .expect("valid length");
    // One record, the last: the plaintext, then the delimiter 0x02, no padding.
    let mut record = Vec::with_capacity(plaintext.len() + 1 + 16);
    record.extend_from_slice(plaintext);
    record.push(0x02);
    aes_gcm::Aes128Gcm::new(&cek.into())
        .encrypt_in_place(&nonce.into(), b"", &mut record)
        .expect("one record is far below AES-GCM's limit");
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_bytes.as_bytes());
    body.extend_from_slice(&record);
    body
}

/// The operator's VAPID identity (RFC 8292): a P-256 key and a contact (`sub`), and the tokens
/// made with it, one per push-service origin, reused until an hour before they expire (as the
/// FCM OAuth token is).
pub struct Vapid {
    key: jsonwebtoken::EncodingKey,
    /// The public key, uncompressed and base64url: `k=` and what a page subscribes with.
    public: String,
    subject: String,
    tokens: Mutex<HashMap<String, (String, u64)>>,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// From a P-256 private key in PEM (PKCS#8, `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`, or SEC1 `EC PRIVATE KEY`) and a `mailto:` or `https:`
    /// contact.
    pub fn from_pem(pem: &[u8], subject: &str) -> Result<Self, String> {
        use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err("the VAPID subject must be a mailto: or https: URL".to_owned());
        }
        let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_owned())?;
        let secret = p256::SecretKey::from_pkcs8_pem(text)
            .or_else(|_| p256::SecretKey::from_sec1_pem(text))
            .map_err(|_| "not a P-256 private key in PEM (PKCS#8 or SEC1) form".to_owned())?;
        let der = secret
            .to_pkcs8_der()
            .map_err(|error| format!("cannot re-encode the key: {error}"))?;
        let public = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(Self {
            key: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            public,
            subject: subject.to_owned(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The public key (65 bytes uncompressed, base64url): a page's `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// `Authorization: vapid t=<JWT>, k=<public key>` for a push to `origin` at `now`.
    pub fn authorization(&self, origin: &str, now: u64) -> Result<String, String> {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let token = match tokens.get(origin) {
            Some((token, exp)) if *exp > now + VAPID_RENEW_BEFORE_SECS => token.clone(),
            _ => {
                let exp = now + VAPID_LIFETIME_SECS;
                let claims = serde_json::json!({"aud": origin, "exp": exp, "sub": self.subject});
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                header.typ = Some("JWT".to_owned());
                let token = jsonwebtoken::encode(&header, &claims, &self.key)
                    .map_err(|error| format!("cannot sign the VAPID token: {error}"))?;
                // Bounded: one entry per allowed push-service origin, stale ones go, and
                // never more than MAX_CACHED_ORIGINS.
                tokens.retain(|_, (_, exp)| *exp > now);
                if tokens.len() >= MAX_CACHED_ORIGINS {
                    tokens.clear();
                }
                tokens.insert(origin.to_owned(), (token.clone(), exp));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

/// One allowed host: exactly `name`, or (written `*.name`) any host below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Below(String),
}

impl HostPattern {
    /// `fcm.googleapis.com` or `*.notify.windows.com`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        let (below, name) = match text.strip_prefix("*.") {
            Some(name) => (true, name.to_owned()),
            None => (false, text),
        };
        let valid = !name.is_empty()
            && name.parse::<IpAddr>().is_err()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "`{name}` is not a host name (or `*.` and a host name)"
            ));
        }
        Ok(if below {
            Self::Below(name)
        } else {
            Self::Exact(name)
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Below(name) => host
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        }
    }
}

/// The public push services' hosts, allowed by default: Google's (Chrome, Android), Mozilla's
/// (Firefox), Apple's (Safari, iOS Home Screen web apps) and Microsoft's (Edge).
pub const DEFAULT_ALLOWED_HOSTS: [&str; 5] = [
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "web.push.apple.com",
    "*.push.apple.com",
    "*.notify.windows.com",
];

/// Where the relay may send Web Push requests (SSRF: a subscription's endpoint is whatever the
/// phone claims).
#[derive(Debug, Clone)]
pub struct EndpointPolicy {
    pub allowed_hosts: Vec<HostPattern>,
    /// Let endpoints resolve to loopback, private or link-local addresses (tests, or a push
    /// service on the operator's own network). Off by default.
    pub allow_private: bool,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: DEFAULT_ALLOWED_HOSTS
                .iter()
                .map(|host| HostPattern::parse(host).expect("a valid default"))
                .collect(),
            allow_private: false,
        }
    }
}

impl EndpointPolicy {
    /// The endpoint as a URL, if the relay may send to it: `https`, a host name (never an IP
    /// literal) on the allow-list, no credentials or fragment.
    pub fn check(&self, endpoint: &str) -> Result<reqwest::Url, SubscriptionError> {
        let url = reqwest::Url::parse(endpoint).map_err(|_| SubscriptionError::NotUrl)?;
        if url.scheme() != "https" {
            return Err(SubscriptionError::NotHttps);
        }
        let host = match url.host() {
            Some(url::Host::Domain(host)) => host.to_ascii_lowercase(),
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
                return Err(SubscriptionError::IpLiteral)
            }
            None => return Err(SubscriptionError::NotUrl),
        };
        // A host name made of digits and dots is an IPv4 address to some resolvers.
        if host.parse::<IpAddr>().is_ok() {
            return Err(SubscriptionError::IpLiteral);
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(SubscriptionError::Credentials);
        }
        if !self
            .allowed_hosts
            .iter()
            .any(|pattern| pattern.matches(&host))
        {
            return Err(SubscriptionError::HostNotAllowed(host));
        }
        Ok(url)
    }
}

/// Whether `ip` is an address a public push service never has: loopback, private, link-local,
/// unique-local, carrier-grade NAT, unspecified, multicast or broadcast (IPv4-mapped IPv6
/// addresses judged as the IPv4 address they carry).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A resolver for the Web Push client that leaves out internal addresses ([`is_internal`])
/// unless the operator allows them, so a host name that points inside the operator's network
/// is never connected to, whatever it resolves to at push time.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| allow_private || !is_internal(address.ip()))
                .collect();
            if usable.is_empty() {
                return Err(format!(
                    "{host} resolves only to internal addresses, which Web Push never uses \
                     (--webpush-allow-private allows them)"
                )
                .into());
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Longest answer body read from a push service (only its status matters).
const MAX_ANSWER: usize = 8 * 1024;

/// Sends pushes to browsers' push services under the operator's VAPID key.
pub struct WebPushSender {
    http: reqwest::Client,
    vapid: Vapid,
    policy: EndpointPolicy,
    retry: super::retry::RetryPolicy,
}

impl std::fmt::Debug for WebPushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushSender")
            .field("vapid", &self.vapid)
            .finish_non_exhaustive()
    }
}

impl WebPushSender {
    /// Push with `vapid` to endpoints `policy` allows; `timeout` bounds every request.
    pub fn new(
        vapid: Vapid,
        policy: EndpointPolicy,
        extra_ca_pem: Option<&[u8]>,
        timeout: std::time::Duration,
        retry: super::retry::RetryPolicy,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = extra_ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|error| format!("--webpush-ca-file: {error}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("approvd/", env!("CARGO_PKG_VERSION")))
            // The endpoint is the phone's word: never follow it elsewhere, never through a
            // proxy from the environment, and resolve it only to public addresses.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(PublicOnly {
                allow_private: policy.allow_private,
            }))
            .https_only(true)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Self {
            http,
            vapid,
            policy,
            retry,
        })
    }

    /// The VAPID public key (the `topic` of registrations this sender serves).
    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// The registration's subscription, checked as at registration.
    pub fn subscription(
        &self,
        registration: &approvd_proto::wire::PushRegistration,
    ) -> Result<Subscription, SubscriptionError> {
        Subscription::parse(
            &registration.token,
            registration.p256dh.as_deref().unwrap_or_default(),
            registration.auth.as_deref().unwrap_or_default(),
            &self.policy,
        )
    }

    async fn attempt(
        &self,
        subscription: &Subscription,
        message: &super::PushMessage,
    ) -> super::retry::Attempt {
        use super::retry::Attempt;
        let now = crate::clock::system_now();
        let authorization = match self.vapid.authorization(&subscription.origin(), now) {
            Ok(header) => header,
            Err(reason) => {
                return Attempt::Done(super::PushResult::Failed {
                    reason,
                    alarm: true,
                })
            }
        };
        let body = encrypt(message.data().to_string().as_bytes(), subscription);
        let urgency = match message.kind {
            super::PushKind::Alert => "high",
            super::PushKind::Dismiss => "normal",
        };
        let sent = self
            .http
            .post(subscription.endpoint.clone())
            .header("authorization", authorization)
            .header(
                "ttl",
                message.expires.saturating_sub(now).max(1).to_string(),
            )
            .header("urgency", urgency)
            // One topic per challenge: its dismissal replaces the alert still queued.
            .header("topic", message.cid.to_string())
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    after: None,
                    reason: format!("push service: {}", super::describe_http_error(&error)),
                }
            }
        };
        let status = response.status().as_u16();
        let after = super::retry::retry_after(&response);
        // Read (and drop) at most MAX_ANSWER bytes of the answer.
        let mut read = 0;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER {
                break;
            }
        }
        classify(status, after)
    }
}

/// A push service's answer → what to do (RFC 8030 §5, RFC 8292 §4; one table).
pub fn classify(status: u16, after: Option<std::time::Duration>) -> super::retry::Attempt {
    use super::retry::Attempt;
    use super::PushResult;
    let failed = |reason: String, alarm: bool| Attempt::Done(PushResult::Failed { reason, alarm });
    match status {
        200..=202 => Attempt::Done(PushResult::Delivered),
        404 | 410 => Attempt::Done(PushResult::Gone),
        400 | 413 => failed(
            format!("the push service refused this push ({status})"),
            false,
        ),
        401 | 403 => failed(
            format!(
                "the push service refused the VAPID credentials ({status}): the subscription \
                 was made with another application server key, or the key file changed"
            ),
            true,
        ),
        429 | 500..=599 => Attempt::Retry {
            after,
            reason: format!("the push service answered {status}"),
        },
        300..=399 => failed(
            format!("the push service answered {status} (a redirect, never followed)"),
            false,
        ),
        other => failed(format!("the push service answered {other}"), false),
    }
}

#[async_trait::async_trait]
impl super::PushSender for WebPushSender {
    fn name(&self) -> &'static str {
        "webpush"
    }

    async fn send(
        &self,
        registration: &approvd_proto::wire::PushRegistration,
        message: &super::PushMessage,
    ) -> super::PushResult {
        let subscription = match self.subscription(registration) {
            Ok(subscription) => subscription,
            // Refused at registration already; a handle minted under another allow-list.
            Err(error) => {
                return super::PushResult::Failed {
                    reason: error.to_string(),
                    alarm: false,
                }
            }
        };
        self.retry
            .run(message.expires, || self.attempt(&subscription, message))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }

    /// RFC 8291 Appendix A, byte for byte.
    #[test]
    fn encryption_matches_rfc_8291_appendix_a() {
        let as_secret =
            p256::SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
                .expect("as key");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(as_secret.public_key().to_encoded_point(false).as_bytes()),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let ua_public = p256::PublicKey::from_sec1_bytes(&b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        ))
        .expect("ua key");
        let auth: [u8; 16] = b64("BTBZMqHH6r4Tts7J_aSIgg").try_into().expect("16");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16");
        let body = encrypt_with(
            b"When I grow up, I want to be a watermelon",
            &ua_public,
            &auth,
            &as_secret,
            salt,
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC\
             YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyo\
             uBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn vapid_tokens_name_the_origin_verify_under_the_public_key_and_are_reused() {
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).expect("key");
        let pem = secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem");
        let vapid = Vapid::from_pem(pem.as_bytes(), "mailto:ops@example.com").expect("vapid");
        let now = 1_767_225_600;
        let header = vapid
            .authorization("https://fcm.googleapis.com", now)
            .expect("header");
        let (token, key) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(key, vapid.public_key());
        let public = p256::PublicKey::from_sec1_bytes(&b64(key)).expect("public key");
        let (x, y) = {
            let point = public.to_encoded_point(false);
            (
                URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            )
        };
        let decoding = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).expect("key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["https://fcm.googleapis.com"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .expect("verifies")
            .claims;
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        assert_eq!(claims["exp"], now + VAPID_LIFETIME_SECS);
        assert_eq!(
            vapid
                .authorization("https://fcm.googleapis.com", now + 600)
                .expect("again"),
            header,
            "reused"
        );
        assert_ne!(
            vapid
                .authorization("https://fcm.googleapis.com", now + VAPID_LIFETIME_SECS - 60)
                .expect("renewed"),
            header,
            "renewed before it expires"
        );
        assert!(Vapid::from_pem(pem.as_bytes(), "ops@example.com").is_err());
    }

    #[test]
    fn endpoints_must_be_https_hosts_on_the_allow_list() {
        let policy = EndpointPolicy::default();
        for good in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
            "https://web.push.apple.com/QGx",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
        ] {
            policy.check(good).expect(good);
        }
        for (bad, error) in [
            (
                "http://fcm.googleapis.com/fcm/send/x",
                SubscriptionError::NotHttps,
            ),
            ("https://127.0.0.1/x", SubscriptionError::IpLiteral),
            ("https://[::1]/x", SubscriptionError::IpLiteral),
            (
                "https://169.254.169.254/latest",
                SubscriptionError::IpLiteral,
            ),
            (
                "https://evil.example/fcm.googleapis.com",
                SubscriptionError::HostNotAllowed("evil.example".to_owned()),
            ),
            (
                "https://notify.windows.com.evil.example/",
                SubscriptionError::HostNotAllowed("notify.windows.com.evil.example".to_owned()),
            ),
            (
                "https://evilnotify.windows.com/",
                SubscriptionError::HostNotAllowed("evilnotify.windows.com".to_owned()),
            ),
            (
                "https://user:pw@fcm.googleapis.com/x",
                SubscriptionError::Credentials,
            ),
            ("not a url", SubscriptionError::NotUrl),
        ] {
            assert_eq!(policy.check(bad), Err(error), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in ["142.250.74.10", "2a00:1450:4001::200e", "17.253.144.10"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn every_push_service_answer_is_classified() {
        use crate::push::retry::Attempt;
        use crate::push::PushResult;
        let done = |status| match classify(status, None) {
            Attempt::Done(result) => Some(result),
            Attempt::Retry { .. } => None,
        };
        assert_eq!(done(201), Some(PushResult::Delivered));
        assert_eq!(done(404), Some(PushResult::Gone));
        assert_eq!(done(410), Some(PushResult::Gone));
        for permanent in [400, 413] {
            assert!(matches!(
                done(permanent),
                Some(PushResult::Failed { alarm: false, .. })
            ));
        }
        for credentials in [401, 403] {
            assert!(matches!(
                done(credentials),
                Some(PushResult::Failed { alarm: true, .. })
            ));
        }
        for retried in [429, 500, 503] {
            assert_eq!(done(retried), None, "{retried}");
        }
        assert!(matches!(
            classify(429, Some(std::time::Duration::from_secs(3))),
            Attempt::Retry { after: Some(after), .. } if after.as_secs() == 3
        ));
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_inside_is_refused_unless_allowed() {
        use reqwest::dns::Resolve as _;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().expect("name");
        let refused = PublicOnly {
            allow_private: false,
        }
        .resolve(name("localhost"))
        .await;
        let error = match refused {
            Ok(_) => panic!("localhost resolved"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("internal addresses"), "{error}");
        let allowed = PublicOnly {
            allow_private: true,
        }
        .resolve(name("localhost"))
        .await
        .expect("allowed");
        assert!(allowed
            .into_iter()
            .all(|address| address.ip().is_loopback()));
    }
}

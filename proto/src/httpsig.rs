//! The approvd profile of RFC 9421 HTTP Message Signatures (Ed25519) and RFC 9530
//! `Content-Digest`, independent of any HTTP library. Owns signature-base construction, header
//! building and strict parsing, and the time checks — all against an explicit `now`.
//! It does not own the nonce replay cache (that needs a store: the relay keeps it).
//!
//! Profile: one signature per request (any label); covered components `"@method"`, `"@path"`,
//! `"@query"`, and `"content-digest"` whenever the request has a body — and any others a stock
//! RFC 9421 signer adds (header fields such as `date`, `@authority`, `@target-uri`, ...), each
//! of which is resolved and verified; parameters `created`, `expires`, `nonce`, `keyid`
//! (base64url Ed25519 public key), `alg="ed25519"`, `tag="approvd/v1"`, each exactly once.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};

use crate::error::HttpSigError;
use crate::ids::{PublicKey, Sig};
pub use crate::limits::{MAX_COMPONENTS, MAX_HEADER, MAX_LIFETIME, MAX_SKEW};
use crate::signed::verify_strict;

/// The `tag` parameter of every approvd request signature.
pub const SIG_TAG: &str = "approvd/v1";
/// The `alg` parameter.
pub const SIG_ALG: &str = "ed25519";
/// The label our signers use (verifiers accept any single label).
pub const SIG_LABEL: &str = "sig1";
/// Lifetime our signers give a request signature, seconds.
pub const DEFAULT_LIFETIME: u64 = 60;

/// The components every signature covers, in the order our signers write them.
const METHOD: &str = "@method";
const PATH: &str = "@path";
const QUERY: &str = "@query";
const CONTENT_DIGEST: &str = "content-digest";
/// Derived components (RFC 9421 §2.2) a signer may cover in addition; resolved from
/// [`RequestContext`].
const AUTHORITY: &str = "@authority";
const SCHEME: &str = "@scheme";
const TARGET_URI: &str = "@target-uri";
const REQUEST_TARGET: &str = "@request-target";
const DERIVED: [&str; 7] = [
    METHOD,
    PATH,
    QUERY,
    AUTHORITY,
    SCHEME,
    TARGET_URI,
    REQUEST_TARGET,
];
/// Header fields a signature may not cover: the signature's own headers.
const UNCOVERABLE: [&str; 2] = ["signature", "signature-input"];
/// The covered header field whose time is checked against the clock, like `created`.
const DATE: &str = "date";

/// The request as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// Upper-case method, e.g. `POST`.
    pub method: &'a str,
    /// The path exactly as sent on the request line (still percent-encoded), e.g. `/v1/inbox`.
    pub path: &'a str,
    /// The query exactly as sent, without the leading `?`; empty when there is none.
    pub query: &'a str,
}

/// What else of a request a signature may cover, beyond [`RequestTarget`] and
/// `Content-Digest`: the URL's scheme and authority and the header fields, as the verifier
/// received them. [`RequestContext::NONE`] resolves nothing (a signature covering more than the
/// profile's components then fails to verify with a clear error).
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The scheme the client used: `http` or `https`.
    pub scheme: Option<&'a str>,
    /// The authority the client addressed (`Host`), e.g. `relay.example:8443`.
    pub authority: Option<&'a str>,
    /// Header fields as received, one entry per field line; names in any case.
    pub fields: &'a [(&'a str, &'a str)],
}

impl RequestContext<'_> {
    /// Nothing beyond the profile's own components.
    pub const NONE: RequestContext<'static> = RequestContext {
        scheme: None,
        authority: None,
        fields: &[],
    };

    /// The value of header field `name` per RFC 9421 §2.1: every line's value with outer
    /// whitespace trimmed, joined with `, `; `None` when the field is absent.
    fn field(&self, name: &str) -> Option<String> {
        let mut lines = self
            .fields
            .iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim_matches([' ', '\t']));
        let first = lines.next()?;
        Some(lines.fold(first.to_owned(), |mut joined, line| {
            joined.push_str(", ");
            joined.push_str(line);
            joined
        }))
    }

    /// `@authority`: lower case, without the scheme's default port (RFC 9421 §2.2.3).
    fn authority(&self) -> Option<String> {
        let authority = self.authority?.trim().to_ascii_lowercase();
        let default_port = match self.scheme() {
            Some(scheme) if scheme == "https" => ":443",
            _ => ":80",
        };
        Some(match authority.strip_suffix(default_port) {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => authority,
        })
    }

    fn scheme(&self) -> Option<String> {
        self.scheme.map(str::to_ascii_lowercase)
    }
}

/// A signature parameter of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Created,
    Expires,
    Nonce,
    KeyId,
    Alg,
    Tag,
}

impl Param {
    /// The order this crate writes them in (any order is accepted: RFC 9421 signs
    /// `@signature-params` in the order the signer chose).
    pub const PROFILE_ORDER: [Param; 6] = [
        Param::Created,
        Param::Expires,
        Param::Nonce,
        Param::KeyId,
        Param::Alg,
        Param::Tag,
    ];
}

/// Parsed signature parameters (the inner list and its parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered component identifiers, in order.
    pub components: Vec<String>,
    pub created: u64,
    pub expires: u64,
    pub nonce: String,
    /// base64url Ed25519 public key of the caller: a `nas_id` or a `device_id`.
    pub keyid: String,
    pub alg: String,
    pub tag: String,
    /// The order of the parameters as received (or to write); empty means
    /// [`Param::PROFILE_ORDER`].
    pub order: Vec<Param>,
}

impl SignatureParams {
    /// The RFC 8941 serialization used both in `Signature-Input` and as `@signature-params`:
    /// components in their order, then the parameters in [`SignatureParams::order`].
    pub fn serialize(&self) -> String {
        let components: Vec<String> = self
            .components
            .iter()
            .map(|component| format!("\"{component}\""))
            .collect();
        let order: &[Param] = if self.order.is_empty() {
            &Param::PROFILE_ORDER
        } else {
            &self.order
        };
        let mut text = format!("({})", components.join(" "));
        for param in order {
            let item = match param {
                Param::Created => format!(";created={}", self.created),
                Param::Expires => format!(";expires={}", self.expires),
                Param::Nonce => format!(";nonce=\"{}\"", self.nonce),
                Param::KeyId => format!(";keyid=\"{}\"", self.keyid),
                Param::Alg => format!(";alg=\"{}\"", self.alg),
                Param::Tag => format!(";tag=\"{}\"", self.tag),
            };
            text.push_str(&item);
        }
        text
    }
}

/// The headers a signed request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub signature_input: String,
    pub signature: String,
    /// Present when the request has a body.
    pub content_digest: Option<String>,
}

/// `Content-Digest` value for `body`: `sha-256=:<base64(SHA-256(body))>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The RFC 9421 §2.5 signature base for `target` under `params`, for a signature that covers
/// only the profile's components (what our signers write).
///
/// `content_digest` is the `Content-Digest` header value; it is needed only when
/// `"content-digest"` is covered.
pub fn signature_base(
    target: &RequestTarget<'_>,
    content_digest: Option<&str>,
    params: &SignatureParams,
) -> Result<String, HttpSigError> {
    signature_base_in(target, &RequestContext::NONE, content_digest, params)
}

/// The signature base when the signature may cover more: components beyond the profile's
/// are resolved from `context` (a header field that is absent, or a derived component the
/// context cannot name, is an error).
pub fn signature_base_in(
    target: &RequestTarget<'_>,
    context: &RequestContext<'_>,
    content_digest: Option<&str>,
    params: &SignatureParams,
) -> Result<String, HttpSigError> {
    let unresolved = |component: &str| HttpSigError::MissingField(truncate(component));
    let mut base = String::with_capacity(256);
    for component in &params.components {
        let path = if target.path.is_empty() {
            "/"
        } else {
            target.path
        };
        let query = if target.query.is_empty() {
            String::new()
        } else {
            format!("?{}", target.query)
        };
        let value: String = match component.as_str() {
            METHOD => target.method.to_owned(),
            PATH => path.to_owned(),
            QUERY => format!("?{}", target.query),
            CONTENT_DIGEST => content_digest
                .ok_or(HttpSigError::MissingHeader("Content-Digest"))?
                .to_owned(),
            AUTHORITY => context.authority().ok_or_else(|| unresolved(component))?,
            SCHEME => context.scheme().ok_or_else(|| unresolved(component))?,
            TARGET_URI => {
                let scheme = context.scheme().ok_or_else(|| unresolved(component))?;
                let authority = context.authority().ok_or_else(|| unresolved(component))?;
                format!("{scheme}://{authority}{path}{query}")
            }
            REQUEST_TARGET => format!("{path}{query}"),
            field if !field.starts_with('@') => {
                context.field(field).ok_or_else(|| unresolved(field))?
            }
            other => return Err(HttpSigError::UnsupportedComponent(truncate(other))),
        };
        base.push('"');
        base.push_str(component);
        base.push_str("\": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&params.serialize());
    Ok(base)
}

/// Sign a request: returns the `Signature-Input`, `Signature` and (with a body)
/// `Content-Digest` header values. `nonce` must be 16–64 base64url characters, fresh per request.
pub fn sign_request(
    key: &SigningKey,
    target: &RequestTarget<'_>,
    body: Option<&[u8]>,
    created: u64,
    nonce: &str,
) -> SignedHeaders {
    let mut components = vec![METHOD.to_owned(), PATH.to_owned(), QUERY.to_owned()];
    if body.is_some() {
        components.push(CONTENT_DIGEST.to_owned());
    }
    let params = SignatureParams {
        components,
        created,
        expires: created + DEFAULT_LIFETIME,
        nonce: nonce.to_owned(),
        keyid: PublicKey::from(key).to_string(),
        alg: SIG_ALG.to_owned(),
        tag: SIG_TAG.to_owned(),
        order: Vec::new(),
    };
    sign_with_params(key, target, &RequestContext::NONE, body, &params)
        .expect("the profile's own components always resolve")
}

/// Sign a request under exactly these parameters (their components, values and order),
/// resolving components beyond the profile's from `context`; fails when one does not resolve.
pub fn sign_with_params(
    key: &SigningKey,
    target: &RequestTarget<'_>,
    context: &RequestContext<'_>,
    body: Option<&[u8]>,
    params: &SignatureParams,
) -> Result<SignedHeaders, HttpSigError> {
    let digest = body.map(content_digest);
    let base = signature_base_in(target, context, digest.as_deref(), params)?;
    let signature = key.sign(base.as_bytes());
    Ok(SignedHeaders {
        signature_input: format!("{SIG_LABEL}={}", params.serialize()),
        signature: format!("{SIG_LABEL}=:{}:", STANDARD.encode(signature.to_bytes())),
        content_digest: digest,
    })
}

/// A fresh request nonce: 16 random bytes as base64url (22 characters).
pub fn new_nonce() -> String {
    crate::ids::encode_b64(&crate::random_bytes::<16>())
}

/// An incoming request as the verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    pub target: RequestTarget<'a>,
    /// What components beyond the profile's resolve to ([`RequestContext::NONE`]: nothing).
    pub context: RequestContext<'a>,
    pub signature_input: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub content_digest: Option<&'a str>,
    /// The body as received (empty when there is none).
    pub body: &'a [u8],
}

/// What a verified signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The caller's key (`keyid`); the relay decides by route whether it is a NAS or a device.
    pub key: PublicKey,
    /// The nonce, for the caller's replay cache (keep it until `expires` + skew).
    pub nonce: String,
    pub created: u64,
    pub expires: u64,
}

/// Verify a request signature at time `now` (unix seconds), allowing `max_skew` seconds of
/// clock difference. Cheap checks (sizes, parse, time, digest) run before the signature check.
/// Replay protection (the nonce) is the caller's job.
pub fn verify_request(
    request: &IncomingRequest<'_>,
    now: u64,
    max_skew: u64,
) -> Result<VerifiedRequest, HttpSigError> {
    let input = request
        .signature_input
        .ok_or(HttpSigError::MissingHeader("Signature-Input"))?;
    let signature = request
        .signature
        .ok_or(HttpSigError::MissingHeader("Signature"))?;
    let (label, params) = parse_signature_input(input)?;
    let (signature_label, sig) = parse_signature(signature)?;
    if label != signature_label {
        return Err(HttpSigError::Label);
    }
    check_params(&params, !request.body.is_empty(), now, max_skew)?;
    let key = PublicKey::parse("keyid", &params.keyid)
        .map_err(|error| HttpSigError::KeyId(Box::new(error)))?;
    let covers_digest = params.components.iter().any(|c| c == CONTENT_DIGEST);
    if covers_digest || !request.body.is_empty() {
        let header = request
            .content_digest
            .ok_or(HttpSigError::MissingHeader("Content-Digest"))?;
        check_content_digest(header, request.body)?;
    }
    if params.components.iter().any(|c| c == DATE) {
        check_date(&request.context, now, max_skew)?;
    }
    let base = signature_base_in(
        &request.target,
        &request.context,
        request.content_digest,
        &params,
    )?;
    verify_strict(&key, base.as_bytes(), &sig).map_err(|_| HttpSigError::BadSignature)?;
    Ok(VerifiedRequest {
        key,
        nonce: params.nonce,
        created: params.created,
        expires: params.expires,
    })
}

fn check_params(
    params: &SignatureParams,
    has_body: bool,
    now: u64,
    max_skew: u64,
) -> Result<(), HttpSigError> {
    for required in [METHOD, PATH, QUERY] {
        if !params.components.iter().any(|c| c == required) {
            return Err(HttpSigError::MissingComponent(required));
        }
    }
    if has_body && !params.components.iter().any(|c| c == CONTENT_DIGEST) {
        return Err(HttpSigError::MissingComponent(CONTENT_DIGEST));
    }
    if params.alg != SIG_ALG {
        return Err(HttpSigError::Alg);
    }
    if params.tag != SIG_TAG {
        return Err(HttpSigError::Tag);
    }
    let nonce_ok = (16..=64).contains(&params.nonce.len())
        && params
            .nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !nonce_ok {
        return Err(HttpSigError::Nonce);
    }
    let skew = now.abs_diff(params.created);
    if skew > max_skew {
        return Err(HttpSigError::Skew { skew, max_skew });
    }
    if params.expires <= params.created || params.expires - params.created > MAX_LIFETIME {
        return Err(HttpSigError::Lifetime { max: MAX_LIFETIME });
    }
    if params.expires <= now {
        return Err(HttpSigError::Expired);
    }
    Ok(())
}

/// A covered `Date` must be an HTTP date within `max_skew` of `now`, like `created`: a signer
/// that covers it says the request was made then.
fn check_date(context: &RequestContext<'_>, now: u64, max_skew: u64) -> Result<(), HttpSigError> {
    let value = context
        .field(DATE)
        .ok_or_else(|| HttpSigError::MissingField(DATE.to_owned()))?;
    let malformed = HttpSigError::Malformed {
        header: "Date",
        reason: "not an HTTP date (IMF-fixdate)",
    };
    if value.len() > 64 {
        return Err(malformed);
    }
    let date = httpdate::parse_http_date(&value)
        .map_err(|_| malformed.clone())?
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| malformed)?
        .as_secs();
    let skew = now.abs_diff(date);
    if skew > max_skew {
        return Err(HttpSigError::DateSkew { skew, max_skew });
    }
    Ok(())
}

/// Check a `Content-Digest` header against `body`: it must hold a `sha-256` member that matches.
/// Other algorithms are ignored, as RFC 9530 allows.
pub fn check_content_digest(header: &str, body: &[u8]) -> Result<(), HttpSigError> {
    let malformed = |reason| HttpSigError::Malformed {
        header: "Content-Digest",
        reason,
    };
    if header.len() > MAX_HEADER {
        return Err(malformed("too long"));
    }
    let mut cursor = Cursor::new(header, "Content-Digest");
    let mut sha256 = None;
    loop {
        cursor.skip_ows();
        let key = cursor.key()?;
        cursor.expect(b'=')?;
        let value = cursor.byte_sequence()?;
        if key == "sha-256" {
            if sha256.is_some() {
                return Err(malformed("sha-256 appears twice"));
            }
            sha256 = Some(value);
        }
        cursor.skip_ows();
        if cursor.done() {
            break;
        }
        cursor.expect(b',')?;
    }
    let expected = sha256.ok_or(HttpSigError::DigestAlgorithm)?;
    if expected.as_slice() != Sha256::digest(body).as_slice() {
        return Err(HttpSigError::DigestMismatch);
    }
    Ok(())
}

/// Parse `Signature-Input`: exactly one member `label=("c1" "c2" ...);param=value;...`.
pub fn parse_signature_input(header: &str) -> Result<(String, SignatureParams), HttpSigError> {
    if header.len() > MAX_HEADER {
        return Err(HttpSigError::Malformed {
            header: "Signature-Input",
            reason: "too long",
        });
    }
    let mut cursor = Cursor::new(header, "Signature-Input");
    cursor.skip_ows();
    let label = cursor.key()?.to_owned();
    cursor.expect(b'=')?;
    cursor.expect(b'(')?;
    let mut components: Vec<String> = Vec::new();
    loop {
        cursor.skip_sp();
        if cursor.eat(b')') {
            break;
        }
        let component = cursor.string()?;
        if cursor.peek() == Some(b';') {
            return Err(HttpSigError::UnsupportedComponent(format!(
                "{component} with parameters"
            )));
        }
        if components.contains(&component) {
            return Err(cursor.malformed("a component is covered twice"));
        }
        if !coverable(&component) {
            return Err(HttpSigError::UnsupportedComponent(truncate(&component)));
        }
        if components.len() == MAX_COMPONENTS {
            return Err(cursor.malformed("too many covered components"));
        }
        components.push(component);
        if !matches!(cursor.peek(), Some(b' ') | Some(b')')) {
            return Err(cursor.malformed("components must be separated by spaces"));
        }
    }
    let mut created = None;
    let mut expires = None;
    let mut nonce = None;
    let mut keyid = None;
    let mut alg = None;
    let mut tag = None;
    let mut order = Vec::with_capacity(6);
    while cursor.eat(b';') {
        cursor.skip_sp();
        let name = cursor.key()?.to_owned();
        cursor.expect(b'=')?;
        let (param, duplicate) = match name.as_str() {
            "created" => (Param::Created, created.replace(cursor.integer()?).is_some()),
            "expires" => (Param::Expires, expires.replace(cursor.integer()?).is_some()),
            "nonce" => (Param::Nonce, nonce.replace(cursor.string()?).is_some()),
            "keyid" => (Param::KeyId, keyid.replace(cursor.string()?).is_some()),
            "alg" => (Param::Alg, alg.replace(cursor.string()?).is_some()),
            "tag" => (Param::Tag, tag.replace(cursor.string()?).is_some()),
            _ => return Err(HttpSigError::UnknownParam(truncate(&name))),
        };
        order.push(param);
        if duplicate {
            return Err(cursor.malformed("a parameter appears twice"));
        }
    }
    cursor.skip_ows();
    if cursor.eat(b',') {
        return Err(HttpSigError::Label);
    }
    if !cursor.done() {
        return Err(cursor.malformed("unexpected characters after the parameters"));
    }
    let params = SignatureParams {
        components,
        created: created.ok_or(HttpSigError::MissingParam("created"))?,
        expires: expires.ok_or(HttpSigError::MissingParam("expires"))?,
        nonce: nonce.ok_or(HttpSigError::MissingParam("nonce"))?,
        keyid: keyid.ok_or(HttpSigError::MissingParam("keyid"))?,
        alg: alg.ok_or(HttpSigError::MissingParam("alg"))?,
        tag: tag.ok_or(HttpSigError::MissingParam("tag"))?,
        order,
    };
    Ok((label, params))
}

/// Parse `Signature`: exactly one member `label=:base64:` holding 64 bytes.
pub fn parse_signature(header: &str) -> Result<(String, Sig), HttpSigError> {
    if header.len() > MAX_HEADER {
        return Err(HttpSigError::Malformed {
            header: "Signature",
            reason: "too long",
        });
    }
    let mut cursor = Cursor::new(header, "Signature");
    cursor.skip_ows();
    let label = cursor.key()?.to_owned();
    cursor.expect(b'=')?;
    let bytes = cursor.byte_sequence()?;
    cursor.skip_ows();
    if cursor.eat(b',') {
        return Err(HttpSigError::Label);
    }
    if !cursor.done() {
        return Err(cursor.malformed("unexpected characters after the signature"));
    }
    let sig: [u8; 64] = bytes
        .try_into()
        .map_err(|_| cursor.malformed("an Ed25519 signature is 64 bytes"))?;
    Ok((label, Sig(sig)))
}

/// Whether a signature may cover `component`: a derived component the verifier resolves, or a
/// header field named in lower case (RFC 9421 §2.1) other than the signature's own.
fn coverable(component: &str) -> bool {
    if component.starts_with('@') {
        return DERIVED.contains(&component);
    }
    let token = |byte: u8| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&byte)
    };
    !component.is_empty() && component.bytes().all(token) && !UNCOVERABLE.contains(&component)
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A strict reader for the RFC 8941 subset this profile uses.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    header: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, header: &'static str) -> Self {
        Self {
            bytes: text.as_bytes(),
            position: 0,
            header,
        }
    }

    fn malformed(&self, reason: &'static str) -> HttpSigError {
        HttpSigError::Malformed {
            header: self.header,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn done(&self) -> bool {
        self.position == self.bytes.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), HttpSigError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.malformed(match byte {
                b'=' => "expected `=`",
                b'(' => "expected `(`",
                b',' => "expected `,`",
                _ => "unexpected character",
            }))
        }
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.position += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.position += 1;
        }
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Result<&'a str, HttpSigError> {
        let start = self.position;
        match self.peek() {
            Some(b'a'..=b'z') | Some(b'*') => self.position += 1,
            _ => return Err(self.malformed("expected a lower-case key")),
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.position += 1;
        }
        // The slice holds only ASCII, so it is valid UTF-8.
        std::str::from_utf8(&self.bytes[start..self.position])
            .map_err(|_| self.malformed("key is not ASCII"))
    }

    /// A non-negative sf-integer (at most 15 digits).
    fn integer(&mut self) -> Result<u64, HttpSigError> {
        let start = self.position;
        while let Some(b'0'..=b'9') = self.peek() {
            self.position += 1;
        }
        let digits = &self.bytes[start..self.position];
        if digits.is_empty() || digits.len() > 15 {
            return Err(self.malformed("expected a non-negative integer of at most 15 digits"));
        }
        Ok(digits
            .iter()
            .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0')))
    }

    /// An sf-string: `"` printable ASCII with `\"` and `\\` escapes `"`.
    fn string(&mut self) -> Result<String, HttpSigError> {
        if !self.eat(b'"') {
            return Err(self.malformed("expected a quoted string"));
        }
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(self.malformed("unterminated string")),
                Some(b'"') => {
                    self.position += 1;
                    return Ok(value);
                }
                Some(b'\\') => {
                    self.position += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => {
                            value.push(char::from(escaped));
                            self.position += 1;
                        }
                        _ => return Err(self.malformed("bad escape in string")),
                    }
                }
                Some(byte @ 0x20..=0x7e) => {
                    value.push(char::from(byte));
                    self.position += 1;
                }
                Some(_) => return Err(self.malformed("strings hold printable ASCII only")),
            }
        }
    }

    /// An sf-binary: `:` standard base64 (padded) `:`.
    fn byte_sequence(&mut self) -> Result<Vec<u8>, HttpSigError> {
        if !self.eat(b':') {
            return Err(self.malformed("expected `:base64:`"));
        }
        let start = self.position;
        while let Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=') = self.peek() {
            self.position += 1;
        }
        let encoded = &self.bytes[start..self.position];
        if !self.eat(b':') {
            return Err(self.malformed("expected `:base64:`"));
        }
        STANDARD
            .decode(encoded)
            .map_err(|_| self.malformed("invalid base64"))
    }
}

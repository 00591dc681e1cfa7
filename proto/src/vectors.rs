//! Deterministic test vectors for implementers in other languages: every key comes from a fixed
//! seed, the HPKE ephemeral from a fixed `ikmE`, every time is fixed. Owns the generator only;
//! `approvd-vectors` writes the files to `proto/vectors/` and a test fails on any drift.

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::context::{self, ContextBinding, LoginContext, LoginKind, SealSecret};
use crate::httpsig::{self, RequestTarget};
use crate::ids::{encode_b64, Cid, DeviceId, Digest, NasId, PairingId, PublicKey, Sig};
use crate::pairing::{self, PairingSecret, PairingUri};
use crate::signed::{
    Challenge, Decision, Mute, PairAccept, PairClaim, PairConfirm, SignedMessage, Unpair, Verdict,
};
use crate::totp::{CodeSecret, CodeSecretBinding};

/// A fixed 32-byte seed: SHA-256 of `"approvd test vector: " || name`.
pub fn seed(name: &str) -> [u8; 32] {
    Digest::of(format!("approvd test vector: {name}").as_bytes()).0
}

/// The fixed "now" of every vector: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;

/// The keys every vector uses.
#[derive(Debug)]
pub struct Keys {
    /// `N`.
    pub nas: SigningKey,
    /// `D_api` (its public key is the device id).
    pub device_api: SigningKey,
    /// `D_sig`.
    pub device_sig: SigningKey,
    /// `Dx`.
    pub device_seal: SealSecret,
}

impl Keys {
    /// The keys from their fixed seeds.
    pub fn fixed() -> Self {
        Self {
            nas: SigningKey::from_bytes(&seed("nas N")),
            device_api: SigningKey::from_bytes(&seed("device D_api")),
            device_sig: SigningKey::from_bytes(&seed("device D_sig")),
            device_seal: SealSecret::from_bytes(seed("device Dx")),
        }
    }

    pub fn nas_id(&self) -> NasId {
        NasId(PublicKey::from(&self.nas))
    }

    pub fn device_id(&self) -> DeviceId {
        DeviceId(PublicKey::from(&self.device_api))
    }

    pub fn sig_key(&self) -> PublicKey {
        PublicKey::from(&self.device_sig)
    }
}

/// Yields fixed bytes; used as the HPKE RNG so the ephemeral key is `DeriveKeyPair(ikmE)`.
#[derive(Debug)]
pub struct FixedRng {
    bytes: Vec<u8>,
    position: usize,
}

impl FixedRng {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, position: 0 }
    }
}

impl rand::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut buf = [0u8; 4];
        self.fill_bytes(&mut buf);
        u32::from_le_bytes(buf)
    }

    fn next_u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        self.fill_bytes(&mut buf);
        u64::from_le_bytes(buf)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.position + dest.len();
        assert!(end <= self.bytes.len(), "FixedRng ran out of bytes");
        dest.copy_from_slice(&self.bytes[self.position..end]);
        self.position = end;
    }
}

// Only for deterministic vectors: the bytes are public, so nothing sealed with them is secret.
impl rand::CryptoRng for FixedRng {}

/// The fixed example messages, one per tag, consistent with each other (the verdict answers
/// the challenge, the confirm accepts the claim).
#[derive(Debug)]
pub struct Examples {
    pub keys: Keys,
    pub pairing_uri: PairingUri,
    pub claim: PairClaim,
    pub accept: PairAccept,
    pub code_secret: CodeSecret,
    pub code_binding: CodeSecretBinding,
    pub code_ikm_e: [u8; 32],
    pub sealed_code_secret: Vec<u8>,
    pub confirm: PairConfirm,
    pub context: LoginContext,
    pub binding: ContextBinding,
    pub ikm_e: [u8; 32],
    pub sealed: Vec<u8>,
    pub challenge: Challenge,
    pub verdict: Verdict,
    pub unpair: Unpair,
    pub mute: Mute,
}

impl Examples {
    pub fn fixed() -> Self {
        let keys = Keys::fixed();
        let pairing_id = PairingId(seed("pairing_id")[..16].try_into().expect("16"));
        let pairing_uri = PairingUri {
            relay: "https://relay.example.com".to_owned(),
            pairing_id,
            secret: PairingSecret(seed("pairing secret k")),
            nas_id: keys.nas_id(),
            label: "home-nas (DS923+)".to_owned(),
            account: "alice".to_owned(),
            expires_at: NOW + 600,
        };
        let claim = PairClaim {
            pairing_id,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            sig_key: keys.sig_key(),
            seal_key: keys.device_seal.public_key(),
            device_info: pairing::seal_device_info_with_nonce(
                &pairing_uri.secret,
                &pairing_id,
                &keys.device_id(),
                &example_device_info(),
                seed("device info nonce")[..12].try_into().expect("12"),
            )
            .expect("the example device info seals"),
            claimed_at: NOW + 5,
        };
        let accept = PairAccept {
            pairing_id,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            claim_hash: claim.hash(),
            accepted_at: NOW + 7,
        };
        let code_secret = CodeSecret(seed("offline code secret"));
        let code_binding = CodeSecretBinding {
            pairing_id,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            claim_hash: claim.hash(),
        };
        let code_ikm_e = seed("code secret ikmE");
        let sealed_code_secret = crate::totp::seal_code_secret_with_rng(
            &code_secret,
            &code_binding,
            &keys.device_seal.public_key(),
            &mut FixedRng::new(code_ikm_e.to_vec()),
        )
        .expect("the example secret seals");
        let confirm = PairConfirm {
            pairing_id,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            claim_hash: claim.hash(),
            code_secret_hash: Digest::of(&sealed_code_secret),
            confirmed_at: NOW + 12,
        };
        let cid = Cid(seed("cid")[..16].try_into().expect("16"));
        let binding = ContextBinding {
            cid,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            created: NOW + 100,
            expires: NOW + 160,
            number_matching: true,
        };
        let context = LoginContext {
            user: "alice".to_owned(),
            service: "DSM".to_owned(),
            nas_label: "home-nas (DS923+)".to_owned(),
            client_ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".to_owned()),
            location: Some("Berlin, DE".to_owned()),
            kind: LoginKind::Login,
            action: None,
            time: NOW + 99,
        };
        let ikm_e = seed("hpke ikmE");
        let sealed = context::seal_with_rng(
            &context,
            &binding,
            &keys.device_seal.public_key(),
            &mut FixedRng::new(ikm_e.to_vec()),
        )
        .expect("the example context seals");
        let challenge = Challenge {
            cid,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            created: binding.created,
            expires: binding.expires,
            number_matching: true,
            context_hash: context::context_hash(&sealed),
        };
        let verdict = Verdict {
            cid,
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            challenge_hash: challenge.hash(),
            decision: Decision::Approve,
            number: Some("427".to_owned()),
            user_verified: true,
            decided_at: NOW + 110,
        };
        let unpair = Unpair {
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            unpaired_at: NOW + 1000,
        };
        let mute = Mute {
            nas_id: keys.nas_id(),
            device_id: keys.device_id(),
            until: NOW + 3600,
            muted_at: NOW + 200,
        };
        Self {
            keys,
            pairing_uri,
            claim,
            accept,
            code_secret,
            code_binding,
            code_ikm_e,
            sealed_code_secret,
            confirm,
            context,
            binding,
            ikm_e,
            sealed,
            challenge,
            verdict,
            unpair,
            mute,
        }
    }
}

/// The phone's name and platform in the example claim.
pub fn example_device_info() -> pairing::DeviceInfo {
    pairing::DeviceInfo {
        name: "Alice's iPhone".to_owned(),
        platform: "ios".to_owned(),
    }
}

fn signed_vector<M: SignedMessage + serde::Serialize>(
    message: &M,
    signer_name: &str,
    signer: &SigningKey,
) -> Value {
    let bytes = message.signed_bytes();
    let sig: Sig = message.sign(signer);
    json!({
        "tag": M::TAG.as_str(),
        "fields": message,
        "signer": signer_name,
        "signer_public": PublicKey::from(signer),
        "message_hex": hex::encode(&bytes),
        "message_sha256_hex": hex::encode(Digest::of(&bytes).0),
        "signature": sig,
        "signature_hex": hex::encode(sig.0),
    })
}

fn keys_json(keys: &Keys) -> Value {
    json!({
        "seed_rule": "seed(name) = SHA-256(\"approvd test vector: \" || name); Ed25519 secret = seed (RFC 8032 private key); X25519 secret = seed (raw scalar bytes)",
        "N": { "seed_name": "nas N", "secret_hex": hex::encode(keys.nas.to_bytes()), "public": PublicKey::from(&keys.nas) },
        "D_api": { "seed_name": "device D_api", "secret_hex": hex::encode(keys.device_api.to_bytes()), "public": PublicKey::from(&keys.device_api) },
        "D_sig": { "seed_name": "device D_sig", "secret_hex": hex::encode(keys.device_sig.to_bytes()), "public": PublicKey::from(&keys.device_sig) },
        "Dx": { "seed_name": "device Dx", "secret_hex": hex::encode(keys.device_seal.to_bytes()), "public": keys.device_seal.public_key() },
    })
}

fn signed_messages(examples: &Examples) -> Value {
    let keys = &examples.keys;
    json!({
        "description": "One message per signed tag. message_hex is exactly what is signed: \"approvd/v1/\" || tag || 0x00 || LP(field)... with LP(x) = u32_be(len(x)) || x. Verify signature_hex over message_hex under signer_public with strict Ed25519 verification.",
        "keys": keys_json(keys),
        "messages": [
            signed_vector(&examples.claim, "D_sig", &keys.device_sig),
            signed_vector(&examples.accept, "N", &keys.nas),
            signed_vector(&examples.confirm, "N", &keys.nas),
            signed_vector(&examples.challenge, "N", &keys.nas),
            signed_vector(&examples.verdict, "D_sig", &keys.device_sig),
            signed_vector(&examples.unpair, "D_sig", &keys.device_sig),
            signed_vector(&examples.mute, "D_sig", &keys.device_sig),
        ],
    })
}

fn pairing(examples: &Examples) -> Value {
    let uri = &examples.pairing_uri;
    let code = &examples.code_binding;
    json!({
        "description": "A pairing URI; the subkeys of k (HKDF-SHA256, salt \"approvd/v1/pairing\", ikm k, info \"claim-mac\" / \"sas\" / \"device-info\"); the claim's device_info (nonce || ChaCha20-Poly1305 under k_info with device_info_aad_hex, of the compact JSON padded with spaces to 128 bytes); the claim MAC (HMAC-SHA256 under k_mac over the pair-claim message bytes); the SAS (HMAC-SHA256 under k_sas over sas_input); the offline-code secret sealed to Dx (HPKE as for the context, ephemeral DeriveKeyPair(code_ikmE)) with its RFC 6238 HMAC-SHA256 6-digit code at totp_time. Parse `uri` at `now`; it must yield `fields`.",
        "now": NOW,
        "uri": uri.to_uri(),
        "fields": {
            "v": 1,
            "r": uri.relay,
            "p": uri.pairing_id,
            "k_hex": hex::encode(uri.secret.0),
            "n": uri.nas_id,
            "a": uri.label,
            "u": uri.account,
            "e": uri.expires_at,
        },
        "k_mac_hex": hex::encode(uri.secret.subkey(pairing::MAC_KEY_LABEL)),
        "k_sas_hex": hex::encode(uri.secret.subkey(pairing::SAS_KEY_LABEL)),
        "k_info_hex": hex::encode(uri.secret.subkey(pairing::INFO_KEY_LABEL)),
        "k_relay_hex": hex::encode(uri.secret.relay_claim_key().as_bytes()),
        "claim_verifier": uri.secret.claim_verifier().to_string(),
        "device_info": example_device_info(),
        "device_info_aad_hex": hex::encode(
            crate::signed::Encoder::new(pairing::INFO_AAD_LABEL)
                .bytes(examples.claim.pairing_id.as_bytes())
                .bytes(examples.claim.device_id.as_bytes())
                .finish()
        ),
        "claim": examples.claim,
        "claim_message_hex": hex::encode(examples.claim.signed_bytes()),
        "mac_hex": hex::encode(pairing::claim_mac(&uri.secret, &examples.claim)),
        "sas_input_hex": hex::encode(
            crate::signed::Encoder::new(pairing::SAS_LABEL)
                .bytes(examples.claim.nas_id.as_bytes())
                .bytes(examples.claim.device_id.as_bytes())
                .bytes(examples.claim.sig_key.as_bytes())
                .bytes(examples.claim.seal_key.as_bytes())
                .finish()
        ),
        "sas": pairing::sas(&uri.secret, &examples.claim),
        "code_secret_hex": hex::encode(examples.code_secret.0),
        "code_binding": {
            "pairing_id": code.pairing_id,
            "nas_id": code.nas_id,
            "device_id": code.device_id,
            "claim_hash": code.claim_hash,
        },
        "code_info_hex": hex::encode(code.info()),
        "code_aad_hex": hex::encode(code.aad()),
        "code_ikmE_hex": hex::encode(examples.code_ikm_e),
        "code_secret_sealed": encode_b64(&examples.sealed_code_secret),
        "code_secret_hash_hex": hex::encode(Digest::of(&examples.sealed_code_secret).0),
        "totp_time": NOW + 15,
        "totp_code": crate::totp::code_at(&examples.code_secret.0, NOW + 15),
    })
}

fn context_seal(examples: &Examples) -> Value {
    let binding = &examples.binding;
    json!({
        "description": "HPKE base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 (kem 0x0020, kdf 0x0001, aead 0x0003). The ephemeral key is DeriveKeyPair(ikmE). sealed = enc (32 bytes) || ciphertext. Open with Dx's secret, info and aad; the plaintext is the context JSON padded with spaces to a multiple of 256 bytes.",
        "recipient_secret_hex": hex::encode(examples.keys.device_seal.to_bytes()),
        "recipient_public": examples.keys.device_seal.public_key(),
        "ikmE_hex": hex::encode(examples.ikm_e),
        "binding": {
            "cid": binding.cid,
            "nas_id": binding.nas_id,
            "device_id": binding.device_id,
            "created": binding.created,
            "expires": binding.expires,
            "number_matching": binding.number_matching,
        },
        "info_hex": hex::encode(binding.info()),
        "aad_hex": hex::encode(binding.aad()),
        "context": examples.context,
        "plaintext_len": examples.sealed.len() - 32 - 16,
        "sealed": encode_b64(&examples.sealed),
        "context_hash_hex": hex::encode(context::context_hash(&examples.sealed).0),
    })
}

/// How a signature vector departs from what our signers write.
#[derive(Default)]
struct Variation<'a> {
    /// Parameter order (empty: the profile's).
    order: &'a [httpsig::Param],
    /// Components covered after the profile's, resolved from `context`.
    extra: &'a [&'a str],
    context: Option<httpsig::RequestContext<'a>>,
}

fn http_signature_case(
    name: &str,
    key: &SigningKey,
    target: RequestTarget<'_>,
    body: Option<&[u8]>,
    nonce: &str,
    variation: Variation<'_>,
) -> Value {
    let created = NOW + 300;
    let context = variation.context.unwrap_or(httpsig::RequestContext::NONE);
    let mut headers = httpsig::sign_request(key, &target, body, created, nonce);
    if !variation.order.is_empty() || !variation.extra.is_empty() {
        let (_, mut params) = httpsig::parse_signature_input(&headers.signature_input)
            .expect("our own Signature-Input parses");
        params.order = variation.order.to_vec();
        params.components.extend(
            variation
                .extra
                .iter()
                .map(|component| (*component).to_owned()),
        );
        headers = httpsig::sign_with_params(key, &target, &context, body, &params)
            .expect("the vector's context resolves every component");
    }
    let (_, params) = httpsig::parse_signature_input(&headers.signature_input)
        .expect("our own Signature-Input parses");
    let base = httpsig::signature_base_in(
        &target,
        &context,
        headers.content_digest.as_deref(),
        &params,
    )
    .expect("the vector's context resolves every component");
    let fields: serde_json::Map<String, Value> = context
        .fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    json!({
        "name": name,
        "signer_secret_hex": hex::encode(key.to_bytes()),
        "method": target.method,
        "path": target.path,
        "query": target.query,
        "scheme": context.scheme,
        "authority": context.authority,
        "fields": fields,
        "body": body.map(|body| String::from_utf8_lossy(body).into_owned()),
        "created": created,
        "nonce": nonce,
        "content_digest": headers.content_digest,
        "signature_base": base,
        "signature_input": headers.signature_input,
        "signature": headers.signature,
    })
}

fn http_signatures(examples: &Examples) -> Value {
    let keys = &examples.keys;
    let body = br#"{"pairing_id":"AAAAAAAAAAAAAAAAAAAAAA","ttl_secs":300}"#;
    json!({
        "description": "RFC 9421 request signatures in the approvd profile (Ed25519, tag=\"approvd/v1\"). signature_base is the exact UTF-8 string signed; lines end with \\n, the last line has none. `scheme`, `authority` and `fields` are what a verifier received, for cases that cover more than the profile's components.",
        "cases": [
            http_signature_case(
                "phone inbox long-poll (GET with query, no body)",
                &keys.device_api,
                RequestTarget { method: "GET", path: "/v1/inbox", query: "wait=30" },
                None,
                "bm9uY2UtZm9yLWluYm94LTAx",
                Variation::default(),
            ),
            http_signature_case(
                "NAS creates a pairing slot (POST with body)",
                &keys.nas,
                RequestTarget { method: "POST", path: "/v1/pairings", query: "" },
                Some(body),
                "bm9uY2UtZm9yLXBhaXJpbmc",
                Variation::default(),
            ),
            http_signature_case(
                "parameters in another order (signed as received, in any order)",
                &keys.device_api,
                RequestTarget { method: "GET", path: "/v1/inbox", query: "" },
                None,
                "bm9uY2UtaW4tYW5vdGhlci1vcmRlcg",
                Variation {
                    order: &[
                        httpsig::Param::KeyId,
                        httpsig::Param::Alg,
                        httpsig::Param::Tag,
                        httpsig::Param::Created,
                        httpsig::Param::Expires,
                        httpsig::Param::Nonce,
                    ],
                    ..Variation::default()
                },
            ),
            http_signature_case(
                "more components than the profile's, as a stock RFC 9421 signer adds them",
                &keys.nas,
                RequestTarget { method: "POST", path: "/v1/pairings", query: "" },
                Some(body),
                "bm9uY2UtZXh0cmEtY29tcG9uZW50cw",
                Variation {
                    extra: &["date", "content-type", "@authority", "@target-uri"],
                    context: Some(httpsig::RequestContext {
                        scheme: Some("https"),
                        authority: Some("Relay.Example:443"),
                        fields: &[
                            ("Date", "Thu, 01 Jan 2026 00:05:00 GMT"),
                            ("Content-Type", "application/json"),
                        ],
                    }),
                    ..Variation::default()
                },
            ),
        ],
    })
}

fn negative(examples: &Examples) -> Value {
    let keys = &examples.keys;
    let challenge_sig = examples.challenge.sign(&keys.nas);
    // S + L: same signature modulo the group order, but non-canonical.
    let mut non_canonical = challenge_sig.0;
    add_group_order(&mut non_canonical[32..]);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut small_order_sig = [0u8; 64];
    small_order_sig[0] = 1;
    let mut wrong_tag = examples.challenge.signed_bytes();
    // Re-label a challenge's bytes as a verdict: a signature over one tag must not verify as another.
    let prefix = b"approvd/v1/challenge\x00".len();
    wrong_tag.splice(..prefix, b"approvd/v1/verdict\x00".iter().copied());
    json!({
        "description": "Each case MUST be rejected by a conforming verifier.",
        "cases": [
            {
                "name": "non-canonical S (S + L)",
                "public": PublicKey::from(&keys.nas),
                "message_hex": hex::encode(examples.challenge.signed_bytes()),
                "signature_hex": hex::encode(non_canonical),
                "reason": "S must be < L (RFC 8032 §5.1.7); strict verification rejects it",
            },
            {
                "name": "small-order public key and R (identity point), S = 0",
                "public_hex": hex::encode(identity),
                "message_hex": hex::encode(examples.challenge.signed_bytes()),
                "signature_hex": hex::encode(small_order_sig),
                "reason": "verifies under cofactored/lax verification for every message; strict verification and weak-key checks reject it",
            },
            {
                "name": "challenge signature presented as a verdict",
                "public": PublicKey::from(&keys.nas),
                "message_hex": hex::encode(&wrong_tag),
                "signature_hex": hex::encode(challenge_sig.0),
                "reason": "the tag is part of the signed bytes",
            },
            {
                "name": "tampered verdict (decision changed to deny, signature of approve)",
                "public": keys.sig_key(),
                "message_hex": hex::encode(Verdict { decision: Decision::Deny, ..examples.verdict.clone() }.signed_bytes()),
                "signature_hex": hex::encode(examples.verdict.sign(&keys.device_sig).0),
                "reason": "any changed field changes the signed bytes",
            },
        ],
    })
}

/// Add the Ed25519 group order L to a little-endian 32-byte scalar in place.
pub fn add_group_order(scalar: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];
    let mut carry = 0u16;
    for (byte, l) in scalar.iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
}

/// Every vector file: `(file name, pretty JSON text ending in a newline)`.
pub fn generate() -> Vec<(&'static str, String)> {
    let examples = Examples::fixed();
    let render = |value: Value| {
        let mut text = serde_json::to_string_pretty(&value).expect("vectors serialize");
        text.push('\n');
        text
    };
    vec![
        ("signed-messages.json", render(signed_messages(&examples))),
        ("pairing.json", render(pairing(&examples))),
        ("context-seal.json", render(context_seal(&examples))),
        ("http-signature.json", render(http_signatures(&examples))),
        ("negative.json", render(negative(&examples))),
    ]
}

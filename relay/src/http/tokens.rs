//! Operator bearer tokens (JWTs): their purposes (admission of NAS calls, forwarding for
//! downstream relays), the checks of `aud`, `typ`, `nbf`, `exp` and the proof-of-possession
//! binding `cnf.jkt`, and the operator's list of revoked token ids (`--revoked-tokens-file`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::HttpRequest;
use approvd_proto::NasId;

use super::problem::ApiError;

/// What an operator's bearer token is for. Each purpose has its own `aud` claim and `typ`
/// header (RFC 8725 §3.11), so a NAS's admission token is refused at the forwarding endpoint
/// even when the operator signs both kinds with one key (N-5, PROTOCOL.md §7.4 and §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// A NAS may use this relay: `sub` is its nas_id.
    Admission,
    /// A downstream relay may push through this one: `sub` is its name, `cnf.jkt` the
    /// thumbprint of the key that must sign each forwarded request.
    Forward,
}

impl TokenPurpose {
    /// The `aud` claim a token of this purpose carries and the relay requires.
    pub const fn audience(self) -> &'static str {
        match self {
            Self::Admission => "approvd-admission",
            Self::Forward => "approvd-forward",
        }
    }

    /// The `typ` header a token of this purpose carries and the relay requires.
    pub const fn typ(self) -> &'static str {
        match self {
            Self::Admission => "approvd-admission+jwt",
            Self::Forward => "approvd-forward+jwt",
        }
    }

    /// The name `approvd token --purpose` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Admission => "admission",
            Self::Forward => "forward",
        }
    }

    /// The longest a token of this purpose may be valid: the relay refuses one whose `exp` is
    /// further ahead (a mistyped or "forever" token is an error, L6). Forwarding tokens are
    /// short-lived and renewed (N-13): 90 days; admission tokens up to 3650 days.
    pub const fn max_lifetime_days(self) -> u64 {
        match self {
            Self::Admission => 3650,
            Self::Forward => 90,
        }
    }

    /// Whether `sub` is one the relay accepts for this purpose: a nas_id, or a downstream
    /// name of 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub fn valid_subject(self, sub: &str) -> bool {
        match self {
            Self::Admission => sub.parse::<NasId>().is_ok(),
            Self::Forward => {
                (1..=64).contains(&sub.len())
                    && sub
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
        }
    }
}

/// Whether `jti` is one `approvd token` could have minted and a revocation list may name:
/// 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_token_id(jti: &str) -> bool {
    (1..=64).contains(&jti.len())
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A bearer-JWT check (`Authorization: Bearer <JWT>`) against an operator's public key, verified
/// by `jsonwebtoken` (not `signed::verify_strict`: a JWT is not a protocol message): the
/// admission of NAS requests, or the forwarding tokens of downstream relays — one purpose each.
pub struct BearerJwt {
    /// The operator's public key.
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    purpose: TokenPurpose,
    revoked: Option<Arc<RevokedTokens>>,
}

impl std::fmt::Debug for BearerJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerJwt")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, serde::Deserialize)]
struct BearerClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    cnf: Option<Confirmation>,
}

/// RFC 7800 `cnf`: the key the token is bound to, by its RFC 7638 thumbprint (as RFC 9449).
#[derive(Debug, serde::Deserialize)]
struct Confirmation {
    jkt: String,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub sub: String,
    /// For a forwarding token: the JWK thumbprint of the key that signs each request.
    pub jkt: Option<String>,
}

impl BearerJwt {
    /// From a PEM public key: Ed25519 (EdDSA tokens) or P-256 (ES256 tokens), checking tokens
    /// of one `purpose`, refusing the token ids in `revoked`.
    pub fn from_pem(
        pem: &[u8],
        purpose: TokenPurpose,
        revoked: Option<Arc<RevokedTokens>>,
    ) -> Result<Self, String> {
        let (key, algorithm) = match jsonwebtoken::DecodingKey::from_ed_pem(pem) {
            Ok(key) => (key, jsonwebtoken::Algorithm::EdDSA),
            Err(_) => (
                jsonwebtoken::DecodingKey::from_ec_pem(pem).map_err(|error| {
                    format!("not an Ed25519 or P-256 public key in PEM form: {error}")
                })?,
                jsonwebtoken::Algorithm::ES256,
            ),
        };
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        // (`jsonwebtoken` enforces only these registered claims; `jti` is checked below.)
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.set_audience(&[purpose.audience()]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        Ok(Self {
            key,
            validation,
            purpose,
            revoked,
        })
    }

    /// The admission check: the token is valid and its `sub` is the nas_id that signed.
    pub fn check(&self, request: &HttpRequest, nas_id: &NasId) -> Result<(), ApiError> {
        if self.claims(request)?.sub != nas_id.to_string() {
            return Err(ApiError::AdmissionDenied(
                "the token's `sub` is not the nas_id that signed the request".to_owned(),
            ));
        }
        Ok(())
    }

    /// The claims of the request's valid, unrevoked bearer token of this purpose.
    pub fn claims(&self, request: &HttpRequest) -> Result<TokenClaims, ApiError> {
        let token = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::AdmissionRequired)?;
        let purpose = self.purpose;
        let data = jsonwebtoken::decode::<BearerClaims>(token.trim(), &self.key, &self.validation)
            .map_err(|error| {
                ApiError::AdmissionDenied(match error.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => format!(
                        "the token is not for this purpose (its `aud` is not `{}`); mint one \
                         with `approvd token --purpose {}`",
                        purpose.audience(),
                        purpose.name()
                    ),
                    _ => error.to_string(),
                })
            })?;
        if data.header.typ.as_deref() != Some(purpose.typ()) {
            return Err(ApiError::AdmissionDenied(format!(
                "the token's `typ` header is not `{}`",
                purpose.typ()
            )));
        }
        let now = crate::clock::system_now();
        let max_days = purpose.max_lifetime_days();
        if data.claims.exp > now + max_days * 86_400 + self.validation.leeway {
            return Err(ApiError::AdmissionDenied(format!(
                "the token's `exp` is more than {max_days} days ahead"
            )));
        }
        if let (Some(revoked), Some(jti)) = (&self.revoked, &data.claims.jti) {
            if revoked.contains(jti) {
                return Err(ApiError::AdmissionDenied(
                    "the token has been revoked by the relay's operator".to_owned(),
                ));
            }
        }
        if purpose == TokenPurpose::Forward
            && !data.claims.jti.as_deref().is_some_and(valid_token_id)
        {
            return Err(ApiError::AdmissionDenied(
                "the forwarding token has no usable `jti` (1 to 64 of A-Z a-z 0-9 _ -), so it \
                 could not be revoked; mint one with `approvd token --purpose forward`"
                    .to_owned(),
            ));
        }
        let jkt = data.claims.cnf.map(|cnf| cnf.jkt);
        if purpose == TokenPurpose::Forward && jkt.is_none() {
            return Err(ApiError::AdmissionDenied(
                "the forwarding token is not bound to a key (no `cnf.jkt`); mint one with \
                 `approvd token --purpose forward --bind-key <downstream public key>`"
                    .to_owned(),
            ));
        }
        Ok(TokenClaims {
            sub: data.claims.sub,
            jkt,
        })
    }
}

/// How often the revocation file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// The operator's revoked token ids (`--revoked-tokens-file`: one `jti` per line, `#` starts
/// a comment), read again whenever the file changes, so revoking needs no restart. A file that
/// cannot be read any more keeps the last list it gave (and says so in the log): a revocation
/// is never undone by a deleted or unreadable file.
#[derive(Debug)]
pub struct RevokedTokens {
    path: PathBuf,
    state: Mutex<RevokedState>,
}

#[derive(Debug)]
struct RevokedState {
    ids: HashSet<String>,
    /// The file's modification time and length when it was read.
    modified: Option<(SystemTime, u64)>,
    checked: Instant,
}

impl RevokedTokens {
    /// Read `path`; an unreadable file or a malformed line is an error (at startup).
    pub fn open(path: &Path) -> Result<Self, String> {
        let (ids, modified) = read_revoked(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(RevokedState {
                ids,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// How many token ids are revoked now.
    pub fn len(&self) -> usize {
        self.state.lock().map(|state| state.ids.len()).unwrap_or(0)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `jti` is revoked (re-reading the file first when it changed).
    pub fn contains(&self, jti: &str) -> bool {
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock means a panic elsewhere: refuse rather than admit.
            return true;
        };
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let modified = crate::clock::file_version(&self.path);
            if modified.is_none() || modified != state.modified {
                match read_revoked(&self.path) {
                    Ok((ids, modified)) => {
                        tracing::info!(
                            file = %self.path.display(),
                            revoked = ids.len(),
                            "revoked tokens: list read again"
                        );
                        state.ids = ids;
                        state.modified = modified;
                    }
                    Err(error) => tracing::warn!(
                        %error,
                        "revoked tokens: keeping the last list read ({} ids)",
                        state.ids.len()
                    ),
                }
            }
        }
        state.ids.contains(jti)
    }
}

type RevokedList = (HashSet<String>, Option<(SystemTime, u64)>);

fn read_revoked(path: &Path) -> Result<RevokedList, String> {
    let modified = crate::clock::file_version(path);
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut ids = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or_default().trim();
        if id.is_empty() {
            continue;
        }
        if !valid_token_id(id) {
            return Err(format!(
                "{} line {}: `{id}` is not a token id (1 to 64 of A-Z a-z 0-9 _ -)",
                path.display(),
                number + 1
            ));
        }
        ids.insert(id.to_owned());
    }
    Ok((ids, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_list_is_read_again_when_it_changes_and_kept_when_it_goes() {
        let dir = std::env::temp_dir().join(format!("approvd-revoked-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("revoked");
        std::fs::write(
            &path,
            "# revoked forwarding tokens\nfirst-id  # alice's old relay\n",
        )
        .expect("write");
        let revoked = RevokedTokens::open(&path).expect("open");
        assert!(revoked.contains("first-id"));
        assert!(!revoked.contains("second-id"));

        std::fs::write(&path, "first-id\nsecond-id\n").expect("write");
        revoked.state.lock().expect("lock").checked -= RECHECK;
        assert!(revoked.contains("second-id"), "a change is read again");

        std::fs::remove_file(&path).expect("remove");
        revoked.state.lock().expect("lock").checked -= RECHECK;
        assert!(
            revoked.contains("first-id") && revoked.contains("second-id"),
            "a deleted file undoes no revocation"
        );

        std::fs::write(&path, "not a token id!\n").expect("write");
        let error = RevokedTokens::open(&path).expect_err("malformed");
        assert!(error.contains("line 1"), "{error}");
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}

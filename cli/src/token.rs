//! `approvd token`: sign a JWT with an operator's private key — a NAS's admission token
//! (`--purpose admission`, `sub` = its nas_id, checked with `--admission-key-file`) or a
//! downstream relay's forwarding token (`--purpose forward`, `sub` = its name, checked with
//! `--push-forward-key-file`). Each purpose has its own `aud` and `typ`, and the relay refuses
//! one key for both. A forwarding token is bound to the downstream's own key (`cnf.jkt`,
//! `--bind-key`) and short-lived; every token has a `jti` the operator can revoke
//! (`--revoked-tokens-file`). Prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use approvd_relay::http::tokens::TokenPurpose;
use clap::Args;

/// What the token is for (its `aud` claim and `typ` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Purpose {
    /// A NAS may use the relay (`--sub` is its nas_id).
    Admission,
    /// A downstream relay may push through this one (`--sub` is its name).
    Forward,
}

impl From<Purpose> for TokenPurpose {
    fn from(purpose: Purpose) -> Self {
        match purpose {
            Purpose::Admission => Self::Admission,
            Purpose::Forward => Self::Forward,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Use one key pair per purpose (the relay refuses to start with the same \
public key for --admission-key-file and --push-forward-key-file). Ed25519 shown; P-256 works too:\n  \
openssl genpkey -algorithm ed25519 -out admission.pem\n  \
openssl pkey -in admission.pem -pubout -out admission.pub.pem   # --admission-key-file\n  \
openssl genpkey -algorithm ed25519 -out forward.pem\n  \
openssl pkey -in forward.pem -pubout -out forward.pub.pem       # --push-forward-key-file\n\n\
A forwarding token is bound to the downstream relay's own key: its operator runs\n  \
openssl genpkey -algorithm ed25519 -out upstream-signing.pem    # its --push-upstream-key-file\n  \
openssl pkey -in upstream-signing.pem -pubout -out home-relay-alice.pub.pem\n\
and sends you the .pub.pem. Forwarding tokens last at most 90 days (default 30): issue the next one \
before the current one ends; the downstream reads its token file again when it changes.\n\n\
The token's `jti` is printed on standard error: list it in the relay's --revoked-tokens-file to \
revoke the token.\n\n\
Examples:\n  approvd token --purpose admission --key-file admission.pem --sub <nas_id> --valid-days 365\n  \
approvd token --purpose forward --key-file forward.pem --sub home-relay-alice --bind-key home-relay-alice.pub.pem > forward.jwt"
)]
pub struct TokenArgs {
    /// What the token is for: `admission` (a NAS) or `forward` (a downstream relay).
    #[arg(long, value_enum)]
    pub purpose: Purpose,
    /// The operator's private key for that purpose (PEM, PKCS#8): Ed25519 signs EdDSA tokens,
    /// P-256 ES256.
    #[arg(long, value_name = "PEM")]
    pub key_file: PathBuf,
    /// Whom the token admits: for `admission` a NAS's nas_id (43 base64url characters), for
    /// `forward` a downstream relay's name (1 to 64 of A-Z a-z 0-9 . _ -).
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid, in days (then the relay refuses it): for `admission` 1 to
    /// 3650 (default 365), for `forward` 1 to 90 (default 30).
    #[arg(long, value_name = "DAYS")]
    pub valid_days: Option<u64>,
    /// For `forward`, required: the downstream relay's Ed25519 public key (PEM, from `openssl
    /// pkey -pubout`), which must sign every forwarded push; the token names its thumbprint
    /// (`cnf.jkt`), so it is useless without that key's private half.
    #[arg(long, value_name = "PEM")]
    pub bind_key: Option<PathBuf>,
    /// Valid only from this many days from now on (`nbf`), e.g. to hand out a successor
    /// before the current token expires.
    #[arg(long, default_value_t = 0, value_name = "DAYS")]
    pub not_before_days: u64,
}

pub fn run(args: &TokenArgs) -> ExitCode {
    match token(args) {
        Ok((token, jti)) => {
            println!("{token}");
            eprintln!("jti: {jti} (list it in --revoked-tokens-file to revoke this token)");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("approvd token: {message}");
            ExitCode::from(2)
        }
    }
}

/// The signed token and its `jti`.
fn token(args: &TokenArgs) -> Result<(String, String), String> {
    let purpose = TokenPurpose::from(args.purpose);
    if !purpose.valid_subject(&args.sub) {
        return Err(match purpose {
            TokenPurpose::Admission => format!(
                "--sub `{}` is not a nas_id (43 base64url characters, the NAS's public key: \
                 `approvd nas init` prints it); the relay would refuse the token",
                args.sub
            ),
            TokenPurpose::Forward => format!(
                "--sub `{}` must be 1 to 64 of A-Z a-z 0-9 . _ - (the relay would refuse the token)",
                args.sub
            ),
        });
    }
    let max_days = purpose.max_lifetime_days();
    let valid_days = args.valid_days.unwrap_or(match purpose {
        TokenPurpose::Admission => 365,
        TokenPurpose::Forward => 30,
    });
    let lifetime = valid_days.checked_add(args.not_before_days);
    if valid_days == 0 || lifetime.is_none_or(|days| days > max_days) {
        return Err(format!(
            "--valid-days must be between 1 and {max_days} for a {} token, counted with \
             --not-before-days",
            purpose.name()
        ));
    }
    let jkt = match (purpose, &args.bind_key) {
        (TokenPurpose::Forward, Some(path)) => {
            let pem = std::fs::read(path)
                .map_err(|error| format!("--bind-key {}: {error}", path.display()))?;
            let key = approvd_relay::push::upstream::public_key_from_pem(&pem)
                .map_err(|error| format!("--bind-key {}: {error}", path.display()))?;
            Some(key.jwk_thumbprint())
        }
        (TokenPurpose::Forward, None) => {
            return Err(
                "--purpose forward needs --bind-key: the downstream relay's public key \
                 (PEM), which must sign each forwarded push"
                    .to_owned(),
            )
        }
        (TokenPurpose::Admission, Some(_)) => {
            return Err(
                "--bind-key is for forwarding tokens (admission tokens are bound to \
                 the NAS's key by their `sub`)"
                    .to_owned(),
            )
        }
        (TokenPurpose::Admission, None) => None,
    };
    let pem = std::fs::read(&args.key_file)
        .map_err(|error| format!("--key-file {}: {error}", args.key_file.display()))?;
    let (key, algorithm) = match jsonwebtoken::EncodingKey::from_ed_pem(&pem) {
        Ok(key) => (key, jsonwebtoken::Algorithm::EdDSA),
        Err(_) => (
            jsonwebtoken::EncodingKey::from_ec_pem(&pem).map_err(|_| {
                format!(
                    "--key-file {}: not an Ed25519 or P-256 private key in PEM (PKCS#8) form",
                    args.key_file.display()
                )
            })?,
            jsonwebtoken::Algorithm::ES256,
        ),
    };
    let now = approvd_client::transport::unix_now();
    let not_before = now + args.not_before_days * 86_400;
    let jti = approvd_proto::ids::encode_b64(&rand::random::<[u8; 16]>());
    let mut claims = serde_json::json!({
        "sub": args.sub,
        "aud": purpose.audience(),
        "jti": jti,
        "iat": now,
        "nbf": not_before,
        "exp": not_before + valid_days * 86_400,
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = serde_json::json!({ "jkt": jkt });
    }
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.typ = Some(purpose.typ().to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|error| format!("cannot sign: {error}"))?;
    Ok((token, jti))
}

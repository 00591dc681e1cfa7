//! `approvd token`: sign a JWT with an operator's private key — a NAS's admission token
//! (`--purpose admission`, `sub` = its nas_id, checked with `--admission-key-file`) or a
//! downstream relay's forwarding token (`--purpose forward`, `sub` = its name, checked with
//! `--push-forward-key-file`). Each purpose has its own `aud` and `typ`, and the relay refuses
//! one key for both. Prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use approvd_relay::http::auth::TokenPurpose;
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
Examples:\n  approvd token --purpose admission --key-file admission.pem --sub <nas_id> --valid-days 30\n  \
approvd token --purpose forward --key-file forward.pem --sub home-relay-alice --valid-days 365 > forward.jwt"
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
    /// How long the token is valid, in days (then the relay refuses it), 1 to 3650.
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub valid_days: u64,
    /// Valid only from this many days from now on (`nbf`), e.g. to hand out a successor
    /// before the current token expires.
    #[arg(long, default_value_t = 0, value_name = "DAYS")]
    pub not_before_days: u64,
}

pub fn run(args: &TokenArgs) -> ExitCode {
    match token(args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("approvd token: {message}");
            ExitCode::from(2)
        }
    }
}

fn token(args: &TokenArgs) -> Result<String, String> {
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
    let lifetime = args.valid_days.checked_add(args.not_before_days);
    if args.valid_days == 0 || lifetime.is_none_or(|days| days > 3650) {
        return Err(
            "--valid-days must be between 1 and 3650, counted with --not-before-days".to_owned(),
        );
    }
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
    let claims = serde_json::json!({
        "sub": args.sub,
        "aud": purpose.audience(),
        "iat": now,
        "nbf": not_before,
        "exp": not_before + args.valid_days * 86_400,
    });
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.typ = Some(purpose.typ().to_owned());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|error| format!("cannot sign: {error}"))
}

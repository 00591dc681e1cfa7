//! `approvd token`: sign a JWT with an operator's private key — a NAS's admission token
//! (`sub` = its nas_id, checked with `--admission-key-file`) or a downstream relay's forwarding
//! token (`sub` = its name, checked with `--push-forward-key-file`). Prints the token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "The key pair (Ed25519 shown; P-256 works too):\n  \
openssl genpkey -algorithm ed25519 -out operator.pem\n  \
openssl pkey -in operator.pem -pubout -out operator.pub.pem   # give this one to the relay\n\n\
Examples:\n  approvd token --key-file operator.pem --sub home-relay-alice --valid-days 365 > forward.jwt\n  \
approvd token --key-file operator.pem --sub <nas_id> --valid-days 30")]
pub struct TokenArgs {
    /// The operator's private key (PEM, PKCS#8): Ed25519 signs EdDSA tokens, P-256 ES256.
    #[arg(long, value_name = "PEM")]
    pub key_file: PathBuf,
    /// Whom the token admits: a NAS's nas_id, or a downstream relay's name (1 to 64 of
    /// A-Z a-z 0-9 . _ -).
    #[arg(long)]
    pub sub: String,
    /// How long the token is valid, in days (then the relay refuses it).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub valid_days: u64,
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
    if args.sub.is_empty() {
        return Err("--sub must not be empty".to_owned());
    }
    if args.valid_days == 0 || args.valid_days > 3650 {
        return Err("--valid-days must be between 1 and 3650".to_owned());
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
    let claims = serde_json::json!({
        "sub": args.sub,
        "iat": now,
        "exp": now + args.valid_days * 86_400,
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
        .map_err(|error| format!("cannot sign: {error}"))
}

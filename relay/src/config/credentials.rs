//! The push credential lists of the config file — `[[push.apns]]` and `[[push.fcm]]`, each
//! entry with a label — taken out of the file's table and checked into the typed
//! [`ApnsConfig`]/[`FcmConfig`] lists together with the single credential the flags may give
//! (labelled `default`). Errors name the entry; a topic belongs to one credential only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::options::Secret;
use super::{ApnsAuth, ApnsConfig, ConfigError, FcmAccount, FcmConfig};

/// The label of the credential the flags (`--apns-…`, `--fcm-…`) describe.
pub const FLAG_LABEL: &str = "default";

/// The `push` table of the config file, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCredentials {
    #[serde(default)]
    apns: Vec<ApnsEntry>,
    #[serde(default)]
    fcm: Vec<FcmEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApnsEntry {
    label: String,
    key_file: Option<PathBuf>,
    key_id: Option<String>,
    team_id: Option<String>,
    cert_file: Option<PathBuf>,
    cert_key_file: Option<PathBuf>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    sandbox_topics: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FcmEntry {
    label: String,
    service_account_file: Option<PathBuf>,
    /// The name of an `APPROVD_…` environment variable holding the service-account JSON.
    service_account_env: Option<String>,
    #[serde(default)]
    app_ids: Vec<String>,
    /// Another FCM endpoint for this account (default: `fcm-base-url`).
    base_url: Option<String>,
    /// Plain http to `base_url` (local mocks only; default: `fcm-allow-http`).
    allow_http: Option<bool>,
}

/// Remove the `push` table from the file's options and parse it.
pub(super) fn take(path: &Path, table: &mut toml::Table) -> Result<FileCredentials, ConfigError> {
    let Some(value) = table.remove("push") else {
        return Ok(FileCredentials::default());
    };
    value
        .try_into()
        .map_err(|error: toml::de::Error| ConfigError::File {
            path: path.display().to_string(),
            message: format!("[push]: {}", error.message()),
        })
}

fn entry_error<T>(kind: &str, index: usize, label: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        source_name: format!("[[push.{kind}]] #{} (label `{label}`)", index + 1),
        message: message.to_owned(),
    })
}

/// A label shows in metrics and logs: short, plain, and not a secret.
fn plain_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 32
        && label.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
        })
}

/// The typed credential lists: the flags' own (if any) first, then the file's entries.
pub(super) fn typed(
    flag_apns: Option<ApnsConfig>,
    flag_fcm: Option<FcmConfig>,
    file: FileCredentials,
    env: &HashMap<String, String>,
    fcm_base_url: &str,
    fcm_allow_http: bool,
) -> Result<(Vec<ApnsConfig>, Vec<FcmConfig>), ConfigError> {
    let mut labels: Vec<String> = Vec::new();
    if flag_apns.is_some() || flag_fcm.is_some() {
        labels.push(FLAG_LABEL.to_owned());
    }
    let mut claim_label = |kind: &str, index: usize, label: &str| {
        if !plain_label(label) {
            return entry_error(
                kind,
                index,
                label,
                "a label is 1 to 32 of a-z, 0-9, `-`, `_` (it names the credential in metrics and logs)",
            );
        }
        if labels.iter().any(|taken| taken == label) {
            return entry_error(
                kind,
                index,
                label,
                "this label is used by another credential",
            );
        }
        labels.push(label.to_owned());
        Ok(())
    };
    let mut apns: Vec<ApnsConfig> = flag_apns.into_iter().collect();
    for (index, entry) in file.apns.into_iter().enumerate() {
        claim_label("apns", index, &entry.label)?;
        let fail = |message: &str| entry_error("apns", index, &entry.label, message);
        let auth = match (&entry.key_file, &entry.cert_file, &entry.cert_key_file) {
            (Some(key_file), None, None) => match (&entry.key_id, &entry.team_id) {
                (Some(key_id), Some(team_id)) => ApnsAuth::Token {
                    key_file: key_file.clone(),
                    key_id: key_id.clone(),
                    team_id: team_id.clone(),
                },
                _ => return fail("a token key (key_file) needs key_id and team_id"),
            },
            (None, Some(cert_file), Some(key_file)) => {
                if entry.key_id.is_some() || entry.team_id.is_some() {
                    return fail("key_id and team_id belong to a token key, not a certificate");
                }
                ApnsAuth::Certificate {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                }
            }
            (None, None, None) => {
                return fail("give key_file (token key) or cert_file and cert_key_file")
            }
            (Some(_), _, _) => {
                return fail("use a token key (key_file) or a certificate, not both")
            }
            (None, _, _) => return fail("cert_file and cert_key_file go together"),
        };
        if entry.topics.is_empty() && entry.sandbox_topics.is_empty() {
            return fail("name the app bundle ids it pushes to (topics or sandbox_topics)");
        }
        apns.push(ApnsConfig {
            label: entry.label,
            auth,
            topics: entry.topics,
            sandbox_topics: entry.sandbox_topics,
        });
    }
    let mut fcm: Vec<FcmConfig> = flag_fcm.into_iter().collect();
    for (index, entry) in file.fcm.into_iter().enumerate() {
        claim_label("fcm", index, &entry.label)?;
        let fail = |message: &str| entry_error("fcm", index, &entry.label, message);
        let account = match (&entry.service_account_file, &entry.service_account_env) {
            (Some(path), None) => FcmAccount::File(path.clone()),
            (None, Some(name)) if name.starts_with("APPROVD_") => match env.get(name) {
                Some(json) => FcmAccount::Inline(Secret(json.clone())),
                None => return fail(&format!("the environment variable {name} is not set")),
            },
            (None, Some(_)) => {
                return fail("service_account_env names an APPROVD_… environment variable")
            }
            (Some(_), Some(_)) => {
                return fail("give service_account_file or service_account_env, not both")
            }
            (None, None) => return fail("give service_account_file or service_account_env"),
        };
        if entry.app_ids.is_empty() {
            return fail("name the app ids it pushes to (app_ids)");
        }
        fcm.push(FcmConfig {
            label: entry.label,
            account,
            app_ids: entry.app_ids,
            base_url: entry.base_url.unwrap_or_else(|| fcm_base_url.to_owned()),
            allow_http: entry.allow_http.unwrap_or(fcm_allow_http),
        });
    }
    // A topic (bundle id, app id) is served by one credential: the handle names only the topic.
    let mut owners: HashMap<(&str, &str), &str> = HashMap::new();
    let apns_topics = apns.iter().flat_map(|config| {
        config
            .topics
            .iter()
            .chain(&config.sandbox_topics)
            .map(move |topic| ("apns", topic.as_str(), config.label.as_str()))
    });
    let fcm_topics = fcm.iter().flat_map(|config| {
        config
            .app_ids
            .iter()
            .map(move |app_id| ("fcm", app_id.as_str(), config.label.as_str()))
    });
    for (kind, topic, label) in apns_topics.chain(fcm_topics) {
        if let Some(owner) = owners.insert((kind, topic), label) {
            return Err(ConfigError::Invalid {
                source_name: format!("push credential `{label}`"),
                message: format!(
                    "{kind} topic `{topic}` is already served by `{owner}`: a topic belongs to one credential"
                ),
            });
        }
    }
    Ok((apns, fcm))
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ServeArgs};
    use super::*;

    const FLEET: &str = r#"
[[push.apns]]
label = "acme-ios"
key_file = "/etc/approvd/acme.p8"
key_id = "KEY1"
team_id = "TEAMACME"
topics = ["com.acme.approvd"]
sandbox_topics = ["com.acme.approvd.dev"]

[[push.apns]]
label = "globex-ios"
cert_file = "/etc/approvd/globex.pem"
cert_key_file = "/etc/approvd/globex.key"
topics = ["com.globex.signin"]

[[push.fcm]]
label = "acme-android"
service_account_file = "/etc/approvd/acme.json"
app_ids = ["com.acme.approvd"]

[[push.fcm]]
label = "globex-android"
service_account_env = "APPROVD_FCM_GLOBEX"
app_ids = ["com.globex.signin", "com.globex.signin.beta"]
"#;

    fn load(
        flags: &[(&'static str, &str)],
        env: &[(&str, &str)],
        file: &str,
    ) -> Result<Config, ConfigError> {
        let args = ServeArgs {
            config: None,
            values: flags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        };
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load(&args, &env, Some((Path::new("relay.toml"), file)))
    }

    #[test]
    fn a_fleet_of_credentials_is_read_with_labels() {
        let config = load(&[], &[("APPROVD_FCM_GLOBEX", "{\"json\": 1}")], FLEET).expect("loads");
        let labels: Vec<&str> = config
            .push
            .apns
            .iter()
            .map(|apns| apns.label.as_str())
            .chain(config.push.fcm.iter().map(|fcm| fcm.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            ["acme-ios", "globex-ios", "acme-android", "globex-android"]
        );
        assert!(matches!(
            &config.push.apns[1].auth,
            ApnsAuth::Certificate { cert_file, .. } if cert_file == Path::new("/etc/approvd/globex.pem")
        ));
        assert_eq!(config.push.apns[0].sandbox_topics, ["com.acme.approvd.dev"]);
        assert_eq!(
            config.push.fcm[1].account,
            FcmAccount::Inline(Secret("{\"json\": 1}".to_owned()))
        );
        assert!(
            !format!("{config:?}").contains("json\\\": 1"),
            "a secret never shows in Debug"
        );
        // The flags' credential joins the list as `default`.
        let config = load(
            &[
                ("fcm_service_account_file", "/etc/approvd/own.json"),
                ("fcm_app_ids", "com.example.own"),
            ],
            &[("APPROVD_FCM_GLOBEX", "{}")],
            FLEET,
        )
        .expect("loads");
        assert_eq!(config.push.fcm[0].label, FLAG_LABEL);
        assert_eq!(config.push.fcm.len(), 3);
    }

    /// The README's example is a configuration the relay accepts, as written.
    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../../README.md");
        let example = readme
            .split("```toml\n")
            .find(|block| block.starts_with("[[push.apns]]"))
            .and_then(|block| block.split("```").next())
            .expect("the README's [[push.apns]] example");
        let config = load(&[], &[("APPROVD_FCM_GLOBEX", "{}")], example).expect("loads");
        assert_eq!((config.push.apns.len(), config.push.fcm.len()), (2, 2));
    }

    #[test]
    fn a_bad_entry_is_named_in_the_error() {
        let env = [("APPROVD_FCM_GLOBEX", "{}")];
        for (file, expected) in [
            (
                FLEET.replace("label = \"globex-ios\"", "label = \"acme-ios\""),
                "[[push.apns]] #2 (label `acme-ios`): this label is used by another credential",
            ),
            (
                FLEET.replace("topics = [\"com.globex.signin\"]", "topics = [\"com.acme.approvd\"]"),
                "push credential `globex-ios`: apns topic `com.acme.approvd` is already served by `acme-ios`",
            ),
            (
                FLEET.replace("key_id = \"KEY1\"\n", ""),
                "[[push.apns]] #1 (label `acme-ios`): a token key (key_file) needs key_id and team_id",
            ),
            (
                FLEET.replace("label = \"acme-android\"", "label = \"Acme Android\""),
                "[[push.fcm]] #1 (label `Acme Android`): a label is 1 to 32",
            ),
            (
                FLEET.replace("APPROVD_FCM_GLOBEX", "APPROVD_FCM_NOPE"),
                "[[push.fcm]] #2 (label `globex-android`): the environment variable APPROVD_FCM_NOPE is not set",
            ),
            (
                FLEET.replace("service_account_env = \"APPROVD_FCM_GLOBEX\"", "service_account_env = \"HOME\""),
                "[[push.fcm]] #2 (label `globex-android`): service_account_env names an APPROVD_",
            ),
            (
                FLEET.replace("app_ids = [\"com.acme.approvd\"]", "app_ids = []"),
                "[[push.fcm]] #1 (label `acme-android`): name the app ids",
            ),
            (
                FLEET.replace("team_id = \"TEAMACME\"", "team_id = \"TEAMACME\"\nteam = \"x\""),
                "config file relay.toml: [push]: unknown field `team`",
            ),
        ] {
            let error = load(&[], &env, &file).expect_err(expected).to_string();
            assert!(error.starts_with(expected), "{error}\n  expected: {expected}");
        }
        // The flags' credential and a file entry may not share a topic or the label.
        let error = load(
            &[
                ("fcm_service_account_file", "/etc/approvd/own.json"),
                ("fcm_app_ids", "com.acme.approvd"),
            ],
            &env,
            FLEET,
        )
        .expect_err("a shared topic");
        assert!(
            error.to_string().contains("already served by `default`"),
            "{error}"
        );
    }
}

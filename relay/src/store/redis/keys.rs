//! Every Redis key and channel name the relay uses, built from typed ids — the only place that
//! spells them. A test checks each against the key table in this module's parent (`mod.rs`),
//! which ARCHITECTURE.md repeats (the tidy test keeps the two equal).

use approvd_proto::{Cid, DeviceId, NasId, PairingId};

use crate::store::{Bucket, Nonce, Topic};

/// `approvd:nonce:{<keyid>}:<nonce>`: in the slot of the signer's request bucket, so one
/// script checks both.
pub(super) fn nonce(nonce: &Nonce) -> String {
    format!("approvd:nonce:{{{}}}:{}", nonce.key, nonce.nonce)
}

/// `approvd:rate:<limit>:…`. The buckets one script charges together share a hash tag: a
/// caller's with its nonces (`{<keyid>}`), a device's with its inbox and mutes
/// (`{<device_id>}`), the creation buckets with each other (`{create}`).
pub(super) fn rate(bucket: &Bucket) -> String {
    match bucket {
        Bucket::AuthFailures(ip) => format!("approvd:rate:authfail:{ip}"),
        Bucket::Caller(key) => format!("approvd:rate:caller:{{{key}}}"),
        Bucket::DeviceChallenges(device) => format!("approvd:rate:challenges:{{{device}}}"),
        Bucket::DeviceRefreshes(device) => format!("approvd:rate:refresh:{device}"),
        Bucket::CreationsFrom(ip) => format!("approvd:rate:create:{{create}}:{ip}"),
        Bucket::Creations => "approvd:rate:create:{create}:all".to_owned(),
        Bucket::Forwards(downstream) => format!("approvd:rate:forward:{downstream}"),
    }
}

/// The hash tag of a key (the part between its first `{` and the next `}`), if it has one:
/// keys with the same tag live in one Redis Cluster slot.
pub(super) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = open + key[open..].find('}')?;
    Some(&key[open + 1..close])
}

/// The keys of one pairing slot (one hash tag).
pub(super) struct PairingKeys {
    pub slot: String,
    pub claim: String,
    pub accept: String,
    pub confirm: String,
}

pub(super) fn pairing(id: &PairingId) -> PairingKeys {
    let slot = format!("approvd:pairing:{{{id}}}");
    PairingKeys {
        claim: format!("{slot}:claim"),
        accept: format!("{slot}:accept"),
        confirm: format!("{slot}:confirm"),
        slot,
    }
}

/// The keys of one challenge (one hash tag).
pub(super) struct ChallengeKeys {
    pub record: String,
    pub state: String,
    pub deliveries: String,
}

pub(super) fn challenge(cid: &Cid) -> ChallengeKeys {
    let record = format!("approvd:ch:{{{cid}}}");
    ChallengeKeys {
        state: format!("{record}:state"),
        deliveries: format!("{record}:deliveries"),
        record,
    }
}

/// `approvd:inbox:{<device_id>}`.
pub(super) fn inbox(device_id: &DeviceId) -> String {
    inbox_of(&device_id.to_string())
}

/// [`inbox`] from a device id as text (as the challenge-ending scripts return them).
pub(super) fn inbox_of(device_id: &str) -> String {
    format!("approvd:inbox:{{{device_id}}}")
}

/// `approvd:mute:{<device_id>}:<nas_id>`: in the device's slot, so a new challenge's target is
/// charged and its mute read by one script.
pub(super) fn mute(nas_id: &NasId, device_id: &DeviceId) -> String {
    format!("approvd:mute:{{{device_id}}}:{nas_id}")
}

/// `approvd:mbox:{<nas_id>}`.
pub(super) fn mailbox(nas_id: &NasId) -> String {
    format!("approvd:mbox:{{{nas_id}}}")
}

/// `approvd:mbox:{<nas_id>}:latest`: which stream entry holds each coalescing key's notice.
pub(super) fn mailbox_latest(nas_id: &NasId) -> String {
    format!("approvd:mbox:{{{nas_id}}}:latest")
}

/// The wakeup channel of a topic, `approvd:ev:<kind>:{<id>}`: in the slot of the keys it announces.
pub(super) fn channel(topic: &Topic) -> String {
    match topic {
        Topic::Pairing(id) => format!("approvd:ev:pairing:{{{id}}}"),
        Topic::Challenge(cid) => format!("approvd:ev:ch:{{{cid}}}"),
        Topic::Inbox(device) => format!("approvd:ev:inbox:{{{device}}}"),
        Topic::Mailbox(nas) => format!("approvd:ev:mbox:{{{nas}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approvd_proto::ids::PublicKey;

    /// Does `key` match `pattern`, where `<name>` stands for one or more characters other than
    /// `{` and `}`?
    fn matches(pattern: &str, key: &str) -> bool {
        match pattern.find('<') {
            None => pattern == key,
            Some(open) => {
                let Some(close) = pattern[open..].find('>').map(|at| open + at) else {
                    return false;
                };
                let (literal, rest) = (&pattern[..open], &pattern[close + 1..]);
                let Some(tail) = key.strip_prefix(literal) else {
                    return false;
                };
                (1..=tail.len())
                    .take_while(|&end| !tail[..end].contains(['{', '}']))
                    .any(|end| matches(rest, &tail[end..]))
            }
        }
    }

    /// The key patterns of the table in `mod.rs`'s module documentation.
    fn documented_patterns() -> Vec<String> {
        include_str!("mod.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_owned)
            .collect()
    }

    fn every_key() -> Vec<String> {
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let (device, nas, cid, pairing_id) = (
            DeviceId(key),
            NasId(key),
            Cid::random(),
            PairingId::random(),
        );
        let PairingKeys {
            slot,
            claim,
            accept,
            confirm,
        } = pairing(&pairing_id);
        let ChallengeKeys {
            record,
            state,
            deliveries,
        } = challenge(&cid);
        vec![
            nonce(&Nonce {
                key,
                nonce: "AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            }),
            rate(&Bucket::AuthFailures([192, 0, 2, 1].into())),
            rate(&Bucket::AuthFailures("2001:db8::1".parse().expect("ip"))),
            rate(&Bucket::Caller(key)),
            rate(&Bucket::DeviceChallenges(device)),
            rate(&Bucket::DeviceRefreshes(device)),
            rate(&Bucket::CreationsFrom([192, 0, 2, 1].into())),
            rate(&Bucket::Creations),
            rate(&Bucket::Forwards("home-relay".to_owned())),
            slot,
            claim,
            accept,
            confirm,
            record,
            state,
            deliveries,
            inbox(&device),
            mute(&nas, &device),
            mailbox(&nas),
            mailbox_latest(&nas),
        ]
    }

    #[test]
    fn every_key_is_in_the_documented_table_and_every_row_is_used() {
        let patterns = documented_patterns();
        assert!(patterns.len() >= 10, "table not found: {patterns:?}");
        let keys = every_key();
        for key in &keys {
            let rows: Vec<&String> = patterns
                .iter()
                .filter(|pattern| matches(pattern, key))
                .collect();
            assert_eq!(rows.len(), 1, "{key} matches {rows:?} of {patterns:?}");
        }
        for pattern in &patterns {
            assert!(
                keys.iter().any(|key| matches(pattern, key)),
                "documented key {pattern} is never written"
            );
        }
    }

    #[test]
    fn keys_one_script_touches_share_a_hash_tag() {
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let (device, nas) = (
            DeviceId(key),
            NasId(PublicKey::from(&approvd_proto::generate_signing_key())),
        );
        let nonce_key = nonce(&Nonce {
            key,
            nonce: "AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        });
        assert_eq!(hash_tag(&nonce_key), hash_tag(&rate(&Bucket::Caller(key))));
        let device_bucket = rate(&Bucket::DeviceChallenges(device));
        assert_eq!(hash_tag(&device_bucket), hash_tag(&mute(&nas, &device)));
        assert_eq!(hash_tag(&device_bucket), hash_tag(&inbox(&device)));
        assert_eq!(
            hash_tag(&rate(&Bucket::CreationsFrom([192, 0, 2, 1].into()))),
            hash_tag(&rate(&Bucket::Creations))
        );
        assert_eq!(hash_tag("approvd:rate:authfail:192.0.2.1"), None);
    }

    #[test]
    fn channels_share_the_slot_of_the_keys_they_announce() {
        let key = PublicKey::from(&approvd_proto::generate_signing_key());
        let tag = |name: &str| {
            let open = name.find('{').expect("hash tag");
            name[open..=name.find('}').expect("closed")].to_owned()
        };
        let cid = Cid::random();
        let pairing_id = PairingId::random();
        assert_eq!(
            tag(&channel(&Topic::Challenge(cid))),
            tag(&challenge(&cid).state)
        );
        assert_eq!(
            tag(&channel(&Topic::Pairing(pairing_id))),
            tag(&pairing(&pairing_id).claim)
        );
        assert_eq!(
            tag(&channel(&Topic::Inbox(DeviceId(key)))),
            tag(&inbox(&DeviceId(key)))
        );
        assert_eq!(
            tag(&channel(&Topic::Mailbox(NasId(key)))),
            tag(&mailbox(&NasId(key)))
        );
        assert!(matches("a:<x>:{<y>}", "a:b:c:{d}"));
        assert!(!matches("a:{<y>}", "a:{d}}"));
    }
}

//! The payload of a `v4:` value: `p1;{unix seconds};{contributor or 0};{secret}`.

use time::OffsetDateTime;

use crate::secret::ApiKey;

/// The payload of a `v4:` value: `p1;{unix seconds};{contributor or 0};{secret}`.
pub(super) const PAYLOAD_TAG: &str = "p1";

/// What a `v4:` value holds: the secret and its metadata.
pub(super) struct Payload {
    pub(super) key: ApiKey,
    pub(super) at: Option<OffsetDateTime>,
    pub(super) contributor: Option<u64>,
}

impl Payload {
    /// `at` unknown (a legacy value's) is written as 0, and read back as unknown.
    pub(super) fn encode(
        secret: &str,
        at: Option<OffsetDateTime>,
        contributor: Option<u64>,
    ) -> secrecy::SecretString {
        secrecy::SecretString::from(format!(
            "{PAYLOAD_TAG};{};{};{secret}",
            at.map_or(0, OffsetDateTime::unix_timestamp),
            contributor.unwrap_or(0)
        ))
    }

    pub(super) fn decode(text: &str) -> Self {
        let mut parts = text.splitn(4, ';');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(PAYLOAD_TAG), Some(at), Some(contributor), Some(secret)) => Self {
                key: ApiKey::new(secret),
                at: at
                    .parse()
                    .ok()
                    .filter(|s| *s != 0)
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
                contributor: contributor.parse().ok().filter(|id| *id != 0),
            },
            _ => Self::bare(text),
        }
    }

    pub(super) fn bare(secret: &str) -> Self {
        Self {
            key: ApiKey::new(secret),
            at: None,
            contributor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn payloads_carry_time_and_contributor() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let text = Payload::encode("sk;with;semicolons", Some(at), Some(42));
        let payload = Payload::decode(text.expose_secret());
        assert_eq!(payload.key.expose(), "sk;with;semicolons");
        assert_eq!(payload.at, Some(at));
        assert_eq!(payload.contributor, Some(42));
    }
}

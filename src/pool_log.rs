//! The log of a pool: who added, removed, benched or unbenched which key, and when; never the
//! key. One hash per pool under the prefix (so every process sees it): field
//! `{unix ns, 20 digits}-{8 hex}` (fields sort by time), value
//! `{unix ms};{actor or 0};{action};{service};{key id}`.

use std::fmt;

use time::OffsetDateTime;

use crate::health::BenchReason;
use crate::ids::{PoolField, ServiceId};

/// How many entries of a pool's log are read back, newest first; storage holds at most a
/// quarter more before the oldest are deleted.
pub const POOL_LOG_MAX: usize = 200;

/// What happened to a pool key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAction {
    /// Added to the pool.
    Added,
    /// Removed from the pool.
    Removed,
    /// Benched after a failed call, and why.
    Benched(BenchReason),
    /// Taken off the bench by a pool admin.
    Unbenched,
}

impl PoolAction {
    fn encode(&self) -> String {
        match self {
            PoolAction::Added => "added".to_owned(),
            PoolAction::Removed => "removed".to_owned(),
            PoolAction::Benched(reason) => format!("benched:{}", reason.as_str()),
            PoolAction::Unbenched => "unbenched".to_owned(),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        match text {
            "added" => Some(PoolAction::Added),
            "removed" => Some(PoolAction::Removed),
            "unbenched" => Some(PoolAction::Unbenched),
            _ => BenchReason::parse(text.strip_prefix("benched:")?).map(PoolAction::Benched),
        }
    }
}

impl fmt::Display for PoolAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolAction::Added => f.write_str("added"),
            PoolAction::Removed => f.write_str("removed"),
            PoolAction::Benched(reason) => write!(f, "benched: {}", reason.describe()),
            PoolAction::Unbenched => f.write_str("unbenched"),
        }
    }
}

/// One entry of a pool's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLogEntry {
    /// When (to the millisecond).
    pub at: OffsetDateTime,
    /// Who: the Discord user, or `None` for the operator (the CLI) and the bot itself.
    pub actor: Option<u64>,
    /// What happened.
    pub action: PoolAction,
    /// The key's service.
    pub service: ServiceId,
    /// The key id.
    pub key_id: PoolField,
}

impl PoolLogEntry {
    /// The hash field and value of this entry.
    pub(crate) fn encode(&self) -> (String, String) {
        let ms = crate::health::unix_ms(self.at);
        let ns = self.at.unix_timestamp_nanos().max(0);
        let field = format!("{ns:020}-{:08x}", rand::random::<u32>());
        let value = format!(
            "{ms};{};{};{};{}",
            self.actor.unwrap_or(0),
            self.action.encode(),
            self.service,
            self.key_id
        );
        (field, value)
    }

    /// An entry as stored; `None` for a value this format does not describe.
    pub(crate) fn decode(value: &str) -> Option<Self> {
        let mut parts = value.splitn(5, ';');
        let ms: i128 = parts.next()?.parse().ok()?;
        let actor: u64 = parts.next()?.parse().ok()?;
        let action = PoolAction::decode(parts.next()?)?;
        let service = ServiceId::new(parts.next()?).ok()?;
        let key_id = PoolField::new(parts.next()?).ok()?;
        Some(Self {
            at: OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()?,
            actor: (actor != 0).then_some(actor),
            action,
            service,
            key_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_fields_sort_by_time() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let entry = PoolLogEntry {
            at,
            actor: Some(42),
            action: PoolAction::Benched(BenchReason::QuotaExhausted),
            service: ServiceId::from_static("brave"),
            key_id: PoolField::new("0123456789ab").unwrap(),
        };
        let (field, value) = entry.encode();
        assert_eq!(
            value,
            "1700000000000;42;benched:quota_exhausted;brave;0123456789ab"
        );
        assert!(field.starts_with("01700000000000000000-"), "{field}");
        assert_eq!(PoolLogEntry::decode(&value), Some(entry));
        let later = PoolLogEntry {
            at: at + time::Duration::seconds(1),
            actor: None,
            action: PoolAction::Added,
            service: ServiceId::from_static("brave"),
            key_id: PoolField::new("legacy;field").unwrap(),
        };
        let (later_field, later_value) = later.encode();
        assert!(later_field > field);
        assert_eq!(PoolLogEntry::decode(&later_value), Some(later));
        assert_eq!(PoolLogEntry::decode("garbage"), None);
    }
}

//! A user's choice to use only their own key: per service, or for every service. With shared
//! keys off, a resolution that finds no key of the user's own stops there (no pool, no
//! operator key), and the flow says why. One exception: when storage cannot be read at all,
//! the resolution falls to the operator's environment key as it always has (the choice cannot
//! be read either, and that key is the operator's, never another user's).

use crate::ids::{IntoServiceId, ServiceId};
use crate::storage::Layout;

use super::{KeyError, KeyVault};

const OFF: &str = "off";
const ON: &str = "on";
const EVERY_SERVICE: &str = "*";

/// Which of a user's calls may use shared keys, as they chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedKeyChoice {
    /// Whether shared keys are off for every service not named below.
    pub off_for_all: bool,
    /// Services with shared keys off.
    pub off: Vec<ServiceId>,
    /// Services with shared keys on although they are off for all.
    pub on: Vec<ServiceId>,
}

impl SharedKeyChoice {
    /// Whether calls for `service` may use shared keys.
    pub fn allows(&self, service: &str) -> bool {
        if self.off.iter().any(|id| id == service) {
            return false;
        }
        !self.off_for_all || self.on.iter().any(|id| id == service)
    }
}

/// The fields of the settings hash a resolution of `service` reads: the service's, then `*`.
pub(super) fn fields_for(service: &str) -> Vec<String> {
    vec![
        Layout::shared_keys_field(service),
        Layout::shared_keys_field(EVERY_SERVICE),
    ]
}

/// Whether the values of [`fields_for`] allow shared keys: the service's own value wins.
pub(super) fn allowed_by(values: &[Option<String>]) -> bool {
    match values {
        [Some(own), ..] if own == OFF => false,
        [Some(own), ..] if own == ON => true,
        [_, Some(all), ..] => all != OFF,
        _ => true,
    }
}

impl KeyVault {
    /// Lets the user's calls use shared keys (pools, the operator's key) when they have no key
    /// of their own, or not: for `service`, or for every service (`None`, which also clears
    /// every per-service choice).
    pub async fn set_shared_keys(
        &self,
        user_id: u64,
        service: Option<impl IntoServiceId>,
        allowed: bool,
    ) -> Result<(), KeyError> {
        let hash = self.inner.layout.user_settings_key(user_id);
        let value = if allowed { ON } else { OFF };
        match service {
            Some(service) => {
                let service = service.into_service_id()?;
                self.inner
                    .storage
                    .hset(&hash, &Layout::shared_keys_field(&service), value)
                    .await?;
            }
            None => {
                // The choice for all first, then the per-service ones go: a failure between
                // the two leaves shared keys off where they were off, never on.
                let all = Layout::shared_keys_field(EVERY_SERVICE);
                if allowed {
                    self.inner.storage.del(&hash).await?;
                } else {
                    self.inner.storage.hset(&hash, &all, OFF).await?;
                    for (field, _) in self.inner.storage.hgetall(&hash).await? {
                        if field != all {
                            self.inner.storage.hdel(&hash, &field).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What the user chose about shared keys.
    pub async fn shared_key_choice(&self, user_id: u64) -> Result<SharedKeyChoice, KeyError> {
        let hash = self.inner.layout.user_settings_key(user_id);
        let mut choice = SharedKeyChoice::default();
        for (field, value) in self.inner.storage.hgetall(&hash).await? {
            let Some(service) = field.strip_prefix(&Layout::shared_keys_field("")) else {
                continue;
            };
            let off = value == OFF;
            if service == EVERY_SERVICE {
                choice.off_for_all = off;
            } else if let Ok(service) = ServiceId::new(service) {
                if off {
                    choice.off.push(service);
                } else {
                    choice.on.push(service);
                }
            }
        }
        Ok(choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_own_choice_wins_over_the_choice_for_all() {
        let some = |v: &str| Some(v.to_owned());
        assert!(allowed_by(&[None, None]));
        assert!(!allowed_by(&[None, some(OFF)]));
        assert!(allowed_by(&[some(ON), some(OFF)]));
        assert!(!allowed_by(&[some(OFF), None]));
        assert!(allowed_by(&[None, some(ON)]));
        assert!(allowed_by(&[]));
    }
}

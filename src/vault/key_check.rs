//! Checking a key with its service before it is saved.

use super::{KeyError, KeyVault};
use crate::key_check::KeyCheck;
#[cfg(feature = "validation")]
use crate::key_check::request;

impl KeyVault {
    /// Asks `service` over the network whether it accepts `secret`, when checks are on
    /// (`STARGAZER_VALIDATE_KEYS`) and the catalogue says how. `Err(KeyRejected)` only when the
    /// service answered 401 or 403. [`KeyVault::set_user_api_key`] and
    /// [`KeyVault::add_pool_key`] call it before storing.
    pub async fn probe_key(&self, service: &str, secret: &str) -> Result<KeyCheck, KeyError> {
        if !self.config().validate_keys {
            return Ok(KeyCheck::NotChecked);
        }
        let Some(spec) = self.catalogue().get(service).and_then(|s| s.check.as_ref()) else {
            return Ok(KeyCheck::NotChecked);
        };
        #[cfg(feature = "validation")]
        {
            let origin = self.config().validate_base_urls.get(service);
            let url = spec.url_at(origin.map(String::as_str));
            let display = self.catalogue().display_name(service).to_owned();
            request(spec, &url, secret, self.config().validate_timeout)
                .await
                .map_err(|status| KeyError::KeyRejected {
                    service: display,
                    status,
                })
        }
        #[cfg(not(feature = "validation"))]
        {
            let _ = (spec, secret);
            tracing::warn!(
                "STARGAZER_VALIDATE_KEYS is on, but this build has no `validation` feature: keys are saved unchecked"
            );
            Ok(KeyCheck::NotChecked)
        }
    }
}

//! Checking a key with its service before it is saved (`STARGAZER_VALIDATE_KEYS=true`).
//!
//! Each catalogue service may describe a cheap authenticated GET ([`KeyCheckSpec`]). Only a
//! definite 401 or 403 refuses the key ([`KeyError::KeyRejected`](crate::KeyError::KeyRejected)); a timeout, a 429, a 5xx
//! or any other answer is inconclusive, and the key is saved with a note saying it could not
//! be checked. The key goes only to the service's configured API: the catalogue's URL, or the
//! origin `STARGAZER_VALIDATE_BASE_URL_<SERVICE>` puts in its place; https only (http only to
//! this machine), and redirects are never followed, so the key cannot be forwarded elsewhere.
//!
//! The HTTP client (reqwest with rustls) is behind the `validation` cargo feature, so a host
//! bot that does not want it does not build it; without the feature, keys are saved unchecked.

#[cfg(feature = "validation")]
use crate::catalogue::KeyCheckSpec;

/// What checking a key with its service found (a refusal is an error instead:
/// [`KeyError::KeyRejected`](crate::KeyError::KeyRejected)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyCheck {
    /// Not checked: checks are off, or the service has none.
    #[default]
    NotChecked,
    /// The service accepted the key.
    Valid,
    /// The service could not say (it timed out, was unreachable, rate-limited the check or
    /// failed): the key was saved anyway. The text says what happened.
    Unverified(String),
}

impl KeyCheck {
    /// A sentence for the reply that confirms a save, when there is something to say.
    pub fn note(&self, display_name: &str) -> Option<String> {
        match self {
            KeyCheck::NotChecked => None,
            KeyCheck::Valid => Some(format!("{display_name} confirmed that the key works.")),
            KeyCheck::Unverified(why) => Some(format!(
                "It could not be checked with {display_name} ({why}), so it was saved unchecked."
            )),
        }
    }
}

/// The process's one HTTP client for key checks (its TLS set-up and pooled connections are
/// kept between checks): no redirects, which could carry the key elsewhere.
#[cfg(feature = "validation")]
fn http_client() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()
}

/// Sends the check; `Err(status text)` on a definite refusal.
#[cfg(feature = "validation")]
pub(crate) async fn request(
    spec: &KeyCheckSpec,
    url: &str,
    secret: &str,
    timeout: std::time::Duration,
) -> Result<KeyCheck, String> {
    use reqwest::header::{HeaderName, HeaderValue};

    let unverified = |why: String| Ok(KeyCheck::Unverified(why));
    let origin = url::Url::parse(url)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    if crate::config::check_https_origin(&origin).is_err() {
        return unverified("its check URL is not https, so the key was not sent".to_owned());
    }
    let Ok(name) = HeaderName::from_bytes(spec.header.as_bytes()) else {
        return unverified("its check names an invalid header".to_owned());
    };
    let Ok(mut value) = HeaderValue::from_bytes(format!("{}{secret}", spec.prefix).as_bytes())
    else {
        return unverified("the key cannot be sent in a header".to_owned());
    };
    value.set_sensitive(true);
    let Some(client) = http_client() else {
        return unverified("no HTTP client could be built".to_owned());
    };
    let mut call = client.get(url).timeout(timeout).header(name, value);
    for (header, text) in &spec.headers {
        call = call.header(header.as_str(), text.as_str());
    }
    let response = match call.send().await {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return unverified(format!(
                "it did not answer within {:.1} s",
                timeout.as_secs_f64()
            ));
        }
        Err(_) => return unverified("it could not be reached".to_owned()),
    };
    let status = response.status();
    let text = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_owned();
    match status.as_u16() {
        200..=299 => Ok(KeyCheck::Valid),
        401 | 403 => Err(text),
        _ => unverified(format!("it answered {text}")),
    }
}

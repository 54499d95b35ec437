//! The sentences users see when a tool has no key or the shared-key limit is spent. Each says
//! what happened and the exact command that fixes it. No I/O here.

use std::time::Duration;

use crate::catalogue::{Catalogue, Service};
use crate::i18n::{Arg, Locale, Texts};
use crate::quota::LimitReached;
use crate::vault::Pool;

/// The message for a service with no key anywhere, in English, from the built-in catalogue (a
/// host with its own services uses [`Catalogue::missing_api_key_error`] or the vault's).
///
/// ```
/// let text = stargazer_keys::missing_api_key_error("brave");
/// assert!(text.contains("`/set_user_api_key service:brave`"));
/// ```
pub fn missing_api_key_error(service: &str) -> String {
    Catalogue::builtin().missing_api_key_error(service)
}

impl Catalogue {
    /// The message for a service with no key anywhere, in English: the service's name, where
    /// to get a key, and the command that adds it.
    pub fn missing_api_key_error(&self, service: &str) -> String {
        self.missing_key_text(&Texts::builtin(), &Locale::english(), service)
    }

    /// [`Catalogue::missing_api_key_error`] in the user's language.
    pub fn missing_key_text(&self, texts: &Texts, locale: &Locale, service: &str) -> String {
        match self.get(service) {
            Some(entry) => {
                let mut args = vec![
                    ("name", Arg::from(entry.display_name.as_str())),
                    ("id", Arg::from(entry.id.as_str())),
                ];
                let id = match entry.signup_url.as_deref() {
                    Some(url) => {
                        args.push(("url", url.into()));
                        "missing-key-signup"
                    }
                    None => "missing-key",
                };
                texts.text(locale, id, &args)
            }
            None => texts.text(
                locale,
                "missing-key-unknown-service",
                &[("service", service.into())],
            ),
        }
    }

    /// The message for a user who turned shared keys off (for `service`, or for every service)
    /// and has no key of their own, in English: what they chose, and the two commands that fix
    /// it.
    pub fn shared_keys_off_error(&self, service: &str) -> String {
        self.shared_keys_off_text(&Texts::builtin(), &Locale::english(), service)
    }

    /// [`Catalogue::shared_keys_off_error`] in the user's language.
    pub fn shared_keys_off_text(&self, texts: &Texts, locale: &Locale, service: &str) -> String {
        texts.text(
            locale,
            "shared-keys-off",
            &[
                ("name", self.display_name(service).into()),
                ("id", service.into()),
            ],
        )
    }
}

/// The message, in English, when a user has spent the daily limit of shared-key uses of
/// `tool`, which uses `service`: the count, the limit, when it resets (when known), and the
/// command that lifts the limit.
///
/// ```
/// use std::time::Duration;
/// use stargazer_keys::{Catalogue, default_key_limit_error};
/// let catalogue = Catalogue::builtin();
/// let text = default_key_limit_error(
///     "web_search",
///     catalogue.get("brave").unwrap(),
///     20,
///     20,
///     Some(Duration::from_secs(3 * 3600 + 12 * 60)),
/// );
/// assert_eq!(
///     text,
///     "You have used web_search 20 times with the bot's shared Brave Search key, and the \
///      daily limit is 20. It resets in 3 hours 12 minutes. To keep going now, add your own \
///      key with `/set_user_api_key service:brave` (get one at https://brave.com/search/api/); \
///      your own key has no daily limit."
/// );
/// ```
pub fn default_key_limit_error(
    tool: &str,
    service: &Service,
    current: u64,
    limit: u32,
    resets_in: Option<Duration>,
) -> String {
    let reached = LimitReached {
        current,
        limit,
        resets_in,
    };
    default_key_limit_text(
        &Texts::builtin(),
        &Locale::english(),
        tool,
        service,
        &reached,
    )
}

/// [`default_key_limit_error`] in the user's language.
pub fn default_key_limit_text(
    texts: &Texts,
    locale: &Locale,
    tool: &str,
    service: &Service,
    reached: &LimitReached,
) -> String {
    let used = texts.text(
        locale,
        "default-key-limit-used",
        &[
            ("tool", tool.into()),
            ("current", reached.current.into()),
            ("name", service.display_name.as_str().into()),
            ("limit", reached.limit.into()),
        ],
    );
    [
        used,
        resets(texts, locale, reached),
        own_key(texts, locale, service),
    ]
    .join(" ")
}

/// The message, in the user's language, when the user's uses of a pool with its own daily
/// limit are spent: whose pool, the count and limit, when it resets, and how to go on with an
/// own key.
pub fn pool_limit_error(
    texts: &Texts,
    locale: &Locale,
    pool: Pool,
    service: &Service,
    reached: &LimitReached,
) -> String {
    let pool = match pool {
        Pool::Global => "global",
        Pool::Channel(_) => "channel",
        Pool::Guild(_) => "server",
    };
    let name = service.display_name.as_str();
    if reached.limit == 0 {
        let closed = texts.text(
            locale,
            "pool-limit-closed",
            &[("name", name.into()), ("pool", pool.into())],
        );
        return [closed, own_key(texts, locale, service)].join(" ");
    }
    let used = texts.text(
        locale,
        "pool-limit-used",
        &[
            ("name", name.into()),
            ("pool", pool.into()),
            ("current", reached.current.into()),
            ("limit", reached.limit.into()),
        ],
    );
    [
        used,
        resets(texts, locale, reached),
        own_key(texts, locale, service),
    ]
    .join(" ")
}

/// "It resets in 3 hours 12 minutes." (or within 24 hours, when the counter has no expiry).
fn resets(texts: &Texts, locale: &Locale, reached: &LimitReached) -> String {
    match reached.resets_in {
        Some(left) => texts.text(
            locale,
            "limit-resets-in",
            &[("duration", duration_text(texts, locale, left).into())],
        ),
        None => texts.text(locale, "limit-resets-within-a-day", &[]),
    }
}

/// How to go on now: an own key, and where to get one.
fn own_key(texts: &Texts, locale: &Locale, service: &Service) -> String {
    match service.signup_url.as_deref() {
        Some(url) => texts.text(
            locale,
            "limit-own-key-signup",
            &[("id", service.id.as_str().into()), ("url", url.into())],
        ),
        None => texts.text(
            locale,
            "limit-own-key",
            &[("id", service.id.as_str().into())],
        ),
    }
}

/// "3 hours 12 minutes", "1 hour", "45 minutes", "less than a minute" (in English).
pub fn human_duration(duration: Duration) -> String {
    duration_text(&Texts::builtin(), &Locale::english(), duration)
}

/// A duration in whole minutes (rounded up) and hours, in the user's language.
pub fn duration_text(texts: &Texts, locale: &Locale, duration: Duration) -> String {
    let minutes = duration.as_secs().div_ceil(60);
    texts.text(
        locale,
        "duration",
        &[
            ("hours", (minutes / 60).into()),
            ("minutes", (minutes % 60).into()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(0)), "less than a minute");
        assert_eq!(human_duration(Duration::from_secs(59)), "1 minute");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(
            human_duration(Duration::from_secs(7200 + 60)),
            "2 hours 1 minute"
        );
        assert_eq!(human_duration(Duration::from_secs(86_400)), "24 hours");
    }
}

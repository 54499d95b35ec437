//! The sentences users see when a tool has no key or the shared-key limit is spent. Each says
//! what happened and the exact command that fixes it. No I/O here.

use std::time::Duration;

use crate::catalogue::{Catalogue, Service};
use crate::quota::LimitReached;
use crate::vault::Pool;

/// The message for a service with no key anywhere, from the built-in catalogue (a host with
/// its own services uses [`Catalogue::missing_api_key_error`] or the vault's).
///
/// ```
/// let text = stargazer_keys::missing_api_key_error("brave");
/// assert!(text.contains("`/set_user_api_key service:brave`"));
/// ```
pub fn missing_api_key_error(service: &str) -> String {
    Catalogue::builtin().missing_api_key_error(service)
}

impl Catalogue {
    /// The message for a service with no key anywhere: the service's name, where to get a
    /// key, and the command that adds it.
    pub fn missing_api_key_error(&self, service: &str) -> String {
        match self.get(service) {
            Some(entry) => {
                let get_one = entry
                    .signup_url
                    .as_deref()
                    .map(|url| format!(" You can get one at {url}."))
                    .unwrap_or_default();
                format!(
                    "No {name} API key is available to you.{get_one} Add yours with `/set_user_api_key service:{id}`: you paste it into a private form, and it works for you in every server.",
                    name = entry.display_name,
                    id = entry.id,
                )
            }
            None => format!(
                "No API key for `{service}` is set up on this bot, and it does not take keys for `{service}` yet; ask the bot's operator to add the service."
            ),
        }
    }
}

impl Catalogue {
    /// The message for a user who turned shared keys off (for `service`, or for every service)
    /// and has no key of their own: what they chose, and the two commands that fix it.
    pub fn shared_keys_off_error(&self, service: &str) -> String {
        let name = self.display_name(service);
        format!(
            "You turned shared keys off, so your calls use only your own {name} key, and you have none saved. Add yours with `/set_user_api_key service:{service}`, or let your calls use shared keys again with `/shared_keys use:True service:{service}`."
        )
    }
}

/// The message when a user has spent the daily limit of shared-key uses of `tool`, which
/// uses `service`: the count, the limit, when it resets (when known), and the command that
/// lifts the limit.
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
    let count = if current == 1 {
        "once".to_owned()
    } else {
        format!("{current} times")
    };
    let reset = match resets_in {
        Some(left) => format!(" It resets in {}.", human_duration(left)),
        None => " It resets within 24 hours.".to_owned(),
    };
    let get_one = service
        .signup_url
        .as_deref()
        .map(|url| format!(" (get one at {url})"))
        .unwrap_or_default();
    format!(
        "You have used {tool} {count} with the bot's shared {name} key, and the daily limit is {limit}.{reset} To keep going now, add your own key with `/set_user_api_key service:{id}`{get_one}; your own key has no daily limit.",
        name = service.display_name,
        id = service.id,
    )
}

/// The message when the user's uses of a pool with its own daily limit are spent: whose pool,
/// the count and limit, when it resets, and how to go on with an own key.
pub fn pool_limit_error(pool: Pool, service: &Service, reached: &LimitReached) -> String {
    let (whose, admins) = match pool {
        Pool::Global => ("the bot's", "the bot's admins"),
        Pool::Channel(_) => ("this channel's", "its admins"),
        Pool::Guild(_) => ("this server's", "its admins"),
    };
    let name = &service.display_name;
    let used = match (reached.current, reached.limit) {
        (_, 0) => format!(
            "The {name} keys of {whose} shared pool are not open to members at the moment ({admins} set its daily limit to 0)."
        ),
        (1, limit) => format!(
            "You have used a key of {whose} shared {name} pool once today, and {admins} allow {limit} a day for each member."
        ),
        (current, limit) => format!(
            "You have used the keys of {whose} shared {name} pool {current} times today, and {admins} allow {limit} a day for each member."
        ),
    };
    let reset = match (reached.limit, reached.resets_in) {
        (0, _) => String::new(),
        (_, Some(left)) => format!(" It resets in {}.", human_duration(left)),
        (_, None) => " It resets within 24 hours.".to_owned(),
    };
    let get_one = service
        .signup_url
        .as_deref()
        .map(|url| format!(" (get one at {url})"))
        .unwrap_or_default();
    format!(
        "{used}{reset} To keep going now, add your own key with `/set_user_api_key service:{id}`{get_one}; your own key has no daily limit.",
        id = service.id,
    )
}

/// "3 hours 12 minutes", "1 hour", "45 minutes", "less than a minute".
pub fn human_duration(duration: Duration) -> String {
    let minutes = duration.as_secs().div_ceil(60);
    let (hours, minutes) = (minutes / 60, minutes % 60);
    let unit = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match (hours, minutes) {
        (0, 0) => "less than a minute".to_owned(),
        (0, m) => unit(m, "minute"),
        (h, 0) => unit(h, "hour"),
        (h, m) => format!("{} {}", unit(h, "hour"), unit(m, "minute")),
    }
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

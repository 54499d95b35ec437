//! Storage key names: the one place that builds them. The layout is the original bot's, so
//! this crate can take over an existing deployment.

/// Builds the storage keys under one prefix (`stargazer` by default).
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

/// Whose data key seals a value: the owner ids of the data-key table (`encryption_keys`),
/// which are not under the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A user's own keys: the user id in decimal.
    User(u64),
    /// The global pool: `pool:global`.
    GlobalPool,
    /// A channel's pool: `pool:channel:{id}`.
    ChannelPool(u64),
    /// A server's pool: `pool:guild:{id}`.
    GuildPool(u64),
}

impl Owner {
    /// The owner id of the original bot's pool key row (its `POOL_KEY_SALT`).
    pub const ORIGINAL_POOL_KEY: &'static str = "stargazer:api_key_pool";

    /// The owner id, as the data-key table stores it.
    pub fn id(&self) -> String {
        match self {
            Owner::User(user_id) => itoa::Buffer::new().format(*user_id).to_owned(),
            Owner::GlobalPool => "pool:global".to_owned(),
            Owner::ChannelPool(channel_id) => format!("pool:channel:{channel_id}"),
            Owner::GuildPool(guild_id) => format!("pool:guild:{guild_id}"),
        }
    }

    /// The owner an id names, exactly as [`Owner::id`] writes it (no sign, no leading zeros).
    pub fn parse(id: &str) -> Option<Owner> {
        let number = |text: &str| {
            let n: u64 = text.parse().ok()?;
            (n.to_string() == text).then_some(n)
        };
        if id == "pool:global" {
            return Some(Owner::GlobalPool);
        }
        if let Some(channel) = id.strip_prefix("pool:channel:") {
            return number(channel).map(Owner::ChannelPool);
        }
        match id.strip_prefix("pool:guild:") {
            Some(guild) => number(guild).map(Owner::GuildPool),
            None => number(id).map(Owner::User),
        }
    }

    /// Whose values a hash holds.
    pub fn of_hash(kind: &HashKind) -> Owner {
        match kind {
            HashKind::UserKeys { user_id } => Owner::User(*user_id),
            HashKind::GlobalPool { .. } => Owner::GlobalPool,
            HashKind::ChannelPool { channel_id, .. } => Owner::ChannelPool(*channel_id),
            HashKind::GuildPool { guild_id, .. } => Owner::GuildPool(*guild_id),
        }
    }
}

/// What kind of hash a scanned storage key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKind {
    /// `{p}:user_api_keys:{user_id}`
    UserKeys {
        /// The user.
        user_id: u64,
    },
    /// `{p}:global_api_pool:{service}`
    GlobalPool {
        /// The service.
        service: String,
    },
    /// `{p}:channel_api_pool:{channel_id}:{service}`
    ChannelPool {
        /// The channel.
        channel_id: u64,
        /// The service.
        service: String,
    },
    /// `{p}:guild_api_pool:{guild_id}:{service}`
    GuildPool {
        /// The server.
        guild_id: u64,
        /// The service.
        service: String,
    },
}

impl Layout {
    /// A layout under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash of a user's own keys: field = service id.
    pub fn user_keys_key(&self, user_id: u64) -> String {
        // Built by hand: every resolution makes one, and `format!` costs more than the rest.
        const MIDDLE: &str = ":user_api_keys:";
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(user_id);
        let mut key = String::with_capacity(self.prefix.len() + MIDDLE.len() + digits.len());
        key.push_str(&self.prefix);
        key.push_str(MIDDLE);
        key.push_str(digits);
        key
    }

    /// The hash of the global pool of a service: field = key id.
    pub fn global_pool_key(&self, service: &str) -> String {
        format!("{}:global_api_pool:{service}", self.prefix)
    }

    /// The hash of a channel's pool of a service: field = key id.
    pub fn channel_pool_key(&self, channel_id: u64, service: &str) -> String {
        format!("{}:channel_api_pool:{channel_id}:{service}", self.prefix)
    }

    /// The hash of a server's pool of a service: field = key id.
    pub fn guild_pool_key(&self, guild_id: u64, service: &str) -> String {
        format!("{}:guild_api_pool:{guild_id}:{service}", self.prefix)
    }

    /// The bench of the global pool of a service: field = key id, value =
    /// `{until, unix ms};{reason}`. Readers ignore entries whose time has passed; writers
    /// prune them, and the hash expires with its latest entry.
    pub fn global_pool_bench_key(&self, service: &str) -> String {
        format!("{}:pool_key_bench:global:{service}", self.prefix)
    }

    /// The bench of a channel's pool of a service (as [`Layout::global_pool_bench_key`]).
    pub fn channel_pool_bench_key(&self, channel_id: u64, service: &str) -> String {
        format!(
            "{}:pool_key_bench:channel:{channel_id}:{service}",
            self.prefix
        )
    }

    /// The bench of a server's pool of a service (as [`Layout::global_pool_bench_key`]).
    pub fn guild_pool_bench_key(&self, guild_id: u64, service: &str) -> String {
        format!("{}:pool_key_bench:guild:{guild_id}:{service}", self.prefix)
    }

    /// One UTC day's use counters of the global pool of a service: fields `{key_id}:uses` and
    /// `{key_id}:failures`; kept two days.
    pub fn global_pool_usage_key(&self, service: &str, day: time::Date) -> String {
        format!(
            "{}:pool_key_usage:global:{service}:{}",
            self.prefix,
            day_text(day)
        )
    }

    /// One UTC day's use counters of a channel's pool of a service (as
    /// [`Layout::global_pool_usage_key`]).
    pub fn channel_pool_usage_key(
        &self,
        channel_id: u64,
        service: &str,
        day: time::Date,
    ) -> String {
        format!(
            "{}:pool_key_usage:channel:{channel_id}:{service}:{}",
            self.prefix,
            day_text(day)
        )
    }

    /// One UTC day's use counters of a server's pool of a service (as
    /// [`Layout::global_pool_usage_key`]).
    pub fn guild_pool_usage_key(&self, guild_id: u64, service: &str, day: time::Date) -> String {
        format!(
            "{}:pool_key_usage:guild:{guild_id}:{service}:{}",
            self.prefix,
            day_text(day)
        )
    }

    /// The field of a pool key's use counter in a usage hash.
    pub fn pool_uses_field(key_id: &str) -> String {
        format!("{key_id}:uses")
    }

    /// The field of a pool key's failure counter in a usage hash.
    pub fn pool_failures_field(key_id: &str) -> String {
        format!("{key_id}:failures")
    }

    /// A user's settings: field `shared_keys:{service}` or `shared_keys:*` (every service), value
    /// `off` (calls use only the user's own key) or `on`; the service's field wins over `*`.
    ///
    /// The key is `{{p}:user_api_keys:{user_id}}:settings`: the hash tag puts it in the Redis
    /// Cluster slot of the user's keys (the prefix holds no braces), so the resolution that
    /// reads both never depends on a second master.
    pub fn user_settings_key(&self, user_id: u64) -> String {
        format!("{{{}}}:settings", self.user_keys_key(user_id))
    }

    /// The field of a user's settings hash that says whether they are sent a DM when a key
    /// they shared is benched for a long reason: `off`, or absent (on).
    pub fn bench_dms_field() -> &'static str {
        "bench_dms"
    }

    /// The once-guard of a pool key's bench announcement: the process that claims it tells the
    /// key's contributor; it lives as long as the bench, and unbenching deletes it.
    pub fn pool_bench_notice_key(&self, scope: &str, service: &str, key_id: &str) -> String {
        format!(
            "{}:pool_bench_notice:{scope}:{service}:{key_id}",
            self.prefix
        )
    }

    /// The field of a user's settings hash that says whether `service` (or `*`) may use shared
    /// keys.
    pub fn shared_keys_field(service: &str) -> String {
        format!("shared_keys:{service}")
    }

    /// The shared-key use counter of a user and tool.
    pub fn usage_key(&self, user_id: u64, tool: &str) -> String {
        format!("{}:default_key_usage:{user_id}:{tool}", self.prefix)
    }

    /// A SCAN pattern for every shared-key use counter of a user (every tool).
    pub fn usage_keys_pattern(&self, user_id: u64) -> String {
        format!("{}*", self.usage_key(user_id, ""))
    }

    /// The counter of a user's failed calls of a tool with a shared key (TTL 24 h).
    pub fn failures_key(&self, user_id: u64, tool: &str) -> String {
        format!("{}:default_key_failures:{user_id}:{tool}", self.prefix)
    }

    /// The strikes of the global pool of a service: field = key id, value =
    /// `{until, unix ms};{user id}`, the user whose call the key failed while the key was not
    /// yet benched (see `KeyVault::report_key_outcome_by`).
    pub fn global_pool_strikes_key(&self, service: &str) -> String {
        format!("{}:pool_key_strikes:global:{service}", self.prefix)
    }

    /// The strikes of a channel's pool of a service (as [`Layout::global_pool_strikes_key`]).
    pub fn channel_pool_strikes_key(&self, channel_id: u64, service: &str) -> String {
        format!(
            "{}:pool_key_strikes:channel:{channel_id}:{service}",
            self.prefix
        )
    }

    /// The strikes of a server's pool of a service (as [`Layout::global_pool_strikes_key`]).
    pub fn guild_pool_strikes_key(&self, guild_id: u64, service: &str) -> String {
        format!(
            "{}:pool_key_strikes:guild:{guild_id}:{service}",
            self.prefix
        )
    }

    /// The log of the global pool (see `crate::pool_log`).
    pub fn global_pool_log_key(&self) -> String {
        format!("{}:pool_log:global", self.prefix)
    }

    /// The log of a channel's pool.
    pub fn channel_pool_log_key(&self, channel_id: u64) -> String {
        format!("{}:pool_log:channel:{channel_id}", self.prefix)
    }

    /// The log of a server's pool.
    pub fn guild_pool_log_key(&self, guild_id: u64) -> String {
        format!("{}:pool_log:guild:{guild_id}", self.prefix)
    }

    /// The per-user daily limits pools' admins set for `service`: one hash for every pool of
    /// the service (so one resolution reads the limits of all its tiers with one `HMGET`),
    /// field = the pool's scope ([`Layout::global_pool_scope`], …), value = uses a day for each
    /// user, in decimal.
    pub fn pool_daily_limits_key(&self, service: &str) -> String {
        format!("{}:pool_daily_limits:{service}", self.prefix)
    }

    /// The scope of the global pool in [`Layout::pool_daily_limits_key`] and
    /// [`Layout::pool_user_usage_key`]: `global`.
    pub fn global_pool_scope() -> String {
        "global".to_owned()
    }

    /// The scope of a channel's pool: `channel:{id}`.
    pub fn channel_pool_scope(channel_id: u64) -> String {
        format!("channel:{channel_id}")
    }

    /// The scope of a server's pool: `guild:{id}`.
    pub fn guild_pool_scope(guild_id: u64) -> String {
        format!("guild:{guild_id}")
    }

    /// A user's uses today of the keys of one pool that has its own daily limit (every tool
    /// counts): `{p}:pool_user_usage:{user_id}:{scope}:{service}`, a counter with the quota's
    /// window, like [`Layout::usage_key`].
    pub fn pool_user_usage_key(&self, user_id: u64, scope: &str, service: &str) -> String {
        format!(
            "{}:pool_user_usage:{user_id}:{scope}:{service}",
            self.prefix
        )
    }

    /// A SCAN pattern for every pool counter of a user.
    pub fn pool_user_usage_pattern(&self, user_id: u64) -> String {
        format!("{}:pool_user_usage:{user_id}:*", self.prefix)
    }

    /// The marker `migrate` leaves once it has run: `refuse`, so that every process stops
    /// reading values in the original bot's formats.
    pub fn legacy_values_key(&self) -> String {
        format!("{}:legacy_values", self.prefix)
    }

    /// The privilege mask of a user.
    pub fn privileges_key(&self, user_id: u64) -> String {
        format!("{}:user_privileges:{user_id}", self.prefix)
    }

    /// SCAN patterns matching every hash that holds sealed values.
    pub fn sealed_hash_patterns(&self) -> [String; 4] {
        [
            format!("{}:user_api_keys:*", self.prefix),
            format!("{}:global_api_pool:*", self.prefix),
            format!("{}:channel_api_pool:*", self.prefix),
            format!("{}:guild_api_pool:*", self.prefix),
        ]
    }

    /// The key of a hash of sealed values (the inverse of [`Layout::parse_hash_key`]).
    pub fn hash_key(&self, kind: &HashKind) -> String {
        match kind {
            HashKind::UserKeys { user_id } => self.user_keys_key(*user_id),
            HashKind::GlobalPool { service } => self.global_pool_key(service),
            HashKind::ChannelPool {
                channel_id,
                service,
            } => self.channel_pool_key(*channel_id, service),
            HashKind::GuildPool { guild_id, service } => self.guild_pool_key(*guild_id, service),
        }
    }

    /// Names the hash a scanned key is, or `None` for a key outside the layout.
    pub fn parse_hash_key(&self, key: &str) -> Option<HashKind> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix(':')?;
        if let Some(user) = rest.strip_prefix("user_api_keys:") {
            return Some(HashKind::UserKeys {
                user_id: user.parse().ok()?,
            });
        }
        if let Some(service) = rest.strip_prefix("global_api_pool:") {
            return Some(HashKind::GlobalPool {
                service: service.to_owned(),
            });
        }
        if let Some(guild) = rest.strip_prefix("guild_api_pool:") {
            let (guild, service) = guild.split_once(':')?;
            return Some(HashKind::GuildPool {
                guild_id: guild.parse().ok()?,
                service: service.to_owned(),
            });
        }
        let (channel, service) = rest.strip_prefix("channel_api_pool:")?.split_once(':')?;
        Some(HashKind::ChannelPool {
            channel_id: channel.parse().ok()?,
            service: service.to_owned(),
        })
    }
}

/// `YYYY-MM-DD`.
fn day_text(day: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_parse_back_and_nothing_else_does() {
        for owner in [Owner::User(42), Owner::GlobalPool, Owner::ChannelPool(7)] {
            assert_eq!(Owner::parse(&owner.id()), Some(owner));
        }
        assert_eq!(Owner::User(42).id(), "42");
        assert_eq!(Owner::ChannelPool(7).id(), "pool:channel:7");
        for other in [
            "pool:channel:007",
            "+42",
            "pool:channel:",
            "pool:other",
            Owner::ORIGINAL_POOL_KEY,
            "",
        ] {
            assert_eq!(Owner::parse(other), None, "{other}");
        }
    }

    #[test]
    fn hash_keys_parse_back_to_their_kind() {
        let layout = Layout::new("stargazer");
        for kind in [
            HashKind::UserKeys { user_id: 42 },
            HashKind::GlobalPool {
                service: "brave".to_owned(),
            },
            HashKind::ChannelPool {
                channel_id: 7,
                service: "openai".to_owned(),
            },
        ] {
            assert_eq!(layout.parse_hash_key(&layout.hash_key(&kind)), Some(kind));
        }
    }

    #[test]
    fn keys_follow_the_original_layout() {
        let layout = Layout::new("stargazer");
        assert_eq!(layout.user_keys_key(42), "stargazer:user_api_keys:42");
        assert_eq!(
            layout.global_pool_key("brave"),
            "stargazer:global_api_pool:brave"
        );
        assert_eq!(
            layout.channel_pool_key(7, "brave"),
            "stargazer:channel_api_pool:7:brave"
        );
        assert_eq!(
            layout.usage_key(42, "web_search"),
            "stargazer:default_key_usage:42:web_search"
        );
        assert_eq!(layout.privileges_key(42), "stargazer:user_privileges:42");
        assert_eq!(
            layout.channel_pool_bench_key(7, "brave"),
            "stargazer:pool_key_bench:channel:7:brave"
        );
        let day = time::macros::date!(2024 - 03 - 09);
        assert_eq!(
            layout.global_pool_usage_key("brave", day),
            "stargazer:pool_key_usage:global:brave:2024-03-09"
        );
        assert_eq!(Layout::pool_uses_field("0123456789ab"), "0123456789ab:uses");
    }

    #[test]
    fn scanned_keys_parse_back() {
        let layout = Layout::new("sg");
        assert_eq!(
            layout.parse_hash_key(&layout.channel_pool_key(7, "brave")),
            Some(HashKind::ChannelPool {
                channel_id: 7,
                service: "brave".into()
            })
        );
        assert_eq!(
            layout.parse_hash_key("sg:user_api_keys:12"),
            Some(HashKind::UserKeys { user_id: 12 })
        );
        assert_eq!(layout.parse_hash_key("other:user_api_keys:12"), None);
        assert_eq!(layout.parse_hash_key("sg:user_api_keys:x"), None);
    }
}

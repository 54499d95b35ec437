//! Gitea credentials: a token and the base URL of the Gitea instance it belongs to.
//!
//! A stored Gitea value is either a plain token or JSON `{"token": "...", "base_url": "..."}`.
//! Resolution: user -> channel pool -> server pool -> global pool -> `GITEA_TOKEN` ->
//! `GITEA_TOKEN_FILE` (default `data/gitea_token`); only the user's own when they turned shared
//! keys off. A plain token takes its base URL from `GITEA_BASE_URL`
//! (default `https://git.neko.li`).

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::config::DEFAULT_GITEA_BASE_URL;
use crate::secret::ApiKey;
use crate::vault::{KeyError, KeySource};

/// The service id of Gitea in the catalogue.
pub const GITEA_SERVICE: &str = "gitea";
/// Longest base URL accepted.
const MAX_BASE_URL_LEN: usize = 200;

/// A Gitea token and the instance it is for.
#[derive(Debug, Clone)]
pub struct GiteaCredentials {
    /// The token.
    pub token: ApiKey,
    /// The instance's base URL, without a trailing slash.
    pub base_url: String,
    /// Where the token came from.
    pub source: GiteaSource,
}

/// Where Gitea credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiteaSource {
    /// A tier of ordinary key resolution (user, pools, environment).
    Key(KeySource),
    /// The token file.
    TokenFile,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct GiteaValue {
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
}

/// Why a Gitea base URL was refused. Each variant is a sentence; none echoes the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Empty, over 200 characters, or with whitespace or control characters.
    #[error("the Gitea base URL must be one line of at most 200 characters, without spaces")]
    Shape,
    /// Not a URL at all.
    #[error("the Gitea base URL is not a URL; write it as https://gitea.example")]
    NotAUrl,
    /// Another scheme than https (or http for a host the operator lists).
    #[error(
        "the Gitea base URL must start with https:// (plain http only for hosts the operator lists in STARGAZER_GITEA_HTTP_HOSTS)"
    )]
    Scheme,
    /// A user name or password before the host.
    #[error("the Gitea base URL must not contain a user name or password (user@host)")]
    UserInfo,
    /// A query or fragment.
    #[error("the Gitea base URL must not contain a query (?) or fragment (#)")]
    QueryOrFragment,
    /// A loopback, private, link-local or unspecified address, or `localhost`.
    #[error(
        "the Gitea base URL names a local or private address; use the instance's public host name"
    )]
    LocalAddress,
    /// A pooled value naming a host the operator did not allow for shared keys.
    #[error(
        "a shared Gitea token may only be for the hosts the operator allows in STARGAZER_GITEA_POOL_HOSTS"
    )]
    HostNotAllowedForPools,
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct GiteaValueIn {
    token: String,
    #[serde(default)]
    base_url: Option<String>,
}

/// Where Gitea tokens may be sent: the default instance, the hosts that may be reached over
/// plain http, and the hosts a shared (pooled) token may name. Built from the settings
/// `GITEA_BASE_URL`, `STARGAZER_GITEA_HTTP_HOSTS` and `STARGAZER_GITEA_POOL_HOSTS` (default: the
/// host of `GITEA_BASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiteaPolicy {
    default_base_url: String,
    http_hosts: Vec<String>,
    pool_hosts: Vec<String>,
}

impl Default for GiteaPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_GITEA_BASE_URL, None, None)
    }
}

/// `a, B ,c` as `["a", "b", "c"]`.
fn host_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|host| host.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|host| !host.is_empty())
        .collect()
}

impl GiteaPolicy {
    /// A policy from the settings' values (`None`: unset).
    pub fn new(default_base_url: &str, http_hosts: Option<&str>, pool_hosts: Option<&str>) -> Self {
        let default_base_url = default_base_url.trim().trim_end_matches('/').to_owned();
        let pool_hosts = match pool_hosts {
            Some(hosts) => host_list(hosts),
            None => url::Url::parse(&default_base_url)
                .ok()
                .and_then(|url| url.host_str().map(|host| vec![host.to_ascii_lowercase()]))
                .unwrap_or_default(),
        };
        Self {
            default_base_url,
            http_hosts: http_hosts.map(host_list).unwrap_or_default(),
            pool_hosts,
        }
    }

    /// The policy the settings describe.
    pub fn from_config(config: &crate::Config) -> Self {
        // An empty setting (as `.env.example` has them) is an unset one.
        let get = |name| {
            config
                .env
                .get(name)
                .filter(|value| !value.trim().is_empty())
        };
        Self::new(
            get("GITEA_BASE_URL").unwrap_or(DEFAULT_GITEA_BASE_URL),
            get("STARGAZER_GITEA_HTTP_HOSTS"),
            get("STARGAZER_GITEA_POOL_HOSTS"),
        )
    }

    /// The base URL of plain tokens.
    pub fn default_base_url(&self) -> &str {
        &self.default_base_url
    }

    /// Checks a base URL and returns it normalized, without a trailing slash: https (http only
    /// for a listed host), no user name or password, no query or fragment, and no IP literal
    /// of a loopback, private, link-local or unspecified range in any spelling (`0x7f000001`,
    /// `[::ffff:127.0.0.1]`…), nor `localhost`, unless the operator listed that host.
    pub fn check_base_url(&self, text: &str) -> Result<String, BaseUrlError> {
        let text = text.trim();
        // The URL parser would silently drop tabs and line breaks: refuse them first.
        if text.is_empty()
            || text.chars().count() > MAX_BASE_URL_LEN
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(BaseUrlError::Shape);
        }
        let url = url::Url::parse(text).map_err(|_| BaseUrlError::NotAUrl)?;
        let host = url.host().ok_or(BaseUrlError::NotAUrl)?.to_owned();
        let host_name = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let listed = self.http_hosts.contains(&host_name);
        match url.scheme() {
            "https" => {}
            "http" if listed => {}
            _ => return Err(BaseUrlError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(BaseUrlError::UserInfo);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(BaseUrlError::QueryOrFragment);
        }
        if !listed && is_local(&host) {
            return Err(BaseUrlError::LocalAddress);
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }

    /// Checks a Gitea value on its way in (a plain token, or JSON `{"token", "base_url"}` typed
    /// into the token field) with the same rules as the form's two fields, and returns what to
    /// store: the token alone, or normalized JSON. A `shared` value (for a pool) may only name
    /// the hosts the operator allows for pools.
    pub fn check_value(&self, value: &str, shared: bool) -> Result<Zeroizing<String>, KeyError> {
        let value = value.trim();
        if !value.starts_with('{') {
            return self.encode(value, None, shared);
        }
        let parsed: GiteaValueIn =
            serde_json::from_str(value).map_err(|_| KeyError::InvalidGiteaValue)?;
        self.encode(&parsed.token, parsed.base_url.as_deref(), shared)
    }

    /// The value to store for `token` at `base_url` (`None` or empty: the default instance).
    pub fn encode(
        &self,
        token: &str,
        base_url: Option<&str>,
        shared: bool,
    ) -> Result<Zeroizing<String>, KeyError> {
        let token = crate::vault::check_secret(token)?;
        let Some(base_url) = base_url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(Zeroizing::new(token.to_owned()));
        };
        let base_url = self.check_base_url(base_url)?;
        if shared {
            self.check_pool_host(&base_url)?;
        }
        Ok(Zeroizing::new(
            serde_json::to_string(&GiteaValue {
                token: token.to_owned(),
                base_url: Some(base_url),
            })
            .expect("two strings serialize"),
        ))
    }

    fn check_pool_host(&self, base_url: &str) -> Result<(), BaseUrlError> {
        let host = url::Url::parse(base_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
        match host {
            Some(host) if self.pool_hosts.contains(&host) => Ok(()),
            _ => Err(BaseUrlError::HostNotAllowedForPools),
        }
    }

    /// Reads a stored Gitea value, checking it again as on its way in (stored data is not
    /// trusted): the token and base URL, and for a `shared` value the pool host list. `None`
    /// (logged) for a value that fails.
    pub fn parse_value(&self, value: &str, shared: bool) -> Option<(ApiKey, String)> {
        let value = value.trim();
        let parsed = if value.starts_with('{') {
            serde_json::from_str(value).ok()?
        } else {
            GiteaValueIn {
                token: value.to_owned(),
                base_url: None,
            }
        };
        let (token, base_url) = (
            &parsed.token,
            parsed
                .base_url
                .as_deref()
                .filter(|url| !url.trim().is_empty()),
        );
        let checked = (|| {
            let token = crate::vault::check_secret(token)?;
            let base_url = match base_url {
                Some(url) => {
                    let url = self.check_base_url(url)?;
                    if shared {
                        self.check_pool_host(&url)?;
                    }
                    url
                }
                None => self.default_base_url.clone(),
            };
            Ok::<_, KeyError>((ApiKey::new(token), base_url))
        })();
        checked
            .inspect_err(|err| tracing::warn!(error = %err, "a stored Gitea value is refused"))
            .ok()
    }

    /// The masked form of a Gitea value: of its token, never of the JSON around it.
    pub fn masked(value: &str) -> String {
        let value = value.trim();
        if value.starts_with('{')
            && let Ok(parsed) = serde_json::from_str::<GiteaValueIn>(value)
        {
            return crate::secret::mask(parsed.token.trim());
        }
        crate::secret::mask(value)
    }
}

/// Whether a host is `localhost` or an IP address of a loopback, private, link-local,
/// unspecified, shared (CGNAT) or broadcast range, IPv4-mapped IPv6 addresses included.
fn is_local(host: &url::Host<String>) -> bool {
    match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => is_local_v4(*ip),
        url::Host::Ipv6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped().or_else(|| ip.to_ipv4()) {
                return is_local_v4(v4);
            }
            let segments = ip.segments();
            let embedded_v4 = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                is_local_v4(std::net::Ipv4Addr::new(a, b, c, d))
            };
            let first = segments[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
                // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address inside.
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && embedded_v4(segments[6], segments[7]))
                || (first == 0x2002 && embedded_v4(segments[1], segments[2]))
        }
    }
}

fn is_local_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || a >= 240 // reserved, 240.0.0.0/4
        || (a == 100 && (64..128).contains(&b)) // shared address space, 100.64.0.0/10
        || (a == 198 && (18..20).contains(&b)) // benchmarking, 198.18.0.0/15
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments, 192.0.0.0/24
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_values_parse() {
        let policy = GiteaPolicy::new("https://git.example/", None, None);
        let (token, base) = policy.parse_value("abc123", false).unwrap();
        assert_eq!(
            (token.expose(), base.as_str()),
            ("abc123", "https://git.example")
        );
        let (token, base) = policy
            .parse_value(r#"{"token":"t0k","base_url":"https://gitea.io/"}"#, false)
            .unwrap();
        assert_eq!((token.expose(), base.as_str()), ("t0k", "https://gitea.io"));
        let (_, base) = policy.parse_value(r#"{"token":"t0k"}"#, false).unwrap();
        assert_eq!(base, "https://git.example");
        assert!(policy.parse_value(r#"{"token":""}"#, false).is_none());
        assert!(policy.parse_value(r#"{"nope":1}"#, false).is_none());
        assert!(policy.parse_value("  ", false).is_none());
    }

    #[test]
    fn base_urls_must_be_https_to_a_public_host() {
        let policy = GiteaPolicy::default();
        assert_eq!(
            policy.check_base_url("https://git.example/").unwrap(),
            "https://git.example"
        );
        for bad in [
            "git.example",
            "ftp://x",
            "https://",
            "https://a b",
            "javascript:alert(1)",
            "http://git.example",
            "https://git.neko.li@evil.example",
            "https://127.0.0.1",
            "https://0x7f000001",
            "https://[::1]:22",
            "https://[::ffff:169.254.169.254]",
            "https://[64:ff9b::a9fe:a9fe]",
            "https://[2002:7f00:1::]",
            "https://198.18.0.1",
            "https://localhost:3000",
            "https://git.example/?q=1",
        ] {
            assert!(policy.check_base_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hosts_the_operator_lists_may_use_http_and_local_addresses() {
        let policy = GiteaPolicy::new(DEFAULT_GITEA_BASE_URL, Some("127.0.0.1, Gitea.LAN"), None);
        assert_eq!(
            policy.check_base_url("http://127.0.0.1:3000/").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(policy.check_base_url("http://gitea.lan").is_ok());
        assert!(policy.check_base_url("http://other.example").is_err());
    }

    #[test]
    fn masking_a_json_value_shows_the_end_of_its_token() {
        assert_eq!(
            GiteaPolicy::masked(r#"{"token":"abcdefgh1234","base_url":"https://x.example"}"#),
            "…1234"
        );
    }
}

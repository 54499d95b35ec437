//! Gitea credentials: a token and the base URL of the Gitea instance it belongs to.
//!
//! A stored Gitea value is either a plain token or JSON `{"token": "...", "base_url": "..."}`.
//! Resolution: user -> channel pool -> global pool -> `GITEA_TOKEN` -> `GITEA_TOKEN_FILE`
//! (default `data/gitea_token`). A plain token takes its base URL from `GITEA_BASE_URL`
//! (default `https://git.neko.li`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::config::{DEFAULT_GITEA_BASE_URL, DEFAULT_GITEA_TOKEN_FILE};
use crate::secret::ApiKey;
use crate::vault::{KeyError, KeySource, KeyVault, UserKeyInfo};

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

/// Parses a stored Gitea value: JSON `{"token", "base_url"}` or a plain token (base URL
/// `default_base_url`). `None` for an empty token or JSON without a usable token.
pub fn parse_gitea_value(value: &str, default_base_url: &str) -> Option<(ApiKey, String)> {
    let value = value.trim();
    if value.starts_with('{') {
        let parsed: GiteaValue = serde_json::from_str(value).ok()?;
        let token = parsed.token.trim();
        if token.is_empty() {
            return None;
        }
        let base = parsed
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .unwrap_or(default_base_url);
        return Some((ApiKey::new(token), base.trim_end_matches('/').to_owned()));
    }
    (!value.is_empty()).then(|| {
        (
            ApiKey::new(value),
            default_base_url.trim_end_matches('/').to_owned(),
        )
    })
}

/// Checks a Gitea base URL: http(s), no whitespace, at most 200 characters.
pub fn check_base_url(url: &str) -> Result<&str, KeyError> {
    let url = url.trim().trim_end_matches('/');
    let host_ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if host_ok
        && url.len() <= MAX_BASE_URL_LEN
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(url)
    } else {
        Err(KeyError::InvalidBaseUrl)
    }
}

impl KeyVault {
    /// The default Gitea base URL: `GITEA_BASE_URL`, else `https://git.neko.li`.
    pub fn gitea_base_url(&self) -> &str {
        self.config()
            .env
            .get("GITEA_BASE_URL")
            .unwrap_or(DEFAULT_GITEA_BASE_URL)
    }

    /// Stores the user's Gitea token, with a base URL when it is not the default instance.
    pub async fn set_gitea_credentials(
        &self,
        user_id: u64,
        token: &str,
        base_url: Option<&str>,
    ) -> Result<UserKeyInfo, KeyError> {
        let base_url = base_url
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(check_base_url)
            .transpose()?;
        let Some(base_url) = base_url else {
            return self.set_user_api_key(user_id, GITEA_SERVICE, token).await;
        };
        // Checked as any key is, before JSON escapes could hide a control character.
        let token = crate::vault::check_secret(token)?;
        let value = zeroize::Zeroizing::new(
            serde_json::to_string(&GiteaValue {
                token: token.to_owned(),
                base_url: Some(base_url.to_owned()),
            })
            .expect("two strings serialize"),
        );
        let mut info = self
            .set_user_api_key(user_id, GITEA_SERVICE, &value)
            .await?;
        info.masked = Some(crate::secret::mask(token));
        Ok(info)
    }

    /// Resolves Gitea credentials: user -> channel pool -> global pool -> environment
    /// (`GITEA_TOKEN`) -> the token file (`GITEA_TOKEN_FILE`, default `data/gitea_token`).
    pub async fn get_gitea_credentials(
        &self,
        user_id: Option<u64>,
        channel_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<GiteaCredentials> {
        let default_base = self.gitea_base_url().to_owned();
        if let Some(resolved) = self
            .get_user_api_key(user_id, GITEA_SERVICE, channel_id, fallback_to_pool)
            .await
            && let Some((token, base_url)) = parse_gitea_value(resolved.key.expose(), &default_base)
        {
            return Some(GiteaCredentials {
                token,
                base_url,
                source: GiteaSource::Key(resolved.source),
            });
        }
        let path = self
            .config()
            .env
            .get("GITEA_TOKEN_FILE")
            .unwrap_or(DEFAULT_GITEA_TOKEN_FILE)
            .to_owned();
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(Path::new(&path)).ok()?);
        let (token, base_url) = parse_gitea_value(&text, &default_base)?;
        Some(GiteaCredentials {
            token,
            base_url,
            source: GiteaSource::TokenFile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_values_parse() {
        let (token, base) = parse_gitea_value("abc123", "https://git.example/").unwrap();
        assert_eq!(
            (token.expose(), base.as_str()),
            ("abc123", "https://git.example")
        );
        let (token, base) =
            parse_gitea_value(r#"{"token":"t0k","base_url":"https://gitea.io/"}"#, "x").unwrap();
        assert_eq!((token.expose(), base.as_str()), ("t0k", "https://gitea.io"));
        let (_, base) = parse_gitea_value(r#"{"token":"t0k"}"#, "https://d").unwrap();
        assert_eq!(base, "https://d");
        assert!(parse_gitea_value(r#"{"token":""}"#, "x").is_none());
        assert!(parse_gitea_value(r#"{"nope":1}"#, "x").is_none());
        assert!(parse_gitea_value("  ", "x").is_none());
    }

    #[test]
    fn base_urls_must_be_http() {
        assert_eq!(
            check_base_url("https://git.example/").unwrap(),
            "https://git.example"
        );
        for bad in [
            "git.example",
            "ftp://x",
            "https://",
            "https://a b",
            "javascript:alert(1)",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad} accepted");
        }
    }
}

//! Gitea credentials: a token with an optional base URL, saved and resolved under the rules
//! of `GiteaPolicy`.

use std::path::Path;

use super::resolve::Resolution;
use super::{KeyError, KeyVault, UserKeyInfo};
use crate::config::{DEFAULT_GITEA_BASE_URL, DEFAULT_GITEA_TOKEN_FILE};
use crate::gitea::{GITEA_SERVICE, GiteaCredentials, GiteaPolicy, GiteaSource};

impl KeyVault {
    /// The default Gitea base URL: `GITEA_BASE_URL`, else `https://git.neko.li`.
    pub fn gitea_base_url(&self) -> &str {
        self.config()
            .env
            .get("GITEA_BASE_URL")
            .filter(|value| !value.trim().is_empty())
            .unwrap_or(DEFAULT_GITEA_BASE_URL)
    }

    /// Where Gitea tokens may be sent, from the settings.
    pub fn gitea_policy(&self) -> GiteaPolicy {
        GiteaPolicy::from_config(self.config())
    }

    /// Stores the user's Gitea token, with a base URL when it is not the default instance.
    pub async fn set_gitea_credentials(
        &self,
        user_id: u64,
        token: &str,
        base_url: Option<&str>,
    ) -> Result<UserKeyInfo, KeyError> {
        // Checked before JSON escapes could hide a control character.
        let token = crate::vault::check_secret(token)?;
        let value = self.gitea_policy().encode(token, base_url, false)?;
        let mut info = self
            .set_user_api_key(user_id, GITEA_SERVICE, &value)
            .await?;
        info.masked = Some(crate::secret::mask(token));
        Ok(info)
    }

    /// Resolves Gitea credentials: user -> channel pool -> global pool -> environment
    /// (with [`KeyVault::get_gitea_credentials_in`], the server's pool after the channel's)
    /// (`GITEA_TOKEN`) -> the token file (`GITEA_TOKEN_FILE`, default `data/gitea_token`); only
    /// the user's own for a user who turned shared keys off.
    /// Stored values are checked again as on their way in; a shared one may only name a host
    /// of `STARGAZER_GITEA_POOL_HOSTS`. A value that fails is not used (logged), and the token
    /// file is tried instead.
    pub async fn get_gitea_credentials(
        &self,
        user_id: Option<u64>,
        channel_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<GiteaCredentials> {
        self.get_gitea_credentials_in(user_id, channel_id, None, fallback_to_pool)
            .await
    }

    /// [`KeyVault::get_gitea_credentials`] for a call made in a server, whose pool is tried
    /// after the channel's.
    pub async fn get_gitea_credentials_in(
        &self,
        user_id: Option<u64>,
        channel_id: Option<u64>,
        guild_id: Option<u64>,
        fallback_to_pool: bool,
    ) -> Option<GiteaCredentials> {
        let policy = self.gitea_policy();
        let service = crate::ids::ServiceId::from_static(GITEA_SERVICE);
        let resolution = self
            .resolution(user_id, &service, channel_id, guild_id, fallback_to_pool)
            .await;
        let resolved = match resolution {
            Resolution::Found(resolved, _) => Some(resolved),
            // The token file is the operator's, a shared key too.
            Resolution::SharedKeysOff => return None,
            Resolution::Nothing => None,
        };
        if let Some(resolved) = resolved
            && let Some((token, base_url)) =
                policy.parse_value(resolved.key.expose(), resolved.source().is_shared())
        {
            return Some(GiteaCredentials {
                token,
                base_url,
                source: GiteaSource::Key(resolved.source()),
            });
        }
        let path = self
            .config()
            .env
            .get("GITEA_TOKEN_FILE")
            .unwrap_or(DEFAULT_GITEA_TOKEN_FILE)
            .to_owned();
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(Path::new(&path)).ok()?);
        let (token, base_url) = policy.parse_value(&text, false)?;
        Some(GiteaCredentials {
            token,
            base_url,
            source: GiteaSource::TokenFile,
        })
    }
}

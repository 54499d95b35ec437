//! Names that reach storage keys, parsed once where they enter ("parse, don't validate", as
//! `url::Url` and `http::HeaderName` do): [`ServiceId`], [`ToolName`], [`KeyId`] and
//! [`PoolField`]. A value of these types is valid by construction, so the code behind the
//! point where it was made never checks it again.
//!
//! The vault's methods take `impl IntoServiceId` / `impl IntoToolName`: a checked id passes
//! through as it is, and a `&str` is checked there, once.
//!
//! ```
//! use stargazer_keys::{ServiceId, ToolName};
//!
//! let brave: ServiceId = "brave".parse().unwrap();
//! assert_eq!(brave.as_str(), "brave");
//! assert!("Brave Search".parse::<ServiceId>().is_err());
//! assert!("web:search".parse::<ToolName>().is_err());
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

/// Longest service id.
pub const MAX_SERVICE_ID_LEN: usize = 32;
/// Longest tool name, in characters.
pub const MAX_TOOL_NAME_LEN: usize = 100;
/// Length of a pool key id, in hex digits.
pub const KEY_ID_LEN: usize = 12;
/// Longest pool field that can be named for removal.
const MAX_POOL_FIELD_LEN: usize = 200;
/// How much of a refused name an error shows.
const SHOWN: usize = 40;

/// A service id: 1 to 32 of `a-z`, `0-9`, `-`, `_` (`brave`, `open-router`). Whether the
/// catalogue knows the service is a separate question ([`crate::Catalogue::get`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct ServiceId(Arc<str>);

/// A tool name, which names a quota counter: 1 to 100 characters without whitespace, control
/// characters, `:` (the key separator) or any of `*?[]\` (SCAN patterns).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ToolName(Arc<str>);

/// A pool key id: 12 lowercase hex digits, a keyed fingerprint of the key (so the same key
/// added twice has one id).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(Box<str>);

/// A field of a pool's hash named for removal or unbenching: a [`KeyId`], or any other field
/// a pool can hold (planted by hand, left by `migrate`) up to 200 characters without control
/// characters, so that every entry can be removed.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolField(Box<str>);

/// A name that cannot be a service id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid service name: use 1 to 32 lowercase letters, digits, '-' or '_'")]
pub struct InvalidServiceId(String);

/// A name that cannot be a tool name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid tool name: use 1 to 100 characters without spaces, ':' or any of *?[]\\"
)]
pub struct InvalidToolName(String);

/// Text that cannot be a key id (or a pool field). It shows the text only when it looks like
/// a mistyped key id: a key pasted in its place must not come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a key id: key ids are 12 hex digits, as the pool listing shows them")]
pub struct InvalidKeyId(String);

impl InvalidServiceId {
    /// The text that was refused (cut to a few dozen characters), as it was typed.
    pub fn as_typed(&self) -> &str {
        &self.0
    }
}

impl InvalidKeyId {
    /// The text that was refused as it may be shown (a placeholder when it could be a key).
    pub fn as_typed(&self) -> &str {
        &self.0
    }
}

/// A name a user typed, as an error may echo it: as typed when it is short (a mistyped
/// service), masked otherwise (a key pasted into the name's option must not come back, nor
/// reach the log).
pub(crate) fn shown_name(text: &str) -> String {
    if text.chars().count() <= SHOWN_NAME {
        text.to_owned()
    } else {
        crate::secret::mask(text)
    }
}

/// The longest name [`shown_name`] echoes as typed: longer than every built-in service id,
/// shorter than the keys of the services (which are 32 characters and more).
const SHOWN_NAME: usize = 20;

fn shown(text: &str) -> String {
    text.chars().take(SHOWN).collect()
}

/// The common surface of the id types: the text, comparisons with `str`, `FromStr`.
macro_rules! text_type {
    ($name:ident, $error:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &*self.0 == other.as_str()
            }
        }

        impl FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<Self, $error> {
                Self::new(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $error;
            fn try_from(text: &str) -> Result<Self, $error> {
                Self::new(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(text: String) -> Result<Self, $error> {
                Self::new(&text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }
    };
}

text_type!(ServiceId, InvalidServiceId);
text_type!(ToolName, InvalidToolName);
text_type!(KeyId, InvalidKeyId);
text_type!(PoolField, InvalidKeyId);

impl ServiceId {
    /// Checks `text` and makes it a service id.
    pub fn new(text: &str) -> Result<Self, InvalidServiceId> {
        let valid = !text.is_empty()
            && text.len() <= MAX_SERVICE_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(InvalidServiceId(shown_name(text)))
        }
    }

    /// A service id written in code (the built-in catalogue, a host bot's own services).
    ///
    /// # Panics
    ///
    /// When `text` is not a valid service id: a bug in the code that wrote it.
    pub fn from_static(text: &'static str) -> Self {
        match Self::new(text) {
            Ok(id) => id,
            Err(err) => panic!("{err}"),
        }
    }

    /// The conventional environment variable of the operator's own key: `BRAVE_API_KEY`.
    pub fn env_var(&self) -> String {
        format!("{}_API_KEY", self.0.to_ascii_uppercase().replace('-', "_"))
    }
}

impl ToolName {
    /// Checks `text` and makes it a tool name.
    pub fn new(text: &str) -> Result<Self, InvalidToolName> {
        let valid = !text.is_empty()
            && text.chars().count() <= MAX_TOOL_NAME_LEN
            && !text.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(c, ':' | '*' | '?' | '[' | ']' | '\\')
            });
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(InvalidToolName(shown(text)))
        }
    }
}

impl KeyId {
    /// Checks `text` and makes it a key id.
    pub fn new(text: &str) -> Result<Self, InvalidKeyId> {
        if is_key_id(text) {
            Ok(Self(text.into()))
        } else {
            Err(InvalidKeyId::of(text))
        }
    }

    /// The key id of a fingerprint: its first six bytes in hex.
    pub(crate) fn from_fingerprint(fingerprint: &[u8]) -> Self {
        Self(hex::encode(&fingerprint[..KEY_ID_LEN / 2]).into())
    }
}

impl PoolField {
    /// Checks `text` and makes it a pool field: a key id, or any other field of at most 200
    /// characters without control characters.
    pub fn new(text: &str) -> Result<Self, InvalidKeyId> {
        let valid = is_key_id(text)
            || (!text.is_empty()
                && text.len() <= MAX_POOL_FIELD_LEN
                && !text.chars().any(char::is_control));
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(InvalidKeyId::of(text))
        }
    }

    /// The field as a key id, when it is one.
    pub fn key_id(&self) -> Option<KeyId> {
        is_key_id(&self.0).then(|| KeyId(self.0.clone()))
    }
}

impl From<KeyId> for PoolField {
    fn from(id: KeyId) -> Self {
        Self(id.0)
    }
}

impl InvalidKeyId {
    fn of(text: &str) -> Self {
        let looks_mistyped = text.len() <= 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
        Self(if looks_mistyped {
            text.to_owned()
        } else {
            crate::secret::mask(text)
        })
    }
}

fn is_key_id(text: &str) -> bool {
    text.len() == KEY_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ServiceId {}
    impl Sealed for &super::ServiceId {}
    impl Sealed for super::ToolName {}
    impl Sealed for &super::ToolName {}
    impl Sealed for &str {}
    impl Sealed for &String {}
    impl Sealed for String {}
}

/// A service id, or text to be checked as one where the vault receives it.
pub trait IntoServiceId: sealed::Sealed {
    /// The service id, checked when it is text.
    fn into_service_id(self) -> Result<ServiceId, InvalidServiceId>;
}

/// A tool name, or text to be checked as one where the vault receives it.
pub trait IntoToolName: sealed::Sealed {
    /// The tool name, checked when it is text.
    fn into_tool_name(self) -> Result<ToolName, InvalidToolName>;
}

impl IntoServiceId for ServiceId {
    fn into_service_id(self) -> Result<ServiceId, InvalidServiceId> {
        Ok(self)
    }
}

impl IntoServiceId for &ServiceId {
    fn into_service_id(self) -> Result<ServiceId, InvalidServiceId> {
        Ok(self.clone())
    }
}

impl IntoToolName for ToolName {
    fn into_tool_name(self) -> Result<ToolName, InvalidToolName> {
        Ok(self)
    }
}

impl IntoToolName for &ToolName {
    fn into_tool_name(self) -> Result<ToolName, InvalidToolName> {
        Ok(self.clone())
    }
}

macro_rules! text_into {
    ($($text:ty),*) => {$(
        impl IntoServiceId for $text {
            fn into_service_id(self) -> Result<ServiceId, InvalidServiceId> {
                ServiceId::new(&self)
            }
        }

        impl IntoToolName for $text {
            fn into_tool_name(self) -> Result<ToolName, InvalidToolName> {
                ToolName::new(&self)
            }
        }
    )*};
}

text_into!(&str, &String, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pasted_as_a_service_name_is_not_echoed() {
        let key = "sk-proj-0123456789abcdefABCDEF0123456789";
        let err = ServiceId::new(key).unwrap_err();
        assert!(!err.to_string().contains("0123456789"), "{err}");
        assert!(
            err.as_typed().ends_with("6789"),
            "masked: {}",
            err.as_typed()
        );
        let lowercase = "0123456789abcdef0123456789abcdef";
        let unknown = crate::catalogue::Catalogue::builtin()
            .lookup(lowercase)
            .unwrap_err();
        assert!(
            !unknown.to_string().contains("0123456789abcdef"),
            "{unknown}"
        );
        // A mistyped service is echoed as typed.
        assert!(
            ServiceId::new("Brave")
                .unwrap_err()
                .to_string()
                .contains("\"Brave\"")
        );
    }

    #[test]
    fn service_ids_are_restricted_to_safe_characters() {
        assert!(ServiceId::new("brave").is_ok());
        assert!(ServiceId::new("open-router_2").is_ok());
        for bad in [
            "",
            "Brave",
            "a:b",
            "a*",
            "{a}",
            "a b",
            "ключ",
            &"a".repeat(33),
        ] {
            assert!(ServiceId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tool_names_cannot_hold_key_separators_or_scan_patterns() {
        assert!(ToolName::new("web_search").is_ok());
        assert!(ToolName::new("画像").is_ok());
        for bad in [
            "",
            "a b",
            "a:b",
            "a*",
            "a?",
            "[a]",
            "a\\b",
            "a\0",
            &"a".repeat(101),
        ] {
            assert!(ToolName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_ids_must_be_twelve_lowercase_hex_digits() {
        assert!(KeyId::new("0123456789ab").is_ok());
        assert!(KeyId::new("0123456789AB").is_err());
        assert!(KeyId::new("*").is_err());
        assert_eq!(
            KeyId::from_fingerprint(&[0xab; 32]).as_str(),
            "abababababab"
        );
    }

    #[test]
    fn a_refused_key_id_never_echoes_what_could_be_a_key() {
        let err = KeyId::new("sk-live-0123456789abcdef").unwrap_err();
        assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
        let err = KeyId::new("0123456789a").unwrap_err();
        assert!(err.to_string().contains("\"0123456789a\""), "{err}");
    }

    #[test]
    fn every_printable_field_a_pool_can_hold_can_be_named() {
        assert!(PoolField::new("legacy-field").is_ok());
        assert_eq!(
            PoolField::new("0123456789ab").unwrap().key_id(),
            Some(KeyId::new("0123456789ab").unwrap())
        );
        assert_eq!(PoolField::new("legacy").unwrap().key_id(), None);
        assert!(PoolField::new("").is_err());
        assert!(PoolField::new("a\nb").is_err());
        assert!(PoolField::new(&"a".repeat(201)).is_err());
    }

    #[test]
    fn text_is_checked_once_where_it_enters_and_ids_pass_through() {
        let id = ServiceId::from_static("brave");
        assert_eq!((&id).into_service_id().unwrap(), id);
        assert_eq!("brave".into_service_id().unwrap(), id);
        assert!("Brave".into_service_id().is_err());
        assert_eq!(id.env_var(), "BRAVE_API_KEY");
        assert_eq!(
            ServiceId::from_static("open-router").env_var(),
            "OPEN_ROUTER_API_KEY"
        );
    }
}

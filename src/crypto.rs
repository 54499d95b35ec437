//! Envelope encryption: master keys (KEKs) wrap per-owner data keys (DEKs); data keys seal
//! secrets into `v4:` values.
//!
//! A sealed value is `v4:` followed by base64url (no padding) of `nonce(12) || ciphertext || tag`,
//! AES-256-GCM under the owner's data key. Its associated data binds the key prefix, the owner,
//! the service and, for pools, the key id, each length-prefixed, so a value copied to another
//! user's hash, another service's field or another pool does not open there.
//!
//! Also read: `v2:` values (the original bot's format: padded urlsafe base64 of
//! `nonce || ciphertext || tag`, no associated data, under the user's data key) and legacy
//! plaintext values (no prefix).

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ids::KeyId;

/// Length in bytes of a master key and of a data key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

const V4_PREFIX: &str = "v4:";
const V2_PREFIX: &str = "v2:";
const V4_AAD_LABEL: &[u8] = b"stargazer-keys/v4";
const DEK_AAD_LABEL: &[u8] = b"stargazer-keys/dek/v1";
const KEK_ID_LABEL: &[u8] = b"stargazer-keys/kek-id/v1";
const KEY_ID_LABEL: &[u8] = b"stargazer-keys/pool-key-id/v1";

/// Base64 that accepts the padded and the unpadded form alike (key files, `v2:` values).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a master key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not base64.
    #[error("is not valid base64")]
    NotBase64,
    /// The text decodes, but not to 32 bytes.
    #[error("must decode to 32 bytes, but decodes to {0}")]
    WrongLength(usize),
}

/// Why a wrapped data key could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// The wrapped blob does not have the length of a wrapped 32-byte key.
    #[error("the wrapped data key is {0} bytes long, not 60")]
    WrongLength(usize),
    /// Authentication failed: another master key, another owner, or altered bytes.
    #[error("the wrapped data key does not open under this master key for this owner")]
    Authentication,
}

/// Why a sealed value could not be opened. No variant carries any part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The part after the version prefix is not base64.
    #[error("the sealed value is not valid base64")]
    BadBase64,
    /// Too short to hold a nonce and a tag.
    #[error("the sealed value is too short to hold a nonce and an authentication tag")]
    Truncated,
    /// Authentication failed.
    #[error(
        "the sealed value does not open: it was altered, moved from another owner, service or pool, or sealed under another data key"
    )]
    Authentication,
    /// A `vN:` prefix this build does not read.
    #[error("the sealed value has format {0}, which this build cannot read")]
    UnsupportedVersion(String),
    /// The opened bytes are not UTF-8 text.
    #[error("the opened secret is not UTF-8 text")]
    NotUtf8,
    /// The owner has no data key: it was erased (crypto-shredded) or never made.
    #[error("the owner has no data key (erased, or never created), so the value cannot be opened")]
    NoDataKey,
}

/// The short, stable identifier of a master key, stored with every row it wraps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId(String);

impl KekId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 32-byte master key (key-encryption key). `Debug` shows its id only.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KekId,
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_bytes(bytes)
    }

    /// Reads a master key from base64 (standard or urlsafe alphabet, padded or not; surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            LENIENT
                .decode(text)
                .or_else(|_| LENIENT_URL_SAFE.decode(text))
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(decoded.len()))?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let mut hash = Sha256::new();
        hash.update(KEK_ID_LABEL);
        hash.update(bytes.as_ref());
        let id = KekId(hex::encode(&hash.finalize()[..8]));
        let cipher = Aes256Gcm::new(bytes.as_ref().into());
        Self { cipher, bytes, id }
    }

    /// The key in standard base64, for `gen-master-key` to print.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.as_ref()))
    }

    /// This key's id.
    pub fn id(&self) -> &KekId {
        &self.id
    }

    /// The key the original bot may have sealed its `v2:` pool values under: SHA-256 of this
    /// key's bytes followed by `salt` (its `POOL_KEY_SALT`, `stargazer:api_key_pool`).
    pub fn derive_original_pool_key(&self, salt: &[u8]) -> DataKey {
        let mut hash = Sha256::new();
        hash.update(self.bytes.as_ref());
        hash.update(salt);
        DataKey::from_bytes(Zeroizing::new(hash.finalize().into()))
    }

    /// These 32 bytes used as a data key (for `STARGAZER_ORIGINAL_POOL_KEY`, a key given in
    /// the master key's format).
    pub fn as_data_key(&self) -> DataKey {
        DataKey::from_bytes(self.bytes.clone())
    }

    /// Wraps `data_key` for `owner`: `nonce || ciphertext || tag`, the owner bound as associated
    /// data.
    pub fn wrap(&self, owner: &str, data_key: &DataKey) -> Vec<u8> {
        let aad = length_prefixed(&[DEK_AAD_LABEL, owner.as_bytes()]);
        seal_raw(&self.cipher, &aad, data_key.bytes.as_ref())
    }

    /// Unwraps a data key wrapped by [`MasterKey::wrap`] for the same owner.
    pub fn unwrap(&self, owner: &str, wrapped: &[u8]) -> Result<DataKey, UnwrapError> {
        let aad = length_prefixed(&[DEK_AAD_LABEL, owner.as_bytes()]);
        self.unwrap_with_aad(&aad, wrapped)
    }

    /// Unwraps a data key written by the original Python bot (no associated data).
    pub fn unwrap_legacy(&self, wrapped: &[u8]) -> Result<DataKey, UnwrapError> {
        self.unwrap_with_aad(&[], wrapped)
    }

    fn unwrap_with_aad(&self, aad: &[u8], wrapped: &[u8]) -> Result<DataKey, UnwrapError> {
        if wrapped.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(UnwrapError::WrongLength(wrapped.len()));
        }
        let plain = Zeroizing::new(
            open_raw(&self.cipher, aad, wrapped).map_err(|_| UnwrapError::Authentication)?,
        );
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&plain);
        Ok(DataKey::from_bytes(bytes))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("kek_id", &self.id.0)
            .finish()
    }
}

/// The current master key and the previous ones still readable during a rotation.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring that writes with `current` and also reads with `previous`.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let previous = previous
            .into_iter()
            .filter(|key| key.id != current.id)
            .collect();
        Self { current, previous }
    }

    /// The key new rows are wrapped with.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The key with this id, current or previous.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.all().find(|key| key.id.0 == id)
    }

    /// Every key, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

/// Where a sealed value is allowed to open: everything its associated data binds.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// The storage key prefix (`stargazer`).
    pub prefix: &'a str,
    /// The owner: a user id, `pool:global` or `pool:channel:{id}`.
    pub owner: &'a str,
    /// The service id.
    pub service: &'a str,
    /// The key id, for pool entries.
    pub key_id: Option<&'a str>,
}

impl SealContext<'_> {
    fn associated_data(&self) -> Vec<u8> {
        length_prefixed(&[
            V4_AAD_LABEL,
            self.prefix.as_bytes(),
            self.owner.as_bytes(),
            self.service.as_bytes(),
            self.key_id.unwrap_or_default().as_bytes(),
        ])
    }
}

/// The format a stored value was in when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedFormat {
    /// `v4:`, the format this crate writes.
    V4,
    /// `v2:`, the original bot's format.
    V2,
    /// A legacy value stored in clear.
    Plaintext,
}

/// A stored value, parsed but not opened.
pub enum StoredValue<'a> {
    /// `v4:` with its decoded bytes.
    V4(Vec<u8>),
    /// `v2:` with its decoded bytes.
    V2(Vec<u8>),
    /// A legacy plaintext value.
    Plaintext(&'a str),
}

impl fmt::Debug for StoredValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredValue::V4(bytes) => write!(f, "V4({} bytes)", bytes.len()),
            StoredValue::V2(bytes) => write!(f, "V2({} bytes)", bytes.len()),
            StoredValue::Plaintext(text) => {
                write!(f, "Plaintext({})", crate::secret::mask(text))
            }
        }
    }
}

impl<'a> StoredValue<'a> {
    /// Parses a value as read from storage.
    pub fn parse(value: &'a str) -> Result<Self, OpenError> {
        if let Some(body) = value.strip_prefix(V4_PREFIX) {
            let bytes = URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| OpenError::BadBase64)?;
            return check_len(bytes).map(StoredValue::V4);
        }
        if let Some(body) = value.strip_prefix(V2_PREFIX) {
            let bytes = LENIENT_URL_SAFE
                .decode(body)
                .or_else(|_| URL_SAFE.decode(body))
                .map_err(|_| OpenError::BadBase64)?;
            return check_len(bytes).map(StoredValue::V2);
        }
        if let Some(version) = version_prefix(value) {
            return Err(OpenError::UnsupportedVersion(version.to_owned()));
        }
        Ok(StoredValue::Plaintext(value))
    }

    /// The format of this value.
    pub fn format(&self) -> SealedFormat {
        match self {
            StoredValue::V4(_) => SealedFormat::V4,
            StoredValue::V2(_) => SealedFormat::V2,
            StoredValue::Plaintext(_) => SealedFormat::Plaintext,
        }
    }

    /// Whether opening needs the owner's data key.
    pub fn needs_data_key(&self) -> bool {
        !matches!(self, StoredValue::Plaintext(_))
    }

    /// Opens the value. `data_key` may be `None` only for plaintext values.
    pub fn open(
        &self,
        data_key: Option<&DataKey>,
        context: &SealContext<'_>,
    ) -> Result<SecretString, OpenError> {
        let plain = match self {
            StoredValue::Plaintext(text) => return Ok(SecretString::from(*text)),
            StoredValue::V4(bytes) => {
                let key = data_key.ok_or(OpenError::NoDataKey)?;
                open_raw(&key.cipher(), &context.associated_data(), bytes)?
            }
            StoredValue::V2(bytes) => {
                let key = data_key.ok_or(OpenError::NoDataKey)?;
                open_raw(&key.cipher(), &[], bytes)?
            }
        };
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|err| {
                let mut bytes = err.into_bytes();
                zeroize::Zeroize::zeroize(&mut bytes);
                OpenError::NotUtf8
            })
    }
}

fn check_len(bytes: Vec<u8>) -> Result<Vec<u8>, OpenError> {
    if bytes.len() < NONCE_LEN + TAG_LEN {
        Err(OpenError::Truncated)
    } else {
        Ok(bytes)
    }
}

/// `vN:` at the start of a value, N all digits.
fn version_prefix(value: &str) -> Option<&str> {
    let (head, _) = value.split_once(':')?;
    let digits = head.strip_prefix('v')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(head)
}

/// A 32-byte per-owner data key. Zeroized on drop; `Debug` shows nothing of it.
///
/// Only the 32 raw bytes are held (so a cache of many keys stays small): each seal or open
/// expands the AES key schedule on the stack, and that copy is zeroized when it is dropped.
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl DataKey {
    /// A new random data key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self { bytes }
    }

    /// The AES-GCM cipher of this key (its expanded key schedule, zeroized on drop).
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.bytes.as_ref().into())
    }

    /// A copy of `key` (data keys are not `Clone`, so that copies are deliberate).
    pub fn clone_of(key: &DataKey) -> Self {
        Self::from_bytes(key.bytes.clone())
    }

    /// Whether `other` is the same key (compared in constant time).
    pub fn same_key(&self, other: &DataKey) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.bytes.as_slice(), other.bytes.as_slice()).into()
    }

    /// Seals `secret` as a `v4:` value bound to `context`.
    pub fn seal(&self, context: &SealContext<'_>, secret: &[u8]) -> String {
        let raw = seal_raw(&self.cipher(), &context.associated_data(), secret);
        format!("{V4_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The pool key id of `secret`: the first 12 hex digits of HMAC-SHA256 over it, keyed by a
    /// key derived from this data key. Stable across master-key rotations; reveals nothing.
    pub fn key_id(&self, secret: &[u8]) -> KeyId {
        let mut derive =
            <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.as_ref()).expect("HMAC takes any key");
        derive.update(KEY_ID_LABEL);
        let fingerprint_key: Zeroizing<[u8; 32]> =
            Zeroizing::new(derive.finalize().into_bytes().into());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(fingerprint_key.as_ref())
            .expect("HMAC takes any key");
        mac.update(secret);
        KeyId::from_fingerprint(&mac.finalize().into_bytes())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn seal_raw(cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .expect("AES-GCM encryption of a short message cannot fail");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open_raw(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Truncated);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| OpenError::Authentication)
}

/// Each part as a 4-byte big-endian length followed by its bytes, so no two different lists of
/// parts give the same bytes.
fn length_prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        let len = u32::try_from(part.len()).expect("associated-data parts are short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ctx<'a>(owner: &'a str, service: &'a str) -> SealContext<'a> {
        SealContext {
            prefix: "stargazer",
            owner,
            service,
            key_id: None,
        }
    }

    #[test]
    fn v4_round_trips_and_is_bound_to_its_context() {
        let dek = DataKey::generate();
        let sealed = dek.seal(&ctx("1", "brave"), b"BSA-secret-value");
        let value = StoredValue::parse(&sealed).unwrap();
        let opened = value.open(Some(&dek), &ctx("1", "brave")).unwrap();
        assert_eq!(opened.expose_secret(), "BSA-secret-value");
        assert_eq!(
            value.open(Some(&dek), &ctx("2", "brave")).unwrap_err(),
            OpenError::Authentication
        );
        assert_eq!(
            value.open(Some(&dek), &ctx("1", "openai")).unwrap_err(),
            OpenError::Authentication
        );
    }

    #[test]
    fn v2_values_of_the_original_open_without_associated_data() {
        let dek = DataKey::generate();
        let raw = seal_raw(&dek.cipher(), &[], b"legacy-v2-secret");
        let value = format!("v2:{}", URL_SAFE.encode(raw));
        let parsed = StoredValue::parse(&value).unwrap();
        assert_eq!(parsed.format(), SealedFormat::V2);
        let opened = parsed.open(Some(&dek), &ctx("1", "brave")).unwrap();
        assert_eq!(opened.expose_secret(), "legacy-v2-secret");
    }

    #[test]
    fn unknown_version_prefixes_are_refused_and_other_text_is_plaintext() {
        assert_eq!(
            StoredValue::parse("v9:abc").unwrap_err(),
            OpenError::UnsupportedVersion("v9".into())
        );
        assert!(matches!(
            StoredValue::parse("sk-abc:def").unwrap(),
            StoredValue::Plaintext("sk-abc:def")
        ));
    }

    #[test]
    fn length_prefixing_separates_parts() {
        assert_ne!(
            length_prefixed(&[b"ab", b"c"]),
            length_prefixed(&[b"a", b"bc"])
        );
    }

    #[test]
    fn key_ids_are_stable_per_data_key_and_differ_across_keys() {
        let a = DataKey::generate();
        let b = DataKey::generate();
        assert_eq!(a.key_id(b"secret"), a.key_id(b"secret"));
        assert_eq!(a.key_id(b"secret").len(), 12);
        assert_ne!(a.key_id(b"secret"), b.key_id(b"secret"));
    }
}

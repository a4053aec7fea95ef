//! The vault: original values encrypted with AES-256-GCM under a key of their data
//! subject, so an authorised caller can re-identify a token and erasing the subject's key
//! makes every value encrypted under it unreadable (crypto-shredding) — in the vault and
//! in every backup of it — while the event log stays append-only and its hash chain
//! verifies.
//!
//! - Each (tenant, subject) has a random 256-bit data key. The store keeps it wrapped
//!   (AES-256-GCM) under a key-encryption key derived from the privacy secret, so the
//!   vault's tables alone reveal nothing.
//! - A value is sealed with a random 96-bit nonce; the associated data binds the
//!   ciphertext to its tenant, subject, entity type and token, so a value copied elsewhere
//!   does not open. Sealed values travel in the `InteractionScrubbed` event itself
//!   ([`SealedPii`]): the log holds them encrypted, "before hashing" (DESIGN.md), and the
//!   only thing erasure destroys is the key.
//! - The keys live in a [`KeyStore`], outside the log (IO lives outside this crate: the CLI
//!   provides one on the event store's database; [`MemoryKeys`] serves tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use insights_schemas::SealedPii;

/// A data subject's key.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(<secret>)")
    }
}

impl SubjectKey {
    /// A new random key.
    pub fn generate() -> Result<Self, VaultError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| VaultError::Store(format!("no randomness: {e}")))?;
        Ok(Self(k))
    }
}

/// A vault failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The subject's key was erased: the value is gone for good.
    #[error("the data subject of token {0} was erased; the value cannot be recovered")]
    Erased(String),
    /// The ciphertext, its binding or the wrapped key does not authenticate.
    #[error("{0} does not authenticate (tampered, or sealed under another key)")]
    Tampered(String),
    /// The store failed.
    #[error("vault store: {0}")]
    Store(String),
}

/// A subject's key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKey {
    /// Wrapped under the key-encryption key: nonce and ciphertext.
    Wrapped([u8; 12], Vec<u8>),
    /// Erased (the row remains, so the subject is not silently given a new key).
    Erased,
}

/// Where the wrapped subject keys live.
pub trait KeyStore: Send + Sync {
    /// The subject's stored key, if any.
    fn key(&self, tenant: &str, subject: &str) -> Result<Option<StoredKey>, VaultError>;
    /// Stores `key` for the subject unless one is already stored (another replica may
    /// have won the race); returns the stored one.
    fn insert_key(
        &self,
        tenant: &str,
        subject: &str,
        key: StoredKey,
    ) -> Result<StoredKey, VaultError>;
    /// Replaces the subject's key by [`StoredKey::Erased`]; whether a key was there.
    fn erase_key(&self, tenant: &str, subject: &str) -> Result<bool, VaultError>;
    /// The stored keys of many subjects, (tenant, subject) in, in order. A store that can
    /// answer them in one round trip should; the default asks one by one.
    fn keys(&self, subjects: &[(String, String)]) -> Result<Vec<Option<StoredKey>>, VaultError> {
        subjects.iter().map(|(t, s)| self.key(t, s)).collect()
    }
    /// [`KeyStore::insert_key`] for many subjects: the stored keys, in order.
    fn insert_keys(
        &self,
        keys: Vec<((String, String), StoredKey)>,
    ) -> Result<Vec<StoredKey>, VaultError> {
        keys.into_iter()
            .map(|((t, s), k)| self.insert_key(&t, &s, k))
            .collect()
    }
}

/// An in-memory [`KeyStore`].
#[derive(Debug, Default)]
pub struct MemoryKeys {
    keys: Mutex<BTreeMap<(String, String), StoredKey>>,
}

fn poisoned<T>(_: T) -> VaultError {
    VaultError::Store("a vault lock was poisoned".into())
}

impl KeyStore for MemoryKeys {
    fn key(&self, tenant: &str, subject: &str) -> Result<Option<StoredKey>, VaultError> {
        let keys = self.keys.lock().map_err(poisoned)?;
        Ok(keys.get(&(tenant.into(), subject.into())).cloned())
    }
    fn insert_key(
        &self,
        tenant: &str,
        subject: &str,
        key: StoredKey,
    ) -> Result<StoredKey, VaultError> {
        let mut keys = self.keys.lock().map_err(poisoned)?;
        Ok(keys
            .entry((tenant.into(), subject.into()))
            .or_insert(key)
            .clone())
    }
    fn erase_key(&self, tenant: &str, subject: &str) -> Result<bool, VaultError> {
        let mut keys = self.keys.lock().map_err(poisoned)?;
        Ok(
            match keys.insert((tenant.into(), subject.into()), StoredKey::Erased) {
                Some(StoredKey::Wrapped(..)) => true,
                Some(StoredKey::Erased) | None => false,
            },
        )
    }
}

fn aad(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

fn random_nonce() -> Result<[u8; 12], VaultError> {
    let mut n = [0u8; 12];
    getrandom::fill(&mut n).map_err(|e| VaultError::Store(format!("no randomness: {e}")))?;
    Ok(n)
}

/// How long the vault trusts a subject key it has read (or an erasure it has seen)
/// without asking the store again. An erasure made elsewhere (`insights vault erase`,
/// another replica) reaches this vault within this time; one made through this vault
/// reaches it at once.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// A subject key as the vault read it (`None`: erased), and when.
type Cached = (Option<SubjectKey>, Instant);

/// Seals and opens values; holds the key-encryption key, and a short-lived cache of the
/// subject keys in use (see [`KEY_CACHE_TTL`]).
pub struct Vault {
    kek: Aes256Gcm,
    store: std::sync::Arc<dyn KeyStore>,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<keys>)")
    }
}

impl Vault {
    /// A vault over `store` whose subject keys are wrapped under `kek`.
    pub fn new(kek: [u8; 32], store: std::sync::Arc<dyn KeyStore>) -> Self {
        Self {
            kek: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek)),
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, tenant: &str, subject: &str) -> Option<Option<SubjectKey>> {
        let cache = self.cache.lock().ok()?;
        let (key, at) = cache.get(&(tenant.to_owned(), subject.to_owned()))?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| key.clone())
    }

    fn remember(&self, tenant: &str, subject: &str, key: Option<SubjectKey>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 100_000 {
                cache.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            }
            cache.insert(
                (tenant.to_owned(), subject.to_owned()),
                (key, Instant::now()),
            );
        }
    }

    /// A new key for the subject, wrapped for the store.
    fn new_wrapped(&self, tenant: &str, subject: &str) -> Result<StoredKey, VaultError> {
        let key = SubjectKey::generate()?;
        let nonce = random_nonce()?;
        let wrapped = self
            .kek
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &key.0,
                    aad: &aad(&["subject-key", tenant, subject]),
                },
            )
            .map_err(|_| VaultError::Store("AES-GCM refused to wrap a key".into()))?;
        Ok(StoredKey::Wrapped(nonce, wrapped))
    }

    /// Reads (or creates) the keys of many subjects in two round trips to the store at
    /// most, so that [`Vault::subject_key`] answers them from the cache: what a batch of
    /// messages does before sealing their values.
    pub fn preload(&self, subjects: &[(&str, &str)]) -> Result<(), VaultError> {
        let mut wanted: Vec<(String, String)> = subjects
            .iter()
            .filter(|(t, s)| self.cached(t, s).is_none())
            .map(|(t, s)| ((*t).to_owned(), (*s).to_owned()))
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let found = self.store.keys(&wanted)?;
        let mut missing = Vec::new();
        for ((tenant, subject), stored) in wanted.into_iter().zip(found) {
            match stored {
                Some(stored) => {
                    let key = self.unwrap_key(&tenant, &subject, &stored)?;
                    self.remember(&tenant, &subject, key);
                }
                None => {
                    let wrapped = self.new_wrapped(&tenant, &subject)?;
                    missing.push(((tenant, subject), wrapped));
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<(String, String)> = missing.iter().map(|(n, _)| n.clone()).collect();
        let stored = self.store.insert_keys(missing)?;
        for ((tenant, subject), stored) in names.into_iter().zip(stored) {
            let key = self.unwrap_key(&tenant, &subject, &stored)?;
            self.remember(&tenant, &subject, key);
        }
        Ok(())
    }

    fn unwrap_key(
        &self,
        tenant: &str,
        subject: &str,
        stored: &StoredKey,
    ) -> Result<Option<SubjectKey>, VaultError> {
        let StoredKey::Wrapped(nonce, wrapped) = stored else {
            return Ok(None);
        };
        let plain = self
            .kek
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: wrapped,
                    aad: &aad(&["subject-key", tenant, subject]),
                },
            )
            .map_err(|_| VaultError::Tampered(format!("key of {tenant}/{subject}")))?;
        let bytes: [u8; 32] = plain
            .try_into()
            .map_err(|_| VaultError::Tampered(format!("key of {tenant}/{subject}")))?;
        Ok(Some(SubjectKey(bytes)))
    }

    /// The subject's key, created on first use; `None` once the subject was erased
    /// (values of an erased subject cannot be sealed again: the caller redacts them).
    pub fn subject_key(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Option<SubjectKey>, VaultError> {
        if let Some(key) = self.cached(tenant, subject) {
            return Ok(key);
        }
        let key = match self.store.key(tenant, subject)? {
            Some(stored) => self.unwrap_key(tenant, subject, &stored)?,
            None => {
                let wrapped = self.new_wrapped(tenant, subject)?;
                let stored = self.store.insert_key(tenant, subject, wrapped)?;
                self.unwrap_key(tenant, subject, &stored)?
            }
        };
        self.remember(tenant, subject, key.clone());
        Ok(key)
    }

    /// The original value of a sealed one, for an authorised caller.
    pub fn reveal(&self, tenant: &str, sealed: &SealedPii) -> Result<String, VaultError> {
        let stored = self.store.key(tenant, &sealed.subject)?;
        let key = match stored {
            Some(stored) => self.unwrap_key(tenant, &sealed.subject, &stored)?,
            None => None,
        }
        .ok_or_else(|| VaultError::Erased(sealed.token.clone()))?;
        open(&key, tenant, sealed)
    }

    /// Destroys the subject's key; whether there was one to destroy.
    pub fn erase(&self, tenant: &str, subject: &str) -> Result<bool, VaultError> {
        let erased = self.store.erase_key(tenant, subject)?;
        self.remember(tenant, subject, None);
        Ok(erased)
    }
}

/// Encrypts `value` for the subject under `token`.
pub fn seal(
    key: &SubjectKey,
    tenant: &str,
    subject: &str,
    entity_type: &str,
    token: &str,
    value: &str,
) -> Result<SealedPii, VaultError> {
    let nonce = random_nonce()?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: value.as_bytes(),
                aad: &aad(&[tenant, subject, entity_type, token]),
            },
        )
        .map_err(|_| VaultError::Store("AES-GCM refused to seal a value".into()))?;
    Ok(SealedPii {
        token: token.into(),
        entity_type: entity_type.into(),
        subject: subject.into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

/// Decrypts a sealed value of `tenant` with its subject's key.
pub fn open(key: &SubjectKey, tenant: &str, sealed: &SealedPii) -> Result<String, VaultError> {
    let tampered = || VaultError::Tampered(sealed.token.clone());
    let nonce: [u8; 12] = hex::decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(tampered)?;
    let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| tampered())?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0));
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad(&[tenant, &sealed.subject, &sealed.entity_type, &sealed.token]),
            },
        )
        .map_err(|_| tampered())?;
    String::from_utf8(plain).map_err(|_| tampered())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn vault(store: &Arc<MemoryKeys>) -> Vault {
        Vault::new([3; 32], store.clone())
    }

    #[test]
    fn a_sealed_value_round_trips_and_erasure_makes_it_unreadable() {
        let store = Arc::new(MemoryKeys::default());
        let v = vault(&store);
        let key = v
            .subject_key("acme", "cust_1")
            .expect("key")
            .expect("active");
        assert_eq!(
            v.subject_key("acme", "cust_1").expect("key"),
            Some(key.clone())
        );
        let sealed = seal(
            &key,
            "acme",
            "cust_1",
            "PERSON",
            "<PERSON_v1>",
            "Maria Schmidt",
        )
        .expect("seals");
        assert!(!sealed.ciphertext.contains(&hex::encode("Maria")));
        assert_eq!(v.reveal("acme", &sealed).expect("reveals"), "Maria Schmidt");
        // Bound to its tenant: the same bytes under another tenant do not open.
        assert!(matches!(
            v.reveal("globex", &sealed),
            Err(VaultError::Erased(_) | VaultError::Tampered(_))
        ));

        assert!(v.erase("acme", "cust_1").expect("erases"));
        assert!(
            !v.erase("acme", "cust_1").expect("erases"),
            "already erased"
        );
        assert_eq!(
            v.reveal("acme", &sealed),
            Err(VaultError::Erased("<PERSON_v1>".into()))
        );
        // The erased subject gets no new key: later values are redacted, not sealed.
        assert_eq!(v.subject_key("acme", "cust_1").expect("no error"), None);
        // Nothing but that key opens the value; with it destroyed, the value is gone.
        let other = SubjectKey::generate().expect("key");
        assert!(matches!(
            open(&other, "acme", &sealed),
            Err(VaultError::Tampered(_))
        ));
    }

    #[test]
    fn tampering_and_moved_values_do_not_authenticate() {
        let store = Arc::new(MemoryKeys::default());
        let v = vault(&store);
        let key = v
            .subject_key("acme", "cust_1")
            .expect("key")
            .expect("active");
        let sealed = seal(
            &key,
            "acme",
            "cust_1",
            "EMAIL_ADDRESS",
            "<E_1>",
            "a@b.example",
        )
        .expect("seals");
        let mut flipped = sealed.clone();
        flipped.ciphertext.replace_range(0..2, "00");
        if flipped.ciphertext == sealed.ciphertext {
            flipped.ciphertext.replace_range(0..2, "01");
        }
        assert!(matches!(
            open(&key, "acme", &flipped),
            Err(VaultError::Tampered(_))
        ));
        let mut moved = sealed.clone();
        moved.token = "<E_2>".into();
        assert!(matches!(
            open(&key, "acme", &moved),
            Err(VaultError::Tampered(_))
        ));
        // A vault with another key-encryption key cannot unwrap the subject keys.
        let stranger = Vault::new([4; 32], store.clone());
        assert!(matches!(
            stranger.reveal("acme", &sealed),
            Err(VaultError::Tampered(_))
        ));
    }

    #[test]
    fn racing_replicas_agree_on_one_subject_key() {
        let store = Arc::new(MemoryKeys::default());
        let a = vault(&store);
        let b = vault(&store);
        let ka = a.subject_key("acme", "cust_9").expect("key");
        let kb = b.subject_key("acme", "cust_9").expect("key");
        assert_eq!(ka, kb);
        assert!(format!("{ka:?}").contains("<secret>"));
    }
}

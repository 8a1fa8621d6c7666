//! Credential encryption for Runbook Studio.
//!
//! Every value is sealed with AES-256-GCM under the master key, with a fresh random
//! 96-bit nonce for each encryption and the credential's id as associated data, so a
//! ciphertext copied to another row does not open. Plaintext is handed out only in
//! zeroizing buffers. The master key comes from `RUNBOOK_MASTER_KEY` (base64), a key
//! file, or (on desktops) the OS keychain.

mod keystore;

pub use keystore::{KeyLocation, KeySetting, KeySource, LoadedKey, KEY_FILE};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;
use std::path::Path;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

/// Bytes of a master key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;

/// Why sealing, opening or loading a key failed. Messages never hold key or plaintext bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The ciphertext does not open under this key and id: tampered with, moved to
    /// another credential, or sealed under another master key.
    #[error("the credential cannot be decrypted: it was changed, moved, or sealed under another master key")]
    Undecryptable,
    #[error("the master key is invalid: {0}")]
    InvalidKey(String),
    #[error("the master key file {path} cannot be used: {reason}")]
    KeyFile { path: String, reason: String },
}

/// A 256-bit master key, wiped from memory when dropped.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        MasterKey(key)
    }

    /// A key from its base64 text (standard alphabet, surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, VaultError> {
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| VaultError::InvalidKey("it is not valid base64".to_string()))?;
        if bytes.len() != KEY_LEN {
            let len = bytes.len();
            bytes.zeroize();
            return Err(VaultError::InvalidKey(format!(
                "it holds {len} bytes; a master key is {KEY_LEN} bytes (44 base64 characters)"
            )));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(MasterKey(key))
    }

    /// The key as base64 text, for storing it (keychain, key file).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
    }

    /// Reads the key file at `path`, or creates it with a new key (permissions 0600)
    /// when there is none. A key file others can read is refused.
    pub fn load_or_create_file(path: &Path) -> Result<MasterKey, VaultError> {
        let failure = |reason: String| VaultError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path)
                        .map_err(|e| failure(e.to_string()))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(failure(format!(
                            "its permissions are {:o}; only its owner may read it (chmod 600)",
                            mode & 0o777
                        )));
                    }
                }
                MasterKey::from_base64(&text)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_private(path, key.to_base64().as_bytes())
                    .map_err(|e| failure(e.to_string()))?;
                tracing::warn!(
                    path = %path.display(),
                    "no keychain: the master key is kept in a file only its owner can read"
                );
                Ok(key)
            }
            Err(error) => Err(failure(error.to_string())),
        }
    }
}

/// Writes a new file readable by its owner only; an existing file is not replaced.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A sealed value as stored: the nonce and the ciphertext (with its tag).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// Seals and opens credential values under one master key.
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    pub fn new(key: &MasterKey) -> Vault {
        Vault {
            cipher: Aes256Gcm::new_from_slice(key.0.as_ref()).expect("a 32-byte key"),
        }
    }

    /// Encrypts `plaintext` for the credential `id` with a fresh random nonce.
    pub fn seal(&self, id: Uuid, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory value cannot fail");
        Sealed { nonce, ciphertext }
    }

    /// Decrypts the value sealed for the credential `id`.
    pub fn open(&self, id: Uuid, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        self.cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_for_its_own_id_only() {
        let vault = Vault::new(&MasterKey::generate());
        let id = Uuid::new_v4();
        let sealed = vault.seal(id, b"tok-123");
        assert_eq!(vault.open(id, &sealed).unwrap().as_slice(), b"tok-123");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(
            vault.open(Uuid::new_v4(), &sealed),
            Err(VaultError::Undecryptable),
            "a ciphertext moved to another credential does not open"
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let vault = Vault::new(&MasterKey::generate());
        let id = Uuid::new_v4();
        let a = vault.seal(id, b"same");
        let b = vault.seal(id, b"same");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_tampered_ciphertext_or_a_wrong_key_fails_clearly() {
        let key = MasterKey::generate();
        let vault = Vault::new(&key);
        let id = Uuid::new_v4();
        let sealed = vault.seal(id, b"secret");
        for i in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[i] ^= 1;
            assert_eq!(vault.open(id, &tampered), Err(VaultError::Undecryptable));
        }
        let mut moved_nonce = sealed.clone();
        moved_nonce.nonce[0] ^= 1;
        assert_eq!(vault.open(id, &moved_nonce), Err(VaultError::Undecryptable));
        let other = Vault::new(&MasterKey::generate());
        let error = other.open(id, &sealed).unwrap_err();
        assert!(error.to_string().contains("another master key"));
        let same = Vault::new(&MasterKey::from_base64(&key.to_base64()).unwrap());
        assert_eq!(same.open(id, &sealed).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn base64_keys_must_be_32_bytes() {
        assert!(MasterKey::from_base64(&MasterKey::generate().to_base64()).is_ok());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert!(matches!(
            MasterKey::from_base64(&short),
            Err(VaultError::InvalidKey(message)) if message.contains("16 bytes")
        ));
        assert!(MasterKey::from_base64("not base64 !").is_err());
        assert_eq!(format!("{:?}", MasterKey::generate()), "MasterKey(***)");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(*first.to_base64(), *again.to_base64());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = MasterKey::load_or_create_file(&path).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}

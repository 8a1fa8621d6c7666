//! Where the master key lives: the OS keychain (desktops), a key file only its owner
//! can read (headless machines without a keychain, or `--master-key-file`), or
//! `RUNBOOK_MASTER_KEY`. A rotation stages the new key beside the current one first,
//! so a crash between re-encrypting and storing the key loses nothing.

use crate::{MasterKey, VaultError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The keychain service name entries are filed under.
const KEYCHAIN_SERVICE: &str = "dev.runbook-studio";
/// The key file's name in the data directory.
pub const KEY_FILE: &str = "master.key";

/// Where the master key is to come from.
#[derive(Clone)]
pub enum KeySetting {
    /// Base64 text from the environment (`RUNBOOK_MASTER_KEY`).
    Environment(Zeroizing<String>),
    /// A key file the operator named (`--master-key-file`); created when missing.
    File(PathBuf),
    /// The OS keychain when `keychain` is true and one answers, else a key file in
    /// the data directory (with a warning).
    Platform { data_dir: PathBuf, keychain: bool },
}

impl std::fmt::Debug for KeySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySetting::Environment(_) => f.write_str("Environment(***)"),
            KeySetting::File(path) => write!(f, "File({})", path.display()),
            KeySetting::Platform { data_dir, keychain } => {
                write!(f, "Platform({}, keychain: {keychain})", data_dir.display())
            }
        }
    }
}

/// Where the key in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Environment,
    MasterKeyFile,
    Keychain,
    KeyFile,
}

/// Where a key is kept, as far as loading, staging and promoting go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    Environment,
    File(PathBuf),
    Keychain { account: String },
}

/// The master key in force, where it came from and what the user should know about it.
#[derive(Debug)]
pub struct LoadedKey {
    pub key: MasterKey,
    pub source: KeySource,
    pub location: KeyLocation,
    /// Set when the key is less protected than it should be (a key file on a desktop).
    pub warning: Option<String>,
    /// True when this load made the key (none was kept there before).
    pub created: bool,
}

impl KeySetting {
    /// Loads the master key, creating it on first use (except from the environment).
    pub fn load(&self) -> Result<LoadedKey, VaultError> {
        match self {
            KeySetting::Environment(text) => Ok(LoadedKey {
                key: MasterKey::from_base64(text)?,
                source: KeySource::Environment,
                location: KeyLocation::Environment,
                warning: None,
                created: false,
            }),
            KeySetting::File(path) => {
                let created = !path.exists();
                Ok(LoadedKey {
                    key: MasterKey::load_or_create_file(path)?,
                    source: KeySource::MasterKeyFile,
                    location: KeyLocation::File(path.clone()),
                    warning: None,
                    created,
                })
            }
            KeySetting::Platform { data_dir, keychain } => {
                let path = data_dir.join(KEY_FILE);
                // A key file already in use stays in use: its credentials were sealed with it.
                if !path.exists() && *keychain {
                    let account = keychain_account(data_dir);
                    match load_or_create_in_keychain(&account) {
                        Ok((key, created)) => {
                            return Ok(LoadedKey {
                                key,
                                source: KeySource::Keychain,
                                location: KeyLocation::Keychain { account },
                                warning: None,
                                created,
                            })
                        }
                        Err(KeychainError::Unavailable(reason)) => {
                            tracing::warn!(%reason, "no keychain answered; using a key file");
                        }
                        Err(KeychainError::Failed(error)) => return Err(error),
                    }
                }
                let created = !path.exists();
                let key = MasterKey::load_or_create_file(&path)?;
                Ok(LoadedKey {
                    key,
                    created,
                    source: KeySource::KeyFile,
                    location: KeyLocation::File(path.clone()),
                    warning: Some(format!(
                        "No system keychain is available, so the master key that encrypts credentials is kept in {} (readable by your user only). Anyone who can read that file and the database can decrypt the credentials.",
                        path.display()
                    )),
                })
            }
        }
    }
}

impl KeyLocation {
    /// Keeps `key` beside the current key, to become current once the database uses it.
    pub fn stage(&self, key: &MasterKey) -> Result<(), VaultError> {
        match self {
            KeyLocation::Environment => Err(VaultError::InvalidKey(
                "a key from RUNBOOK_MASTER_KEY cannot be replaced here; give a file for the new key".into(),
            )),
            KeyLocation::File(path) => {
                let next = staged_path(path);
                let _ = std::fs::remove_file(&next);
                crate::write_private(&next, key.to_base64().as_bytes()).map_err(|e| {
                    VaultError::KeyFile {
                        path: next.display().to_string(),
                        reason: e.to_string(),
                    }
                })
            }
            KeyLocation::Keychain { account } => {
                keychain_set(&staged_account(account), &key.to_base64())
            }
        }
    }

    /// The staged key, if a rotation left one.
    pub fn staged(&self) -> Result<Option<MasterKey>, VaultError> {
        match self {
            KeyLocation::Environment => Ok(None),
            KeyLocation::File(path) => {
                let next = staged_path(path);
                if next.exists() {
                    MasterKey::load_or_create_file(&next).map(Some)
                } else {
                    Ok(None)
                }
            }
            KeyLocation::Keychain { account } => match keychain_get(&staged_account(account)) {
                Ok(Some(text)) => MasterKey::from_base64(&text).map(Some),
                Ok(None) => Ok(None),
                Err(error) => Err(error.into_vault()),
            },
        }
    }

    /// Makes `key` (the one staged) the current key: written whole beside the old one,
    /// then moved over it. The staged copy goes only if it still holds `key` (a second
    /// rotation may have staged its own meanwhile).
    pub fn promote(&self, key: &MasterKey) -> Result<(), VaultError> {
        match self {
            KeyLocation::Environment => {}
            KeyLocation::File(path) => {
                let failure = |e: std::io::Error| VaultError::KeyFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                };
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".tmp");
                let temporary = path.with_file_name(name);
                let _ = std::fs::remove_file(&temporary);
                crate::write_private(&temporary, key.to_base64().as_bytes()).map_err(failure)?;
                std::fs::rename(&temporary, path).map_err(failure)?;
            }
            KeyLocation::Keychain { account } => keychain_set(account, &key.to_base64())?,
        }
        self.discard_staged(key);
        Ok(())
    }

    /// Removes a key that a load just made and that turned out to be unwanted (the
    /// database was sealed under another key): the next start must not find it.
    pub fn forget_created(&self) {
        match self {
            KeyLocation::Environment => {}
            KeyLocation::File(path) => {
                let _ = std::fs::remove_file(path);
            }
            KeyLocation::Keychain { account } => keychain_delete(account),
        }
    }

    /// Forgets the staged key if it is `key` (a rotation that did not go through, or
    /// one that is complete).
    pub fn discard_staged(&self, key: &MasterKey) {
        let ours =
            matches!(self.staged(), Ok(Some(staged)) if *staged.to_base64() == *key.to_base64());
        if !ours {
            return;
        }
        match self {
            KeyLocation::Environment => {}
            KeyLocation::File(path) => {
                let _ = std::fs::remove_file(staged_path(path));
            }
            KeyLocation::Keychain { account } => keychain_delete(&staged_account(account)),
        }
    }
}

fn staged_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

fn staged_account(account: &str) -> String {
    format!("{account} (next)")
}

/// One keychain entry per data directory: each local database has its own key.
fn keychain_account(data_dir: &Path) -> String {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    format!("master-key {}", dir.display())
}

enum KeychainError {
    /// No keychain here (no Secret Service, locked, no access): fall back.
    Unavailable(String),
    /// The keychain answered with something unusable.
    Failed(VaultError),
}

impl KeychainError {
    fn into_vault(self) -> VaultError {
        match self {
            KeychainError::Unavailable(reason) => {
                VaultError::InvalidKey(format!("the keychain is not available: {reason}"))
            }
            KeychainError::Failed(error) => error,
        }
    }
}

fn entry(account: &str) -> Result<keyring::Entry, KeychainError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, account)
        .map_err(|e| KeychainError::Unavailable(e.to_string()))
}

fn keychain_get(account: &str) -> Result<Option<Zeroizing<String>>, KeychainError> {
    match entry(account)?.get_password() {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(error) => Err(KeychainError::Unavailable(error.to_string())),
    }
}

fn keychain_set(account: &str, text: &str) -> Result<(), VaultError> {
    entry(account)
        .map_err(KeychainError::into_vault)?
        .set_password(text)
        .map_err(|e| VaultError::InvalidKey(format!("the keychain refused the key: {e}")))
}

fn keychain_delete(account: &str) {
    if let Ok(entry) = entry(account) {
        let _ = entry.delete_credential();
    }
}

/// The key in the keychain, and whether it was made just now.
fn load_or_create_in_keychain(account: &str) -> Result<(MasterKey, bool), KeychainError> {
    if let Some(text) = keychain_get(account)? {
        return MasterKey::from_base64(&text)
            .map(|key| (key, false))
            .map_err(KeychainError::Failed);
    }
    let key = MasterKey::generate();
    entry(account)?
        .set_password(&key.to_base64())
        .map_err(|e| KeychainError::Unavailable(e.to_string()))?;
    // Read it back: some keychains accept a write they do not keep (a mock, a locked store).
    match keychain_get(account)? {
        Some(text) if *text == *key.to_base64() => {
            tracing::info!("created the master key in the system keychain");
            Ok((key, true))
        }
        _ => Err(KeychainError::Unavailable(
            "the keychain did not keep the key".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_key_without_keychain_is_a_private_file_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let setting = KeySetting::Platform {
            data_dir: dir.path().to_path_buf(),
            keychain: false,
        };
        let first = setting.load().unwrap();
        assert_eq!(first.source, KeySource::KeyFile);
        assert!(first.warning.unwrap().contains("No system keychain"));
        let again = setting.load().unwrap();
        assert_eq!(*first.key.to_base64(), *again.key.to_base64());
    }

    #[test]
    fn a_staged_file_key_is_promoted_or_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let current = KeySetting::File(path.clone()).load().unwrap();
        let next = MasterKey::generate();
        current.location.stage(&next).unwrap();
        assert_eq!(
            *current.location.staged().unwrap().unwrap().to_base64(),
            *next.to_base64()
        );
        current.location.promote(&next).unwrap();
        assert!(current.location.staged().unwrap().is_none());
        let reloaded = KeySetting::File(path.clone()).load().unwrap();
        assert_eq!(*reloaded.key.to_base64(), *next.to_base64());

        let abandoned = MasterKey::generate();
        current.location.stage(&abandoned).unwrap();
        current.location.discard_staged(&MasterKey::generate());
        assert!(
            current.location.staged().unwrap().is_some(),
            "another rotation's key stays"
        );
        current.location.discard_staged(&abandoned);
        assert!(current.location.staged().unwrap().is_none());
    }

    #[test]
    fn environment_keys_are_parsed_and_never_printed() {
        let key = MasterKey::generate();
        let setting = KeySetting::Environment(key.to_base64());
        assert_eq!(format!("{setting:?}"), "Environment(***)");
        let loaded = setting.load().unwrap();
        assert_eq!(loaded.source, KeySource::Environment);
        assert!(KeySetting::Environment(Zeroizing::new("short".into()))
            .load()
            .is_err());
    }
}

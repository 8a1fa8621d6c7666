//! Credentials: sealed by the vault before they reach the store, write-only for
//! every caller, opened only when a running step needs one (and audited then).

use crate::audit::{append, Subject};
use crate::service::now;
use crate::{Actor, CoreError, Service};
use async_trait::async_trait;
use runbook_domain::hosts::normalize_hosts;
use runbook_domain::security::{is_credential_name, CREDENTIAL_NAME_RULE};
use runbook_domain::{AuditOutcome, CredentialInfo, CredentialKind, Role};
use runbook_engine::{
    check_destination, Credential, CredentialError, CredentialResolver, Destination,
};
use runbook_store::{CredentialRecord, Store};
use runbook_vault::{KeyLocation, KeySource, LoadedKey, MasterKey, Sealed, Vault, NONCE_LEN};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use uuid::Uuid;
use zeroize::Zeroizing;

/// Largest credential value, in bytes (a long private key fits).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// What the check value holds: decrypting it proves the key is the database's.
const CHECK_PLAINTEXT: &[u8] = b"runbook-studio vault check v1";

/// The master key in use and where it came from.
pub(crate) struct VaultState {
    vault: RwLock<Arc<Vault>>,
    /// The check value sealed under the key in `vault`, as stored.
    check: RwLock<Vec<u8>>,
    source: KeySource,
    location: KeyLocation,
    warning: Option<String>,
}

/// Where the master key is kept, for the UI and operators; never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultStatus {
    pub source: KeySource,
    /// Set when the key is less protected than it should be.
    pub warning: Option<String>,
}

impl VaultState {
    /// Opens the vault with `loaded`, proving it is the key the stored credentials were
    /// sealed with. A rotation interrupted after its database commit is completed here.
    pub(crate) async fn open(
        store: &dyn Store,
        loaded: LoadedKey,
    ) -> Result<VaultState, CoreError> {
        let vault = Vault::new(&loaded.key);
        let fresh = seal(&vault, Uuid::nil(), CHECK_PLAINTEXT);
        let check = store.init_vault_check(&fresh).await?;
        let opens = |vault: &Vault| {
            unseal(vault, Uuid::nil(), &check).is_ok_and(|text| text.as_slice() == CHECK_PLAINTEXT)
        };
        // A staged key that does not open the check is left alone: it may belong to a
        // rotation in another process that has not committed yet.
        let vault = if opens(&vault) {
            vault
        } else {
            let staged = loaded.location.staged().ok().flatten();
            match staged.map(|key| (Vault::new(&key), key)) {
                Some((next, key)) if opens(&next) => {
                    loaded
                        .location
                        .promote(&key)
                        .map_err(|e| CoreError::Setup(e.to_string()))?;
                    tracing::warn!("completed a master key rotation that was interrupted");
                    next
                }
                _ => {
                    if loaded.created {
                        // A key made by this very start (say, with the keychain switched
                        // off) would shadow the real one at the next start: remove it.
                        loaded.location.forget_created();
                    }
                    return Err(CoreError::Setup(format!(
                        "the master key ({}) is not the one this database's credentials were sealed with; nothing was changed. Use the original key (or restore it) and start again",
                        describe(loaded.source)
                    )));
                }
            }
        };
        Ok(VaultState {
            vault: RwLock::new(Arc::new(vault)),
            check: RwLock::new(check),
            source: loaded.source,
            location: loaded.location,
            warning: loaded.warning,
        })
    }

    fn current(&self) -> Arc<Vault> {
        self.vault.read().expect("vault lock").clone()
    }

    /// The check value of the key in use; the store writes a sealed value only while
    /// the database still holds it (another process may have rotated the key).
    fn check(&self) -> Vec<u8> {
        self.check.read().expect("vault lock").clone()
    }

    /// Fails when another process rotated the key since this one opened the vault.
    /// (Credential writes need no call: the store checks the key in their transaction.)
    async fn ensure_current(&self, store: &dyn Store) -> Result<(), CoreError> {
        let stored = store.vault_check().await?;
        if stored.as_deref() != Some(self.check.read().expect("vault lock").as_slice()) {
            return Err(CoreError::InvalidState(
                "the master key was rotated by another process; restart this one to use the new key".into(),
            ));
        }
        Ok(())
    }
}

fn describe(source: KeySource) -> &'static str {
    match source {
        KeySource::Environment => "from RUNBOOK_MASTER_KEY",
        KeySource::MasterKeyFile => "from --master-key-file",
        KeySource::Keychain => "from the system keychain",
        KeySource::KeyFile => "from the key file in the data directory",
    }
}

fn seal(vault: &Vault, id: Uuid, plaintext: &[u8]) -> Vec<u8> {
    let sealed = vault.seal(id, plaintext);
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.ciphertext.len());
    bytes.extend_from_slice(&sealed.nonce);
    bytes.extend_from_slice(&sealed.ciphertext);
    bytes
}

fn unseal(
    vault: &Vault,
    id: Uuid,
    bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, runbook_vault::VaultError> {
    if bytes.len() < NONCE_LEN {
        return Err(runbook_vault::VaultError::Undecryptable);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[..NONCE_LEN]);
    vault.open(
        id,
        &Sealed {
            nonce,
            ciphertext: bytes[NONCE_LEN..].to_vec(),
        },
    )
}

/// The body of a create request. The value never leaves this module unsealed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    name: String,
    kind: String,
    value: Option<Zeroizing<String>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    header_name: Option<String>,
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// The body of an update request: every field optional; name and kind are fixed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialChange {
    #[serde(default)]
    value: Option<Zeroizing<String>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    header_name: Option<String>,
    /// Replaces the whole list when present.
    #[serde(default)]
    hosts: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, CoreError> {
    if !body.is_object() {
        return Err(CoreError::bad_request(
            "bad_request",
            "the body must be a JSON object",
        ));
    }
    // serde's message can quote the offending input; for a credential that may be the
    // secret itself, so only the path and the kind of problem are reported.
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let message = match error.inner().to_string() {
            text if text.starts_with("unknown field") => format!("unknown field `{path}`"),
            text if text.starts_with("missing field") => text,
            _ => format!("`{path}` has the wrong type"),
        };
        CoreError::unprocessable("invalid_type", message)
    })
}

/// A credential name: what runbooks reference, so kept to a safe alphabet.
fn check_name(name: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if is_credential_name(name) {
        Ok(name.to_string())
    } else {
        Err(CoreError::unprocessable(
            "invalid_name",
            CREDENTIAL_NAME_RULE,
        ))
    }
}

fn check_value(value: Option<&Zeroizing<String>>) -> Result<(), CoreError> {
    match value {
        None => Err(CoreError::unprocessable(
            "missing_value",
            "a credential needs a value",
        )),
        Some(value) if value.is_empty() => Err(CoreError::unprocessable(
            "missing_value",
            "the value is empty",
        )),
        Some(value) if value.len() > MAX_VALUE_BYTES => Err(CoreError::unprocessable(
            "value_too_large",
            format!("the value is larger than {MAX_VALUE_BYTES} bytes"),
        )),
        Some(value) if value.contains('\0') => Err(CoreError::unprocessable(
            "invalid_value",
            "the value may not contain U+0000",
        )),
        Some(_) => Ok(()),
    }
}

fn check_description(description: Option<String>) -> Result<String, CoreError> {
    let description = description.unwrap_or_default();
    if description.chars().count() > 2000 || description.contains('\0') {
        return Err(CoreError::unprocessable(
            "invalid_description",
            "a description is at most 2000 characters, without U+0000",
        ));
    }
    Ok(description)
}

/// The hosts an HTTP credential may be sent to, in their canonical form; other kinds
/// have none.
fn check_hosts(kind: CredentialKind, hosts: Vec<String>) -> Result<Vec<String>, CoreError> {
    if !kind.is_http() && !hosts.is_empty() {
        return Err(CoreError::unprocessable(
            "hosts_not_applicable",
            format!(
                "a {} credential goes into a command's environment, not with a request: it takes no hosts",
                kind.as_str()
            ),
        ));
    }
    normalize_hosts(&hosts).map_err(|message| CoreError::unprocessable("invalid_hosts", message))
}

/// The username of a basic credential and the header name of a header credential;
/// other kinds carry neither.
fn check_kind_fields(
    kind: CredentialKind,
    username: Option<String>,
    header_name: Option<String>,
) -> Result<(Option<String>, Option<String>), CoreError> {
    let username = username.filter(|u| !u.is_empty());
    let header_name = header_name
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    match kind {
        CredentialKind::Basic => {
            let Some(username) = username else {
                return Err(CoreError::unprocessable(
                    "missing_username",
                    "a basic credential needs a username",
                ));
            };
            if username.len() > 256
                || username.contains(':')
                || username.chars().any(char::is_control)
            {
                return Err(CoreError::unprocessable(
                    "invalid_username",
                    "a username is at most 256 bytes, without `:` or control characters",
                ));
            }
            Ok((Some(username), None))
        }
        CredentialKind::Header => {
            let Some(header) = header_name else {
                return Err(CoreError::unprocessable(
                    "missing_header_name",
                    "a header credential needs the header's name",
                ));
            };
            let token = header.len() <= 256
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(CoreError::unprocessable(
                    "invalid_header_name",
                    "the header name is not a valid HTTP header name",
                ));
            }
            Ok((None, Some(header)))
        }
        _ => Ok((None, None)),
    }
}

impl Service {
    /// Every credential's metadata (admin).
    pub async fn list_credentials(&self, actor: &Actor) -> Result<Vec<CredentialInfo>, CoreError> {
        self.require(actor, Role::Admin, "credential.list").await?;
        Ok(self.store.list_credentials().await?)
    }

    /// One credential's metadata (admin).
    pub async fn get_credential(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<CredentialInfo, CoreError> {
        self.require(actor, Role::Admin, "credential.read").await?;
        self.load_credential(id).await.map(|record| record.info)
    }

    async fn load_credential(&self, id: Uuid) -> Result<CredentialRecord, CoreError> {
        self.store
            .get_credential(id)
            .await?
            .ok_or(CoreError::NotFound { what: "credential" })
    }

    /// Stores a new credential, sealed; answers with its metadata only (admin).
    pub async fn create_credential(
        &self,
        actor: &Actor,
        body: serde_json::Value,
    ) -> Result<CredentialInfo, CoreError> {
        let name = body
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let result = async {
            actor.require(Role::Admin)?;
            let new: NewCredential = parse_body(body)?;
            let name = check_name(&new.name)?;
            let kind: CredentialKind = new
                .kind
                .parse()
                .map_err(|message: String| CoreError::unprocessable("invalid_kind", message))?;
            check_value(new.value.as_ref())?;
            let (username, header_name) = check_kind_fields(kind, new.username, new.header_name)?;
            let hosts = check_hosts(kind, new.hosts.unwrap_or_default())?;
            let description = check_description(new.description)?;
            let id = Uuid::new_v4();
            let value = new.value.unwrap_or_default();
            let at = now();
            let record = CredentialRecord {
                info: CredentialInfo {
                    id,
                    name,
                    kind,
                    description,
                    username,
                    header_name,
                    hosts,
                    created_at: at,
                    updated_at: at,
                    last_used_at: None,
                    created_by: actor.name.clone(),
                    updated_by: actor.name.clone(),
                },
                sealed: seal(&self.vault.current(), id, value.as_bytes()),
            };
            match self
                .store
                .insert_credential(&record, &self.vault.check())
                .await
            {
                Ok(()) => Ok(record.info),
                Err(runbook_store::StoreError::Duplicate) => Err(CoreError::Conflict {
                    code: "duplicate_name",
                    message: format!("a credential named `{}` exists", record.info.name),
                }),
                Err(other) => Err(other.into()),
            }
        }
        .await;
        let before = Subject {
            target: name
                .filter(|n| check_name(n).is_ok())
                .map(|n| format!("credential:{n}")),
            detail: None,
        };
        self.audited(actor, "credential.create", before, result, |info| {
            Subject::new(format!("credential:{}", info.name))
                .with(serde_json::json!({"kind": info.kind.as_str(), "hosts": info.hosts}))
        })
        .await
    }

    /// Replaces a credential's value and/or its metadata (admin). The old value is
    /// never returned; an omitted value keeps the stored one.
    pub async fn update_credential(
        &self,
        actor: &Actor,
        id: Uuid,
        body: serde_json::Value,
    ) -> Result<CredentialInfo, CoreError> {
        let mut target = None;
        let result = async {
            actor.require(Role::Admin)?;
            let change: CredentialChange = parse_body(body)?;
            let mut record = self.load_credential(id).await?;
            target = Some(format!("credential:{}", record.info.name));
            let info = &mut record.info;
            let (username, header_name) = check_kind_fields(
                info.kind,
                change.username.or(info.username.clone()),
                change.header_name.or(info.header_name.clone()),
            )?;
            info.username = username;
            info.header_name = header_name;
            let hosts_changed = match change.hosts {
                Some(hosts) => {
                    let hosts = check_hosts(info.kind, hosts)?;
                    let changed = hosts != info.hosts;
                    info.hosts = hosts;
                    changed
                }
                None => false,
            };
            if change.description.is_some() {
                info.description = check_description(change.description)?;
            }
            if let Some(value) = &change.value {
                check_value(Some(value))?;
                record.sealed = seal(&self.vault.current(), id, value.as_bytes());
            }
            record.info.updated_at = now();
            record.info.updated_by = actor.name.clone();
            // Without a new value the sealed one is left as stored, not written back.
            let check = change.value.is_some().then(|| self.vault.check());
            if !self
                .store
                .update_credential(&record, check.as_deref())
                .await?
            {
                return Err(CoreError::NotFound { what: "credential" });
            }
            Ok((record.info, change.value.is_some(), hosts_changed))
        }
        .await;
        let before = Subject {
            target: target.or_else(|| Some(format!("credential:{id}"))),
            detail: None,
        };
        self.audited(
            actor,
            "credential.update",
            before,
            result,
            |(info, replaced, hosts_changed)| {
                let mut detail = serde_json::json!({"value_replaced": replaced});
                if *hosts_changed {
                    detail["hosts"] = serde_json::json!(info.hosts);
                }
                Subject::none().with(detail)
            },
        )
        .await
        .map(|(info, _, _)| info)
    }

    /// Deletes a credential and its ciphertext (admin).
    pub async fn delete_credential(&self, actor: &Actor, id: Uuid) -> Result<(), CoreError> {
        let mut target = None;
        let result = async {
            actor.require(Role::Admin)?;
            let record = self.load_credential(id).await?;
            target = Some(format!("credential:{}", record.info.name));
            if self.store.delete_credential(id).await? {
                Ok(())
            } else {
                Err(CoreError::NotFound { what: "credential" })
            }
        }
        .await;
        let before = Subject {
            target: target.or_else(|| Some(format!("credential:{id}"))),
            detail: None,
        };
        self.audited(actor, "credential.delete", before, result, |_| {
            Subject::none()
        })
        .await
    }

    /// Where the master key is kept (any signed-in caller: the UI warns with it).
    pub fn vault_status(&self, actor: &Actor) -> Result<VaultStatus, CoreError> {
        actor.require(Role::Viewer)?;
        Ok(VaultStatus {
            source: self.vault.source,
            warning: self.vault.warning.clone(),
        })
    }

    /// Re-encrypts every credential under a new master key in one transaction, then
    /// makes the new key current where the old one was kept (admin). For a key from
    /// the environment, `new_key_file` receives the new key (created 0600) first.
    pub async fn rotate_master_key(
        &self,
        actor: &Actor,
        new_key_file: Option<&std::path::Path>,
    ) -> Result<RotationReport, CoreError> {
        let result = self.rotate(actor, new_key_file).await;
        self.audited(actor, "vault.rotate", Subject::none(), result, |report| {
            Subject::none().with(serde_json::json!({"credentials": report.credentials}))
        })
        .await
    }

    async fn rotate(
        &self,
        actor: &Actor,
        new_key_file: Option<&std::path::Path>,
    ) -> Result<RotationReport, CoreError> {
        actor.require(Role::Admin)?;
        self.vault.ensure_current(self.store.as_ref()).await?;
        let key = MasterKey::generate();
        let next = Vault::new(&key);
        let old = self.vault.current();
        // Where the new key goes before the database changes, so it can never be lost.
        let location = match (&self.vault.location, new_key_file) {
            (KeyLocation::Environment, Some(path)) if path.exists() => {
                return Err(CoreError::unprocessable(
                    "new_key_file_exists",
                    format!("{} exists; name a new file for the new key", path.display()),
                ))
            }
            (KeyLocation::Environment, Some(path)) => KeyLocation::File(path.to_path_buf()),
            (KeyLocation::Environment, None) => {
                return Err(CoreError::unprocessable(
                    "new_key_file_required",
                    "the master key comes from RUNBOOK_MASTER_KEY; name a file for the new key (--new-key-file)",
                ))
            }
            (_, Some(_)) => {
                return Err(CoreError::unprocessable(
                    "new_key_file_unused",
                    format!(
                        "the master key comes {}; the new key replaces it there, without --new-key-file",
                        describe(self.vault.source)
                    ),
                ))
            }
            (location, None) => location.clone(),
        };
        location
            .stage(&key)
            .map_err(|e| CoreError::Setup(e.to_string()))?;
        let old_check = self.vault.check();
        let check = seal(&next, Uuid::nil(), CHECK_PLAINTEXT);
        let resealed = self.reseal_all(&old, &next, &old_check, &check).await;
        let committed = match &resealed {
            Ok(_) => true,
            // An error may come after the commit went through (a connection lost during
            // COMMIT): the check value tells which key the database needs now.
            Err(_) => matches!(
                self.store.vault_check().await,
                Ok(Some(stored)) if unseal(&next, Uuid::nil(), &stored).is_ok()
            ),
        };
        let resealed = match resealed {
            Ok(ids) => ids,
            Err(error) if !committed => {
                location.discard_staged(&key);
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, "the rotation reported an error, yet its commit went through");
                Vec::new()
            }
        };
        // The database now needs the new key; a failure from here on is completed by the
        // next start, which finds the staged key.
        location
            .promote(&key)
            .map_err(|e| CoreError::Setup(e.to_string()))?;
        *self.vault.vault.write().expect("vault lock") = Arc::new(next);
        *self.vault.check.write().expect("vault lock") = check;
        Ok(RotationReport {
            credentials: resealed.len(),
            key_location: match location {
                KeyLocation::File(path) => path.display().to_string(),
                KeyLocation::Keychain { .. } => "the system keychain".to_string(),
                KeyLocation::Environment => "RUNBOOK_MASTER_KEY".to_string(),
            },
        })
    }

    /// Re-seals every credential under `next` in one transaction that goes through only
    /// if nothing changed since it was read (values, the set of credentials, the key).
    async fn reseal_all(
        &self,
        old: &Vault,
        next: &Vault,
        old_check: &[u8],
        check: &[u8],
    ) -> Result<Vec<Uuid>, CoreError> {
        let mut resealed = Vec::new();
        for info in self.store.list_credentials().await? {
            let record = self.load_credential(info.id).await?;
            let plaintext = unseal(old, info.id, &record.sealed).map_err(|_| {
                CoreError::Setup(format!(
                    "credential `{}` does not open under the current key; nothing was changed",
                    record.info.name
                ))
            })?;
            let sealed = seal(next, info.id, &plaintext);
            resealed.push((info.id, record.sealed, sealed));
        }
        match self
            .store
            .reseal_credentials(&resealed, old_check, check)
            .await
        {
            Ok(()) => Ok(resealed.into_iter().map(|(id, _, _)| id).collect()),
            Err(runbook_store::StoreError::Conflict(message)) => {
                Err(CoreError::InvalidState(message))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The resolver runs use: credentials opened from the store as steps need them.
    pub(crate) fn resolver(
        store: Arc<dyn Store>,
        vault: Arc<VaultState>,
    ) -> Arc<dyn CredentialResolver> {
        Arc::new(StoreCredentials { store, vault })
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    pub credentials: usize,
    /// Where the new key is kept now.
    pub key_location: String,
}

/// Opens credentials for running steps, recording each use.
struct StoreCredentials {
    store: Arc<dyn Store>,
    vault: Arc<VaultState>,
}

/// The credential a decrypted value makes, by its kind.
fn credential_of(info: &CredentialInfo, value: String) -> Credential {
    match info.kind {
        CredentialKind::Bearer => Credential::Bearer { token: value },
        CredentialKind::Basic => Credential::Basic {
            username: info.username.clone().unwrap_or_default(),
            password: value,
        },
        CredentialKind::Header => Credential::Header {
            name: info.header_name.clone().unwrap_or_default(),
            value,
        },
        CredentialKind::Secret => Credential::Secret { value },
        CredentialKind::SshKey => Credential::SshKey { key: value },
    }
}

#[async_trait]
impl CredentialResolver for StoreCredentials {
    async fn resolve(
        &self,
        name: &str,
        execution_id: Uuid,
        block_id: &str,
        destination: Destination<'_>,
    ) -> Result<Credential, CredentialError> {
        let unavailable = |reason: &str| CredentialError::Unavailable {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        let record = self
            .store
            .find_credential(name)
            .await
            .map_err(|_| unavailable("the credential store could not be read"))?
            .ok_or_else(|| CredentialError::NotFound(name.to_string()))?;
        let actor = match self.store.execution_started_by(execution_id).await {
            Ok(Some(started_by)) => started_by,
            _ => "unknown".to_string(),
        };
        let mut detail = serde_json::json!({"execution": execution_id, "block": block_id});
        // Checked before the value is opened: a refused credential is never decrypted.
        if let Err(refusal) =
            check_destination(name, record.info.kind, &record.info.hosts, destination)
        {
            detail["refused"] = refusal.to_string().into();
            append(
                self.store.as_ref(),
                &actor,
                None,
                "credential.use",
                Subject::new(format!("credential:{name}")).with(detail),
                AuditOutcome::Failure,
            )
            .await;
            return Err(refusal);
        }
        let subject = Subject::new(format!("credential:{name}")).with(detail);
        let opened = unseal(&self.vault.current(), record.info.id, &record.sealed);
        let Ok(plaintext) = opened else {
            append(
                self.store.as_ref(),
                &actor,
                None,
                "credential.use",
                subject,
                AuditOutcome::Failure,
            )
            .await;
            return Err(unavailable(
                "it cannot be decrypted: it was changed in the database or sealed under another master key",
            ));
        };
        let mut plaintext = plaintext;
        let value = String::from_utf8(std::mem::take(&mut *plaintext))
            .map_err(|_| unavailable("the value is not text"))?;
        if let Err(error) = self.store.touch_credential(record.info.id, now()).await {
            tracing::warn!(%error, "could not record a credential's last use");
        }
        append(
            self.store.as_ref(),
            &actor,
            None,
            "credential.use",
            subject,
            AuditOutcome::Success,
        )
        .await;
        Ok(credential_of(&record.info, value))
    }

    async fn masking_forms(&self, names: &[String]) -> Vec<String> {
        let mut forms = Vec::new();
        for name in names {
            let Ok(Some(record)) = self.store.find_credential(name).await else {
                continue;
            };
            let Ok(plaintext) = unseal(&self.vault.current(), record.info.id, &record.sealed)
            else {
                continue;
            };
            let Ok(value) = std::str::from_utf8(&plaintext) else {
                continue;
            };
            forms.extend(credential_of(&record.info, value.to_string()).secret_forms());
        }
        forms
    }
}

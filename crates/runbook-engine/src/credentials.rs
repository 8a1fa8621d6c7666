//! How the engine obtains credentials: through a [`CredentialResolver`] the core
//! supplies (the encrypted credential store), looked up by name at the moment a step
//! needs them. Every value resolved during a run is masked in its output.

use async_trait::async_trait;
use std::collections::HashMap;

/// A decrypted credential, as a step uses it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// A header of its own name, e.g. `X-API-Key: <value>`.
    Header { name: String, value: String },
    /// A plain secret, for environment injection.
    Secret { value: String },
    /// A private key, for environment injection.
    SshKey { key: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value never reaches a log line, even a debug one.
        let kind = match self {
            Credential::Bearer { .. } => "bearer",
            Credential::Basic { .. } => "basic",
            Credential::Header { .. } => "header",
            Credential::Secret { .. } => "secret",
            Credential::SshKey { .. } => "ssh_key",
        };
        write!(f, "Credential({kind}, ***)")
    }
}

impl Credential {
    /// The value a command receives when the credential is injected into its environment.
    pub fn env_value(&self) -> &str {
        match self {
            Credential::Bearer { token } => token,
            Credential::Basic { password, .. } => password,
            Credential::Header { value, .. } => value,
            Credential::Secret { value } => value,
            Credential::SshKey { key } => key,
        }
    }

    /// Every form of the secret that could show up in output, for masking.
    pub fn secret_forms(&self) -> Vec<String> {
        use base64::Engine as _;
        match self {
            Credential::Basic { username, password } => vec![
                password.clone(),
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")),
            ],
            other => vec![other.env_value().to_string()],
        }
    }
}

/// Why a credential could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no credential named `{0}`")]
    NotFound(String),
    #[error("credential `{name}` could not be read: {reason}")]
    Unavailable { name: String, reason: String },
}

/// Looks credentials up by name for a step of a run.
#[async_trait]
pub trait CredentialResolver: Send + Sync + 'static {
    async fn resolve(
        &self,
        name: &str,
        execution_id: uuid::Uuid,
        block_id: &str,
    ) -> Result<Credential, CredentialError>;

    /// Every form in which the values of the credentials `names` could show up in
    /// output, for masking only. A run reads them when it starts, so a value printed
    /// before the step that uses its credential (a config file shown, a secret read
    /// from elsewhere) is masked too. This is not a use of the credentials: nothing is
    /// audited, and names that cannot be read are left out.
    async fn masking_forms(&self, names: &[String]) -> Vec<String> {
        let _ = names;
        Vec::new()
    }
}

/// A resolver that knows no credentials (a store without a vault).
pub struct NoCredentials;

#[async_trait]
impl CredentialResolver for NoCredentials {
    async fn resolve(
        &self,
        name: &str,
        _execution_id: uuid::Uuid,
        _block_id: &str,
    ) -> Result<Credential, CredentialError> {
        Err(CredentialError::NotFound(name.to_string()))
    }
}

/// A fixed set of credentials held in memory (tests, single-shot tools).
#[derive(Default)]
pub struct StaticCredentials(pub HashMap<String, Credential>);

#[async_trait]
impl CredentialResolver for StaticCredentials {
    async fn resolve(
        &self,
        name: &str,
        _execution_id: uuid::Uuid,
        _block_id: &str,
    ) -> Result<Credential, CredentialError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| CredentialError::NotFound(name.to_string()))
    }

    async fn masking_forms(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter_map(|name| self.0.get(name))
            .flat_map(Credential::secret_forms)
            .collect()
    }
}

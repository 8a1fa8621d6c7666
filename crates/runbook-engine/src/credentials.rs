//! How the engine obtains credentials: through a [`CredentialResolver`] the core
//! supplies (the encrypted credential store), looked up by name at the moment a step
//! needs them. Every value resolved during a run is masked in its output.

use async_trait::async_trait;
use reqwest::Url;
use runbook_domain::hosts::host_allowed;
use runbook_domain::CredentialKind;
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
        write!(f, "Credential({}, ***)", self.kind().as_str())
    }
}

impl Credential {
    /// The kind of credential this is.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::Bearer { .. } => CredentialKind::Bearer,
            Credential::Basic { .. } => CredentialKind::Basic,
            Credential::Header { .. } => CredentialKind::Header,
            Credential::Secret { .. } => CredentialKind::Secret,
            Credential::SshKey { .. } => CredentialKind::SshKey,
        }
    }

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
    /// The credential may not go where the step would send it; it was not opened.
    #[error("credential `{name}` was not used: {reason}")]
    Refused { name: String, reason: String },
}

/// Where a step would send a credential.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// Into a command's environment (`secrets`).
    Environment,
    /// With an api_call's request to `url`, of which the block's URL writes `written`
    /// in its own text (the rest comes from templates).
    Request { url: &'a Url, written: Written },
}

/// How much of a request's URL the runbook's author wrote, before any template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Nothing,
    /// The scheme the request uses, not the host.
    Scheme,
    /// The whole origin the request goes to: scheme, host and port.
    Origin,
}

/// Whether a credential of `kind` bound to `hosts` may go to `destination`:
/// - only bearer, basic and header credentials go with requests;
/// - bound to hosts, it goes only with a request to one of them, over https unless
///   the block's URL writes `http://` itself, and never into a command's environment
///   (where nothing holds it to a host);
/// - bound to no host, a request must go to the origin the runbook's author wrote,
///   so a parameter or an earlier step's output cannot send it elsewhere.
pub fn check_destination(
    name: &str,
    kind: CredentialKind,
    hosts: &[String],
    destination: Destination<'_>,
) -> Result<(), CredentialError> {
    let refused = |reason: String| {
        Err(CredentialError::Refused {
            name: name.to_string(),
            reason,
        })
    };
    let (url, written) = match destination {
        Destination::Environment if hosts.is_empty() => return Ok(()),
        Destination::Environment => {
            return refused(format!(
                "it is bound to hosts ({}), so only an api_call block may send it, not a command's environment",
                hosts.join(", ")
            ))
        }
        Destination::Request { url, written } => (url, written),
    };
    if !kind.is_http() {
        refused(format!(
            "a {} credential is for a command's environment; an api_call takes a bearer, basic or header credential",
            kind.as_str()
        ))
    } else if hosts.is_empty() && written != Written::Origin {
        refused(format!(
            "this request goes to {}, a host that comes from a template, and the credential is bound to no host; write the host in the block's URL, or have an admin list the hosts the credential may be sent to",
            authority(url)
        ))
    } else if !hosts.is_empty() && !host_allowed(hosts, url) {
        refused(format!(
            "it may be sent only to {}, and this request goes to {}",
            hosts.join(", "),
            authority(url)
        ))
    } else if !hosts.is_empty() && url.scheme() != "https" && written == Written::Nothing {
        refused(format!(
            "this request would send it over {}, a scheme that comes from a template; write the scheme in the block's URL to allow anything but https",
            url.scheme()
        ))
    } else {
        Ok(())
    }
}

/// `host[:port]` of a URL, as a refusal names it.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("no host");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Whether a Host header's value names the host (and port) `url` goes to, with or
/// without the scheme's default port.
pub(crate) fn names_host(value: &str, url: &Url) -> bool {
    let value = value.trim();
    let with_port = |port: u16| format!("{}:{port}", url.host_str().unwrap_or_default());
    url.host_str().is_some()
        && (value.eq_ignore_ascii_case(&authority(url))
            || url
                .port_or_known_default()
                .is_some_and(|port| value.eq_ignore_ascii_case(&with_port(port))))
}

/// Looks credentials up by name for a step of a run.
#[async_trait]
pub trait CredentialResolver: Send + Sync + 'static {
    /// Opens the credential `name` for a step that sends it to `destination`, after
    /// checking (with [`check_destination`]) that it may go there.
    async fn resolve(
        &self,
        name: &str,
        execution_id: uuid::Uuid,
        block_id: &str,
        destination: Destination<'_>,
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
        _destination: Destination<'_>,
    ) -> Result<Credential, CredentialError> {
        Err(CredentialError::NotFound(name.to_string()))
    }
}

/// A fixed set of credentials held in memory (tests, single-shot tools), each with
/// the hosts it is bound to (none unless given).
#[derive(Default)]
pub struct StaticCredentials {
    pub values: HashMap<String, Credential>,
    pub hosts: HashMap<String, Vec<String>>,
}

impl StaticCredentials {
    pub fn new(values: HashMap<String, Credential>) -> StaticCredentials {
        StaticCredentials {
            values,
            hosts: HashMap::new(),
        }
    }

    /// Binds the credential `name` to `hosts` (canonical host patterns).
    pub fn bound(mut self, name: &str, hosts: &[&str]) -> StaticCredentials {
        let hosts = hosts.iter().map(|host| host.to_string()).collect();
        self.hosts.insert(name.to_string(), hosts);
        self
    }
}

#[async_trait]
impl CredentialResolver for StaticCredentials {
    async fn resolve(
        &self,
        name: &str,
        _execution_id: uuid::Uuid,
        _block_id: &str,
        destination: Destination<'_>,
    ) -> Result<Credential, CredentialError> {
        let credential = self
            .values
            .get(name)
            .ok_or_else(|| CredentialError::NotFound(name.to_string()))?;
        let hosts = self.hosts.get(name).map_or(&[][..], Vec::as_slice);
        check_destination(name, credential.kind(), hosts, destination)?;
        Ok(credential.clone())
    }

    async fn masking_forms(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter_map(|name| self.values.get(name))
            .flat_map(Credential::secret_forms)
            .collect()
    }
}

//! The core service API of Runbook Studio: the one surface the desktop app, the REST
//! server and the CLI call. Every operation takes the calling [`Actor`] explicitly and
//! checks its role here, so no front end can skip or drift from the rules.

mod access;
mod audit;
mod console_log;
mod credentials;
mod error;
mod export;
mod follow;
mod service;
mod sink;

pub use access::{ApiKeyInfo, KeyRequest, LockoutPolicy, NewApiKey, NewUser};
pub use audit::{AuditQuery, VerifyReport};
pub use console_log::{ConsoleLog, Escapes};
pub use credentials::{RotationReport, VaultStatus, MAX_VALUE_BYTES};
pub use error::{CoreError, ErrorKind};
pub use export::{RunReport, MAX_EXPORTED_CONSOLE};
pub use follow::Following;
pub use runbook_domain::UserChange;
pub use runbook_engine::{login_environment, EngineConfig, ExecutionEvent};
/// The passwords in a database URL, for front ends that report errors about one.
pub use runbook_store::url_secrets;
pub use runbook_vault::{KeySetting, KeySource};
pub use service::{
    Config, ExecuteRequest, ExecutionQuery, Page, RunbookQuery, Service, WaitingStep,
};

use runbook_domain::Role;
use serde::Serialize;

/// Who is calling: a person or a key, with the role that decides what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The request this call belongs to, carried into the audit trail.
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl Actor {
    /// The desktop app's local profile: admin of its own local database.
    pub fn local_admin() -> Actor {
        let name = ["USER", "LOGNAME", "USERNAME"]
            .into_iter()
            .filter_map(|var| std::env::var(var).ok())
            .find(|name| !name.trim().is_empty())
            .unwrap_or_else(|| "local".to_string());
        Actor {
            name,
            role: Role::Admin,
            request_id: None,
        }
    }

    /// The operator of the headless binary on its own machine (bootstrap, migrations).
    pub fn system() -> Actor {
        Actor {
            name: "system".to_string(),
            role: Role::Admin,
            request_id: None,
        }
    }

    /// The same caller, for the request `request_id`.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Actor {
        self.request_id = Some(request_id.into());
        self
    }

    /// Fails unless the actor's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), CoreError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(CoreError::Forbidden {
                needed,
                actual: self.role,
            })
        }
    }
}

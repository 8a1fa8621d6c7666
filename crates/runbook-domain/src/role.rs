//! Roles, ordered from least to most privileged.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A caller's role. Each role includes every permission of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads runbooks, versions, executions and output.
    Viewer,
    /// Viewer, plus starts and controls executions.
    Operator,
    /// Operator, plus authors runbooks.
    Editor,
    /// Everything, including credentials, users, keys and the audit trail.
    Admin,
}

impl Role {
    /// The stable lowercase name used in storage, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a role name that is not one of the four roles.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`; expected viewer, operator, editor or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Viewer < Role::Operator);
        assert!(Role::Operator < Role::Editor);
        assert!(Role::Editor < Role::Admin);
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Viewer, Role::Operator, Role::Editor, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}

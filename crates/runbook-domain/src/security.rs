//! The nouns of access control and secrets: credentials (metadata only, never a
//! value), users, and the hash-chained audit trail.

use crate::Role;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// What a credential name may be: runbooks reference credentials by name, so names
/// keep to a safe alphabet.
pub const CREDENTIAL_NAME_RULE: &str =
    "a credential name is 1 to 100 characters: letters, digits, `-`, `_` and `.`";

/// True when `name` follows [`CREDENTIAL_NAME_RULE`].
pub fn is_credential_name(name: &str) -> bool {
    (1..=100).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// How a credential is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `Authorization: Basic base64(username:value)`.
    Basic,
    /// A header of its own name carrying the value.
    Header,
    /// A plain secret for environment injection.
    Secret,
    /// A private key for environment injection.
    SshKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Bearer => "bearer",
            CredentialKind::Basic => "basic",
            CredentialKind::Header => "header",
            CredentialKind::Secret => "secret",
            CredentialKind::SshKey => "ssh_key",
        }
    }

    /// A kind an api_call sends with its request (and that can be bound to hosts).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            CredentialKind::Bearer | CredentialKind::Basic | CredentialKind::Header
        )
    }
}

impl FromStr for CredentialKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bearer" => Ok(CredentialKind::Bearer),
            "basic" => Ok(CredentialKind::Basic),
            "header" => Ok(CredentialKind::Header),
            "secret" => Ok(CredentialKind::Secret),
            "ssh_key" => Ok(CredentialKind::SshKey),
            other => Err(format!(
                "unknown credential kind `{other}`; expected bearer, basic, header, secret or ssh_key"
            )),
        }
    }
}

/// A stored credential as anyone may see it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    pub id: Uuid,
    pub name: String,
    pub kind: CredentialKind,
    pub description: String,
    /// The user name of a `basic` credential (not secret; its password is).
    pub username: Option<String>,
    /// The header a `header` credential sets.
    pub header_name: Option<String>,
    /// The hosts an api_call may send an HTTP credential to (`hosts::HostPattern`s in
    /// their canonical form). Empty: only to a host written in the runbook's URL itself.
    #[serde(default)]
    pub hosts: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub updated_by: String,
}

/// A person (or service) who owns API keys and holds a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A disabled user's keys stop working until the user is enabled again.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A change of a user's role or state (the body of an update-user request); what it
/// leaves out stays as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl UserChange {
    /// `user` after the change made at `at`: disabling keeps the time a user was first
    /// disabled.
    pub fn apply(&self, user: &User, at: DateTime<Utc>) -> User {
        let mut user = user.clone();
        if let Some(role) = self.role {
            user.role = role;
        }
        match self.disabled {
            Some(true) if user.disabled_at.is_none() => user.disabled_at = Some(at),
            Some(false) => user.disabled_at = None,
            _ => {}
        }
        user.updated_at = at;
        user
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    /// Refused for the caller's role.
    Denied,
    /// Attempted and failed (bad input, failed authentication, a run that did not succeed).
    Failure,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failure => "failure",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(AuditOutcome::Success),
            "denied" => Ok(AuditOutcome::Denied),
            "failure" => Ok(AuditOutcome::Failure),
            other => Err(format!(
                "unknown outcome `{other}`; expected success, denied or failure"
            )),
        }
    }
}

/// An audit record about to be appended; the store gives it its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub request_id: Option<String>,
    /// Compact JSON text, hashed exactly as stored.
    pub detail: Option<String>,
}

/// A stored audit record: its event, its position and its link to the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub request_id: Option<String>,
    #[serde(serialize_with = "detail_as_json")]
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

fn detail_as_json<S: serde::Serializer>(detail: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let value = detail
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    value.serialize(s)
}

/// The link before the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditEvent {
    /// This event placed at `seq` after the record whose hash is `prev_hash`.
    pub fn chain(self, seq: i64, prev_hash: &str) -> AuditEntry {
        let hash = chain_hash(seq, prev_hash, &self);
        AuditEntry {
            seq,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            request_id: self.request_id,
            detail: self.detail,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }
}

impl AuditEntry {
    /// The hash this record's contents and link call for; differs from `hash` once edited.
    pub fn expected_hash(&self) -> String {
        let event = AuditEvent {
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome,
            request_id: self.request_id.clone(),
            detail: self.detail.clone(),
        };
        chain_hash(self.seq, &self.prev_hash, &event)
    }
}

/// SHA-256 over the previous hash and every field, each length-prefixed so no two
/// different records can produce the same input.
fn chain_hash(seq: i64, prev_hash: &str, event: &AuditEvent) -> String {
    let mut hasher = Sha256::new();
    let at = event.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let fields: [Option<&str>; 8] = [
        Some(prev_hash),
        Some(&at),
        Some(&event.actor),
        Some(&event.action),
        event.target.as_deref(),
        Some(event.outcome.as_str()),
        event.request_id.as_deref(),
        event.detail.as_deref(),
    ];
    hasher.update(seq.to_be_bytes());
    for field in fields {
        match field {
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
            None => hasher.update([0u8]),
        }
    }
    hex::encode(hasher.finalize())
}

/// Where a chain of audit records first breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Walks a chain in order, remembering the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: String,
    checked: u64,
    broken: Option<ChainBreak>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            last_seq: 0,
            last_hash: GENESIS_HASH.to_string(),
            checked: 0,
            broken: None,
        }
    }
}

impl ChainVerifier {
    /// Checks the next record; returns false once the chain is broken.
    pub fn check(&mut self, entry: &AuditEntry) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.checked += 1;
        let reason = if entry.seq != self.last_seq + 1 {
            Some(if entry.seq > self.last_seq + 1 {
                format!(
                    "record #{} is missing: the chain jumps from #{} to #{}",
                    self.last_seq + 1,
                    self.last_seq,
                    entry.seq
                )
            } else {
                format!(
                    "record #{} is out of order after #{}",
                    entry.seq, self.last_seq
                )
            })
        } else if entry.prev_hash != self.last_hash {
            Some(format!(
                "record #{} does not link to the record before it: a record was deleted, reordered or changed",
                entry.seq
            ))
        } else if entry.expected_hash() != entry.hash {
            Some(format!(
                "record #{} was changed after it was written",
                entry.seq
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            self.broken = Some(ChainBreak {
                seq: entry.seq,
                reason,
            });
            return false;
        }
        self.last_seq = entry.seq;
        self.last_hash = entry.hash.clone();
        true
    }

    /// Checks that the chain ends where the stored head says it does (a deleted last
    /// record leaves no gap behind it).
    pub fn finish(&mut self, head: Option<(i64, &str)>) {
        if self.broken.is_some() {
            return;
        }
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH));
        if head_seq != self.last_seq || head_hash != self.last_hash {
            self.broken = Some(ChainBreak {
                seq: self.last_seq + 1,
                reason: format!(
                    "the trail ends at record #{} but its head says #{}: records at the end were deleted or changed",
                    self.last_seq, head_seq
                ),
            });
        }
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    pub fn broken(&self) -> Option<&ChainBreak> {
        self.broken.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            at: Utc::now(),
            actor: "alice".into(),
            action: action.into(),
            target: Some("runbook:1".into()),
            outcome: AuditOutcome::Success,
            request_id: None,
            detail: Some(r#"{"version":2}"#.into()),
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut entries: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let prev = entries
                .last()
                .map(|e| e.hash.clone())
                .unwrap_or_else(|| GENESIS_HASH.to_string());
            entries.push(event(&format!("runbook.update{i}")).chain(i as i64 + 1, &prev));
        }
        entries
    }

    fn verify(entries: &[AuditEntry], head: Option<(i64, &str)>) -> Option<ChainBreak> {
        let mut verifier = ChainVerifier::default();
        for entry in entries {
            if !verifier.check(entry) {
                break;
            }
        }
        verifier.finish(head);
        verifier.broken().cloned()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let entries = chain(5);
        let last = entries.last().unwrap();
        assert_eq!(verify(&entries, Some((5, &last.hash))), None);
        assert_eq!(verify(&[], None), None);
    }

    #[test]
    fn edits_deletions_and_swaps_are_found_where_they_happened() {
        let entries = chain(5);
        let head = (5, entries[4].hash.clone());
        let head = Some((head.0, head.1.as_str()));

        let mut edited = entries.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify(&edited, head).unwrap().seq, 3);

        let mut deleted = entries.clone();
        deleted.remove(1);
        let broken = verify(&deleted, head).unwrap();
        assert_eq!(broken.seq, 3, "the first record whose link fails");
        assert!(
            broken.reason.contains("record #2 is missing"),
            "{}",
            broken.reason
        );

        let mut swapped = entries.clone();
        swapped.swap(1, 3);
        assert_eq!(verify(&swapped, head).unwrap().seq, 4);

        // Swapping contents but keeping positions breaks the links too.
        let mut renumbered = entries.clone();
        renumbered.swap(1, 3);
        renumbered[1].seq = 2;
        renumbered[3].seq = 4;
        assert_eq!(verify(&renumbered, head).unwrap().seq, 2);

        let truncated = &entries[..4];
        assert_eq!(verify(truncated, head).unwrap().seq, 5);
    }
}

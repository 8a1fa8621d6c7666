//! Who may call: users, API keys (random tokens stored only as hashes) and the
//! authentication of a token, with a lockout for clients that keep guessing.

use crate::audit::{append, Subject};
use crate::service::now;
use crate::{Actor, CoreError, Service};
use chrono::{DateTime, Utc};
use rand::RngCore;
use runbook_domain::{AuditOutcome, Role, User, UserChange};
use runbook_store::{ApiKeyRecord, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// An API key as listed: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    /// The key's own role, or its user's current role.
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub user_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created, with its token: the only time the token is seen.
#[derive(Debug, Clone, Serialize)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub key: ApiKeyInfo,
    pub token: String,
}

/// The body of a key request: a role, or a user whose role the key takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub name: String,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub user_id: Option<Uuid>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The body of a create-user request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
}

/// How many failed authentications a client may make before it must wait.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures allowed within `window`; the next one locks the client out.
    pub max_failures: u32,
    pub window: Duration,
    /// How long a locked-out client gets 429, whatever it sends.
    pub lockout: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        }
    }
}

/// Clients tracked at most; the oldest entries go first when it is full.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Failed authentications per client (an address), in memory.
pub(crate) struct Lockout {
    policy: LockoutPolicy,
    clients: Mutex<HashMap<String, Attempts>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    first: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Lockout {
    pub(crate) fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// How long the client must still wait, if it is locked out.
    fn locked(&self, client: &str) -> Option<Duration> {
        let clients = self.clients.lock().expect("lockout lock");
        let until = clients.get(client)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; true when this one locks the client out.
    fn fail(&self, client: &str) -> bool {
        let now = Instant::now();
        let mut clients = self.clients.lock().expect("lockout lock");
        if clients.len() >= MAX_TRACKED_CLIENTS && !clients.contains_key(client) {
            let window = self.policy.window.max(self.policy.lockout);
            clients.retain(|_, a| now.duration_since(a.first) < window);
            if clients.len() >= MAX_TRACKED_CLIENTS {
                if let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, a)| a.first)
                    .map(|(k, _)| k.clone())
                {
                    clients.remove(&oldest);
                }
            }
        }
        let attempts = clients.entry(client.to_string()).or_insert(Attempts {
            first: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(attempts.first) > self.policy.window
            || attempts.locked_until.is_some_and(|until| until <= now)
        {
            *attempts = Attempts {
                first: now,
                failures: 0,
                locked_until: None,
            };
        }
        attempts.failures += 1;
        if attempts.failures > self.policy.max_failures && attempts.locked_until.is_none() {
            attempts.locked_until = Some(now + self.policy.lockout);
            return true;
        }
        false
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_name(name: &str, what: &str) -> Result<String, CoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(CoreError::unprocessable(
            "invalid_name",
            format!("a {what} needs a name of 1 to 100 characters, without control characters"),
        ));
    }
    Ok(name.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, CoreError> {
    if !body.is_object() {
        return Err(CoreError::bad_request(
            "bad_request",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(body)
        .map_err(|e| CoreError::unprocessable("invalid_type", e.to_string()))
}

impl Service {
    // ---- users ----

    /// Every user, by name (admin).
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>, CoreError> {
        self.require(actor, Role::Admin, "user.list").await?;
        Ok(self.store.list_users().await?)
    }

    /// Adds a user (admin).
    pub async fn create_user(
        &self,
        actor: &Actor,
        body: serde_json::Value,
    ) -> Result<User, CoreError> {
        let result = async {
            actor.require(Role::Admin)?;
            let new: NewUser = parse(body)?;
            let at = now();
            let user = User {
                id: Uuid::new_v4(),
                name: check_name(&new.name, "user")?,
                role: new.role,
                created_at: at,
                updated_at: at,
                disabled_at: None,
            };
            match self.store.insert_user(&user).await {
                Ok(()) => Ok(user),
                Err(StoreError::Duplicate) => Err(CoreError::Conflict {
                    code: "duplicate_name",
                    message: format!("a user named `{}` exists", user.name),
                }),
                Err(other) => Err(other.into()),
            }
        }
        .await;
        // A refused create has no user: its record still names what it was about.
        self.audited(
            actor,
            "user.create",
            Subject::new("user:new"),
            result,
            |user| {
                Subject::new(format!("user:{}", user.name))
                    .with(serde_json::json!({"role": user.role}))
            },
        )
        .await
    }

    /// Changes a user's role or disables/enables them (admin).
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: Uuid,
        body: serde_json::Value,
    ) -> Result<User, CoreError> {
        let mut target = format!("user:{id}");
        let result = async {
            actor.require(Role::Admin)?;
            let change: UserChange = parse(body)?;
            let user = self.load_user(id).await?;
            target = format!("user:{}", user.name);
            let user = self
                .store
                .update_user(id, change, now())
                .await?
                .ok_or(CoreError::NotFound { what: "user" })?;
            Ok(user)
        }
        .await;
        self.audited(actor, "user.update", Subject::new(target), result, |user| {
            Subject::none().with(serde_json::json!({
                "role": user.role, "disabled": user.disabled_at.is_some()
            }))
        })
        .await
    }

    /// Deletes a user and revokes their keys (admin).
    pub async fn delete_user(&self, actor: &Actor, id: Uuid) -> Result<(), CoreError> {
        let mut target = format!("user:{id}");
        let result = async {
            actor.require(Role::Admin)?;
            let user = self.load_user(id).await?;
            target = format!("user:{}", user.name);
            if self.store.delete_user(id, now()).await? {
                Ok(())
            } else {
                Err(CoreError::NotFound { what: "user" })
            }
        }
        .await;
        self.audited(actor, "user.delete", Subject::new(target), result, |_| {
            Subject::none()
        })
        .await
    }

    async fn load_user(&self, id: Uuid) -> Result<User, CoreError> {
        self.store
            .get_user(id)
            .await?
            .ok_or(CoreError::NotFound { what: "user" })
    }

    // ---- API keys ----

    /// Every key, newest first, never a token (admin).
    pub async fn list_api_keys(&self, actor: &Actor) -> Result<Vec<ApiKeyInfo>, CoreError> {
        self.require(actor, Role::Admin, "key.list").await?;
        let users: HashMap<Uuid, User> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|user| (user.id, user))
            .collect();
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .map(|key| key_info(key, &users))
            .collect())
    }

    /// Creates an API key from a request body (admin); the token is returned once.
    pub async fn create_key(
        &self,
        actor: &Actor,
        body: serde_json::Value,
    ) -> Result<NewApiKey, CoreError> {
        match parse::<KeyRequest>(body) {
            Ok(request) => self.issue_key(actor, request).await,
            Err(error) => {
                let result = actor.require(Role::Admin).and(Err(error));
                self.audited(
                    actor,
                    "key.create",
                    Subject::new("key:new"),
                    result,
                    |_: &NewApiKey| Subject::none(),
                )
                .await
            }
        }
    }

    /// Creates an API key with a role of its own (admin); the token is returned once.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<NewApiKey, CoreError> {
        let request = KeyRequest {
            name: name.to_string(),
            role: Some(role),
            ..KeyRequest::default()
        };
        self.issue_key(actor, request).await
    }

    /// Creates an API key (admin): a role of its own, or a user's.
    pub async fn issue_key(
        &self,
        actor: &Actor,
        request: KeyRequest,
    ) -> Result<NewApiKey, CoreError> {
        let result = async {
            actor.require(Role::Admin)?;
            let name = check_name(&request.name, "key")?;
            // A user's key acts with the user's role (read afresh at every use).
            let (user, role) = match (request.role, request.user_id) {
                (Some(role), None) => (None, role),
                (None, Some(user_id)) => {
                    let user = self.store.get_user(user_id).await?.ok_or_else(|| {
                        CoreError::unprocessable("unknown_user", "there is no user with that id")
                    })?;
                    let role = user.role;
                    (Some(user), role)
                }
                _ => {
                    return Err(CoreError::unprocessable(
                        "invalid_owner",
                        "give a key either a role or a user_id, not both",
                    ))
                }
            };
            let at = now();
            if request.expires_at.is_some_and(|expires| expires <= at) {
                return Err(CoreError::unprocessable(
                    "invalid_expiry",
                    "expires_at must be in the future",
                ));
            }
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            let token = format!("rbs_{}", hex::encode(secret));
            let record = ApiKeyRecord {
                id: Uuid::new_v4(),
                name,
                role,
                token_hash: hash_token(&token),
                created_at: at,
                last_used_at: None,
                expires_at: request.expires_at,
                revoked_at: None,
                user_id: user.as_ref().map(|u| u.id),
            };
            self.store.insert_api_key(&record).await?;
            let users: HashMap<Uuid, User> = user.into_iter().map(|u| (u.id, u)).collect();
            Ok(NewApiKey {
                key: key_info(record, &users),
                token,
            })
        }
        .await;
        self.audited(
            actor,
            "key.create",
            Subject::new("key:new"),
            result,
            |new| {
                Subject::new(format!("key:{}", new.key.id)).with(serde_json::json!({
                    "name": new.key.name, "role": new.key.role, "user": new.key.user_name,
                }))
            },
        )
        .await
    }

    /// Revokes a key at once (admin); it stays listed.
    pub async fn revoke_api_key(&self, actor: &Actor, id: Uuid) -> Result<(), CoreError> {
        let result = async {
            actor.require(Role::Admin)?;
            if self.store.revoke_api_key(id, now()).await? {
                Ok(())
            } else {
                Err(CoreError::NotFound { what: "key" })
            }
        }
        .await;
        self.audited(
            actor,
            "key.revoke",
            Subject::new(format!("key:{id}")),
            result,
            |_| Subject::none(),
        )
        .await
    }

    /// The actor an API key token stands for. `client` identifies the caller (its
    /// address) for the lockout: after repeated failures it gets 429 for a while.
    pub async fn authenticate(&self, token: &str, client: &str) -> Result<Actor, CoreError> {
        if let Some(wait) = self.lockout.locked(client) {
            // Rounded up: a client that waits as told is let in.
            return Err(CoreError::TooManyAttempts {
                retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
            });
        }
        match self.check_token(token).await {
            Ok(actor) => Ok(actor),
            Err(CoreError::Unauthenticated) => {
                let locked = self.lockout.fail(client);
                let subject = Subject::new(format!("client:{client}"))
                    .with(serde_json::json!({"locked_out": locked}));
                append(
                    self.store.as_ref(),
                    "anonymous",
                    None,
                    "auth.failure",
                    subject,
                    AuditOutcome::Failure,
                )
                .await;
                Err(CoreError::Unauthenticated)
            }
            Err(other) => Err(other),
        }
    }

    /// Whether a key that authenticated earlier still does (not revoked or expired, its
    /// user not disabled), for a response that outlives its request, such as an event
    /// stream. A key that no longer does is not a failed authentication: it neither
    /// counts toward its client's lockout nor is audited as one.
    pub async fn key_still_valid(&self, token: &str) -> Result<bool, CoreError> {
        match self.check_token(token).await {
            Ok(_) => Ok(true),
            Err(CoreError::Unauthenticated) => Ok(false),
            Err(other) => Err(other),
        }
    }

    async fn check_token(&self, token: &str) -> Result<Actor, CoreError> {
        if token.is_empty() || token.len() > 512 {
            return Err(CoreError::Unauthenticated);
        }
        let hash = hash_token(token);
        let key = self
            .store
            .find_api_key(&hash)
            .await?
            .ok_or(CoreError::Unauthenticated)?;
        let now = now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now) {
            return Err(CoreError::Unauthenticated);
        }
        let (name, role) = match key.user_id {
            Some(user_id) => match self.store.get_user(user_id).await? {
                Some(user) if user.disabled_at.is_none() => (user.name, user.role),
                _ => return Err(CoreError::Unauthenticated),
            },
            None => (key.name.clone(), key.role),
        };
        // Recording every use would add a write to every read; a minute's precision is enough.
        if key
            .last_used_at
            .is_none_or(|at| now - at > chrono::Duration::minutes(1))
        {
            self.store.touch_api_key(key.id, now).await?;
        }
        Ok(Actor {
            name,
            role,
            request_id: None,
        })
    }
}

fn key_info(key: ApiKeyRecord, users: &HashMap<Uuid, User>) -> ApiKeyInfo {
    let user = key.user_id.and_then(|id| users.get(&id));
    ApiKeyInfo {
        id: key.id,
        name: key.name,
        role: user.map_or(key.role, |u| u.role),
        user_id: key.user_id,
        user_name: user.map(|u| u.name.clone()),
        created_at: key.created_at,
        last_used_at: key.last_used_at,
        expires_at: key.expires_at,
        revoked_at: key.revoked_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_locked_out_after_too_many_failures_and_others_are_not() {
        let lockout = Lockout::new(LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        });
        for _ in 0..3 {
            assert!(!lockout.fail("10.0.0.1"));
        }
        assert!(lockout.locked("10.0.0.1").is_none());
        assert!(lockout.fail("10.0.0.1"));
        assert!(lockout.locked("10.0.0.1").is_some());
        assert!(lockout.locked("10.0.0.2").is_none());
    }

    #[test]
    fn a_lockout_ends() {
        let lockout = Lockout::new(LockoutPolicy {
            max_failures: 0,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(20),
        });
        assert!(lockout.fail("c"));
        assert!(lockout.locked("c").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(lockout.locked("c").is_none());
    }
}

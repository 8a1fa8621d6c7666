//! Credentials, users, API keys and the audit trail on PostgreSQL.

use crate::rows::{self, AuditRow, AUDIT_COLUMNS, CREDENTIAL_COLUMNS};
use crate::{
    is_active_admin, push_audit_filter, unique_violation, AccessStore, ApiKeyRecord, AuditFilter,
    CredentialRecord, PostgresStore, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{AuditEntry, AuditEvent, CredentialInfo, User, UserChange};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

type CredentialRow = rows::CredentialRow<Uuid>;
type UserRow = rows::UserRow<Uuid>;
type ApiKeyRow = rows::ApiKeyRow<Uuid>;

#[async_trait]
impl AccessStore for PostgresStore {
    async fn insert_credential(
        &self,
        record: &CredentialRecord,
        check: &[u8],
    ) -> Result<(), StoreError> {
        let info = &record.info;
        // The key check and the write in one transaction: a rotation cannot slip between.
        let mut tx = self.pool().begin().await?;
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed FROM vault_check WHERE id = 1 FOR SHARE")
                .fetch_optional(&mut *tx)
                .await?;
        if stored.as_deref() != Some(check) {
            return Err(crate::rotated());
        }
        sqlx::query(
            "INSERT INTO credentials (id, name, kind, description, username, header_name, hosts, sealed, created_at, updated_at, last_used_at, created_by, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(info.id)
        .bind(&info.name)
        .bind(info.kind.as_str())
        .bind(&info.description)
        .bind(&info.username)
        .bind(&info.header_name)
        .bind(rows::hosts_json(&info.hosts))
        .bind(&record.sealed)
        .bind(info.created_at)
        .bind(info.updated_at)
        .bind(info.last_used_at)
        .bind(&info.created_by)
        .bind(&info.updated_by)
        .execute(&mut *tx)
        .await
        .map_err(unique_violation)?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialInfo>, StoreError> {
        let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
            // By the bytes of the name, as on SQLite, whatever the database's collation.
            r#"SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY name COLLATE "C""#
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| row.into_record().map(|r| r.info))
            .collect()
    }

    async fn get_credential(&self, id: Uuid) -> Result<Option<CredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(CredentialRow::into_record).transpose()
    }

    async fn find_credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(CredentialRow::into_record).transpose()
    }

    async fn update_credential(
        &self,
        record: &CredentialRecord,
        check: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let info = &record.info;
        let mut tx = self.pool().begin().await?;
        if let Some(check) = check {
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT sealed FROM vault_check WHERE id = 1 FOR SHARE")
                    .fetch_optional(&mut *tx)
                    .await?;
            if stored.as_deref() != Some(check) {
                return Err(crate::rotated());
            }
            sqlx::query("UPDATE credentials SET sealed = $1 WHERE id = $2")
                .bind(&record.sealed)
                .bind(info.id)
                .execute(&mut *tx)
                .await?;
        }
        let result = sqlx::query(
            "UPDATE credentials SET description = $1, username = $2, header_name = $3, hosts = $4, updated_at = $5, updated_by = $6
             WHERE id = $7",
        )
        .bind(&info.description)
        .bind(&info.username)
        .bind(&info.header_name)
        .bind(rows::hosts_json(&info.hosts))
        .bind(info.updated_at)
        .bind(&info.updated_by)
        .bind(info.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_credential(&self, id: Uuid) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM credentials WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn vault_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM vault_check WHERE id = 1")
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn init_vault_check(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO vault_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(sealed)
        .execute(self.pool())
        .await?;
        self.vault_check()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the vault check value vanished".into()))
    }

    async fn reseal_credentials(
        &self,
        resealed: &[(Uuid, Vec<u8>, Vec<u8>)],
        old_check: &[u8],
        check: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // The check value first, as a credential's write takes its locks (the check
        // value, then the table): a write that read the old key ends before the rotation
        // goes on, instead of the two waiting for each other until one is killed.
        let key_kept =
            sqlx::query("UPDATE vault_check SET sealed = $1 WHERE id = 1 AND sealed = $2")
                .bind(check)
                .bind(old_check)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Lock the table against concurrent creates/deletes while the values are replaced.
        sqlx::query("LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials")
            .fetch_one(&mut *tx)
            .await?;
        if key_kept != 1 || stored != resealed.len() as i64 {
            return Err(crate::changed_during_rotation());
        }
        for (id, read, sealed) in resealed {
            let updated =
                sqlx::query("UPDATE credentials SET sealed = $1 WHERE id = $2 AND sealed = $3")
                    .bind(sealed)
                    .bind(id)
                    .bind(read)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if updated != 1 {
                return Err(crate::changed_during_rotation());
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, name, role, created_at, updated_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user.id)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .bind(user.updated_at)
        .bind(user.disabled_at)
        .execute(self.pool())
        .await
        .map_err(unique_violation)?;
        Ok(())
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(r#"SELECT * FROM users ORDER BY name COLLATE "C""#)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(UserRow::into_user).transpose()
    }

    async fn update_user(
        &self,
        id: Uuid,
        change: UserChange,
        at: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = admins_tx(self).await?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(None);
        };
        let user = change.apply(&before, at);
        sqlx::query("UPDATE users SET role = $1, updated_at = $2, disabled_at = $3 WHERE id = $4")
            .bind(user.role.as_str())
            .bind(user.updated_at)
            .bind(user.disabled_at)
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        if is_active_admin(&before) && !is_active_admin(&user) {
            admin_remains(&mut tx, at).await?;
        }
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn delete_user(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = admins_tx(self).await?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if is_active_admin(&before) {
            admin_remains(&mut tx, at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as("SELECT * FROM api_keys ORDER BY created_at DESC, id")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(ApiKeyRow::into_record).collect()
    }

    async fn revoke_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = admins_tx(self).await?;
        let before: Option<ApiKeyRow> =
            sqlx::query_as("SELECT * FROM api_keys WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before.map(ApiKeyRow::into_record).transpose()? else {
            return Ok(false);
        };
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if before.is_standing_admin(at) {
            admin_remains(&mut tx, at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let mut tx = self.pool().begin().await?;
        let entry = chain_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, i64), StoreError> {
        let mut count: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT COUNT(*) FROM audit_log WHERE 1 = 1");
        push_audit_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(self.pool()).await?;
        let mut page: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
        push_audit_filter(&mut page, filter);
        page.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<AuditRow> = page.build_query_as().fetch_all(self.pool()).await?;
        let items = rows
            .into_iter()
            .map(AuditRow::into_entry)
            .collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    async fn audit_chain(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(AuditRow::into_entry).collect()
    }

    async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        Ok(
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }
}

/// Appends `event` at the end of the chain within the caller's transaction, so a
/// change and the record of it commit together. The row lock on the head makes
/// writers take their turns: each chains onto the last.
pub(crate) async fn chain_audit(
    conn: &mut PgConnection,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *conn)
            .await?;
    let entry = event.chain(seq + 1, &hash);
    let insert = format!(
        "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    rows::bind_audit(sqlx::query(&insert), &entry)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(entry.seq)
        .bind(&entry.hash)
        .execute(&mut *conn)
        .await?;
    Ok(entry)
}

/// The advisory lock that serializes the changes which could take away the last admin.
const ADMINS_LOCK: i64 = 0x7275_6e62_6f6f_6b01;

/// A transaction holding [`ADMINS_LOCK`]: each statement in it (read committed) sees
/// what every earlier such change committed.
async fn admins_tx(
    store: &PostgresStore,
) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    // Read committed whatever the database's default: each statement after the lock
    // must see what the holder before committed.
    let mut tx = store
        .pool()
        .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADMINS_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The user `id` as the transaction sees it, locked.
async fn user_in(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(UserRow::into_user).transpose()
}

/// Fails with [`StoreError::LastAdmin`] unless an enabled admin user or a standing
/// admin key remains at `at`, as a transaction holding [`ADMINS_LOCK`] sees it.
async fn admin_remains(conn: &mut PgConnection, at: DateTime<Utc>) -> Result<(), StoreError> {
    let admin_users: i64 = sqlx::query_scalar(rows::ACTIVE_ADMIN_USERS)
        .fetch_one(&mut *conn)
        .await?;
    let keys: Vec<ApiKeyRow> = sqlx::query_as(rows::ADMIN_KEYS_OF_NO_USER)
        .fetch_all(conn)
        .await?;
    rows::admin_remains(admin_users, keys, at)
}

//! Credentials, users, API keys and the audit trail on SQLite.

use crate::rows::{self, AuditRow, AUDIT_COLUMNS, CREDENTIAL_COLUMNS};
use crate::{
    is_active_admin, push_audit_filter, unique_violation, AccessStore, ApiKeyRecord, AuditFilter,
    CredentialRecord, SqliteStore, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use runbook_domain::{AuditEntry, AuditEvent, CredentialInfo, User, UserChange};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

type CredentialRow = rows::CredentialRow<String>;
type UserRow = rows::UserRow<String>;
type ApiKeyRow = rows::ApiKeyRow<String>;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn insert_credential(
        &self,
        record: &CredentialRecord,
        check: &[u8],
    ) -> Result<(), StoreError> {
        let info = &record.info;
        // The key check and the write in one transaction: a rotation cannot slip between.
        let mut tx = self.write_tx().await?;
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed FROM vault_check WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        if stored.as_deref() != Some(check) {
            return Err(crate::rotated());
        }
        sqlx::query(
            "INSERT INTO credentials (id, name, kind, description, username, header_name, hosts, sealed, created_at, updated_at, last_used_at, created_by, updated_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(info.id.to_string())
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
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|row| row.into_record().map(|r| r.info))
            .collect()
    }

    async fn get_credential(&self, id: Uuid) -> Result<Option<CredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.map(CredentialRow::into_record).transpose()
    }

    async fn find_credential(&self, name: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE name = ?"
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
        let mut tx = self.write_tx().await?;
        if let Some(check) = check {
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT sealed FROM vault_check WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            if stored.as_deref() != Some(check) {
                return Err(crate::rotated());
            }
            sqlx::query("UPDATE credentials SET sealed = ? WHERE id = ?")
                .bind(&record.sealed)
                .bind(info.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let result = sqlx::query(
            "UPDATE credentials SET description = ?, username = ?, header_name = ?, hosts = ?, updated_at = ?, updated_by = ?
             WHERE id = ?",
        )
        .bind(&info.description)
        .bind(&info.username)
        .bind(&info.header_name)
        .bind(rows::hosts_json(&info.hosts))
        .bind(info.updated_at)
        .bind(&info.updated_by)
        .bind(info.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_credential(&self, id: Uuid) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM credentials WHERE id = ?")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE credentials SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id.to_string())
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
        sqlx::query("INSERT OR IGNORE INTO vault_check (id, sealed) VALUES (1, ?)")
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
        let mut tx = self.write_tx().await?;
        let key_kept = sqlx::query("UPDATE vault_check SET sealed = ? WHERE id = 1 AND sealed = ?")
            .bind(check)
            .bind(old_check)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials")
            .fetch_one(&mut *tx)
            .await?;
        if key_kept != 1 || stored != resealed.len() as i64 {
            return Err(crate::changed_during_rotation());
        }
        for (id, read, sealed) in resealed {
            let updated =
                sqlx::query("UPDATE credentials SET sealed = ? WHERE id = ? AND sealed = ?")
                    .bind(sealed)
                    .bind(id.to_string())
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
            "INSERT INTO users (id, name, role, created_at, updated_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
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
        let rows: Vec<UserRow> = sqlx::query_as("SELECT * FROM users ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = ?")
            .bind(id.to_string())
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
        let mut tx = self.write_tx().await?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(None);
        };
        let user = change.apply(&before, at);
        sqlx::query("UPDATE users SET role = ?, updated_at = ?, disabled_at = ? WHERE id = ?")
            .bind(user.role.as_str())
            .bind(user.updated_at)
            .bind(user.disabled_at)
            .bind(user.id.to_string())
            .execute(&mut *tx)
            .await?;
        if is_active_admin(&before) && !is_active_admin(&user) {
            admin_remains(&mut tx, at).await?;
        }
        tx.commit().await?;
        Ok(Some(user))
    }

    async fn delete_user(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let Some(before) = user_in(&mut tx, id).await? else {
            return Ok(false);
        };
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.to_string())
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
        let mut tx = self.write_tx().await?;
        let before: Option<ApiKeyRow> = sqlx::query_as("SELECT * FROM api_keys WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before.map(ApiKeyRow::into_record).transpose()? else {
            return Ok(false);
        };
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if before.is_standing_admin(at) {
            admin_remains(&mut tx, at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        // The write lock first, so two writers never chain onto the same head.
        let mut tx = self.write_tx().await?;
        let entry = chain_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<(Vec<AuditEntry>, i64), StoreError> {
        let mut count: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT COUNT(*) FROM audit_log WHERE 1 = 1");
        push_audit_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(self.pool()).await?;
        let mut page: QueryBuilder<Sqlite> =
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
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
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

/// Appends `event` at the end of the chain within the caller's write transaction, so
/// a change and the record of it commit together.
pub(crate) async fn chain_audit(
    conn: &mut SqliteConnection,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let entry = event.chain(seq + 1, &hash);
    let insert =
        format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    rows::bind_audit(sqlx::query(&insert), &entry)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(entry.seq)
        .bind(&entry.hash)
        .execute(&mut *conn)
        .await?;
    Ok(entry)
}

/// The user `id` as the transaction sees it.
async fn user_in(conn: &mut SqliteConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    let row: Option<UserRow> = sqlx::query_as("SELECT * FROM users WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(UserRow::into_user).transpose()
}

/// Fails with [`StoreError::LastAdmin`] unless, as the transaction (which holds the
/// write lock) sees it, an enabled admin user or a standing admin key remains at `at`.
async fn admin_remains(conn: &mut SqliteConnection, at: DateTime<Utc>) -> Result<(), StoreError> {
    let admin_users: i64 = sqlx::query_scalar(rows::ACTIVE_ADMIN_USERS)
        .fetch_one(&mut *conn)
        .await?;
    let keys: Vec<ApiKeyRow> = sqlx::query_as(rows::ADMIN_KEYS_OF_NO_USER)
        .fetch_all(conn)
        .await?;
    rows::admin_remains(admin_users, keys, at)
}

//! The SQL shared by both back ends, written once. `impl_store!` expands the same
//! method bodies for SQLite and PostgreSQL pools; each back end only adds how it
//! connects and how it serialises audit appends.

macro_rules! user_cols {
    () => {
        "id, username, role, disabled, must_change_password, created_at, updated_at, last_login_at"
    };
}
macro_rules! group_cols {
    () => {
        "id, name, description, rpm_limit, tpm_limit, mcp_tool_allow, mcp_tool_deny, managed_by, created_at, updated_at"
    };
}
macro_rules! key_cols { () => { "id, name, group_id, prefix, scopes, rpm_limit, tpm_limit, expires_at, revoked_at, last_used_at, created_at, created_by, managed_by" }; }
macro_rules! cred_cols {
    () => {
        "id, name, provider, hint, master_key_id, managed_by, created_at, updated_at"
    };
}
macro_rules! proxy_cols { () => { "id, name, kind, provider, upstream_url, credential_id, listen_port, auth_mode, auto_start, connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, max_body_bytes, policies, mcp_auto_approve, upstream_command, upstream_args, upstream_env, mcp_servers, mcp_separator, mcp_prefix_mode, mcp_tool_allow, mcp_tool_deny, mcp_tool_rate_limits, mcp_tool_labels, mcp_flow_rules, managed_by, created_at, updated_at" }; }
macro_rules! event_cols { () => { "id, at, proxy_id, proxy_name, endpoint, key_id, group_id, end_user, model, status, decision, error, stream, latency_us, ttft_us, overhead_us, input_tokens, output_tokens, cached_tokens, request_bytes, response_bytes, findings, cost_usd" }; }
macro_rules! policy_cols {
    () => {
        "name, description, rule_count, pack, created_at, updated_at"
    };
}
macro_rules! prompt_cols {
    () => {
        "id, name, description, content, created_at, updated_at"
    };
}
macro_rules! alert_cols { () => { "id, created_at, event_id, proxy_id, proxy_name, rule, category, severity, action, location, key_id, group_id, status, status_changed_at, status_changed_by, note" }; }
macro_rules! audit_cols {
    () => {
        "id, at, actor, action, target, details, client_addr, prev_hash, hash"
    };
}

/// Row counts of multi-row inserts, largest first: a batch is cut into these.
pub(crate) const INSERT_SIZES: [usize; 5] = [500, 100, 20, 5, 1];

/// `items` cut into chunks whose lengths are all in [`INSERT_SIZES`].
pub(crate) fn ladder_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = INSERT_SIZES.into_iter().find(|&n| n <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Binds a proxy spec's columns, in `proxy_cols!` order after `id`.
macro_rules! bind_spec {
    ($query:expr, $spec:expr) => {
        $query
            .bind(&$spec.name)
            .bind(enum_text(&$spec.kind))
            .bind($spec.provider.as_str())
            .bind(&$spec.upstream_url)
            .bind($spec.credential_id.as_deref())
            .bind($spec.listen_port.map(i64::from))
            .bind(enum_text(&$spec.auth_mode))
            .bind($spec.auto_start)
            .bind(signed($spec.connect_timeout_ms))
            .bind(signed($spec.first_byte_timeout_ms))
            .bind(signed($spec.idle_timeout_ms))
            .bind(signed($spec.max_body_bytes))
            .bind(serde_json::to_string(&$spec.policies).unwrap_or_else(|_| "[]".into()))
            .bind($spec.mcp_auto_approve)
            .bind($spec.upstream_command.as_deref())
            .bind(serde_json::to_string(&$spec.upstream_args).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&$spec.upstream_env).unwrap_or_else(|_| "{}".into()))
            .bind(serde_json::to_string(&$spec.mcp_servers).unwrap_or_else(|_| "[]".into()))
            .bind($spec.mcp_separator.as_deref())
            .bind($spec.mcp_prefix_mode.as_deref())
            .bind(serde_json::to_string(&$spec.mcp_tool_allow).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&$spec.mcp_tool_deny).unwrap_or_else(|_| "[]".into()))
            .bind(
                serde_json::to_string(&$spec.mcp_tool_rate_limits).unwrap_or_else(|_| "{}".into()),
            )
            .bind(serde_json::to_string(&$spec.mcp_tool_labels).unwrap_or_else(|_| "{}".into()))
            .bind(
                $spec
                    .mcp_flow_rules
                    .as_ref()
                    .and_then(|r| serde_json::to_string(r).ok()),
            )
    };
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn migrate(&self) -> $crate::Result<()> {
                Self::migrator().run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn create_user(&self, user: $crate::NewUser, now: jiff::Timestamp) -> $crate::Result<portcullis_core::model::User> {
                let id = portcullis_core::id::new_id();
                sqlx::query("INSERT INTO users (id, username, password_hash, role, disabled, must_change_password, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                    .bind(&id)
                    .bind(&user.username)
                    .bind(&user.password_hash)
                    .bind(user.role.as_str())
                    .bind(false)
                    .bind(user.must_change_password)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("user {:?}", user.username)))?;
                self.user(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("user vanished after insert".into()))
            }

            async fn user(&self, id: &str) -> $crate::Result<Option<portcullis_core::model::User>> {
                let q = concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1");
                sqlx::query_as::<_, UserRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn user_with_hash(&self, username: &str) -> $crate::Result<Option<(portcullis_core::model::User, String)>> {
                let q = concat!("SELECT ", user_cols!(), ", password_hash FROM users WHERE username = $1");
                match sqlx::query_as::<_, UserHashRow>(q).bind(username).fetch_optional(&self.pool).await? {
                    Some(row) => Ok(Some((row.user.try_into()?, row.password_hash))),
                    None => Ok(None),
                }
            }

            async fn list_users(&self) -> $crate::Result<Vec<portcullis_core::model::User>> {
                let q = concat!("SELECT ", user_cols!(), " FROM users ORDER BY username");
                sqlx::query_as::<_, UserRow>(q).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_user(&self, id: &str, patch: $crate::UserPatch, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::model::User>> {
                sqlx::query("UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(patch.role.map(|r| r.as_str()))
                    .bind(patch.disabled)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await?;
                self.user(id).await
            }

            async fn set_password(&self, id: &str, hash: &str, must_change: bool, now: jiff::Timestamp) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE users SET password_hash = $2, must_change_password = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(hash)
                    .bind(must_change)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_user(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn count_active_admins(&self) -> $crate::Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = $1")
                    .bind(false)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n.max(0) as u64)
            }

            async fn record_login(&self, id: &str, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1").bind(id).bind(ms(now)).execute(&self.pool).await?;
                Ok(())
            }

            async fn create_session(&self, session: $crate::NewSession, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(&session.id)
                    .bind(&session.user_id)
                    .bind(ms(now))
                    .bind(ms(session.expires_at))
                    .execute(&self.pool)
                    .await?;
                // Keep the table small: expired sessions are useless.
                sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(ms(now)).execute(&self.pool).await?;
                Ok(())
            }

            async fn session_active(&self, id: &str, now: jiff::Timestamp) -> $crate::Result<bool> {
                let found: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2")
                    .bind(id)
                    .bind(ms(now))
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.is_some())
            }

            async fn revoke_session(&self, id: &str, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL").bind(id).bind(ms(now)).execute(&self.pool).await?;
                Ok(())
            }

            async fn revoke_user_sessions(&self, user_id: &str, keep: Option<&str>, now: jiff::Timestamp) -> $crate::Result<u64> {
                let done = sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2)")
                    .bind(user_id)
                    .bind(keep)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_group(&self, name: &str, description: &str, now: jiff::Timestamp) -> $crate::Result<portcullis_core::model::Group> {
                let id = portcullis_core::id::new_id();
                sqlx::query("INSERT INTO groups (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                    .bind(&id)
                    .bind(name)
                    .bind(description)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("group {name:?}")))?;
                self.group(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("group vanished after insert".into()))
            }

            async fn group(&self, id: &str) -> $crate::Result<Option<portcullis_core::model::Group>> {
                let q = concat!("SELECT ", group_cols!(), " FROM groups WHERE id = $1");
                Ok(sqlx::query_as::<_, GroupRow>(q).bind(id).fetch_optional(&self.pool).await?.map(Into::into))
            }

            async fn list_groups(&self) -> $crate::Result<Vec<portcullis_core::model::Group>> {
                let q = concat!("SELECT ", group_cols!(), " FROM groups ORDER BY name");
                Ok(sqlx::query_as::<_, GroupRow>(q).fetch_all(&self.pool).await?.into_iter().map(Into::into).collect())
            }

            async fn update_group(&self, id: &str, patch: $crate::GroupPatch, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::model::Group>> {
                let limits = patch.rate_limits.unwrap_or_default();
                sqlx::query("UPDATE groups SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = $4, \
                             rpm_limit = CASE WHEN $5 THEN $6 ELSE rpm_limit END, tpm_limit = CASE WHEN $5 THEN $7 ELSE tpm_limit END, \
                             mcp_tool_allow = COALESCE($8, mcp_tool_allow), mcp_tool_deny = COALESCE($9, mcp_tool_deny) WHERE id = $1")
                    .bind(id)
                    .bind(patch.name.as_deref())
                    .bind(patch.description.as_deref())
                    .bind(ms(now))
                    .bind(patch.rate_limits.is_some())
                    .bind(limit_col(limits.rpm))
                    .bind(limit_col(limits.tpm))
                    .bind(patch.mcp_tool_allow.as_ref().and_then(|l| serde_json::to_string(l).ok()))
                    .bind(patch.mcp_tool_deny.as_ref().and_then(|l| serde_json::to_string(l).ok()))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("group {:?}", patch.name.as_deref().unwrap_or(""))))?;
                self.group(id).await
            }

            async fn delete_group(&self, id: &str) -> $crate::Result<bool> {
                let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE group_id = $1").bind(id).fetch_one(&self.pool).await?;
                if keys > 0 {
                    return Err($crate::StoreError::Conflict(format!("group still has {keys} API key(s); delete or move them first")));
                }
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM system_prompt_bindings WHERE target_kind = 'group' AND target_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM groups WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(conflict("group"))?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_api_key(&self, key: $crate::NewApiKey, now: jiff::Timestamp) -> $crate::Result<portcullis_core::model::ApiKey> {
                let id = portcullis_core::id::new_id();
                sqlx::query("INSERT INTO api_keys (id, name, group_id, prefix, key_hash, scopes, expires_at, created_at, created_by, rpm_limit, tpm_limit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                    .bind(&id)
                    .bind(&key.name)
                    .bind(&key.group_id)
                    .bind(&key.prefix)
                    .bind(&key.key_hash)
                    .bind(scopes_text(&key.scopes))
                    .bind(key.expires_at.map(ms))
                    .bind(ms(now))
                    .bind(&key.created_by)
                    .bind(limit_col(key.rate_limits.rpm))
                    .bind(limit_col(key.rate_limits.tpm))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict("API key"))?;
                self.api_key(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("key vanished after insert".into()))
            }

            async fn api_key(&self, id: &str) -> $crate::Result<Option<portcullis_core::model::ApiKey>> {
                let q = concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = $1");
                sqlx::query_as::<_, ApiKeyRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> $crate::Result<Option<(portcullis_core::model::ApiKey, String)>> {
                let q = concat!("SELECT ", key_cols!(), ", key_hash FROM api_keys WHERE prefix = $1");
                match sqlx::query_as::<_, ApiKeyHashRow>(q).bind(prefix).fetch_optional(&self.pool).await? {
                    Some(row) => Ok(Some((row.key.try_into()?, row.key_hash))),
                    None => Ok(None),
                }
            }

            async fn list_api_keys(&self, group_id: Option<&str>) -> $crate::Result<Vec<portcullis_core::model::ApiKey>> {
                let q = concat!("SELECT ", key_cols!(), " FROM api_keys WHERE ($1 IS NULL OR group_id = $1) ORDER BY created_at DESC, id DESC");
                sqlx::query_as::<_, ApiKeyRow>(q).bind(group_id).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn revoke_api_key(&self, id: &str, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::model::ApiKey>> {
                sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL").bind(id).bind(ms(now)).execute(&self.pool).await?;
                self.api_key(id).await
            }

            async fn set_api_key_rate_limits(&self, id: &str, limits: portcullis_core::model::RateLimits) -> $crate::Result<Option<portcullis_core::model::ApiKey>> {
                sqlx::query("UPDATE api_keys SET rpm_limit = $2, tpm_limit = $3 WHERE id = $1")
                    .bind(id)
                    .bind(limit_col(limits.rpm))
                    .bind(limit_col(limits.tpm))
                    .execute(&self.pool)
                    .await?;
                self.api_key(id).await
            }

            async fn touch_api_key(&self, id: &str, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1").bind(id).bind(ms(now)).execute(&self.pool).await?;
                Ok(())
            }

            async fn create_credential(&self, c: $crate::NewCredential, now: jiff::Timestamp) -> $crate::Result<portcullis_core::model::Credential> {
                sqlx::query("INSERT INTO credentials (id, name, provider, hint, sealed, master_key_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
                    .bind(&c.id)
                    .bind(&c.name)
                    .bind(c.provider.as_str())
                    .bind(&c.hint)
                    .bind(&c.sealed)
                    .bind(&c.master_key_id)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("credential {:?}", c.name)))?;
                self.credential(&c.id).await?.ok_or_else(|| $crate::StoreError::Corrupt("credential vanished after insert".into()))
            }

            async fn credential(&self, id: &str) -> $crate::Result<Option<portcullis_core::model::Credential>> {
                let q = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE id = $1");
                sqlx::query_as::<_, CredentialRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_credentials(&self) -> $crate::Result<Vec<portcullis_core::model::Credential>> {
                let q = concat!("SELECT ", cred_cols!(), " FROM credentials ORDER BY name");
                sqlx::query_as::<_, CredentialRow>(q).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_credential(&self, id: &str, patch: $crate::CredentialPatch, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::model::Credential>> {
                let (sealed, hint, key_id) = match patch.secret {
                    Some((s, h, k)) => (Some(s), Some(h), Some(k)),
                    None => (None, None, None),
                };
                sqlx::query("UPDATE credentials SET name = COALESCE($2, name), sealed = COALESCE($3, sealed), hint = COALESCE($4, hint), master_key_id = COALESCE($5, master_key_id), updated_at = $6 WHERE id = $1")
                    .bind(id)
                    .bind(patch.name.as_deref())
                    .bind(sealed)
                    .bind(hint)
                    .bind(key_id)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("credential {:?}", patch.name.as_deref().unwrap_or(""))))?;
                self.credential(id).await
            }

            async fn delete_credential(&self, id: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM credentials WHERE id = $1").bind(id).execute(&self.pool).await.map_err(conflict("credential"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn sealed_credentials(&self) -> $crate::Result<Vec<$crate::SealedCredential>> {
                let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, sealed FROM credentials ORDER BY id").fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(id, sealed)| $crate::SealedCredential { id, sealed }).collect())
            }

            async fn reseal_credentials(&self, resealed: Vec<$crate::SealedCredential>, master_key_id: &str, now: jiff::Timestamp) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                for c in &resealed {
                    sqlx::query("UPDATE credentials SET sealed = $2, master_key_id = $3, updated_at = $4 WHERE id = $1")
                        .bind(&c.id)
                        .bind(&c.sealed)
                        .bind(master_key_id)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_proxy(&self, spec: &portcullis_core::proxy::ProxySpec, managed_by: portcullis_core::proxy::ManagedBy, now: jiff::Timestamp) -> $crate::Result<portcullis_core::proxy::Proxy> {
                let id = portcullis_core::id::new_id();
                bind_spec!(sqlx::query(concat!("INSERT INTO proxies (", proxy_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $28)"))
                    .bind(&id), spec)

                    .bind(enum_text(&managed_by))
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("proxy {:?} (or its port, or its credential)", spec.name)))?;
                self.proxy(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("proxy vanished after insert".into()))
            }

            async fn proxy(&self, id: &str) -> $crate::Result<Option<portcullis_core::proxy::Proxy>> {
                sqlx::query_as::<_, ProxyRow>(concat!("SELECT ", proxy_cols!(), " FROM proxies WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn proxy_by_name(&self, name: &str) -> $crate::Result<Option<portcullis_core::proxy::Proxy>> {
                sqlx::query_as::<_, ProxyRow>(concat!("SELECT ", proxy_cols!(), " FROM proxies WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_proxies(&self) -> $crate::Result<Vec<portcullis_core::proxy::Proxy>> {
                sqlx::query_as::<_, ProxyRow>(concat!("SELECT ", proxy_cols!(), " FROM proxies ORDER BY name")).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_proxy(&self, id: &str, spec: &portcullis_core::proxy::ProxySpec, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::proxy::Proxy>> {
                bind_spec!(sqlx::query("UPDATE proxies SET name = $2, kind = $3, provider = $4, upstream_url = $5, credential_id = $6, listen_port = $7, auth_mode = $8, auto_start = $9, connect_timeout_ms = $10, first_byte_timeout_ms = $11, idle_timeout_ms = $12, max_body_bytes = $13, policies = $14, mcp_auto_approve = $15, upstream_command = $16, upstream_args = $17, upstream_env = $18, mcp_servers = $19, mcp_separator = $20, mcp_prefix_mode = $21, mcp_tool_allow = $22, mcp_tool_deny = $23, mcp_tool_rate_limits = $24, mcp_tool_labels = $25, mcp_flow_rules = $26, updated_at = $27 WHERE id = $1")
                    .bind(id), spec)

                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("proxy {:?} (or its port, or its credential)", spec.name)))?;
                self.proxy(id).await
            }

            async fn delete_proxy(&self, id: &str) -> $crate::Result<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM system_prompt_bindings WHERE target_kind = 'proxy' AND target_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM proxies WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_events(&self, events: &[portcullis_core::proxy::ProxyEvent], alert_min: Option<portcullis_core::alert::Severity>) -> $crate::Result<Vec<portcullis_core::alert::Alert>> {
                let mut tx = self.pool.begin().await?;
                let mut fresh = std::collections::HashSet::new();
                // One statement per 500 rows: 23 binds a row stays under both
                // back ends' parameter limits, and one round trip beats 500.
                // Chunks come in five sizes only, so the prepared statements are
                // reused instead of one being parsed and cached per batch size.
                for chunk in $crate::sql::ladder_chunks(events) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(concat!("INSERT INTO events (", event_cols!(), ") "));
                    q.push_values(chunk, |mut row, e| {
                        row.push_bind(e.id.as_str())
                            .push_bind(ms(e.at))
                            .push_bind(e.proxy_id.as_str())
                            .push_bind(e.proxy_name.as_str())
                            .push_bind(e.endpoint.as_str())
                            .push_bind(e.key_id.as_deref())
                            .push_bind(e.group_id.as_deref())
                            .push_bind(e.end_user.as_deref())
                            .push_bind(e.model.as_deref())
                            .push_bind(i64::from(e.status))
                            .push_bind(e.decision.as_str())
                            .push_bind(e.error.as_deref())
                            .push_bind(e.stream)
                            .push_bind(signed(e.latency_us))
                            .push_bind(e.ttft_us.map(signed))
                            .push_bind(signed(e.overhead_us))
                            .push_bind(signed(e.input_tokens))
                            .push_bind(signed(e.output_tokens))
                            .push_bind(signed(e.cached_tokens))
                            .push_bind(signed(e.request_bytes))
                            .push_bind(signed(e.response_bytes))
                            .push_bind(e.findings.to_string())
                            .push_bind(e.cost_usd);
                    });
                    // Replays are ignored. Only events with findings can raise
                    // alerts, and only for them is it asked which ids are new
                    // here (reading rows back costs more than the insert's own
                    // bookkeeping on a batch of plain traffic).
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    let alerting = alert_min.is_some()
                        && chunk.iter().any(|e| e.findings.as_array().is_some_and(|f| !f.is_empty()));
                    if alerting {
                        q.push(" RETURNING id");
                        let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
                        fresh.extend(ids);
                    } else {
                        q.build().execute(&mut *tx).await?;
                    }
                }
                let alerts: Vec<portcullis_core::alert::Alert> = match alert_min {
                    None => Vec::new(),
                    Some(min) => events
                        .iter()
                        .filter(|e| fresh.contains(&e.id))
                        .flat_map(|e| portcullis_core::alert::alerts_for(e, min))
                        .collect(),
                };
                // 16 binds a row: 500 rows stay under both parameter limits.
                for chunk in alerts.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO alerts (id, created_at, event_id, proxy_id, proxy_name, rule, category, severity, severity_rank, action, location, key_id, group_id, status) ");
                    q.push_values(chunk, |mut row, a| {
                        row.push_bind(a.id.as_str())
                            .push_bind(ms(a.created_at))
                            .push_bind(a.event_id.as_str())
                            .push_bind(a.proxy_id.as_str())
                            .push_bind(a.proxy_name.as_str())
                            .push_bind(a.rule.as_str())
                            .push_bind(a.category.as_str())
                            .push_bind(a.severity.as_str())
                            .push_bind(a.severity.rank())
                            .push_bind(a.action.as_str())
                            .push_bind(a.location.as_str())
                            .push_bind(a.key_id.as_deref())
                            .push_bind(a.group_id.as_deref())
                            .push_bind(a.status.as_str());
                    });
                    q.push(" ON CONFLICT (event_id, rule, location) DO NOTHING");
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(alerts)
            }

            async fn list_events(&self, f: &$crate::EventFilter) -> $crate::Result<Vec<portcullis_core::proxy::ProxyEvent>> {
                let q = concat!(
                    "SELECT ", event_cols!(), " FROM events WHERE ($1 IS NULL OR proxy_id = $1) AND ($2 IS NULL OR group_id = $2) \
                     AND ($3 IS NULL OR key_id = $3) AND ($4 IS NULL OR model = $4) AND ($5 IS NULL OR status = $5) \
                     AND ($6 IS NULL OR decision = $6) AND ($7 IS NULL OR at >= $7) AND ($8 IS NULL OR at < $8) \
                     AND ($9 IS NULL OR id < $9) ORDER BY id DESC LIMIT $10"
                );
                sqlx::query_as::<_, EventRow>(q)
                    .bind(f.proxy_id.as_deref())
                    .bind(f.group_id.as_deref())
                    .bind(f.key_id.as_deref())
                    .bind(f.model.as_deref())
                    .bind(f.status.map(i64::from))
                    .bind(f.decision.as_deref())
                    .bind(f.since.map(ms))
                    .bind(f.until.map(ms))
                    .bind(f.before_id.as_deref())
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn create_policy(&self, p: $crate::NewPolicy, now: jiff::Timestamp) -> $crate::Result<$crate::PolicyRecord> {
                sqlx::query("INSERT INTO policies (name, description, rule_count, pack, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(i64::from(p.rule_count))
                    .bind(&p.pack)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("policy {:?}", p.name)))?;
                self.policy(&p.name).await?.ok_or_else(|| $crate::StoreError::Corrupt("policy vanished after insert".into()))
            }

            async fn policy(&self, name: &str) -> $crate::Result<Option<$crate::PolicyRecord>> {
                let q = concat!("SELECT ", policy_cols!(), " FROM policies WHERE name = $1");
                Ok(sqlx::query_as::<_, PolicyRow>(q).bind(name).fetch_optional(&self.pool).await?.map(Into::into))
            }

            async fn list_policies(&self) -> $crate::Result<Vec<$crate::PolicyRecord>> {
                let q = concat!("SELECT ", policy_cols!(), " FROM policies ORDER BY name");
                Ok(sqlx::query_as::<_, PolicyRow>(q).fetch_all(&self.pool).await?.into_iter().map(Into::into).collect())
            }

            async fn update_policy(&self, p: $crate::NewPolicy, now: jiff::Timestamp) -> $crate::Result<Option<$crate::PolicyRecord>> {
                sqlx::query("UPDATE policies SET description = $2, rule_count = $3, pack = $4, updated_at = $5 WHERE name = $1")
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(i64::from(p.rule_count))
                    .bind(&p.pack)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await?;
                self.policy(&p.name).await
            }

            async fn delete_policy(&self, name: &str) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM policies WHERE name = $1").bind(name).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_system_prompt(&self, p: $crate::NewSystemPrompt, now: jiff::Timestamp) -> $crate::Result<$crate::SystemPromptRecord> {
                let id = portcullis_core::id::new_id();
                sqlx::query("INSERT INTO system_prompts (id, name, description, content, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                    .bind(&id)
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(&p.content)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("system prompt {:?}", p.name)))?;
                self.system_prompt(&id).await?.ok_or_else(|| $crate::StoreError::Corrupt("system prompt vanished after insert".into()))
            }

            async fn system_prompt(&self, id: &str) -> $crate::Result<Option<$crate::SystemPromptRecord>> {
                let q = concat!("SELECT ", prompt_cols!(), " FROM system_prompts WHERE id = $1");
                Ok(sqlx::query_as::<_, SystemPromptRow>(q).bind(id).fetch_optional(&self.pool).await?.map(Into::into))
            }

            async fn list_system_prompts(&self) -> $crate::Result<Vec<$crate::SystemPromptRecord>> {
                let q = concat!("SELECT ", prompt_cols!(), " FROM system_prompts ORDER BY name");
                Ok(sqlx::query_as::<_, SystemPromptRow>(q).fetch_all(&self.pool).await?.into_iter().map(Into::into).collect())
            }

            async fn update_system_prompt(&self, id: &str, p: $crate::NewSystemPrompt, now: jiff::Timestamp) -> $crate::Result<Option<$crate::SystemPromptRecord>> {
                sqlx::query("UPDATE system_prompts SET name = $2, description = $3, content = $4, updated_at = $5 WHERE id = $1")
                    .bind(id)
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(&p.content)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict(&format!("system prompt {:?}", p.name)))?;
                self.system_prompt(id).await
            }

            async fn delete_system_prompt(&self, id: &str) -> $crate::Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Explicit as well as ON DELETE CASCADE: a SQLite connection opened
                // without foreign keys must not leave bindings behind.
                sqlx::query("DELETE FROM system_prompt_bindings WHERE template_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM system_prompts WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_prompt_bindings(&self, template_id: &str, bindings: &[$crate::PromptBinding]) -> $crate::Result<Vec<$crate::PromptBinding>> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM system_prompt_bindings WHERE template_id = $1").bind(template_id).execute(&mut *tx).await?;
                for b in bindings {
                    sqlx::query("INSERT INTO system_prompt_bindings (template_id, target_kind, target_id, priority) VALUES ($1, $2, $3, $4)")
                        .bind(template_id)
                        .bind(b.target.as_str())
                        .bind(&b.target_id)
                        .bind(b.priority)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict(&format!("binding to {} {}", b.target.as_str(), b.target_id)))?;
                }
                tx.commit().await?;
                self.list_prompt_bindings(Some(template_id)).await
            }

            async fn list_prompt_bindings(&self, template_id: Option<&str>) -> $crate::Result<Vec<$crate::PromptBinding>> {
                let q = "SELECT template_id, target_kind, target_id, priority FROM system_prompt_bindings WHERE ($1 IS NULL OR template_id = $1) \
                         ORDER BY template_id, target_kind, priority DESC, target_id";
                sqlx::query_as::<_, PromptBindingRow>(q).bind(template_id).fetch_all(&self.pool).await?.into_iter().map(TryInto::try_into).collect()
            }

            async fn alert(&self, id: &str) -> $crate::Result<Option<portcullis_core::alert::Alert>> {
                let q = concat!("SELECT ", alert_cols!(), " FROM alerts WHERE id = $1");
                sqlx::query_as::<_, AlertRow>(q).bind(id).fetch_optional(&self.pool).await?.map(TryInto::try_into).transpose()
            }

            async fn list_alerts(&self, f: &$crate::AlertFilter) -> $crate::Result<Vec<portcullis_core::alert::Alert>> {
                let q = concat!(
                    "SELECT ", alert_cols!(), " FROM alerts WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR severity_rank >= $2) \
                     AND ($3 IS NULL OR proxy_id = $3) AND ($4 IS NULL OR rule = $4) AND ($5 IS NULL OR created_at >= $5) \
                     AND ($6 IS NULL OR created_at < $6) AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8"
                );
                sqlx::query_as::<_, AlertRow>(q)
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.min_severity.map(|s| s.rank()))
                    .bind(f.proxy_id.as_deref())
                    .bind(f.rule.as_deref())
                    .bind(f.since.map(ms))
                    .bind(f.until.map(ms))
                    .bind(f.before_id.as_deref())
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            }

            async fn change_alert_status(&self, id: &str, c: $crate::AlertChange, now: jiff::Timestamp) -> $crate::Result<Option<portcullis_core::alert::Alert>> {
                let done = sqlx::query("UPDATE alerts SET status = $3, status_changed_at = $4, status_changed_by = $5, note = COALESCE($6, note) WHERE id = $1 AND status = $2")
                    .bind(id)
                    .bind(c.from.as_str())
                    .bind(c.to.as_str())
                    .bind(ms(now))
                    .bind(&c.by)
                    .bind(c.note.as_deref())
                    .execute(&self.pool)
                    .await?;
                let alert = self.alert(id).await?;
                if done.rows_affected() == 0 && alert.is_some() {
                    return Err($crate::StoreError::Conflict("the alert's status changed meanwhile; read it again".into()));
                }
                Ok(alert)
            }

            async fn set_managed_by(&self, resource: $crate::Resource, id: &str, by: portcullis_core::model::ManagedBy) -> $crate::Result<()> {
                let q = match resource {
                    $crate::Resource::Group => "UPDATE groups SET managed_by = $2 WHERE id = $1",
                    $crate::Resource::Credential => "UPDATE credentials SET managed_by = $2 WHERE id = $1",
                    $crate::Resource::ApiKey => "UPDATE api_keys SET managed_by = $2 WHERE id = $1",
                };
                sqlx::query(q).bind(id).bind(by.as_str()).execute(&self.pool).await?;
                Ok(())
            }

            async fn append_audit(&self, draft: portcullis_core::audit::AuditDraft, now: jiff::Timestamp) -> $crate::Result<portcullis_core::audit::AuditEntry> {
                // One writer at a time in this process; the back end's own lock
                // covers other processes sharing the database.
                let _guard = self.audit_lock.lock().await;
                let mut tx = self.pool.begin().await?;
                Self::lock_audit_chain(&mut tx).await?;
                let prev: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(&mut *tx).await?;
                let prev = prev.unwrap_or_else(|| portcullis_core::audit::GENESIS.to_owned());
                let at = ms(now);
                let hash = portcullis_core::audit::entry_hash(&prev, at, &draft);
                let q = concat!("INSERT INTO audit_log (at, actor, action, target, details, client_addr, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ", audit_cols!());
                let row = sqlx::query_as::<_, AuditRow>(q)
                    .bind(at)
                    .bind(&draft.actor)
                    .bind(&draft.action)
                    .bind(&draft.target)
                    .bind(&draft.details)
                    .bind(&draft.client_addr)
                    .bind(&prev)
                    .bind(&hash)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn list_audit(&self, f: &$crate::AuditFilter) -> $crate::Result<Vec<portcullis_core::audit::AuditEntry>> {
                let (action_exact, action_prefix) = match f.action.as_deref() {
                    Some(a) if a.ends_with('.') => (None, Some(format!("{}%", a.replace('%', "").replace('_', "\\_")))),
                    Some(a) => (Some(a.to_owned()), None),
                    None => (None, None),
                };
                let q = concat!(
                    "SELECT ", audit_cols!(), " FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
                     AND ($3 IS NULL OR action LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR target = $4) AND ($5 IS NULL OR at >= $5) \
                     AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8"
                );
                let rows = sqlx::query_as::<_, AuditRow>(q)
                    .bind(f.actor.as_deref())
                    .bind(action_exact)
                    .bind(action_prefix)
                    .bind(f.target.as_deref())
                    .bind(f.since.map(ms))
                    .bind(f.until.map(ms))
                    .bind(f.before_id)
                    .bind(i64::from(f.limit))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn audit_chain(&self, after_id: i64, limit: u32) -> $crate::Result<Vec<portcullis_core::audit::StoredAuditRow>> {
                let q = concat!("SELECT ", audit_cols!(), " FROM audit_log WHERE id > $1 ORDER BY id ASC LIMIT $2");
                let rows = sqlx::query_as::<_, AuditRow>(q).bind(after_id).bind(i64::from(limit)).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(crate) use impl_store;
pub(crate) use {
    alert_cols, audit_cols, bind_spec, cred_cols, event_cols, group_cols, key_cols, policy_cols,
    prompt_cols, proxy_cols, user_cols,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_the_ladder_sizes_in_order() {
        let sizes = |n: usize| -> Vec<usize> {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = ladder_chunks(&items).collect();
            // Every item once, in order.
            assert_eq!(chunks.concat(), items);
            chunks.iter().map(|c| c.len()).collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(1_234), [500, 500, 100, 100, 20, 5, 5, 1, 1, 1, 1]);
        assert!((0..2_000).all(|n| sizes(n).iter().all(|s| INSERT_SIZES.contains(s))));
    }
}

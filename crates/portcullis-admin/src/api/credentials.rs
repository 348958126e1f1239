//! Provider credentials: sealed with the master key, never returned, only hinted.

use super::check_name;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::model::{Credential, ProviderKind};
use portcullis_core::secret::mask_hint;
use portcullis_core::SecretString;
use portcullis_store::{CredentialPatch, NewCredential};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    pub name: String,
    pub provider: ProviderKind,
    /// The provider API key. Write-only.
    #[schema(value_type = String, format = Password)]
    pub secret: SecretString,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCredential {
    pub name: Option<String>,
    /// A replacement provider API key. Write-only.
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<SecretString>,
}

fn check_secret(secret: &SecretString) -> ApiResult<()> {
    let s = secret.expose();
    if s.is_empty() || s.len() > 8192 || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "secret: must be 1-8192 printable characters",
        ));
    }
    Ok(())
}

/// Credentials, with masked hints only.
#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials", responses((status = 200, body = [Credential])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Credential>>> {
    Ok(Json(state.store.list_credentials().await?))
}

/// Stores a provider credential, encrypted with the master key.
#[utoipa::path(post, path = "/api/v1/credentials", tag = "credentials", request_body = CreateCredential, responses((status = 201, body = Credential), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateCredential>,
) -> ApiResult<(StatusCode, Json<Credential>)> {
    check_name("name", &req.name)?;
    check_secret(&req.secret)?;
    let id = portcullis_core::id::new_id();
    let sealed = state.master_key.seal(req.secret.expose(), &id);
    let credential = state
        .store
        .create_credential(
            NewCredential {
                id,
                name: req.name,
                provider: req.provider,
                hint: mask_hint(req.secret.expose()),
                sealed,
                master_key_id: state.master_key.id().to_owned(),
            },
            state.clock.now(),
        )
        .await?;
    state
        .audit(
            caller
                .draft(
                    "credential.create",
                    format!("credential:{}", credential.name),
                )
                .details(json!({"provider": credential.provider})),
        )
        .await;
    Ok((StatusCode::CREATED, Json(credential)))
}

/// One credential (masked).
#[utoipa::path(get, path = "/api/v1/credentials/{id}", tag = "credentials", params(("id" = String, Path)), responses((status = 200, body = Credential), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Credential>> {
    state
        .store
        .credential(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("credential"))
}

/// Renames a credential or replaces its secret.
#[utoipa::path(patch, path = "/api/v1/credentials/{id}", tag = "credentials", params(("id" = String, Path)), request_body = UpdateCredential, responses((status = 200, body = Credential), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateCredential>,
) -> ApiResult<Json<Credential>> {
    if let Some(name) = &req.name {
        check_name("name", name)?;
    }
    if let Some(secret) = &req.secret {
        check_secret(secret)?;
    }
    let current = state
        .store
        .credential(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("credential"))?;
    super::api_managed(current.managed_by)?;
    let secret_changed = req.secret.is_some();
    let secret = req.secret.map(|s| {
        (
            state.master_key.seal(s.expose(), &id),
            mask_hint(s.expose()),
            state.master_key.id().to_owned(),
        )
    });
    let credential = state
        .store
        .update_credential(
            &id,
            CredentialPatch {
                name: req.name,
                secret,
            },
            state.clock.now(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("credential"))?;
    state
        .audit(
            caller
                .draft(
                    "credential.update",
                    format!("credential:{}", credential.name),
                )
                .details(json!({"secret_replaced": secret_changed})),
        )
        .await;
    Ok(Json(credential))
}

/// Deletes a credential.
#[utoipa::path(delete, path = "/api/v1/credentials/{id}", tag = "credentials", params(("id" = String, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let credential = state
        .store
        .credential(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("credential"))?;
    super::api_managed(credential.managed_by)?;
    let uses = |c: Option<&str>| c == Some(id.as_str());
    let mut users: Vec<String> = state
        .store
        .list_proxies()
        .await?
        .into_iter()
        .filter(|p| uses(p.spec.credential_id.as_deref()))
        .map(|p| format!("proxy {}", p.spec.name))
        .collect();
    users.extend(
        state
            .store
            .list_a2a_agents()
            .await?
            .into_iter()
            .filter(|a| {
                uses(
                    a.settings
                        .credential
                        .as_ref()
                        .map(|c| c.credential_id.as_str()),
                )
            })
            .map(|a| format!("A2A agent {}", a.name)),
    );
    if !users.is_empty() {
        return Err(ApiError::new(
            crate::error::ErrorCode::Conflict,
            format!(
                "credential is used by {}; change them first",
                users.join(", ")
            ),
        ));
    }
    state.store.delete_credential(&id).await?;
    state
        .audit(caller.draft(
            "credential.delete",
            format!("credential:{}", credential.name),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

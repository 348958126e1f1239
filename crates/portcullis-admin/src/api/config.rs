//! Reloading the configuration file's declared resources.

use crate::auth::Caller;
use crate::declared::{apply, Applied};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;

/// Re-reads the configuration file and applies its groups, credentials, keys and
/// proxies. An invalid file is refused with every problem listed; the running
/// configuration stays as it was.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    responses((status = 200, body = Applied), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn reload(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Applied>> {
    let Some(reload) = state.reload.clone() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the server was started without a configuration file (--config)",
        ));
    };
    let declared = tokio::task::spawn_blocking(move || reload())
        .await
        .map_err(|_| ApiError::internal())?;
    let outcome = match declared {
        Ok(declared) => apply(&state, &declared, &caller.actor()).await,
        Err(problems) => Err(problems),
    };
    match outcome {
        Ok(applied) => Ok(Json(applied)),
        Err(problems) => {
            state
                .audit(
                    caller
                        .draft("config.reload_refused", "config")
                        .details(serde_json::json!({"problems": problems})),
                )
                .await;
            Err(ApiError::bad_request(format!(
                "configuration refused; nothing changed:\n- {}",
                problems.join("\n- ")
            )))
        }
    }
}

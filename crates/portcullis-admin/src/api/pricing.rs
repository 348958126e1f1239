//! Model prices: the built-in table with the operator's overrides on top.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::pricing::{valid_model_name, Price, PriceOverride, PricedModel};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceList {
    /// USD per million tokens.
    pub models: Vec<PricedModel>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPrice {
    /// Provider label (openai, anthropic, ...); `custom` when omitted.
    pub provider: Option<String>,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
    /// USD per million cached input tokens; `input` when omitted.
    pub cached_input: Option<f64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Resolved {
    /// The name asked about.
    pub model: String,
    /// The table entry it resolved to (dated snapshots resolve to their family).
    pub matched: Option<String>,
    pub price: Option<Price>,
}

async fn reload(state: &AppState) -> ApiResult<()> {
    state.data_plane.relay().spend.reload().await?;
    Ok(())
}

/// Every priced model, with where its price comes from.
#[utoipa::path(get, path = "/api/v1/pricing", tag = "pricing", responses((status = 200, body = PriceList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<PriceList>> {
    let book = state.data_plane.relay().spend.price_book();
    Ok(Json(PriceList {
        models: book.list(),
    }))
}

/// How a model name resolves; `price` is null for a model without one (its
/// requests are recorded with an unknown cost).
#[utoipa::path(get, path = "/api/v1/pricing/{model}", tag = "pricing", params(("model" = String, Path)), responses((status = 200, body = Resolved)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> ApiResult<Json<Resolved>> {
    let book = state.data_plane.relay().spend.price_book();
    let found = book.lookup(&model);
    Ok(Json(Resolved {
        matched: found.map(|(k, _)| k.to_owned()),
        price: found.map(|(_, p)| p),
        model,
    }))
}

/// Sets the price of a model: replaces a built-in price or adds a model.
#[utoipa::path(put, path = "/api/v1/pricing/{model}", tag = "pricing", params(("model" = String, Path)), request_body = PutPrice,
    responses((status = 200, body = PricedModel), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(model): Path<String>,
    ApiJson(req): ApiJson<PutPrice>,
) -> ApiResult<Json<PricedModel>> {
    let model = model.to_ascii_lowercase();
    let mut problems = Vec::new();
    if !valid_model_name(&model) {
        problems.push("model: 1-128 characters of letters, digits and - . _ : / @".to_owned());
    }
    let provider = req.provider.unwrap_or_else(|| "custom".into());
    if !valid_model_name(&provider) || provider.len() > 32 {
        problems.push("provider: 1-32 characters of letters, digits and - . _".to_owned());
    }
    let price = Price::new(req.input, req.output, req.cached_input.unwrap_or(req.input));
    if !price.is_valid() {
        problems.push(
            "input, output, cached_input: USD per million tokens, from 0 to 100000".to_owned(),
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(problems));
    }
    let entry = PriceOverride {
        model: model.clone(),
        provider,
        price,
    };
    state.store.put_price(&entry, state.clock.now()).await?;
    reload(&state).await?;
    state
        .audit(caller.draft("pricing.set", format!("model:{model}")).details(json!({
            "provider": entry.provider, "input": price.input, "output": price.output, "cached_input": price.cached_input,
        })))
        .await;
    Ok(Json(PricedModel {
        model,
        provider: entry.provider,
        price,
        source: portcullis_core::pricing::PriceSource::Override,
    }))
}

/// Removes an override; a built-in model goes back to its built-in price.
#[utoipa::path(delete, path = "/api/v1/pricing/{model}", tag = "pricing", params(("model" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(model): Path<String>,
) -> ApiResult<StatusCode> {
    let model = model.to_ascii_lowercase();
    if !state.store.delete_price(&model).await? {
        return Err(ApiError::not_found("price override"));
    }
    reload(&state).await?;
    state
        .audit(caller.draft("pricing.remove", format!("model:{model}")))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

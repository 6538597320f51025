//! `/api/v1/auth/*`: login, refresh, logout, registration.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, post, web};
use rental_service::{Registration, TokenPair};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::json::Json;
use crate::state::AppState;
use rental_service::UserView;

/// Login with JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Login with the OAuth2 password form (what the docs UI's Authorize sends). Other fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordForm {
    /// E-mail address.
    username: String,
    /// Password.
    password: String,
    /// `password` when given (else 400 `unsupported_grant_type`).
    #[serde(default)]
    #[schema(nullable = false, pattern = "^password$")]
    grant_type: Option<String>,
    /// Ignored.
    #[serde(default, rename = "scope")]
    #[schema(nullable = false)]
    _scope: Option<String>,
    /// Ignored.
    #[serde(default, rename = "client_id")]
    #[schema(nullable = false)]
    _client_id: Option<String>,
    /// Ignored.
    #[serde(default, rename = "client_secret")]
    #[schema(nullable = false)]
    _client_secret: Option<String>,
}

/// Tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Single-use token for `/auth/refresh`.
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: t.token_type.to_owned(),
            expires_in: t.expires_in,
        }
    }
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The token from login or the last refresh.
    pub refresh_token: String,
}

/// Sign-up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address (unique, case-insensitive).
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@.\u0000-\u001f\u007f-\u009f]+(\.[^\s@.\u0000-\u001f\u007f-\u009f]+)+$"
    )]
    pub email: String,
    /// Display name (1–200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub full_name: String,
    /// Password (8–128 characters).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// Exchange e-mail and password for tokens. Accepts JSON or the OAuth2 password form
/// (`application/x-www-form-urlencoded` with `username` and `password`).
#[utoipa::path(
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (PasswordForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Unknown e-mail or wrong password", body = ErrorEnvelope),
        (status = 403, description = "Account deactivated", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)
    )
)]
#[post("/auth/login")]
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> ApiResult<HttpResponse> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (email, password) = if content_type.starts_with("application/x-www-form-urlencoded") {
        let form: PasswordForm = serde_urlencoded::from_bytes(&body).map_err(|e| {
            ApiError::new(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string())
        })?;
        if form.grant_type.as_deref().is_some_and(|g| g != "password") {
            return Err(ApiError::bad_request("unsupported_grant_type", "grant_type must be `password`"));
        }
        (form.username, form.password)
    } else if content_type.starts_with("application/json") {
        let login: LoginRequest = crate::json::from_slice(&body).map_err(|e| ApiError::from_serde_json(&e))?;
        (login.email, login.password)
    } else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON or an application/x-www-form-urlencoded form",
        ));
    };
    let tokens = state.services.auth.login(&email, &password).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(TokenResponse::from(tokens)))
}

/// Spend a refresh token for a new pair. Reusing a spent token revokes its whole session.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorEnvelope))
)]
#[post("/auth/refresh")]
pub async fn refresh(state: web::Data<AppState>, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    let tokens = state.services.auth.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(TokenResponse::from(tokens)))
}

/// End the session of a refresh token.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses((status = 204, description = "Logged out")))]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    state.services.auth.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Create a customer account.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "E-mail taken", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)
    )
)]
#[post("/auth/register")]
pub async fn register(state: web::Data<AppState>, body: Json<RegisterRequest>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let user = state
        .services
        .auth
        .register(Registration { email: body.email, full_name: body.full_name, password: body.password })
        .await?;
    Ok(HttpResponse::Created().json(user))
}

/// A password recovery request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRecoveryRequest {
    /// The account's e-mail address.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@.\u0000-\u001f\u007f-\u009f]+(\.[^\s@.\u0000-\u001f\u007f-\u009f]+)+$"
    )]
    pub email: String,
}

/// A password reset with the token from the recovery e-mail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the link in the e-mail.
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
    /// The new password (8–128 characters).
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// The answer to a recovery request, whatever the address.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryAccepted {
    /// Always the same sentence.
    pub message: &'static str,
}

/// Ask for a password-reset e-mail. The answer, and the work behind it, are the same whether or not the
/// address belongs to an account: if it does, the e-mail (valid one hour) is sent in the background.
#[utoipa::path(
    tag = "auth",
    request_body = PasswordRecoveryRequest,
    responses((status = 202, body = RecoveryAccepted), (status = 422, description = "Not an e-mail address", body = ErrorEnvelope))
)]
#[post("/auth/password-recovery")]
pub async fn password_recovery(
    state: web::Data<AppState>,
    body: Json<PasswordRecoveryRequest>,
) -> ApiResult<HttpResponse> {
    state.services.auth.request_password_recovery(&body.email).await?;
    Ok(HttpResponse::Accepted()
        .json(RecoveryAccepted { message: "if the address belongs to an account, a reset link is on its way" }))
}

/// Set a new password with a reset token. The token works once, for one hour; the reset ends every session.
#[utoipa::path(
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password changed; log in again"),
        (status = 401, description = "The token is unknown, used or expired", body = ErrorEnvelope),
        (status = 422, description = "The new password is not acceptable", body = ErrorEnvelope)
    )
)]
#[post("/auth/reset-password")]
pub async fn reset_password(state: web::Data<AppState>, body: Json<ResetPasswordRequest>) -> ApiResult<HttpResponse> {
    state.services.auth.reset_password(&body.token, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

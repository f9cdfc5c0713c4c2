//! Operator authentication: argon2 password check at login, then an HS256 JWT carrying the
//! tenant, operator id, role and extension. Every authenticated handler takes a [`Principal`]
//! (from `Authorization: Bearer …`, or `?token=` for the WebSocket, whose browser API cannot
//! set headers), so tenant scoping starts from the token, never from the request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use calldesk_calls::{Extension, TenantId};
use calldesk_central::{Operator, Role};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::Hub;
use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The operator id.
    pub sub: i64,
    pub tenant: String,
    pub role: String,
    pub ext: String,
    pub login: String,
    pub iat: u64,
    pub exp: u64,
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub operator_id: i64,
    pub tenant: TenantId,
    pub role: Role,
    pub extension: Extension,
    pub login: String,
}

impl Principal {
    pub fn require_supervisor(&self) -> Result<(), ApiError> {
        if self.role.supervises() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} is an operator; this needs a supervisor or admin",
                self.login
            )))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} is not an admin; this needs an admin",
                self.login
            )))
        }
    }
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Keys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        // The process uses one JWT backend; installing it twice is harmless.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, op: &Operator) -> Result<String, ApiError> {
        let iat = now_secs();
        let claims = Claims {
            sub: op.id,
            tenant: op.tenant.to_string(),
            role: op.role.as_str().to_owned(),
            ext: op.extension.to_string(),
            login: op.login.clone(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("the token has expired; log in again".to_owned())
                }
                _ => ApiError::Unauthorized("the token is not valid; log in again".to_owned()),
            },
        )?;
        let c = data.claims;
        let bad = || ApiError::Unauthorized("the token is not valid; log in again".to_owned());
        Ok(Principal {
            operator_id: c.sub,
            tenant: TenantId::new(c.tenant).map_err(|_| bad())?,
            role: Role::from_name(&c.role).ok_or_else(bad)?,
            extension: Extension::new(c.ext).map_err(|_| bad())?,
            login: c.login,
        })
    }
}

/// The bearer token of a request: the `Authorization` header, else a `token` query parameter.
fn token_of(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(text) = value.to_str()
        && let Some(token) = text.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    let query = parts.uri.query()?;
    form_urlencoded_token(query)
}

fn form_urlencoded_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| v.to_owned())
    })
}

impl FromRequestParts<Hub> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, Self::Rejection> {
        let token = token_of(parts).ok_or_else(|| {
            ApiError::Unauthorized(
                "log in first: send `Authorization: Bearer <token>` from POST /api/auth/login"
                    .to_owned(),
            )
        })?;
        hub.keys().verify(&token)
    }
}

/// A hash to verify against when the login does not exist, so a wrong login and a wrong
/// password take the same time.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        calldesk_central::password::hash_password("calldesk-dummy-password").unwrap_or_default()
    })
}

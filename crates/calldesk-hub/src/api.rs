//! REST: router, auth, calls, history, operators, companies/contacts (admin writes), notes,
//! dispositions, tags, the missed-calls worklist, call controls (by role), health, status, metrics, OpenAPI.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use calldesk_calls::{NumberPlan, TenantId};
use calldesk_central::{CallFilter, CentralError, CompanyInput, ContactInput, Role};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi;

use crate::Hub;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::metrics::ResultLabel;
use crate::runtime::TenantPbx;

/// Rate limits: logins per tenant+login and per client address; machine API per clientId.
#[derive(Debug)]
pub struct Limits {
    login: DefaultKeyedRateLimiter<String>,
    /// Per client address: ten times the per-login quota, so a call centre behind one NAT can
    /// still log its shift in.
    login_by_ip: DefaultKeyedRateLimiter<String>,
    machine: DefaultKeyedRateLimiter<String>,
}

impl Limits {
    pub fn new(login_per_minute: u32, machine_per_second: u32) -> Self {
        let one = NonZeroU32::MIN;
        Self {
            login: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(login_per_minute).unwrap_or(one),
            )),
            login_by_ip: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(login_per_minute.saturating_mul(10)).unwrap_or(one),
            )),
            machine: RateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(machine_per_second).unwrap_or(one),
            )),
        }
    }

    pub fn machine_ok(&self, key: &str) -> bool {
        self.machine.check_key(&key.to_owned()).is_ok()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "calldesk hub",
        description = "Calls, operators, contacts, call controls and the realtime feed (GET /ws) of the calldesk hub."
    ),
    paths(
        login,
        list_calls,
        get_call,
        originate,
        machine_makecall,
        machine_monitor,
        crate::sync::push,
        crate::sync::pull,
        crate::sync::contacts,
        health,
        status
    )
)]
struct ApiDoc;

pub fn router(hub: Hub) -> Router {
    let cors = if hub.config().cors_origins.is_empty() {
        CorsLayer::new()
    } else {
        let origins: Vec<HeaderValue> = hub
            .config()
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
    };
    let body_limit = hub.config().body_limit;
    Router::new()
        .route("/health", get(health))
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .route("/api/docs", get(docs))
        .route("/api/openapi.json", get(openapi))
        .route("/api/auth/login", post(login))
        .route("/api/me", get(me))
        .route("/api/calls", get(list_calls))
        .route("/api/calls/originate", post(originate))
        .route("/api/calls/{id}", get(get_call))
        .route("/api/calls/{id}/events", get(call_events))
        .route("/api/calls/{id}/notes", post(add_note))
        .route("/api/calls/{id}/disposition", put(set_disposition))
        .route("/api/calls/{id}/tags", put(set_tags))
        .route("/api/dispositions", get(dispositions).put(set_dispositions))
        .route("/api/callbacks", get(callbacks))
        .route("/api/callbacks/claim", post(claim_callback))
        .route("/api/callbacks/release", post(release_callback))
        .route("/api/callbacks/close", post(close_callback))
        .route("/api/calls/{id}/hangup", post(hangup))
        .route("/api/calls/{id}/transfer", post(transfer))
        .route("/api/calls/{id}/hold", post(hold))
        .route("/api/calls/{id}/record", post(record))
        .route("/api/calls/{id}/monitor", post(monitor))
        .route("/api/calls/{id}/dtmf", post(dtmf))
        .route("/api/calls/{id}/recording", get(crate::recordings::link))
        .route("/recordings/{*key}", get(crate::recordings::serve_local))
        .route("/api/queue/pause", post(queue_pause))
        .route("/api/sync/pull", get(crate::sync::pull))
        .route("/api/sync/contacts", get(crate::sync::contacts))
        .route("/api/history", get(history))
        .route("/api/operators", get(operators))
        .route(
            "/api/companies",
            get(dir_list::<Companies>).post(dir_create::<Companies>),
        )
        .route(
            "/api/companies/{id}",
            get(dir_get::<Companies>)
                .put(dir_update::<Companies>)
                .delete(dir_delete::<Companies>),
        )
        .route(
            "/api/contacts",
            get(dir_list::<Contacts>).post(dir_create::<Contacts>),
        )
        .route(
            "/api/contacts/{id}",
            get(dir_get::<Contacts>)
                .put(dir_update::<Contacts>)
                .delete(dir_delete::<Contacts>),
        )
        .route("/api/makecallexternal", get(machine_makecall))
        .route("/api/monitor", get(machine_monitor))
        .route("/mango/{tenant}/{*path}", post(crate::ingest::webhook))
        .route("/ws", get(crate::ws::handler))
        .layer(RequestBodyLimitLayer::new(body_limit))
        // A desk's push carries up to 1,000 changes: its own, larger limit.
        .route(
            "/api/sync/push",
            post(crate::sync::push).layer(axum::extract::DefaultBodyLimit::max(
                crate::sync::PUSH_BODY_LIMIT,
            )),
        )
        .layer(cors)
        .with_state(hub)
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "The hub process is up")))]
async fn health() -> Json<serde_json::Value> {
    Json(
        json!({"status": "healthy", "service": "calldesk-hub", "version": env!("CARGO_PKG_VERSION")}),
    )
}

#[utoipa::path(get, path = "/api/status", responses((status = 200, description = "Database and each PBX connection")))]
async fn status(State(hub): State<Hub>) -> Json<serde_json::Value> {
    let database = match hub.store().ping().await {
        Ok(()) => "connected".to_owned(),
        Err(e) => format!("unreachable: {e}"),
    };
    let mut pbx = Vec::new();
    let mut tenants = hub.tenant_list();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    for t in tenants {
        let kind = match &t.pbx {
            calldesk_central::PbxConfig::Asterisk { .. } => "asterisk",
            calldesk_central::PbxConfig::Mango { .. } => "mango",
            calldesk_central::PbxConfig::Demo => "demo",
        };
        let (held, state, detail) = match hub.runtime(&t.id) {
            Some(rt) => {
                let s = rt.status.borrow().clone();
                (
                    true,
                    serde_json::to_value(s.state).unwrap_or_default(),
                    s.detail,
                )
            }
            None => (
                false,
                json!(null),
                Some("held by another replica (or not yet)".to_owned()),
            ),
        };
        pbx.push(json!({"tenant": t.id.as_str(), "kind": kind, "active": t.active, "held_here": held, "state": state, "detail": detail}));
    }
    Json(json!({
        "service": "calldesk-hub",
        "version": env!("CARGO_PKG_VERSION"),
        "replica": hub.config().replica,
        "uptime_secs": hub.inner.started.elapsed().as_secs(),
        "database": database,
        "pbx": pbx,
    }))
}

async fn metrics(State(hub): State<Hub>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        hub.metrics().render(),
    )
        .into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn docs() -> Html<String> {
    use utoipa_scalar::Scalar;
    Html(Scalar::new(ApiDoc::openapi()).to_html())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct LoginBody {
    tenant: String,
    login: String,
    password: String,
}

#[utoipa::path(post, path = "/api/auth/login", request_body = LoginBody,
    responses((status = 200, description = "`{\"token\"}`: a JWT for `Authorization: Bearer`"), (status = 401, description = "Wrong tenant, login or password"), (status = 429, description = "Too many attempts")))]
async fn login(
    State(hub): State<Hub>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limits = &hub.inner.limits;
    let key = format!("{}/{}", body.tenant, body.login);
    if limits.login.check_key(&key).is_err()
        || limits
            .login_by_ip
            .check_key(&peer.ip().to_string())
            .is_err()
    {
        hub.metrics()
            .logins
            .get_or_create(&ResultLabel { result: "limited" })
            .inc();
        return Err(ApiError::TooManyRequests(
            "too many login attempts; wait a minute and try again".to_owned(),
        ));
    }
    let refused = || ApiError::Unauthorized("wrong tenant, login or password".to_owned());
    if body.password.len() > 1024 || body.login.len() > 64 {
        return Err(refused());
    }
    let found = match TenantId::new(body.tenant.clone()) {
        Ok(t) => hub.store().operator_for_login(&t, &body.login).await?,
        Err(_) => None,
    };
    let (operator, hash) = match found {
        Some((op, hash)) => (Some(op), hash),
        None => (None, crate::auth::dummy_hash().to_owned()),
    };
    let password = body.password;
    let ok = tokio::task::spawn_blocking(move || {
        calldesk_central::password::verify_password(&password, &hash)
    })
    .await
    .unwrap_or(false);
    match operator {
        Some(op) if ok => {
            hub.metrics()
                .logins
                .get_or_create(&ResultLabel { result: "ok" })
                .inc();
            let token = hub.keys().issue(&op)?;
            Ok(Json(json!({
                "token": token,
                "expires_in": hub.keys().ttl().as_secs(),
                "operator": {"id": op.id, "login": op.login, "name": op.name, "role": op.role.as_str(), "extension": op.extension.as_str(), "tenant": op.tenant.as_str()},
            })))
        }
        _ => {
            hub.metrics()
                .logins
                .get_or_create(&ResultLabel { result: "refused" })
                .inc();
            tracing::info!(tenant = %body.tenant, login = %body.login, "login refused");
            Err(refused())
        }
    }
}

/// Who the token belongs to, and what the tenant's PBX can do (the desktop disables the rest).
async fn me(State(hub): State<Hub>, p: Principal) -> Json<serde_json::Value> {
    let caps = hub.runtime(&p.tenant).map(|rt| {
        let c = rt.pbx.capabilities();
        json!({"originate": c.originate, "hangup": c.hangup, "blind_transfer": c.blind_transfer, "attended_transfer": c.attended_transfer, "hold": c.hold, "record": c.record, "monitor": c.monitor, "dtmf": c.dtmf, "queue_pause": c.queue_pause})
    });
    Json(
        json!({"id": p.operator_id, "tenant": p.tenant.as_str(), "login": p.login, "role": p.role.as_str(), "extension": p.extension.as_str(), "capabilities": caps}),
    )
}

#[derive(Debug, Deserialize, Default)]
struct CallsQuery {
    since: Option<String>,
    until: Option<String>,
    operator: Option<String>,
    status: Option<String>,
    direction: Option<String>,
    phone: Option<String>,
    company: Option<i64>,
    contact: Option<i64>,
    limit: Option<i64>,
    after: Option<String>,
}

fn plan_of(hub: &Hub, tenant: &TenantId) -> Result<NumberPlan, ApiError> {
    let region = hub
        .tenant(tenant)
        .map(|t| t.region)
        .unwrap_or_else(|| "RU".to_owned());
    NumberPlan::new(&region).map_err(|e| {
        ApiError::Internal(format!("tenant {tenant} has a bad region {region:?}: {e}"))
    })
}

fn filter_of(hub: &Hub, p: &Principal, q: CallsQuery) -> Result<CallFilter, ApiError> {
    let phone = match q.phone {
        Some(raw) => Some(
            plan_of(hub, &p.tenant)?
                .parse(&raw)
                .map_err(|e| ApiError::BadRequest(format!("phone {raw:?}: {e}")))?
                .e164()
                .to_owned(),
        ),
        None => None,
    };
    if let Some(s) = &q.status
        && calldesk_calls::CallStatus::from_name(s).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "status {s:?}: expected answered, missed, no_answer, busy, failed or cancelled"
        )));
    }
    if let Some(d) = &q.direction
        && calldesk_calls::Direction::from_name(d).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "direction {d:?}: expected inbound, outbound or internal"
        )));
    }
    // Operators see their own calls only.
    let operator = if p.role.supervises() {
        q.operator
    } else {
        Some(p.extension.to_string())
    };
    Ok(CallFilter {
        since: q.since,
        until: q.until,
        operator,
        status: q.status,
        direction: q.direction,
        phone,
        company_id: q.company,
        contact_id: q.contact,
        limit: q.limit.unwrap_or(50),
        after: q.after,
    })
}

#[utoipa::path(get, path = "/api/calls", params(("since" = Option<String>, Query, description = "RFC 3339"), ("until" = Option<String>, Query), ("operator" = Option<String>, Query, description = "extension"), ("status" = Option<String>, Query), ("direction" = Option<String>, Query), ("phone" = Option<String>, Query), ("limit" = Option<i64>, Query), ("after" = Option<String>, Query, description = "the `next` of the previous page")),
    responses((status = 200, description = "`{\"items\":[call…],\"next\":cursor|null}`, newest first")))]
async fn list_calls(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<CallsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = filter_of(&hub, &p, q)?;
    let page = hub.store().list_calls(&p.tenant, &filter).await?;
    Ok(Json(json!({"items": page.items, "next": page.next})))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    phone: Option<String>,
    company: Option<i64>,
    contact: Option<i64>,
    limit: Option<i64>,
    after: Option<String>,
}

/// The history of a caller: by phone, company or contact (every operator may read it: it is
/// what the pop's card shows).
async fn history(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.phone.is_none() && q.company.is_none() && q.contact.is_none() {
        return Err(ApiError::BadRequest(
            "give phone, company or contact".to_owned(),
        ));
    }
    let supervisor_view = Principal {
        role: Role::Supervisor,
        ..p.clone()
    };
    let filter = filter_of(
        &hub,
        &supervisor_view,
        CallsQuery {
            phone: q.phone,
            company: q.company,
            contact: q.contact,
            limit: q.limit,
            after: q.after,
            ..CallsQuery::default()
        },
    )?;
    let page = hub.store().list_calls(&p.tenant, &filter).await?;
    Ok(Json(json!({"items": page.items, "next": page.next})))
}

#[utoipa::path(get, path = "/api/calls/{id}", params(("id" = String, Path)), responses((status = 200, description = "The call with caller card, notes and disposition"), (status = 404, description = "No such call in your tenant")))]
async fn get_call(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<calldesk_wire::HubCall>, ApiError> {
    Ok(Json(readable_call(&hub, &p, &id).await?))
}

/// The call `id` of the caller's tenant, if the caller may see it: supervisors see every call,
/// operators the calls their extension rang, answered, transferred or monitored. Anything else
/// is "not found" (no hint that it exists).
pub(crate) async fn readable_call(
    hub: &Hub,
    p: &Principal,
    id: &str,
) -> Result<calldesk_wire::HubCall, ApiError> {
    let missing = || ApiError::NotFound(format!("no call {id}"));
    let call = hub.store().call(&p.tenant, id).await?.ok_or_else(missing)?;
    if !p.role.supervises() && !call.extensions().any(|e| e == p.extension.as_str()) {
        return Err(missing());
    }
    Ok(call)
}

async fn call_events(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.require_supervisor()?;
    let rows = hub.store().call_events(&p.tenant, &id).await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| json!({"kind": r.kind, "at_ms": r.at_ms, "call": r.data}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
struct NoteBody {
    id: String,
    text: String,
}

async fn add_note(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<NoteBody>,
) -> Result<Json<calldesk_wire::NoteView>, ApiError> {
    readable_call(&hub, &p, &id).await?;
    Ok(Json(
        hub.store()
            .add_note(&p.tenant, &id, &b.id, Some(p.operator_id), &b.text)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
struct DispositionBody {
    code: String,
}

async fn set_disposition(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<DispositionBody>,
) -> Result<Json<calldesk_wire::DispositionView>, ApiError> {
    readable_call(&hub, &p, &id).await?;
    Ok(Json(
        hub.store()
            .set_disposition(&p.tenant, &id, &b.code, Some(p.operator_id))
            .await?,
    ))
}

/// The tenant's disposition list, in the order the after-call panel shows it.
async fn dispositions(
    State(hub): State<Hub>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let codes = hub.store().dispositions(&p.tenant).await?;
    Ok(Json(json!({ "codes": codes })))
}

#[derive(Debug, Deserialize)]
struct DispositionsBody {
    codes: Vec<String>,
}

/// Replaces the tenant's disposition list (supervisors); desks read it when a profile starts.
async fn set_dispositions(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<DispositionsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.require_supervisor()?;
    let codes = hub.store().set_dispositions(&p.tenant, &b.codes).await?;
    tracing::info!(tenant = %p.tenant, by = %p.login, codes = %codes.join(","), "disposition list replaced");
    Ok(Json(json!({ "codes": codes })))
}

#[derive(Debug, Deserialize)]
struct TagsBody {
    tags: Vec<String>,
}

async fn set_tags(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<TagsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    readable_call(&hub, &p, &id).await?;
    let tags = hub.store().set_tags(&p.tenant, &id, &b.tags).await?;
    Ok(Json(json!({ "tags": tags })))
}

#[derive(Debug, Deserialize)]
struct WorklistQuery {
    days: Option<u32>,
}

/// The tenant's missed-calls worklist (every operator works it).
async fn callbacks(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<WorklistQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let days = q.days.unwrap_or(calldesk_central::WORKLIST_DAYS);
    let items = hub
        .store()
        .callbacks(&p.tenant, days, crate::now_ms())
        .await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
struct CallbackBody {
    number: String,
    outcome: Option<String>,
}

fn actor(p: &Principal) -> calldesk_central::Actor {
    calldesk_central::Actor {
        operator: p.operator_id,
        supervisor: p.role.supervises(),
    }
}

async fn claim_callback(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<CallbackBody>,
) -> Result<Json<calldesk_wire::CallbackItem>, ApiError> {
    set_claim(&hub, &p, &b.number, true).await
}

async fn release_callback(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<CallbackBody>,
) -> Result<Json<calldesk_wire::CallbackItem>, ApiError> {
    set_claim(&hub, &p, &b.number, false).await
}

async fn set_claim(
    hub: &Hub,
    p: &Principal,
    number: &str,
    claim: bool,
) -> Result<Json<calldesk_wire::CallbackItem>, ApiError> {
    let store = hub.store();
    let item = store
        .claim_callback(&p.tenant, number, actor(p), claim, crate::now_ms())
        .await?;
    callbacks_changed(hub, p, &item.number);
    Ok(Json(item))
}

/// Tells every desk of the tenant (here and on the other replicas) that a worklist item
/// changed, so colleagues see a claim or a closing at once instead of at their next poll.
fn callbacks_changed(hub: &Hub, p: &Principal, number: &str) {
    let message = calldesk_wire::HubMessage::CallbacksChanged {
        number: number.to_owned(),
    };
    tell_desks(hub, &p.tenant, &message);
}

/// Sends `message` to every desk of the tenant, here and on the other replicas.
pub(crate) fn tell_desks(hub: &Hub, tenant: &TenantId, message: &calldesk_wire::HubMessage) {
    let rooms = vec![
        crate::fanout::Room::Supervisors,
        crate::fanout::Room::Operators,
    ];
    if let Some(out) = hub.fanout().tenant(tenant).publish(message, rooms) {
        crate::replicas::share(hub, tenant, &out);
    }
}

async fn close_callback(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<CallbackBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = b.outcome.as_deref().unwrap_or_default();
    let outcome = calldesk_wire::CallbackOutcome::from_name(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "outcome `{}` is not one of reached, unreachable, not_needed",
            raw.escape_debug()
        ))
    })?;
    hub.store()
        .close_callback(&p.tenant, &b.number, outcome, actor(&p), crate::now_ms())
        .await?;
    callbacks_changed(&hub, &p, &b.number);
    Ok(Json(
        json!({ "closed": b.number, "outcome": outcome.as_str() }),
    ))
}

async fn operators(
    State(hub): State<Hub>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = hub.store().operators(&p.tenant).await?;
    let items: Vec<_> = list
        .into_iter()
        .map(|o| json!({"id": o.id, "login": o.login, "name": o.name, "role": o.role.as_str(), "extension": o.extension.as_str(), "sip": o.sip, "active": o.active}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    search: Option<String>,
    limit: Option<i64>,
}

fn phones(hub: &Hub, tenant: &TenantId, raw: &[String]) -> Result<Vec<String>, ApiError> {
    let plan = plan_of(hub, tenant)?;
    raw.iter()
        .map(|r| {
            plan.parse(r)
                .map(|n| n.e164().to_owned())
                .map_err(|e| ApiError::BadRequest(format!("phone {r:?}: {e}")))
        })
        .collect()
}

fn limit(l: Option<i64>) -> i64 {
    l.unwrap_or(100).clamp(1, 500)
}

/// Companies and contacts: the same five routes over two kinds of directory entry. Reads are
/// for everyone in the tenant (the pop's card), writes for admins; phones are normalised to
/// E.164 with the tenant's region; a write clears the caller-card cache.
trait Directory: Send + Sync + 'static {
    const WHAT: &'static str;
    type Input: serde::de::DeserializeOwned + Send + Sync + 'static;
    type Item: Serialize + Send;
    fn phones(input: &mut Self::Input) -> &mut Vec<String>;
    fn list<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        search: Option<&'a str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Item>, CentralError>> + Send + 'a;
    fn get<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a;
    fn create<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        input: &'a Self::Input,
    ) -> impl Future<Output = Result<Self::Item, CentralError>> + Send + 'a;
    fn update<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
        input: &'a Self::Input,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a;
    fn delete<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<bool, CentralError>> + Send + 'a;
}

struct Companies;
struct Contacts;

impl Directory for Companies {
    const WHAT: &'static str = "company";
    type Input = CompanyInput;
    type Item = calldesk_central::Company;
    fn phones(input: &mut CompanyInput) -> &mut Vec<String> {
        &mut input.phones
    }
    fn list<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        search: Option<&'a str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Item>, CentralError>> + Send + 'a {
        s.companies(t, search, limit)
    }
    fn get<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a {
        s.company(t, id)
    }
    fn create<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        input: &'a CompanyInput,
    ) -> impl Future<Output = Result<Self::Item, CentralError>> + Send + 'a {
        s.create_company(t, input)
    }
    fn update<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
        input: &'a CompanyInput,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a {
        s.update_company(t, id, input)
    }
    fn delete<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<bool, CentralError>> + Send + 'a {
        s.delete_company(t, id)
    }
}

impl Directory for Contacts {
    const WHAT: &'static str = "contact";
    type Input = ContactInput;
    type Item = calldesk_central::Contact;
    fn phones(input: &mut ContactInput) -> &mut Vec<String> {
        &mut input.phones
    }
    fn list<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        search: Option<&'a str>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self::Item>, CentralError>> + Send + 'a {
        s.contacts(t, search, limit)
    }
    fn get<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a {
        s.contact(t, id)
    }
    fn create<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        input: &'a ContactInput,
    ) -> impl Future<Output = Result<Self::Item, CentralError>> + Send + 'a {
        s.create_contact(t, input)
    }
    fn update<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
        input: &'a ContactInput,
    ) -> impl Future<Output = Result<Option<Self::Item>, CentralError>> + Send + 'a {
        s.update_contact(t, id, input)
    }
    fn delete<'a>(
        s: &'a calldesk_central::CentralStore,
        t: &'a TenantId,
        id: i64,
    ) -> impl Future<Output = Result<bool, CentralError>> + Send + 'a {
        s.delete_contact(t, id)
    }
}

fn not_found<K: Directory>(id: i64) -> ApiError {
    ApiError::NotFound(format!("no {} {id}", K::WHAT))
}

/// An admin's write: the role checked, the cache cleared, the phones normalised.
fn admin_write<K: Directory>(
    hub: &Hub,
    p: &Principal,
    input: &mut K::Input,
) -> Result<(), ApiError> {
    p.require_admin()?;
    hub.inner.cards.clear();
    let normalised = phones(hub, &p.tenant, K::phones(input))?;
    *K::phones(input) = normalised;
    Ok(())
}

async fn dir_list<K: Directory>(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = K::list(hub.store(), &p.tenant, q.search.as_deref(), limit(q.limit)).await?;
    Ok(Json(json!({ "items": items })))
}

async fn dir_get<K: Directory>(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<K::Item>, ApiError> {
    let item = K::get(hub.store(), &p.tenant, id).await?;
    item.map(Json).ok_or_else(|| not_found::<K>(id))
}

async fn dir_create<K: Directory>(
    State(hub): State<Hub>,
    p: Principal,
    Json(mut input): Json<K::Input>,
) -> Result<(StatusCode, Json<K::Item>), ApiError> {
    admin_write::<K>(&hub, &p, &mut input)?;
    Ok((
        StatusCode::CREATED,
        Json(K::create(hub.store(), &p.tenant, &input).await?),
    ))
}

async fn dir_update<K: Directory>(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<i64>,
    Json(mut input): Json<K::Input>,
) -> Result<Json<K::Item>, ApiError> {
    admin_write::<K>(&hub, &p, &mut input)?;
    let item = K::update(hub.store(), &p.tenant, id, &input).await?;
    item.map(Json).ok_or_else(|| not_found::<K>(id))
}

async fn dir_delete<K: Directory>(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require_admin()?;
    hub.inner.cards.clear();
    if K::delete(hub.store(), &p.tenant, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found::<K>(id))
    }
}

// ---- call controls ----

pub use calldesk_wire::{ControlReply, ControlSpec};

/// Runs a control on this replica's PBX handle.
pub async fn run_control(pbx: &TenantPbx, spec: ControlSpec) -> ControlReply {
    let result = match spec.to_control() {
        Ok(control) => pbx.execute(control).await,
        Err(e) => Err(e),
    };
    ControlReply::from_result(result)
}

/// Runs a control for `tenant`: here when this replica holds its PBX, else on the holder.
pub async fn execute(
    hub: &Hub,
    tenant: &TenantId,
    spec: ControlSpec,
) -> Result<ControlReply, ApiError> {
    let reply = match hub.runtime(tenant) {
        Some(rt) => run_control(&rt.pbx, spec).await,
        None => crate::replicas::forward_control(hub, tenant, spec)
            .await
            .ok_or_else(|| ApiError::Unavailable(format!("no hub replica holds the PBX of tenant {tenant} right now; try again in a few seconds")))?,
    };
    Ok(reply)
}

pub fn status_of_code(code: &str) -> StatusCode {
    match code {
        "invalid" => StatusCode::BAD_REQUEST,
        "not_supported" => StatusCode::NOT_IMPLEMENTED,
        "no_such_call" => StatusCode::NOT_FOUND,
        "not_in_call" | "not_answered" => StatusCode::CONFLICT,
        "refused" => StatusCode::BAD_GATEWAY,
        "disconnected" => StatusCode::SERVICE_UNAVAILABLE,
        "timed_out" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply_response(reply: ControlReply) -> Response {
    if reply.ok {
        (
            StatusCode::OK,
            Json(json!({"ok": true, "call": reply.call})),
        )
            .into_response()
    } else {
        let code = reply.code.unwrap_or_default();
        (
            status_of_code(&code),
            Json(json!({"error": {"code": code, "message": reply.message}})),
        )
            .into_response()
    }
}

/// The extension a control acts for: operators act as themselves; supervisors may name one.
fn acting(p: &Principal, requested: Option<String>) -> Result<String, ApiError> {
    match requested {
        Some(ext) if ext != p.extension.as_str() => {
            p.require_supervisor()?;
            Ok(ext)
        }
        _ => Ok(p.extension.to_string()),
    }
}

fn region(hub: &Hub, p: &Principal) -> String {
    hub.tenant(&p.tenant)
        .map(|t| t.region)
        .unwrap_or_else(|| "RU".to_owned())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct OriginateBody {
    to: String,
    /// Supervisors may call from another extension.
    from: Option<String>,
}

#[utoipa::path(post, path = "/api/calls/originate", request_body = OriginateBody, responses((status = 200, description = "`{\"ok\":true,\"call\":id|null}`"), (status = 400, description = "Not an extension or phone number")))]
async fn originate(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<OriginateBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::Originate {
        region: region(&hub, &p),
        operator: acting(&p, b.from)?,
        to: b.to,
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

#[derive(Debug, Deserialize, Default)]
struct ActBody {
    operator: Option<String>,
    to: Option<String>,
    kind: Option<String>,
    on: Option<bool>,
    action: Option<String>,
    mode: Option<String>,
    supervisor: Option<String>,
    digits: Option<String>,
}

fn need(v: Option<String>, what: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| ApiError::BadRequest(format!("`{what}` is required")))
}

async fn hangup(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    body: Option<Json<ActBody>>,
) -> Result<Response, ApiError> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let spec = ControlSpec::Hangup {
        call: id,
        operator: Some(acting(&p, b.operator)?),
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

async fn transfer(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<ActBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::Transfer {
        region: region(&hub, &p),
        call: id,
        operator: acting(&p, b.operator)?,
        to: need(b.to, "to")?,
        kind: b.kind.unwrap_or_else(|| "blind".to_owned()),
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

async fn hold(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<ActBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::Hold {
        call: id,
        operator: acting(&p, b.operator)?,
        on: b.on.unwrap_or(true),
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

/// Touch tones to the other party of the operator's call (`{"digits": "1#"}`).
async fn dtmf(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<ActBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::Dtmf {
        call: id,
        operator: acting(&p, b.operator)?,
        digits: need(b.digits, "digits")?,
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

async fn record(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<ActBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::Record {
        call: id,
        action: b.action.unwrap_or_else(|| "start".to_owned()),
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

async fn monitor(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Json(b): Json<ActBody>,
) -> Result<Response, ApiError> {
    p.require_supervisor()?;
    let operator = match b.operator {
        Some(o) => o,
        None => hub
            .fanout()
            .tenant(&p.tenant)
            .live_call(&id)
            .and_then(|c| c.operator)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "`operator` is required (the extension to listen to)".to_owned(),
                )
            })?,
    };
    let spec = ControlSpec::Monitor {
        call: id,
        operator,
        supervisor: b.supervisor.unwrap_or_else(|| p.extension.to_string()),
        mode: b.mode.unwrap_or_else(|| "listen".to_owned()),
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

#[derive(Debug, Deserialize)]
struct PauseBody {
    operator: Option<String>,
    queue: Option<String>,
    paused: bool,
    reason: Option<String>,
}

async fn queue_pause(
    State(hub): State<Hub>,
    p: Principal,
    Json(b): Json<PauseBody>,
) -> Result<Response, ApiError> {
    let spec = ControlSpec::QueuePause {
        operator: acting(&p, b.operator)?,
        queue: b.queue,
        paused: b.paused,
        reason: b.reason,
    };
    Ok(reply_response(execute(&hub, &p.tenant, spec).await?))
}

// ---- the seed-compatible machine API ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MakeCallQuery {
    code: Option<String>,
    phone: Option<String>,
    client_id: Option<String>,
}

fn detail(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({"detail": text.into()}))).into_response()
}

async fn machine_tenant(
    hub: &Hub,
    client_id: Option<&str>,
) -> Result<calldesk_central::TenantConfig, Response> {
    let Some(secret) = client_id.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Err(detail(StatusCode::UNAUTHORIZED, "Invalid clientId"));
    };
    if !hub.inner.limits.machine_ok(&hex::encode(
        calldesk_central::password::client_secret_digest(secret),
    )) {
        hub.metrics()
            .machine_requests
            .get_or_create(&ResultLabel { result: "limited" })
            .inc();
        return Err(detail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests for this clientId; slow down",
        ));
    }
    match hub.store().tenant_by_client_secret(secret).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => {
            hub.metrics()
                .machine_requests
                .get_or_create(&ResultLabel {
                    result: "unauthorized",
                })
                .inc();
            Err(detail(StatusCode::UNAUTHORIZED, "Invalid clientId"))
        }
        Err(e) => {
            tracing::error!(error = %e, "machine API: database error");
            Err(detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable; try again",
            ))
        }
    }
}

fn host_of(t: &calldesk_central::TenantConfig) -> String {
    match &t.pbx {
        calldesk_central::PbxConfig::Asterisk { host, .. } => host.clone(),
        calldesk_central::PbxConfig::Mango { .. } => "mango-office".to_owned(),
        calldesk_central::PbxConfig::Demo => "demo".to_owned(),
    }
}

fn elapsed_ms(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0
}

#[utoipa::path(get, path = "/api/makecallexternal", params(("code" = String, Query, description = "the extension that calls"), ("phone" = String, Query), ("clientId" = String, Query, description = "the enterprise secret")),
    responses((status = 200, description = "The seed's reply: success, message, enterprise, enterprise_number, from_ext, to_phone, host_ip, response_time_ms"), (status = 401, description = "`{\"detail\":\"Invalid clientId\"}`")))]
async fn machine_makecall(State(hub): State<Hub>, Query(q): Query<MakeCallQuery>) -> Response {
    let started = std::time::Instant::now();
    let tenant = match machine_tenant(&hub, q.client_id.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (Some(code), Some(phone)) = (q.code, q.phone) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "code and phone are required",
        );
    };
    tracing::info!(tenant = %tenant.id, %code, "machine API: click-to-call");
    let spec = ControlSpec::Originate {
        region: tenant.region.clone(),
        operator: code.clone(),
        to: phone.clone(),
    };
    let reply = match execute(&hub, &tenant.id, spec).await {
        Ok(r) => r,
        Err(e) => return detail(e.status(), format!("Call initiation failed: {e}")),
    };
    if !reply.ok {
        hub.metrics()
            .machine_requests
            .get_or_create(&ResultLabel { result: "failed" })
            .inc();
        let code_text = reply.code.unwrap_or_default();
        let status = if code_text == "invalid" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return detail(
            status,
            format!(
                "Call initiation failed: {}",
                reply.message.unwrap_or_default()
            ),
        );
    }
    hub.metrics()
        .machine_requests
        .get_or_create(&ResultLabel { result: "ok" })
        .inc();
    Json(json!({
        "success": true,
        "message": format!("Call initiated successfully: {code} -> {phone}"),
        "enterprise": tenant.name,
        "enterprise_number": tenant.number,
        "from_ext": code,
        "to_phone": phone,
        "host_ip": host_of(&tenant),
        "call_id": reply.call,
        "response_time_ms": elapsed_ms(started),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MonitorQuery {
    action: Option<String>,
    target: Option<String>,
    #[serde(rename = "monitor_from")]
    monitor_from: Option<String>,
    client_id: Option<String>,
}

#[utoipa::path(get, path = "/api/monitor", params(("action" = String, Query, description = "09 listen, 01 whisper, 02 barge"), ("target" = String, Query), ("monitor_from" = String, Query), ("clientId" = String, Query)),
    responses((status = 200, description = "The seed's reply"), (status = 401, description = "`{\"detail\":\"Invalid clientId\"}`")))]
async fn machine_monitor(State(hub): State<Hub>, Query(q): Query<MonitorQuery>) -> Response {
    let started = std::time::Instant::now();
    let tenant = match machine_tenant(&hub, q.client_id.as_deref()).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (Some(action), Some(target), Some(from)) = (q.action, q.target, q.monitor_from) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "action, target and monitor_from are required",
        );
    };
    let (mode, name) = match action.as_str() {
        "09" => ("listen", "подслушивание"),
        "01" => ("whisper", "суфлирование"),
        "02" => ("barge", "вмешательство"),
        _ => {
            return detail(
                StatusCode::BAD_REQUEST,
                format!("action must be 09 (listen), 01 (whisper) or 02 (barge), not {action:?}"),
            );
        }
    };
    if calldesk_wire::extension(&target, "target").is_err()
        || calldesk_wire::extension(&from, "monitor_from").is_err()
    {
        return detail(
            StatusCode::BAD_REQUEST,
            "target and monitor_from must be extensions",
        );
    }
    let channel = hub.fanout().tenant(&tenant.id);
    crate::replicas::seed(&hub, &tenant.id, &channel).await;
    let Some(call) = channel.call_of_extension(&target) else {
        return detail(
            StatusCode::CONFLICT,
            format!("Monitoring failed: {target} is not in a call"),
        );
    };
    let spec = ControlSpec::Monitor {
        call: call.record.id.clone(),
        operator: target.clone(),
        supervisor: from.clone(),
        mode: mode.to_owned(),
    };
    let reply = match execute(&hub, &tenant.id, spec).await {
        Ok(r) => r,
        Err(e) => return detail(e.status(), format!("Monitoring failed: {e}")),
    };
    if !reply.ok {
        let status = status_of_code(reply.code.as_deref().unwrap_or_default());
        return detail(
            if status == StatusCode::NOT_IMPLEMENTED {
                status
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            format!("Monitoring failed: {}", reply.message.unwrap_or_default()),
        );
    }
    let target_channel = match &tenant.pbx {
        calldesk_central::PbxConfig::Asterisk { dialplan, .. } => Some(format!(
            "{}/{target}",
            crate::runtime::dialplan_config(dialplan).tech.as_str()
        )),
        _ => None,
    };
    Json(json!({
        "success": true,
        "message": format!("Monitoring initiated successfully: {name} for {}", target_channel.clone().unwrap_or_else(|| target.clone())),
        "action": action,
        "action_name": name,
        "target": target,
        "monitor_from": from,
        "target_channel": target_channel,
        "call_id": call.record.id,
        "enterprise": tenant.name,
        "enterprise_number": tenant.number,
        "host_ip": host_of(&tenant),
        "response_time_ms": elapsed_ms(started),
    }))
    .into_response()
}

//! The admin HTTP API (axum), on loopback by default.
//!
//! ```text
//!  GET  /livez                      200 while the process runs
//!  GET  /readyz                     503 until the first probe round has finished
//!  GET  /metrics                    Prometheus (OpenMetrics text)
//!  GET  /                          the console: a live status page (`console`)
//!  GET  /v1/status                  every zone, pool and member: health per check, override, load
//!  GET  /v1/history?limit=&member=  the latest health transitions and operator actions
//!  GET  /v1/rates?after=N           answers per member per second, the last five minutes (or
//!                                   the samples after the N-th)
//!  POST /v1/members/{addr}/{action} drain | undrain | force-up | force-down | clear
//!  POST /v1/sites/{site}/{action}   the same for every member placed in that site
//!                                   body (optional): {"reason": "...", "expires": "2h", "by": "..."}
//!  GET  /v1/explain?name=&client=IP[/LEN]&type=A|AAAA
//!                                   the answer a client would get now, and every step of why
//!  POST /v1/reload                  like SIGHUP; answers when the new config is live, or with
//!                                   the diagnostics if it was refused
//! ```
//! The API never touches the table: it sends a request to the writer and waits for its reply,
//! so an override is live and saved (atomically) before the API answers. Writes need
//! `Authorization: Bearer <token>` when a token file is configured. Errors are JSON
//! `{"error": "..."}` with a 4xx status for a bad request, 500 when the server could not do
//! what was asked (an override it cannot save is not applied); nothing is half-applied.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::explain::ExplainError;
use crate::api::{self, Action, ErrorBody, OverrideDone, OverrideRequest, Reloaded};
use crate::health::overrides::{OverrideKind, OverrideTarget};

/// What the API asks of the writer.
pub enum Request {
    Status(oneshot::Sender<api::StatusReport>),
    /// Set or clear a member's or a site's override; the reply says whether it was done.
    Override {
        target: OverrideTarget,
        change: Option<(OverrideKind, String, Option<Duration>)>,
        /// Who asks, for the history.
        by: Option<String>,
        reply: oneshot::Sender<Result<(), OverrideError>>,
    },
    /// The latest events, of one member if given.
    History {
        limit: usize,
        member: Option<IpAddr>,
        reply: oneshot::Sender<api::HistoryReport>,
    },
    /// Every member's rates, or only the samples taken after the given count.
    Rates(Option<u64>, oneshot::Sender<api::RatesReport>),
    Reload(oneshot::Sender<Result<String, ReloadError>>),
    Explain(
        crate::api::explain::Question,
        oneshot::Sender<Result<crate::api::explain::Explanation, ExplainError>>,
    ),
}

/// Why a reload was refused; the running config stays (422).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config has errors: its diagnostics, one per line.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Build(#[from] crate::snapshot::BuildError),
    #[error("the config loader failed: {0}")]
    Loader(String),
}

/// Why an override was not set or cleared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// The request names no configured member or site, or nothing to clear (404).
    #[error("{0}")]
    NotFound(String),
    /// The server could not save it in `state_dir`, so it was not applied (500).
    #[error("{0}")]
    NotSaved(String),
    /// Applied on this node, but etcd does not have it yet (503): the other nodes do not
    /// know it until etcd is back.
    #[error("{0}")]
    NotShared(String),
}

#[derive(Clone)]
struct Api {
    writer: mpsc::Sender<Request>,
    token: Option<String>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    ready: watch::Receiver<bool>,
}

/// Serve the API on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    writer: mpsc::Sender<Request>,
    token: Option<String>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    ready: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api = Api {
        writer,
        token,
        metrics,
        ready,
    };
    let app = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/status", get(status))
        .route("/v1/members/{address}/{action}", post(member))
        .route("/v1/sites/{site}/{action}", post(site))
        .route("/v1/reload", post(reload))
        .route("/v1/explain", get(explain))
        .route("/v1/history", get(history))
        .route("/v1/rates", get(rates))
        .merge(crate::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            same_origin,
        ))
        .layer(axum::middleware::map_response(
            crate::console::security_headers,
        ))
        .with_state(api);
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("admin API stopped: {e}");
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Whether a write may proceed: no token configured, or the right bearer token given.
fn authorized(api: &Api, headers: &HeaderMap) -> bool {
    let Some(token) = &api.token else { return true };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given == Some(token.as_str())
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "a valid `Authorization: Bearer <token>` is needed for writes",
    )
}

async fn readyz(State(api): State<Api>) -> Response {
    if *api.ready.borrow() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the first probe round has not finished\n",
        )
            .into_response()
    }
}

/// Prometheus text exposition (OpenMetrics); no token needed.
async fn metrics_text(State(api): State<Api>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.encode(),
    )
        .into_response()
}

async fn status(State(api): State<Api>) -> Response {
    let (tx, rx) = oneshot::channel();
    ask(&api, Request::Status(tx), rx).await
}

async fn member(
    State(api): State<Api>,
    Path((address, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    let Ok(address) = address.parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{address:?} is not an IP address"),
        );
    };
    apply(&api, OverrideTarget::Member(address), &action, &body).await
}

async fn site(
    State(api): State<Api>,
    Path((site, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    apply(&api, OverrideTarget::Site(site), &action, &body).await
}

/// Parse an override request and hand it to the writer.
async fn apply(api: &Api, target: OverrideTarget, action: &str, body: &[u8]) -> Response {
    let change: OverrideRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OverrideRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not {{\"reason\": \"...\", \"expires\": \"2h\"}}: {e}"),
                );
            }
        }
    };
    let expires = match &change.expires {
        None => None,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("expires: {s:?} is not a duration (e.g. 30m, 2h)"),
                );
            }
        },
    };
    let reason = change.reason.unwrap_or_default();
    if let Err(e) = api::check_text("reason", &reason, api::MAX_REASON) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let by = change
        .by
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty());
    if let Some(b) = &by
        && let Err(e) = api::check_text("by", b, api::MAX_BY)
    {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let change = match action.parse::<Action>() {
        Ok(Action::Clear) => None,
        Ok(Action::Set(kind)) => Some((kind, reason, expires)),
        Err(e) => return error(StatusCode::NOT_FOUND, e),
    };
    let (tx, rx) = oneshot::channel();
    if api
        .writer
        .send(Request::Override {
            target: target.clone(),
            change,
            by,
            reply: tx,
        })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(())) => {
            let (address, site) = match target {
                OverrideTarget::Member(a) => (Some(a), None),
                OverrideTarget::Site(s) => (None, Some(s)),
            };
            Json(OverrideDone {
                address,
                site,
                action: action.to_string(),
            })
            .into_response()
        }
        Ok(Err(e @ OverrideError::NotFound(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ OverrideError::NotSaved(_))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Ok(Err(e @ OverrideError::NotShared(_))) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

/// Refuse what a web page elsewhere could make the operator's browser send: a write whose
/// `Origin` is not this API (cross-site request forgery: a form or a `no-cors` fetch needs no
/// preflight), and, without a token, any request for a host name other than an address or
/// `localhost` (DNS rebinding: a page whose name resolves to 127.0.0.1 reading the API as its
/// own origin), except `/livez` and `/readyz`. `gslbd ctl` and curl send no `Origin` and name
/// the address.
async fn same_origin(
    State(api): State<Api>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h = req.headers();
    let host = h.get("host").and_then(|v| v.to_str().ok());
    // Liveness and readiness say nothing but "ok": probes may call them by any name.
    let probe = matches!(req.uri().path(), "/livez" | "/readyz");
    if let Some(host) = host
        && api.token.is_none()
        && !probe
        && !is_address_or_localhost(host)
    {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "host {host:?}: without an API token the admin API answers only to an address \
                 or localhost (set api.token_file to reach it by name)"
            ),
        );
    }
    let write = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let origin = h.get("origin").and_then(|v| v.to_str().ok());
    if write
        && let Some(origin) = origin
        && host.is_none_or(|host| {
            origin
                .strip_prefix("http://")
                .or(origin.strip_prefix("https://"))
                != Some(host)
        })
    {
        return error(
            StatusCode::FORBIDDEN,
            format!("a write from origin {origin:?}, not this API's: refused"),
        );
    }
    next.run(req).await
}

/// `127.0.0.1:8053`, `[::1]:8053`, `localhost:8053` (the port optional).
fn is_address_or_localhost(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[') {
        return v6
            .split_once(']')
            .is_some_and(|(a, _)| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
    member: Option<IpAddr>,
}

async fn history(
    State(api): State<Api>,
    query: Result<axum::extract::Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match parameters(query, "?limit=N&member=IP (both optional)") {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (tx, rx) = oneshot::channel();
    let req = Request::History {
        limit: q.limit.unwrap_or(100),
        member: q.member,
        reply: tx,
    };
    ask(&api, req, rx).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesQuery {
    after: Option<u64>,
}

async fn rates(
    State(api): State<Api>,
    query: Result<axum::extract::Query<RatesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match parameters(query, "?after=N (optional)") {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (tx, rx) = oneshot::channel();
    ask(&api, Request::Rates(q.after, tx), rx).await
}

/// A request's query parameters, or why not, saying what was `expected` (for a 400).
fn parameters<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
    expected: &str,
) -> Result<T, String> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| format!("expected {expected}: {e}"))
}

/// Send a read request to the writer and answer with its reply as JSON.
async fn ask<T: serde::Serialize>(api: &Api, req: Request, rx: oneshot::Receiver<T>) -> Response {
    if api.writer.send(req).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(v) => Json(v).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

async fn explain(
    State(api): State<Api>,
    query: Result<
        axum::extract::Query<crate::api::explain::Question>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    let q = match parameters(query, "?name=NAME&client=IP[/LEN][&type=A|AAAA]") {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (tx, rx) = oneshot::channel();
    if api.writer.send(Request::Explain(q, tx)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e @ ExplainError::Question(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e @ ExplainError::Internal(_))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

async fn reload(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    let (tx, rx) = oneshot::channel();
    if api.writer.send(Request::Reload(tx)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match rx.await {
        Ok(Ok(reloaded)) => Json(Reloaded { reloaded }).into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

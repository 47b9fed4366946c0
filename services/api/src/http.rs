//! HTTP: `/graphql` (POST queries and mutations, GET GraphiQL), `/graphql/ws` (subscriptions),
//! `/healthz`, `/readyz` and `/metrics`; bearer authentication before any GraphQL runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql_poem::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::{HeaderValue, StatusCode, header};
use poem::middleware::SizeLimit;
use poem::web::websocket::WebSocket;
use poem::web::{Html, Json};
use poem::{Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get, handler};
use thread_local::ThreadLocal;

use crate::auth::{AuthError, Authenticator, Caller};
use crate::direct::DirectQuery;
use crate::schema::ApiSchema;
use crate::{ApiContext, schema};

/// The process-wide Prometheus recorder (installed once; every service in the process shares it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // another recorder already installed (an embedding program's) keeps priority
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

struct HttpState {
    schema: ApiSchema,
    authenticator: Authenticator,
    context: ApiContext,
    parsed_queries: ParsedQueries,
}

/// Parsed documents by query text: dashboards send the same few queries over and over, and
/// parsing was a tenth of a page's cost. Bounded in entries and in the text kept.
///
/// One cache per thread: every name in a document is reference-counted, and a request gets a
/// clone of the cached document, so a document shared by all threads had the cores take turns on
/// the same counters for every field of every object of every answer.
#[derive(Default)]
struct ParsedQueries(ThreadLocal<RefCell<HashMap<String, ParsedQuery>>>);

struct ParsedQuery {
    document: ExecutableDocument,
    /// The query when it can be answered directly ([`crate::direct`]), and whether async-graphql
    /// has executed this text without error (validation included) yet.
    direct: Option<(Arc<DirectQuery>, bool)>,
}

/// Whether a request can be answered directly.
enum Direct {
    Ready(Arc<DirectQuery>),
    /// Once async-graphql has executed the text without error.
    AfterExecution,
    Never,
}

impl ParsedQueries {
    const MOST_KEPT: usize = 256;
    const LONGEST_KEPT: usize = 4 * 1024;

    /// Tells whether `request` can be answered directly, and otherwise gives it its parsed
    /// document, from the cache or parsed now (and kept). A query that does not parse is left for
    /// execution to report.
    fn attach(&self, request: &mut async_graphql::Request) -> Direct {
        let cache = self.0.get_or_default();
        let plain_request =
            request.operation_name.is_none() && request.variables.is_empty() && request.extensions.is_empty();
        if let Some(parsed) = cache.borrow().get(&request.query) {
            let direct = match &parsed.direct {
                Some((query, true)) if plain_request => return Direct::Ready(Arc::clone(query)),
                Some((_, false)) if plain_request => Direct::AfterExecution,
                _ => Direct::Never,
            };
            // a direct answer needs no document: it is cloned only for execution
            request.set_parsed_query(parsed.document.clone());
            return direct;
        }
        if request.query.len() > Self::LONGEST_KEPT {
            return Direct::Never;
        }
        let Ok(document) = request.parsed_query() else { return Direct::Never };
        let direct = DirectQuery::of(document).map(|query| (Arc::new(query), false));
        let answer = if direct.is_some() && plain_request { Direct::AfterExecution } else { Direct::Never };
        let parsed = ParsedQuery { document: document.clone(), direct };
        let mut cache = cache.borrow_mut();
        if cache.len() >= Self::MOST_KEPT {
            cache.clear();
        }
        cache.insert(request.query.clone(), parsed);
        answer
    }

    /// async-graphql executed `query` without error: it is answered directly from now on.
    fn executed_without_error(&self, query: &str) {
        if let Some(parsed) = self.0.get_or_default().borrow_mut().get_mut(query)
            && let Some((_, executed)) = &mut parsed.direct
        {
            *executed = true;
        }
    }
}

/// Every route of the API, ready for [`crate::serve`].
/// `/metrics` (Prometheus) and `/healthz` alone, for services without the GraphQL API.
pub fn metrics_routes() -> impl Endpoint {
    prometheus();
    Route::new().at("/metrics", get(metrics_text)).at("/healthz", get(healthz))
}

pub fn routes(context: ApiContext, authenticator: Authenticator) -> impl Endpoint {
    let max_body_bytes = context.config.max_body_bytes;
    let state = Arc::new(HttpState {
        schema: schema::build(context.clone()),
        authenticator,
        context,
        parsed_queries: ParsedQueries::default(),
    });
    prometheus();
    Route::new()
        .at("/graphql", get(graphiql).post(graphql.with(SizeLimit::new(max_body_bytes))))
        .at("/graphql/ws", get(subscriptions))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_text))
        .data(state)
}

fn refusal(error: &AuthError) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }] });
    let mut response = Json(body)
        .with_status(StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED))
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&error.challenge()) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn authenticate(state: &HttpState, request: &Request) -> Result<Caller, AuthError> {
    let header = request.headers().get(header::AUTHORIZATION).map(|value| value.to_str().unwrap_or(""));
    state.authenticator.authenticate(header)
}

#[handler]
async fn graphql(request: &Request, body: poem::Body, state: poem::web::Data<&Arc<HttpState>>) -> Response {
    let started = Instant::now();
    let caller = match authenticate(&state, request) {
        Ok(caller) => caller,
        Err(error) => {
            metrics::counter!("argus_api_requests_total", "outcome" => "unauthenticated").increment(1);
            return refusal(&error);
        }
    };
    let mut graphql_request = match GraphQLRequest::from_request(request, &mut RequestBody::new(body)).await {
        Ok(GraphQLRequest(graphql_request)) => graphql_request,
        Err(error) => {
            metrics::counter!("argus_api_requests_total", "outcome" => "bad_request").increment(1);
            return error.into_response();
        }
    };
    let direct = state.parsed_queries.attach(&mut graphql_request);
    if let Direct::Ready(query) = &direct
        && let Some(body) = query.answer(&state.context, &caller).await
    {
        metrics::counter!("argus_api_requests_total", "outcome" => "ok").increment(1);
        metrics::counter!("argus_api_direct_answers_total").increment(1);
        metrics::histogram!("argus_api_request_seconds").record(started.elapsed().as_secs_f64());
        return Response::builder().header(header::CONTENT_TYPE, "application/json; charset=utf-8").body(body);
    }
    // else async-graphql answers (a direct answer that is an error too: it parses the text again)
    let query_text = matches!(direct, Direct::AfterExecution).then(|| graphql_request.query.clone());
    let response = state.schema.execute(graphql_request.data(caller)).await;
    if let Some(query_text) = query_text
        && response.errors.is_empty()
    {
        state.parsed_queries.executed_without_error(&query_text);
    }
    let insufficient = response.errors.iter().find_map(|error| {
        let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code"));
        matches!(code, Some(async_graphql::Value::String(code)) if code == "insufficient_scope")
            .then(|| AuthError::InsufficientScope(error.message.clone()))
    });
    let outcome = if insufficient.is_some() {
        "forbidden"
    } else if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    metrics::counter!("argus_api_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("argus_api_request_seconds").record(started.elapsed().as_secs_f64());
    let status = if insufficient.is_some() { StatusCode::FORBIDDEN } else { StatusCode::OK };
    let mut http = Json(&response).with_status(status).into_response();
    if let Some(error) = insufficient
        && let Ok(value) = HeaderValue::from_str(&error.challenge())
    {
        http.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    http
}

#[handler]
fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Argus WireGuard")
            .finish(),
    )
}

/// Subscriptions authenticate with the upgrade request's `Authorization` header, or else with an
/// `Authorization` entry in the `connection_init` payload (browsers cannot set upgrade headers).
#[handler]
async fn subscriptions(
    request: &Request,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
    state: poem::web::Data<&Arc<HttpState>>,
) -> Response {
    let upgrade_caller = match request.headers().get(header::AUTHORIZATION) {
        Some(_) => match authenticate(&state, request) {
            Ok(caller) => Some(caller),
            Err(error) => return refusal(&error),
        },
        None => None,
    };
    let state: Arc<HttpState> = state.clone();
    let schema = state.schema.clone();
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| {
            let mut data = Data::default();
            let authenticated = upgrade_caller.is_some();
            if let Some(caller) = upgrade_caller {
                data.insert(caller);
            }
            GraphQLWebSocket::new(stream, schema, protocol)
                .with_data(data)
                .on_connection_init(move |payload| async move {
                    let mut data = Data::default();
                    if authenticated {
                        return Ok(data);
                    }
                    let header = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|name| payload.get(name).and_then(|value| value.as_str()));
                    let caller = state.authenticator.authenticate(header).map_err(schema::auth_error)?;
                    data.insert(caller);
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Ready when the projection store answers.
#[handler]
async fn readyz(state: poem::web::Data<&Arc<HttpState>>) -> Response {
    match state.context.store.checkpoint("readyz").await {
        Ok(_) => "ready".into_response(),
        Err(error) => {
            format!("store unavailable: {error}").with_status(StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    }
}

#[handler]
fn metrics_text() -> Response {
    prometheus().render().with_content_type("text/plain; version=0.0.4").into_response()
}

#[cfg(test)]
mod tests {
    use super::ParsedQueries;

    fn kept(cache: &ParsedQueries) -> usize {
        cache.0.get().map_or(0, |cache| cache.borrow().len())
    }

    #[test]
    fn a_query_is_parsed_once_and_the_cache_stays_bounded() {
        let cache = ParsedQueries::default();
        let mut request = async_graphql::Request::new("{ wireguardStats { peers { total } } }");
        cache.attach(&mut request);
        let mut again = async_graphql::Request::new("{ wireguardStats { peers { total } } }");
        cache.attach(&mut again);
        assert_eq!(kept(&cache), 1);
        assert_eq!(
            format!("{:?}", request.parsed_query().expect("parsed")),
            format!("{:?}", again.parsed_query().expect("parsed"))
        );
        for n in 0..ParsedQueries::MOST_KEPT + 10 {
            cache.attach(&mut async_graphql::Request::new(format!("{{ a{n} }}")));
        }
        assert!(kept(&cache) <= ParsedQueries::MOST_KEPT);
    }

    #[test]
    fn a_query_that_does_not_parse_or_is_long_is_not_kept() {
        let cache = ParsedQueries::default();
        let mut broken = async_graphql::Request::new("{ wireguardStats { ");
        cache.attach(&mut broken);
        assert!(broken.parsed_query().is_err(), "execution still reports the syntax error");
        let long = format!("{{ wireguardStats {{ peers {{ total }} }} }} #{}", "x".repeat(ParsedQueries::LONGEST_KEPT));
        cache.attach(&mut async_graphql::Request::new(long));
        assert_eq!(kept(&cache), 0);
    }
}

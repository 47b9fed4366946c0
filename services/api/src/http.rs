//! HTTP: `/graphql` (POST queries and mutations, GET GraphiQL), `/graphql/ws` (subscriptions),
//! `/healthz`, `/readyz`, `/metrics` and the NOC screen at `/`; bearer authentication before any GraphQL runs.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql_poem::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use futures_util::{SinkExt, StreamExt};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::{HeaderValue, StatusCode, header};
use poem::middleware::SizeLimit;
use poem::web::Json;
use poem::web::websocket::{Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::{Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get, handler};
use tokio::sync::{Semaphore, oneshot};

use crate::auth::{AuthError, Authenticator, Caller};
use crate::cache::Memo;
use crate::direct::DirectQuery;
use crate::limits::{Limits, SocketSubscriptions};
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
    limits: Arc<Limits>,
    parsed_queries: ParsedQueries,
    open_sockets: Arc<Semaphore>,
}

/// Parsed documents by their normalised text: dashboards send the same few documents over and
/// over, with variables.
struct ParsedQueries(Memo<Box<str>, Arc<ParsedQuery>>);

struct ParsedQuery {
    document: ExecutableDocument,
    /// The plan when the document can be answered directly ([`crate::direct`]), once
    /// async-graphql has executed it without error (validation included).
    direct: Option<(DirectQuery, OnceLock<()>)>,
}

/// Whether a request can be answered directly.
enum Direct {
    Ready(Arc<ParsedQuery>),
    /// Once async-graphql has executed the document without error: then mark it here.
    AfterExecution(Arc<ParsedQuery>),
    Never,
}

impl ParsedQueries {
    const MOST_KEPT: usize = 1_024;
    const LONGEST_KEPT: usize = 8 * 1024;

    fn new() -> Self {
        Self(Memo::new(Self::MOST_KEPT))
    }

    /// Tells whether `request` can be answered directly, and otherwise gives it its parsed
    /// document, from the cache or parsed now (and kept). A query that does not parse is left for
    /// execution to report.
    fn attach(&self, request: &mut async_graphql::Request) -> Direct {
        if request.query.len() > Self::LONGEST_KEPT {
            return Direct::Never;
        }
        let text = normalised(&request.query);
        let parsed = match self.0.get(text.as_str()) {
            Some(parsed) => parsed,
            None => {
                let Ok(document) = async_graphql::parser::parse_query(&text) else { return Direct::Never };
                let direct = DirectQuery::of(&document).map(|plan| (plan, OnceLock::new()));
                let parsed = Arc::new(ParsedQuery { document, direct });
                self.0.insert(text.into_boxed_str(), Arc::clone(&parsed));
                parsed
            }
        };
        let direct = match &parsed.direct {
            Some((plan, _)) if !request.extensions.is_empty() || !plan.answers(request.operation_name.as_deref()) => {
                Direct::Never
            }
            Some((_, executed)) if executed.get().is_some() => return Direct::Ready(parsed),
            Some(_) => Direct::AfterExecution(Arc::clone(&parsed)),
            None => Direct::Never,
        };
        // a direct answer needs no document: it is cloned only for execution
        request.set_parsed_query(parsed.document.clone());
        direct
    }
}

/// `text` with every run of white space, commas and comments outside strings as one space
/// (GraphQL ignores them): one cache entry per document however a client lays it out.
fn normalised(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut in_string, mut blank) = (false, false);
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => blank = true,
            '#' => {
                blank = true;
                while chars.next_if(|c| *c != '\n' && *c != '\r').is_some() {}
            }
            _ => {
                if blank && !out.is_empty() {
                    out.push(' ');
                }
                blank = false;
                in_string = c == '"';
                out.push(c);
            }
        }
    }
    out
}

/// Every route of the API, ready for [`crate::serve`].
/// `/metrics` (Prometheus) and `/healthz` alone, for services without the GraphQL API.
pub fn metrics_routes() -> impl Endpoint {
    prometheus();
    Route::new().at("/metrics", get(metrics_text)).at("/healthz", get(healthz))
}

pub fn routes(context: ApiContext, authenticator: Authenticator) -> impl Endpoint {
    let max_body_bytes = context.config.max_body_bytes;
    let limits = Limits::new(&context.config);
    let state = Arc::new(HttpState {
        schema: schema::build(context.clone(), Arc::clone(&limits)),
        authenticator,
        open_sockets: Arc::new(Semaphore::new(context.config.max_open_sockets)),
        context,
        limits,
        parsed_queries: ParsedQueries::new(),
    });
    prometheus();
    Route::new()
        .at("/graphql", get(crate::page::graphiql()).post(graphql.with(SizeLimit::new(max_body_bytes))))
        .at("/graphql/ws", get(subscriptions))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_text))
        .nest("/", crate::page::screen())
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
    if let Direct::Ready(parsed) = &direct
        && let Some((plan, _)) = &parsed.direct
        && let Some(bound) = plan.bind(&graphql_request.variables)
        && state.limits.allows(bound.cost)
    {
        // limited as async-graphql's execution of the same request is
        let answer = async {
            let expensive = state.limits.is_expensive(bound.cost);
            let _slots = if expensive { Some(state.limits.hold(&caller).await?) } else { None };
            Ok(bound.answer(&state.context, &caller).await)
        };
        let answer = match tokio::time::timeout(state.limits.deadline(), answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(busy)) => return limited(busy, StatusCode::TOO_MANY_REQUESTS),
            Err(_) => return limited(state.limits.deadline_error(), StatusCode::OK),
        };
        if let Some(body) = answer {
            metrics::counter!("argus_api_requests_total", "outcome" => "ok").increment(1);
            metrics::counter!("argus_api_direct_answers_total").increment(1);
            metrics::histogram!("argus_api_request_seconds").record(started.elapsed().as_secs_f64());
            return Response::builder().header(header::CONTENT_TYPE, "application/json; charset=utf-8").body(body);
        }
    }
    // else async-graphql answers (it parses the text again when a direct answer gave up)
    let response = state.schema.execute(graphql_request.data(caller)).await;
    if let Direct::AfterExecution(parsed) = &direct
        && response.errors.is_empty()
        && let Some((_, executed)) = &parsed.direct
    {
        // answered directly from now on
        let _ = executed.set(());
    }
    let has_code = |wanted: &str| {
        response.errors.iter().find(|error| {
            let code = error.extensions.as_ref().and_then(|extensions| extensions.get("code"));
            matches!(code, Some(async_graphql::Value::String(code)) if code == wanted)
        })
    };
    let insufficient = has_code("insufficient_scope").map(|error| AuthError::InsufficientScope(error.message.clone()));
    let busy = has_code("TOO_MANY_REQUESTS").is_some();
    let (outcome, status) = if insufficient.is_some() {
        ("forbidden", StatusCode::FORBIDDEN)
    } else if busy {
        ("busy", StatusCode::TOO_MANY_REQUESTS)
    } else if response.errors.is_empty() {
        ("ok", StatusCode::OK)
    } else {
        ("error", StatusCode::OK)
    };
    metrics::counter!("argus_api_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("argus_api_request_seconds").record(started.elapsed().as_secs_f64());
    let mut http = Json(&response).with_status(status).into_response();
    if let Some(error) = insufficient
        && let Ok(value) = HeaderValue::from_str(&error.challenge())
    {
        http.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    if busy {
        retry_soon(&mut http);
    }
    http
}

/// The answer to a request the limits stopped.
fn limited(error: async_graphql::ServerError, status: StatusCode) -> Response {
    let outcome = if status == StatusCode::TOO_MANY_REQUESTS { "busy" } else { "error" };
    metrics::counter!("argus_api_requests_total", "outcome" => outcome).increment(1);
    let mut response = Json(async_graphql::Response::from_errors(vec![error])).with_status(status).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        retry_soon(&mut response);
    }
    response
}

/// A `429`'s `Retry-After`: an expensive request of the same caller ends within the deadline.
fn retry_soon(response: &mut Response) {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
}

/// Subscriptions authenticate with the upgrade request's `Authorization` header, or else with an
/// `Authorization` entry in the `connection_init` payload (browsers cannot set upgrade headers).
/// Sockets are bounded in number and message size like requests are in body size.
#[handler]
async fn subscriptions(
    request: &Request, protocol: GraphQLProtocol, websocket: WebSocket, state: poem::web::Data<&Arc<HttpState>>,
) -> Response {
    let upgrade_caller = match request.headers().get(header::AUTHORIZATION) {
        Some(_) => match authenticate(&state, request) {
            Ok(caller) => Some(caller),
            Err(error) => return refusal(&error),
        },
        None => None,
    };
    let Ok(socket_slot) = Arc::clone(&state.open_sockets).try_acquire_owned() else {
        metrics::counter!("argus_api_sockets_refused_total").increment(1);
        return "too many open sockets, retry later"
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(header::RETRY_AFTER, "5")
            .into_response();
    };
    let state: Arc<HttpState> = state.clone();
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(state.context.config.max_body_bytes);
    config.max_frame_size = Some(state.context.config.max_body_bytes);
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .config(config)
        .on_upgrade(move |socket| async move {
            serve_socket(socket, protocol, &state, upgrade_caller).await;
            drop(socket_slot);
        })
        .into_response()
}

/// Serves one socket until the client closes it, its `connection_init` does not come in time
/// (closed with 4408), its token expires (4401), or it sends a frame larger than a request body
/// may be (1009): a socket never outlives its token.
async fn serve_socket(
    socket: WebSocketStream, protocol: GraphQLProtocol, state: &Arc<HttpState>, upgrade_caller: Option<Caller>,
) {
    let (mut sink, stream) = socket.split();
    // a frame the socket refuses to read (too large, malformed) ends the stream: say why on close
    let refused_read = Arc::new(OnceLock::<(u16, &'static str)>::new());
    let stream = stream.inspect({
        let refused_read = Arc::clone(&refused_read);
        move |read| {
            if let Err(error) = read
                && error.kind() == std::io::ErrorKind::Other
            {
                let too_big = error.to_string().contains("too long");
                let _ = refused_read.set(if too_big { (1009, "message too big") } else { (1002, "protocol error") });
            }
        }
    });
    let (initialised, accepted_until) = oneshot::channel::<u64>();
    let upgrade_until = upgrade_caller.as_ref().map(|caller| caller.accepted_until);
    let mut data = Data::default();
    data.insert(SocketSubscriptions::default());
    if let Some(caller) = upgrade_caller {
        data.insert(caller);
    }
    let init_state = Arc::clone(state);
    let serve = GraphQLWebSocket::new_with_pair(&mut sink, stream, state.schema.clone(), protocol)
        .with_data(data)
        .on_connection_init(move |payload| async move {
            let mut data = Data::default();
            let accepted_until = match upgrade_until {
                Some(accepted_until) => accepted_until,
                None => {
                    let header = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|name| payload.get(name).and_then(|value| value.as_str()));
                    let caller = init_state.authenticator.authenticate(header).map_err(schema::auth_error)?;
                    let accepted_until = caller.accepted_until;
                    data.insert(caller);
                    accepted_until
                }
            };
            // the socket's end is watched as long as it is served
            let _ = initialised.send(accepted_until);
            Ok(data)
        })
        .serve();
    let (code, reason) = tokio::select! {
        () = serve => match refused_read.get() {
            Some(refused) => *refused,
            None => return,
        },
        ending = socket_ending(accepted_until, state.context.config.socket_init_timeout) => ending,
    };
    metrics::counter!("argus_api_sockets_closed_total", "reason" => reason).increment(1);
    let _ = sink.send(Message::close_with(code, reason)).await;
    let _ = sink.close().await;
}

/// When and why a served socket must close: no `connection_init` within `init_timeout`, or the
/// second its token stops being accepted. A refused `connection_init` is closed by the protocol.
async fn socket_ending(initialised: oneshot::Receiver<u64>, init_timeout: Duration) -> (u16, &'static str) {
    match tokio::time::timeout(init_timeout, initialised).await {
        Err(_) => (4408, "connection initialisation timeout"),
        Ok(Err(_)) => std::future::pending().await,
        Ok(Ok(accepted_until)) => {
            let until = std::time::UNIX_EPOCH + Duration::from_secs(accepted_until.saturating_add(1));
            let left = until.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(left).await;
            (4401, "token expired")
        }
    }
}

#[handler]
pub(crate) fn healthz() -> &'static str {
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
    use super::{ParsedQueries, normalised};

    #[test]
    fn a_query_is_parsed_once_and_the_cache_stays_bounded() {
        let cache = ParsedQueries::new();
        let mut request = async_graphql::Request::new("{ wireguardStats { peers { total } } }");
        cache.attach(&mut request);
        let mut again = async_graphql::Request::new("{\n  wireguardStats {\n    peers { total }, # all\n  }\n}\n");
        cache.attach(&mut again);
        assert_eq!(cache.0.len(), 1, "one entry however the text is laid out");
        assert_eq!(
            format!("{:?}", request.parsed_query().expect("parsed")),
            format!("{:?}", again.parsed_query().expect("parsed"))
        );
        for n in 0..ParsedQueries::MOST_KEPT * 4 {
            cache.attach(&mut async_graphql::Request::new(format!("{{ a{n} }}")));
        }
        assert!(cache.0.len() <= ParsedQueries::MOST_KEPT + ParsedQueries::MOST_KEPT / 10, "{}", cache.0.len());
    }

    #[test]
    fn a_query_that_does_not_parse_or_is_long_is_not_kept() {
        let cache = ParsedQueries::new();
        let mut broken = async_graphql::Request::new("{ wireguardStats { ");
        cache.attach(&mut broken);
        assert!(broken.parsed_query().is_err(), "execution still reports the syntax error");
        let long = format!("{{ wireguardStats {{ peers {{ total }} }} }} #{}", "x".repeat(ParsedQueries::LONGEST_KEPT));
        cache.attach(&mut async_graphql::Request::new(long));
        assert_eq!(cache.0.len(), 0);
    }

    #[test]
    fn normalising_keeps_strings_and_drops_what_graphql_ignores() {
        assert_eq!(normalised("  query  Q($a:Int,$b:Int)\n{ x(a: $a) }  "), "query Q($a:Int $b:Int) { x(a: $a) }");
        assert_eq!(normalised("{ x(t: \"a  ,b # c\") } # \"open"), "{ x(t: \"a  ,b # c\") }");
        assert_eq!(normalised("{ x(t: \"q\\\"  r\") }"), "{ x(t: \"q\\\"  r\") }");
        assert_eq!(normalised("{ x(t: \"\"\"a  b\"\"\") }"), "{ x(t: \"\"\"a  b\"\"\") }");
        assert_ne!(normalised("{ x(t: \"a b\") }"), normalised("{ x(t: \"a  b\") }"));
    }
}

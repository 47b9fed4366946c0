//! Direct answers: the queries a dashboard sends over and over (pages of peers and alerts,
//! statistics, gateways, one key), written straight into the JSON response once async-graphql has
//! executed the same document without error (validation and depth limit included).
//!
//! async-graphql builds an answer as a tree of values and then serialises the tree, which costs
//! more than the data. A direct answer calls the same resolver functions as the schema (scoped
//! by the caller's organisation and clearance) and writes each selected field with the writer of
//! its object's description ([`crate::object`]). A document is planned once: variables, named
//! operations, fragments and `@skip` / `@include` are bound per request, so one plan serves every
//! page. Its cost is computed as async-graphql computes it, from the arguments as sent, and
//! limited alike. Anything the plan does not cover is executed by async-graphql.

use argus_core::{HostRecord, PeerRecord};
use argus_store::{AlertRow, Stats};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::{InputType, Name, Positioned, Value, Variables};

use crate::ApiContext;
use crate::auth::Caller;
use crate::limits::cost;
use crate::object::{Answer, Condition, Connection, Flag, Fragments, Object, Plan, Planned, Selected, key_json};
use crate::schema;
use crate::types::{WireguardAlertFilter, WireguardPeerFilter};

/// A planned document.
#[derive(Debug)]
pub(crate) struct DirectQuery {
    operation_name: Option<Name>,
    variables: Vec<Positioned<VariableDefinition>>,
    roots: Vec<RootField>,
    /// Some field is included or skipped on a condition: the plan is bound per request.
    conditional: bool,
}

/// A root field: which one, its arguments as written, what is selected below it.
#[derive(Debug)]
struct RootField {
    key_json: Vec<u8>,
    root: Root,
    arguments: Vec<(Name, async_graphql_value::Value)>,
    conditions: Vec<Condition>,
    selection: Vec<Selected>,
    /// The cost of what is selected below it, as async-graphql counts it.
    child_cost: usize,
}

/// The root fields answered directly.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Peers,
    Peer,
    Stats,
    Hosts,
    Alerts,
}

impl Root {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "wireguardPeers" => Self::Peers,
            "wireguardPeer" => Self::Peer,
            "wireguardStats" => Self::Stats,
            "wireguardHosts" => Self::Hosts,
            "wireguardAlerts" => Self::Alerts,
            _ => return None,
        })
    }

    fn arguments(self) -> &'static [&'static str] {
        match self {
            Self::Peers => &["filter", "first", "after"],
            Self::Peer => &["publicKey"],
            Self::Stats | Self::Hosts => &[],
            Self::Alerts => &["filter", "first", "after"],
        }
    }

    fn plan(self, set: &SelectionSet, fragments: &Fragments, plan: &mut Plan) -> Option<Vec<Selected>> {
        match self {
            Self::Peers => <Object<Connection<PeerRecord>> as Planned>::plan(set, fragments, plan),
            Self::Peer => <Vec<Object<PeerRecord>> as Planned>::plan(set, fragments, plan),
            Self::Stats => <Object<Stats> as Planned>::plan(set, fragments, plan),
            Self::Hosts => <Vec<Object<HostRecord>> as Planned>::plan(set, fragments, plan),
            Self::Alerts => <Object<Connection<AlertRow>> as Planned>::plan(set, fragments, plan),
        }
    }
}

/// A root field's arguments, parsed from the request.
enum Bound {
    Peers { filter: Option<WireguardPeerFilter>, first: Option<i32>, after: Option<String> },
    Peer { public_key: String },
    Stats,
    Hosts,
    Alerts { filter: Option<WireguardAlertFilter>, first: Option<i32>, after: Option<String> },
}

/// A planned document bound to one request's variables: ready to answer.
pub(crate) struct BoundQuery<'a> {
    roots: Vec<(&'a RootField, Bound, Option<Vec<Selected>>)>,
    /// What async-graphql's complexity limit counts for this request.
    pub(crate) cost: usize,
}

impl DirectQuery {
    /// The plan of `document`, when every part of it can be answered directly.
    pub(crate) fn of(document: &ExecutableDocument) -> Option<Self> {
        let (operation_name, operation) = match &document.operations {
            DocumentOperations::Single(operation) => (None, &operation.node),
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                let (name, operation) = operations.iter().next()?;
                (Some(name.clone()), &operation.node)
            }
            DocumentOperations::Multiple(_) => return None,
        };
        if operation.ty != OperationType::Query || !operation.directives.is_empty() {
            return None;
        }
        let mut plan = Plan::default();
        let mut roots: Vec<RootField> = Vec::new();
        for item in &operation.selection_set.node.items {
            let Selection::Field(field) = &item.node else { return None };
            let field = &field.node;
            let root = Root::named(&field.name.node)?;
            let mut arguments = Vec::with_capacity(field.arguments.len());
            for (name, value) in &field.arguments {
                if !root.arguments().contains(&name.node.as_str()) {
                    return None;
                }
                arguments.push((name.node.clone(), value.node.clone()));
            }
            let conditions = crate::object::conditions(&field.directives)?;
            plan.conditional |= !conditions.is_empty();
            let key_json = key_json(field.response_key().node.as_str());
            if roots.iter().any(|earlier| earlier.key_json == key_json) {
                return None;
            }
            roots.push(RootField {
                key_json,
                root,
                arguments,
                conditions,
                selection: root.plan(&field.selection_set.node, &document.fragments, &mut plan)?,
                child_cost: child_cost(&field.selection_set.node, &document.fragments),
            });
        }
        Some(Self {
            operation_name,
            variables: operation.variable_definitions.clone(),
            roots,
            conditional: plan.conditional,
        })
    }

    /// Whether a request naming `operation_name` asks for this document's operation.
    pub(crate) fn answers(&self, operation_name: Option<&str>) -> bool {
        operation_name.is_none_or(|name| self.operation_name.as_deref() == Some(name))
    }

    /// The plan bound to `variables`; `None` when they do not parse as the arguments' types
    /// (async-graphql then reports why).
    pub(crate) fn bind(&self, variables: &Variables) -> Option<BoundQuery<'_>> {
        let variable = |name: &Name| -> Value {
            variables.get(name).cloned().unwrap_or_else(|| {
                let definition = self.variables.iter().find(|definition| definition.node.name.node == *name);
                definition
                    .and_then(|definition| definition.node.default_value.as_ref())
                    .map_or(Value::Null, |value| value.node.clone())
            })
        };
        let holds = |conditions: &[Condition]| {
            conditions.iter().all(|condition| {
                let flag = match &condition.when {
                    Flag::Literal(flag) => *flag,
                    Flag::Variable(name) => bool::parse(Some(variable(name))).unwrap_or_default(),
                };
                flag == condition.include
            })
        };
        let mut cost_total = 0usize;
        let mut roots = Vec::with_capacity(self.roots.len());
        for field in &self.roots {
            let argument = |name: &str| -> Option<Option<Value>> {
                let Some((_, value)) = field.arguments.iter().find(|(argument, _)| argument.as_str() == name) else {
                    return Some(None);
                };
                Some(Some(value.clone().into_const_with(|name| Ok::<_, ()>(variable(&name))).ok()?))
            };
            fn parsed<T: InputType>(value: Option<Value>) -> Option<T> {
                T::parse(value).ok()
            }
            let bound = match field.root {
                Root::Peers => Bound::Peers {
                    filter: parsed(argument("filter")?)?,
                    first: parsed(argument("first")?)?,
                    after: parsed(argument("after")?)?,
                },
                Root::Peer => Bound::Peer { public_key: parsed(argument("publicKey")?)? },
                Root::Stats => Bound::Stats,
                Root::Hosts => Bound::Hosts,
                Root::Alerts => Bound::Alerts {
                    filter: parsed(argument("filter")?)?,
                    first: parsed(argument("first")?)?,
                    after: parsed(argument("after")?)?,
                },
            };
            // counted as async-graphql counts it: skipped fields included
            let child = field.child_cost;
            cost_total = cost_total.saturating_add(match &bound {
                Bound::Peers { filter, first, .. } => cost::peers(*first, filter, child),
                Bound::Peer { .. } => cost::ONE_KEY + child,
                Bound::Stats | Bound::Hosts => cost::GATEWAY_ROWS + child,
                Bound::Alerts { filter, first, .. } => cost::alerts(*first, filter, child),
            });
            if holds(&field.conditions) {
                let pruned = self.conditional.then(|| prune(&field.selection, &holds));
                roots.push((field, bound, pruned));
            }
        }
        Some(BoundQuery { roots, cost: cost_total })
    }
}

impl BoundQuery<'_> {
    /// The JSON response, or `None` when the data is an error (async-graphql then reports it).
    pub(crate) async fn answer(&self, api: &ApiContext, caller: &Caller) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(32 * 1024);
        out.extend_from_slice(b"{\"data\":{");
        for (index, (field, bound, pruned)) in self.roots.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&field.key_json);
            let below = pruned.as_deref().unwrap_or(&field.selection);
            match bound {
                Bound::Peers { filter, first, after } => {
                    schema::peers(api, caller, filter.clone(), *first, after.clone())
                        .await
                        .ok()?
                        .write_json(below, &mut out)?
                }
                Bound::Peer { public_key } => {
                    schema::peer(api, caller, public_key).await.ok()?.write_json(below, &mut out)?
                }
                Bound::Stats => schema::stats(api, caller).await.ok()?.write_json(below, &mut out)?,
                Bound::Hosts => schema::hosts(api, caller).await.ok()?.write_json(below, &mut out)?,
                Bound::Alerts { filter, first, after } => {
                    schema::alerts(api, caller, filter.clone(), *first, after.clone())
                        .await
                        .ok()?
                        .write_json(below, &mut out)?
                }
            }
        }
        out.extend_from_slice(b"}}");
        Some(out)
    }
}

/// `selection` without the fields whose conditions do not hold.
fn prune(selection: &[Selected], holds: &impl Fn(&[Condition]) -> bool) -> Vec<Selected> {
    selection
        .iter()
        .filter(|field| holds(&field.conditions))
        .map(|field| Selected { below: prune(&field.below, holds), ..field.clone() })
        .collect()
}

/// The cost of a selection as async-graphql's complexity counts it below a root field: a point
/// per field but `__typename` (fragments counted where they are spread), skipped or not.
fn child_cost(set: &SelectionSet, fragments: &Fragments) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) if field.node.name.node == "__typename" => 0,
            Selection::Field(field) => 1 + child_cost(&field.node.selection_set.node, fragments),
            Selection::FragmentSpread(spread) => fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |fragment| child_cost(&fragment.node.selection_set.node, fragments)),
            Selection::InlineFragment(fragment) => child_cost(&fragment.node.selection_set.node, fragments),
        })
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextValidation};
    use async_graphql::{Response, ServerError, ValidationResult, Variables};

    use super::{DirectQuery, Root};

    /// Keeps the cost async-graphql computed for a request, and executes nothing.
    struct CostOnly(Arc<AtomicUsize>);

    impl ExtensionFactory for CostOnly {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(CostOnly(Arc::clone(&self.0)))
        }
    }

    #[async_trait::async_trait]
    impl Extension for CostOnly {
        async fn validation(
            &self, ctx: &ExtensionContext<'_>, next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            let result = next.run(ctx).await?;
            self.0.store(result.complexity, Ordering::Relaxed);
            Ok(result)
        }

        async fn execute(&self, _: &ExtensionContext<'_>, _: Option<&str>, _: NextExecute<'_>) -> Response {
            Response::default()
        }
    }

    #[tokio::test]
    async fn a_plan_costs_what_async_graphql_counts() {
        let cost = Arc::new(AtomicUsize::new(0));
        let schema = async_graphql::Schema::build(
            crate::schema::QueryRoot,
            crate::schema::MutationRoot,
            crate::live::SubscriptionRoot,
        )
        .extension(CostOnly(Arc::clone(&cost)))
        .finish();
        let cases = [
            ("{ wireguardPeers { edges { cursor } } }", "{}"),
            (
                "query($n: Int, $f: WireguardPeerFilter) { wireguardPeers(first: $n, filter: $f) { \
                 edges { cursor node { host ... on WireguardPeer { status } } } pageInfo { hasNextPage } } \
                 wireguardStats @skip(if: true) { peers { total } hosts { host peers { stale } } } }",
                r#"{"n": 37, "f": {"text": "paris"}}"#,
            ),
            (
                "query($n: Int = 7) { a: wireguardAlerts(first: $n) { nodes { ...alert } } wireguardHosts { host } } \
                 fragment alert on WireguardAlert { alertId evidence { name value } __typename }",
                "{}",
            ),
            ("query($k: String!) { wireguardPeer(publicKey: $k) { host tags } }", r#"{"k": "x"}"#),
            ("{ wireguardPeers(filter: { stale: true }, first: 3) { nodes { host } } }", "{}"),
            (
                "query($f: WireguardAlertFilter) { wireguardAlerts(filter: $f) { nodes { alertId } } }",
                r#"{"f": {"kind": "PEER_STALE"}}"#,
            ),
        ];
        for (query, variables) in cases {
            let variables = Variables::from_json(serde_json::from_str(variables).expect("json"));
            let request = async_graphql::Request::new(query).variables(variables.clone());
            let response = schema.execute(request).await;
            assert!(response.errors.is_empty(), "{query}: {:?}", response.errors);
            let plan = plan(query).expect("planned");
            let bound = plan.bind(&variables).expect("bound");
            assert_eq!(bound.cost, cost.load(Ordering::Relaxed), "{query}");
        }
    }

    fn plan(query: &str) -> Option<DirectQuery> {
        DirectQuery::of(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn what_clients_send_is_planned() {
        for query in [
            "query Page { peers: wireguardPeers(first: 5, filter: { stale: true }) { edges { cursor } } }",
            "{ stats: wireguardStats { peers { total } hosts { host } } }",
            "query($n: Int, $after: String) { wireguardPeers(first: $n, after: $after) { edges { cursor } } }",
            "{ wireguardPeers { ...page } } fragment page on WireguardPeerConnection { edges { cursor } }",
            "{ wireguardPeers { ... on WireguardPeerConnection { edges { cursor } } } }",
            "query($full: Boolean!) { wireguardPeers { edges { cursor node @include(if: $full) { host } } } }",
            "{ wireguardPeers { edges { cursor } } wireguardStats { peers { total } } wireguardHosts { host } }",
            "{ wireguardPeers { edges { cursor } edges { node { host } } } }",
            "{ wireguardPeers { __typename edges { __typename cursor } } }",
            "{ wireguardPeer(publicKey: \"x\") { host } }",
            "{ wireguardAlerts(first: 10) { nodes { alertId evidence { name value } } } }",
        ] {
            assert!(plan(query).is_some(), "{query}");
        }
        let named = plan("query Page { wireguardPeers { edges { cursor } } }").expect("planned");
        assert!(named.answers(None) && named.answers(Some("Page")) && !named.answers(Some("Other")));
        assert_eq!(named.roots[0].root, Root::Peers);
    }

    #[test]
    fn what_the_plan_does_not_cover_is_left_to_async_graphql() {
        for query in [
            "{ wireguardPeers(last: 3) { edges { cursor } } }",
            "{ wireguardPeers { edges { cursor @deprecated } } }",
            "{ wireguardPeers { edges { c: cursor c: node { host } } } }",
            "{ wireguardPeers { edges { cursor } } wireguardPeers { pageInfo { hasNextPage } } }",
            "{ wireguardRotationStatus { host } }",
            "{ wireguardPeers { edges { unknown } } }",
            "{ wireguardStats { peers } }",
            "{ ... on Query { wireguardStats { peers { total } } } }",
            "mutation { wireguardPeers { edges { cursor } } }",
            "query A { wireguardPeers { edges { cursor } } } query B { wireguardStats { peers { total } } }",
        ] {
            assert!(plan(query).is_none(), "{query}");
        }
    }
}

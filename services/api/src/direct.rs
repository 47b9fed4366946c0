//! Direct answers: a page of peers, or the statistics, written straight into the JSON response,
//! for the query text a dashboard sends over and over, once async-graphql has executed that text
//! without error.
//!
//! A page of 100 peers is the API's hottest answer, the statistics (a row per gateway) the next.
//! async-graphql builds an answer as a tree of values (an ordered map and a hashed name per field
//! of every object) and then serialises the tree, which costs more than the data. A direct
//! answer resolves the same data through the same resolver functions ([`schema::peers_page`],
//! [`schema::stats`], scoped by the caller's organisation and clearance) and writes each selected
//! field's value as it goes: a peer's by [`PeerView::field_writer`] (the JSON of the value
//! [`PeerView`] gives async-graphql), from the store's page itself; a statistic by
//! [`JsonObject::write_field`].
//!
//! Only plain documents get one: a single query operation without variables, directives or
//! fragments whose one root field is `wireguardPeers` (literal arguments) or `wireguardStats`,
//! selecting fields without arguments each under a response key of its own. Everything else, and
//! any request whose data is an error, is executed by async-graphql, which also validates (depth
//! and complexity limits included) a text before it is ever answered directly.

use argus_core::PeerRecord;
use argus_core::text::AppendText;
use argus_store::{Cursor, Page};
use async_graphql::InputType;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use serde::Serialize;

use crate::ApiContext;
use crate::auth::Caller;
use crate::plain::{Plain, PlainList};
use crate::schema;
use crate::types::{HostTraffic, PeerCounts, PeerFieldWriter, PeerView, WireguardPeerFilter, WireguardStats};

/// A plain query, ready to be answered directly.
#[derive(Debug)]
pub(crate) struct DirectQuery {
    /// The root field's response key as JSON with its colon.
    response_key_json: Vec<u8>,
    root: Root,
    selection: Vec<Selected>,
}

/// The root field a direct query asks, with its arguments.
#[derive(Debug)]
enum Root {
    Peers { filter: Option<WireguardPeerFilter>, first: Option<i32>, after: Option<String> },
    Stats,
}

/// One selected field: its response key as JSON with its colon (ready to write), its name, what
/// writes it when it is a peer's field, and what is selected below it.
#[derive(Debug)]
struct Selected {
    key_json: Vec<u8>,
    name: String,
    peer_field: Option<PeerFieldWriter>,
    below: Vec<Selected>,
}

impl DirectQuery {
    /// The query `document` asks, when it is plain enough to be answered directly.
    pub(crate) fn of(document: &ExecutableDocument) -> Option<Self> {
        if !document.fragments.is_empty() {
            return None;
        }
        let operation = match &document.operations {
            DocumentOperations::Single(operation) => &operation.node,
            DocumentOperations::Multiple(operations) if operations.len() == 1 => &operations.values().next()?.node,
            DocumentOperations::Multiple(_) => return None,
        };
        if operation.ty != OperationType::Query
            || !operation.variable_definitions.is_empty()
            || !operation.directives.is_empty()
        {
            return None;
        }
        let [root] = operation.selection_set.node.items.as_slice() else { return None };
        let Selection::Field(root) = &root.node else { return None };
        let root = &root.node;
        if !root.directives.is_empty() {
            return None;
        }
        let root_field = match root.name.node.as_str() {
            "wireguardPeers" => {
                let (mut filter, mut first, mut after) = (None, None, None);
                for (name, value) in &root.arguments {
                    let value = Some(value.node.clone().into_const()?);
                    match name.node.as_str() {
                        "filter" => filter = InputType::parse(value).ok()?,
                        "first" => first = InputType::parse(value).ok()?,
                        "after" => after = InputType::parse(value).ok()?,
                        _ => return None,
                    }
                }
                Root::Peers { filter, first, after }
            }
            "wireguardStats" if root.arguments.is_empty() => Root::Stats,
            _ => return None,
        };
        Some(Self {
            response_key_json: key_json(root.response_key().node.as_str())?,
            root: root_field,
            selection: selected(&root.selection_set.node)?,
        })
    }

    /// The JSON response, or `None` when the data is an error (async-graphql then reports it).
    pub(crate) async fn answer(&self, api: &ApiContext, caller: &Caller) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(32 * 1024);
        out.extend_from_slice(b"{\"data\":{");
        out.extend_from_slice(&self.response_key_json);
        match &self.root {
            Root::Peers { filter, first, after } => {
                let (page, after_given) =
                    schema::peers_page(api, caller, filter.clone(), *first, after.clone()).await.ok()?;
                write_connection(&mut out, &self.selection, &page, after_given)?;
            }
            Root::Stats => schema::stats(api, caller).await.ok()?.write_answer(&self.selection, &mut out)?,
        }
        out.extend_from_slice(b"}}");
        Some(out)
    }
}

/// The fields of a selection set, each with no arguments, directives or fragments, and no response
/// key twice (async-graphql merges those).
fn selected(set: &SelectionSet) -> Option<Vec<Selected>> {
    let mut fields: Vec<Selected> = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let Selection::Field(field) = &item.node else { return None };
        let field = &field.node;
        let key_json = key_json(field.response_key().node.as_str())?;
        if !field.arguments.is_empty()
            || !field.directives.is_empty()
            || field.name.node.starts_with("__")
            || fields.iter().any(|earlier| earlier.key_json == key_json)
        {
            return None;
        }
        fields.push(Selected {
            key_json,
            name: field.name.node.to_string(),
            peer_field: PeerView::field_writer(&field.name.node),
            below: selected(&field.selection_set.node)?,
        });
    }
    Some(fields)
}

fn write(out: &mut Vec<u8>, value: &impl Serialize) -> Option<()> {
    serde_json::to_writer(out, value).ok()
}

/// `"key":`
fn key_json(key: &str) -> Option<Vec<u8>> {
    let mut json = serde_json::to_vec(key).ok()?;
    json.push(b':');
    Some(json)
}

/// Writes `{ "k": …, "k2": … }` over `selection`, each value by `value`.
fn write_object(
    out: &mut Vec<u8>,
    selection: &[Selected],
    mut value: impl FnMut(&mut Vec<u8>, &Selected) -> Option<()>,
) -> Option<()> {
    out.push(b'{');
    for (index, field) in selection.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&field.key_json);
        value(out, field)?;
    }
    out.push(b'}');
    Some(())
}

/// Writes `[ …, … ]`, each item by `item`.
fn write_list<T>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = T>,
    mut item: impl FnMut(&mut Vec<u8>, T) -> Option<()>,
) -> Option<()> {
    out.push(b'[');
    for (index, each) in items.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        item(out, each)?;
    }
    out.push(b']');
    Some(())
}

/// The page as async-graphql's `Connection` answers it (see [`crate::plain`]).
fn write_connection(
    out: &mut Vec<u8>,
    selection: &[Selected],
    page: &Page<PeerRecord>,
    after_given: bool,
) -> Option<()> {
    let edges = || page.items.iter().zip(&page.cursors);
    write_object(out, selection, |out, field| match field.name.as_str() {
        "edges" => write_list(out, edges(), |out, (peer, cursor)| {
            write_object(out, &field.below, |out, edge_field| match edge_field.name.as_str() {
                "cursor" => write_cursor(out, Some(cursor)),
                "node" => write_peer(out, &edge_field.below, peer),
                _ => None,
            })
        }),
        "nodes" => write_list(out, page.items.iter(), |out, peer| write_peer(out, &field.below, peer)),
        "pageInfo" => write_object(out, &field.below, |out, info| match info.name.as_str() {
            "hasPreviousPage" => write(out, &after_given),
            "hasNextPage" => write(out, &page.next.is_some()),
            "startCursor" => write_cursor(out, page.cursors.first()),
            "endCursor" => write_cursor(out, page.cursors.last()),
            _ => None,
        }),
        _ => None,
    })
}

fn write_cursor(out: &mut Vec<u8>, cursor: Option<&Cursor>) -> Option<()> {
    match cursor {
        Some(cursor) => cursor.append_json_string(out),
        None => out.extend_from_slice(b"null"),
    }
    Some(())
}

fn write_peer(out: &mut Vec<u8>, selection: &[Selected], peer: &PeerRecord) -> Option<()> {
    write_object(out, selection, |out, field| (field.peer_field?)(peer, out))
}

/// A value written as its JSON answer, with what is selected below it (for objects).
trait JsonAnswer {
    fn write_answer(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()>;
}

/// An object of plain data written field by field.
trait JsonObject {
    /// Writes the value of `field` (by its GraphQL name); `None` for no such field.
    fn write_field(&self, field: &Selected, out: &mut Vec<u8>) -> Option<()>;
}

impl<T: JsonObject> JsonAnswer for T {
    fn write_answer(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write_object(out, below, |out, field| self.write_field(field, out))
    }
}

impl<T: JsonObject> JsonObject for Plain<T> {
    fn write_field(&self, field: &Selected, out: &mut Vec<u8>) -> Option<()> {
        self.0.write_field(field, out)
    }
}

/// Numbers and text, as async-graphql serialises them.
struct Scalar<'a, T>(&'a T);

impl<T: Serialize> JsonAnswer for Scalar<'_, T> {
    fn write_answer(&self, _below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write(out, self.0)
    }
}

struct List<'a, T>(&'a PlainList<T>);

impl<T: JsonObject> JsonAnswer for List<'_, T> {
    fn write_answer(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write_list(out, self.0.0.iter(), |out, item| item.write_answer(below, out))
    }
}

/// Each object's GraphQL field names and how each is answered (`scalar`, `object` or `list`).
/// A name missing here is answered by async-graphql (the direct answer gives up), and the test
/// that selects every field of the statistics would show it.
macro_rules! json_objects {
    ($($type:ty { $($name:literal => $how:ident($field:ident)),* $(,)? })*) => {
        $(impl JsonObject for $type {
            fn write_field(&self, field: &Selected, out: &mut Vec<u8>) -> Option<()> {
                match field.name.as_str() {
                    $($name => json_objects!(@$how self.$field).write_answer(&field.below, out),)*
                    _ => None,
                }
            }
        })*
    };
    (@scalar $value:expr) => { Scalar(&$value) };
    (@object $value:expr) => { $value };
    (@list $value:expr) => { List(&$value) };
}

json_objects! {
    WireguardStats {
        "peers" => object(peers),
        "transferRx" => scalar(transfer_rx),
        "transferTx" => scalar(transfer_tx),
        "rxBytesPerSecond" => scalar(rx_bytes_per_second),
        "txBytesPerSecond" => scalar(tx_bytes_per_second),
        "hosts" => list(hosts),
    }
    HostTraffic {
        "host" => scalar(host),
        "peers" => object(peers),
        "transferRx" => scalar(transfer_rx),
        "transferTx" => scalar(transfer_tx),
        "rxBytesPerSecond" => scalar(rx_bytes_per_second),
        "txBytesPerSecond" => scalar(tx_bytes_per_second),
    }
    PeerCounts {
        "total" => scalar(total),
        "neverConnected" => scalar(never_connected),
        "active" => scalar(active),
        "stale" => scalar(stale),
        "removed" => scalar(removed),
    }
}

#[cfg(test)]
mod tests {
    use super::{DirectQuery, Root};

    fn plan(query: &str) -> Option<DirectQuery> {
        DirectQuery::of(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn only_plain_page_queries_are_answered_directly() {
        let plain =
            plan("query Page { peers: wireguardPeers(first: 5, filter: { stale: true }) { edges { cursor } } }")
                .expect("plain");
        let Root::Peers { filter, first, .. } = plain.root else { panic!("a page of peers") };
        assert_eq!((plain.response_key_json.as_slice(), first), (b"\"peers\":".as_slice(), Some(5)));
        assert_eq!(filter.and_then(|filter| filter.stale), Some(true));
        assert!(matches!(
            plan("{ stats: wireguardStats { peers { total } hosts { host } } }").expect("plain").root,
            Root::Stats
        ));
        for query in [
            "query($n: Int) { wireguardPeers(first: $n) { edges { cursor } } }",
            "{ wireguardPeers @skip(if: false) { edges { cursor } } }",
            "{ wireguardPeers { edges { cursor @include(if: true) } } }",
            "{ wireguardPeers { ...page } } fragment page on WireguardPeerConnection { edges { cursor } }",
            "{ wireguardPeers { ... on WireguardPeerConnection { edges { cursor } } } }",
            "{ wireguardPeers { edges { cursor } } wireguardStats { peers { total } } }",
            "{ wireguardPeers { edges { cursor } edges { node { host } } } }",
            "{ wireguardPeers { __typename edges { cursor } } }",
            "{ wireguardPeers(last: 3) { edges { cursor } } }",
            "{ wireguardStats { peers { total } __typename } }",
            "{ wireguardPeer(publicKey: \"x\") { host } }",
            "mutation { wireguardPeers { edges { cursor } } }",
            "query A { wireguardPeers { edges { cursor } } } query B { wireguardStats { peers { total } } }",
        ] {
            assert!(plan(query).is_none(), "{query}");
        }
    }
}

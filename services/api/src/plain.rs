//! Objects of plain data resolved field after field in one pass: the schema is the derived
//! object's (or async-graphql's Relay connection's), but no future is boxed and joined per field
//! or per list item (async-graphql's default), which was most of the cost of a page of 100 peers or
//! a statistics answer with a row per gateway.

use std::borrow::Cow;
use std::future::Future;

use async_graphql::connection::{Connection, Edge, EmptyFields, PageInfo};
use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{
    ContainerType, Context, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, TypeName, Value,
};

/// `T` in the schema, resolved in one pass. For objects whose fields compute nothing (no
/// arguments, no store reads): their resolvers finish as soon as they are polled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plain<T>(pub T);

impl<T: ContainerType> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        resolve_object(ctx, &Derived(&self.0)).await
    }
}

/// A list of plain-data objects (`[T!]!` in the schema), resolved in order, each in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainList<T>(pub Vec<T>);

impl<T> FromIterator<T> for PlainList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Self(items.into_iter().collect())
    }
}

impl<T: ContainerType> OutputType for PlainList<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<Plain<T>> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Plain<T>> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<Plain<T>> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        resolve_in_order(ctx, self.0.iter().map(Derived)).await
    }
}

/// A Relay connection of plain-data nodes (`…Connection`, `…Edge`, `PageInfo`: async-graphql's
/// in the schema) whose page information, edges and nodes are all resolved in one pass.
pub struct PlainConnection<N: ContainerType>(pub Connection<String, Plain<N>>);

impl<N: ContainerType> OutputType for PlainConnection<N> {
    fn type_name() -> Cow<'static, str> {
        <Connection<String, Plain<N>> as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Connection<String, Plain<N>> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
        resolve_object(ctx, &ConnectionFields(&self.0)).await
    }
}

/// What a one-pass walk needs of an object: its type's name, and the value of one selected field
/// (`None` for a name it does not have; validation refuses those before execution).
trait Fields: Sync {
    fn type_name(&self) -> Cow<'static, str>;

    fn field(&self, ctx: &Context<'_>) -> impl Future<Output = ServerResult<Option<Value>>> + Send;
}

/// An object with derived resolvers, its fields taken one at a time.
struct Derived<'a, T>(&'a T);

impl<T: ContainerType> Fields for Derived<'_, T> {
    fn type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn field(&self, ctx: &Context<'_>) -> impl Future<Output = ServerResult<Option<Value>>> + Send {
        self.0.resolve_field(ctx)
    }
}

struct ConnectionFields<'a, N: ContainerType>(&'a Connection<String, Plain<N>>);

impl<N: ContainerType> Fields for ConnectionFields<'_, N> {
    fn type_name(&self) -> Cow<'static, str> {
        <Connection<String, Plain<N>> as TypeName>::type_name()
    }

    async fn field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let field = ctx.item;
        let selected = ctx.with_selection_set(&field.node.selection_set);
        let edges = &self.0.edges;
        let value = match field.node.name.node.as_str() {
            "pageInfo" => {
                let page_info = PageInfo {
                    has_previous_page: self.0.has_previous_page,
                    has_next_page: self.0.has_next_page,
                    start_cursor: edges.first().map(|edge| edge.cursor.clone()),
                    end_cursor: edges.last().map(|edge| edge.cursor.clone()),
                };
                resolve_object(&selected, &Derived(&page_info)).await?
            }
            "edges" => resolve_in_order(&selected, edges.iter().map(EdgeFields)).await?,
            "nodes" => resolve_in_order(&selected, edges.iter().map(|edge| Derived(&edge.node.0))).await?,
            _ => return Ok(None),
        };
        Ok(Some(value))
    }
}

struct EdgeFields<'a, N: ContainerType>(&'a Edge<String, Plain<N>, EmptyFields>);

impl<N: ContainerType> Fields for EdgeFields<'_, N> {
    fn type_name(&self) -> Cow<'static, str> {
        <Edge<String, Plain<N>, EmptyFields> as TypeName>::type_name()
    }

    async fn field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let field = ctx.item;
        Ok(match field.node.name.node.as_str() {
            "cursor" => Some(Value::String(self.0.cursor.clone())),
            "node" => Some(
                resolve_object(&ctx.with_selection_set(&field.node.selection_set), &Derived(&self.0.node.0)).await?,
            ),
            _ => None,
        })
    }
}

/// Each of `objects` in order, as a response list; an error names the item's index in its path.
async fn resolve_in_order<F: Fields>(
    ctx: &ContextSelectionSet<'_>,
    objects: impl ExactSizeIterator<Item = F> + Send,
) -> ServerResult<Value> {
    let mut items = Vec::with_capacity(objects.len());
    for (index, object) in objects.enumerate() {
        let item = ctx.with_index(index);
        items.push(resolve_object(&item, &object).await.map_err(|error| item.set_error_path(error))?);
    }
    Ok(Value::List(items))
}

/// The selected fields of `object`, in order, as one response object.
async fn resolve_object(ctx: &ContextSelectionSet<'_>, object: &impl Fields) -> ServerResult<Value> {
    let mut answer = IndexMap::with_capacity(ctx.item.node.items.len());
    collect_fields(ctx, object, &mut answer).await?;
    Ok(Value::Object(answer))
}

/// Resolves the selected fields of `root` in order into `object`; fragments that apply to its
/// type are walked in place. Field errors are reported on the response and leave the field out,
/// as async-graphql does.
async fn collect_fields(
    ctx: &ContextSelectionSet<'_>,
    root: &impl Fields,
    object: &mut IndexMap<Name, Value>,
) -> ServerResult<()> {
    for selection in &ctx.item.node.items {
        let (condition, selection_set) = match &selection.node {
            Selection::Field(field) => {
                let response_key = field.node.response_key().node.clone();
                if field.node.name.node == "__typename" {
                    merge(object, response_key, Value::String(root.type_name().into_owned()));
                } else {
                    match root.field(&ctx.with_field(field)).await {
                        Ok(value) => merge(object, response_key, value.unwrap_or_default()),
                        Err(error) => ctx.add_error(error),
                    }
                }
                continue;
            }
            Selection::FragmentSpread(spread) => {
                let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node) else {
                    continue; // validation refuses unknown fragments before execution
                };
                (Some(&fragment.node.type_condition.node.on.node), &fragment.node.selection_set)
            }
            Selection::InlineFragment(fragment) => (
                fragment.node.type_condition.as_ref().map(|condition| &condition.node.on.node),
                &fragment.node.selection_set,
            ),
        };
        if condition.is_none_or(|condition| *condition.as_str() == *root.type_name()) {
            Box::pin(collect_fields(&ctx.with_selection_set(selection_set), root, object)).await?;
        }
    }
    Ok(())
}

/// Adds a field to a response object; a key selected twice keeps its first value, and objects
/// selected twice (through fragments) are merged field by field.
fn merge(object: &mut IndexMap<Name, Value>, key: Name, value: Value) {
    let existing = match object.entry(key) {
        Entry::Vacant(vacant) => {
            vacant.insert(value);
            return;
        }
        Entry::Occupied(occupied) => occupied.into_mut(),
    };
    match existing {
        Value::Object(existing) => {
            if let Value::Object(fields) = value {
                for (key, value) in fields {
                    merge(existing, key, value);
                }
            }
        }
        Value::List(existing) => {
            if let Value::List(items) = value {
                for (existing, item) in existing.iter_mut().zip(items) {
                    if let (Value::Object(existing), Value::Object(fields)) = (existing, item) {
                        for (key, value) in fields {
                            merge(existing, key, value);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::connection::{Connection, Edge};
    use async_graphql::{EmptyMutation, EmptySubscription, Object, ObjectType, Schema, SimpleObject, Value};

    use super::{Plain, PlainConnection, PlainList};

    #[derive(SimpleObject, Debug, Clone)]
    struct Counts {
        total: u64,
        stale: u64,
    }

    #[derive(SimpleObject, Debug, Clone)]
    struct Row {
        name: String,
        tags: Vec<String>,
        rate: f64,
        missing: Option<String>,
        counts: Counts,
        plain_counts: Plain<Counts>,
    }

    fn row(name: &str) -> Row {
        let counts = Counts { total: 10, stale: 3 };
        Row {
            name: name.to_owned(),
            tags: vec!["a".into(), "b".into()],
            rate: 1.5,
            missing: None,
            counts: counts.clone(),
            plain_counts: Plain(counts),
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn derived(&self) -> Vec<Row> {
            vec![row("one"), row("two")]
        }
        async fn plain(&self) -> PlainList<Row> {
            PlainList(vec![row("one"), row("two")])
        }
    }

    /// The same selection through the derived resolver and through `Plain`, rendered in order.
    async fn both(selection: &str, fragments: &str) -> (String, String) {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let mut answers = Vec::new();
        for field in ["derived", "plain"] {
            let response = schema.execute(format!("{{ {field} {selection} }} {fragments}")).await;
            assert!(response.errors.is_empty(), "{field}: {:?}", response.errors);
            let Value::Object(mut data) = response.data else { panic!("{field}: no data") };
            answers.push(data.swap_remove(field).expect("the field").to_string());
        }
        let plain = answers.pop().expect("plain");
        (answers.pop().expect("derived"), plain)
    }

    #[tokio::test]
    async fn a_plain_object_answers_exactly_as_the_derived_one() {
        let selections = [
            ("{ name tags rate missing counts { total stale } plainCounts { stale total } }", ""),
            ("{ __typename first: name second: name rate }", ""),
            (
                "{ name ... on Row { tags counts { total } } ...more }",
                "fragment more on Row { counts { stale } rate name }",
            ),
            ("{ plainCounts { total } ... on Row { plainCounts { stale __typename } } }", ""),
            ("{ name @skip(if: true) rate @include(if: false) tags @include(if: true) }", ""),
        ];
        for (selection, fragments) in selections {
            let (derived, plain) = both(selection, fragments).await;
            assert_eq!(derived, plain, "{selection} {fragments}");
        }
    }

    fn page(has_previous_page: bool, names: &[&str]) -> Connection<String, Plain<Row>> {
        let mut page = Connection::new(has_previous_page, true);
        page.edges.extend(names.iter().map(|name| Edge::new(format!("cursor-{name}"), Plain(row(name)))));
        page
    }

    struct DerivedPages;

    #[Object(name = "Query")]
    impl DerivedPages {
        async fn page(&self, empty: bool) -> Connection<String, Plain<Row>> {
            if empty { page(false, &[]) } else { page(true, &["one", "two", "three"]) }
        }
    }

    struct PlainPages;

    #[Object(name = "Query")]
    impl PlainPages {
        async fn page(&self, empty: bool) -> PlainConnection<Row> {
            PlainConnection(if empty { page(false, &[]) } else { page(true, &["one", "two", "three"]) })
        }
    }

    async fn answer(query: impl ObjectType + 'static, text: &str) -> String {
        let response = Schema::new(query, EmptyMutation, EmptySubscription).execute(text).await;
        assert!(response.errors.is_empty(), "{text}: {:?}", response.errors);
        response.data.to_string()
    }

    #[tokio::test]
    async fn a_plain_connection_answers_exactly_as_async_graphqls() {
        let queries = [
            "{ page(empty: false) { edges { cursor node { name rate } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
            "{ page(empty: true) { edges { cursor } nodes { name } pageInfo { startCursor endCursor hasNextPage } } }",
            "{ page(empty: false) { __typename nodes { tags counts { total } } first: pageInfo { endCursor } \
             edges { __typename c: cursor node { __typename name } } } }",
            "{ page(empty: false) { ...pages edges { node { ... on Row { plainCounts { stale } } } } } } \
             fragment pages on RowConnection { pageInfo { __typename hasNextPage } edges { ... on RowEdge { cursor } } }",
        ];
        for query in queries {
            assert_eq!(answer(DerivedPages, query).await, answer(PlainPages, query).await, "{query}");
        }
    }

    #[test]
    fn a_plain_connection_has_async_graphqls_schema() {
        assert_eq!(
            Schema::new(DerivedPages, EmptyMutation, EmptySubscription).sdl(),
            Schema::new(PlainPages, EmptyMutation, EmptySubscription).sdl()
        );
    }

    #[test]
    fn the_schema_does_not_see_the_wrapper() {
        let sdl = Schema::new(Query, EmptyMutation, EmptySubscription).sdl();
        assert!(sdl.contains("plain: [Row!]!"), "{sdl}");
        assert!(sdl.contains("plainCounts: Counts!"), "{sdl}");
    }
}

//! Objects of plain data resolved field after field in one pass: the schema is the derived
//! object's, but no future is boxed and joined per field (async-graphql's default), which is most of
//! the cost of a page of 100 peers or a statistics answer with a row per gateway.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::{ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

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
        let mut object = IndexMap::with_capacity(ctx.item.node.items.len());
        collect_fields(ctx, &self.0, &mut object).await?;
        Ok(Value::Object(object))
    }
}

/// Resolves the selected fields of `root` in order into `object`; fragments that apply to `T` are
/// walked in place. Field errors are reported on the response and leave the field out, as
/// async-graphql does.
async fn collect_fields<T: ContainerType>(
    ctx: &ContextSelectionSet<'_>,
    root: &T,
    object: &mut IndexMap<Name, Value>,
) -> ServerResult<()> {
    for selection in &ctx.item.node.items {
        let (condition, selection_set) = match &selection.node {
            Selection::Field(field) => {
                let response_key = field.node.response_key().node.clone();
                if field.node.name.node == "__typename" {
                    merge(object, response_key, Value::String(root.introspection_type_name().into_owned()));
                } else {
                    match root.resolve_field(&ctx.with_field(field)).await {
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
        if condition.is_none_or(|condition| condition.as_str() == T::type_name()) {
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
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject, Value};

    use super::Plain;

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
        async fn plain(&self) -> Vec<Plain<Row>> {
            vec![Plain(row("one")), Plain(row("two"))]
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

    #[test]
    fn the_schema_does_not_see_the_wrapper() {
        let sdl = Schema::new(Query, EmptyMutation, EmptySubscription).sdl();
        assert!(sdl.contains("plain: [Row!]!"), "{sdl}");
        assert!(sdl.contains("plainCounts: Counts!"), "{sdl}");
    }
}

//! Output objects described once: each GraphQL object type is one table of its fields (name,
//! description, type, value), from which come its schema registration, its resolution by
//! async-graphql and its JSON writer for direct answers ([`crate::direct`]).
//!
//! An object resolves in one pass over its selection: no future is boxed and joined per field or
//! per list item (async-graphql's default for derived objects), which was most of the cost of a
//! page of peers.

use std::borrow::Cow;
use std::collections::HashMap;

use argus_core::text::AppendText;
use argus_store::Cursor;
use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{FragmentDefinition, Selection, SelectionSet};
use async_graphql::registry::{Deprecation, MetaField, MetaType, MetaTypeId, Registry};
use async_graphql::resolver_utils::EnumType;
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};
use chrono::{DateTime, Utc};

/// A GraphQL object type of plain data: its name, description and fields.
pub(crate) trait OutputObject: Send + Sync + Sized + 'static {
    fn type_name() -> Cow<'static, str>;

    /// The doc comment's lines.
    const DESCRIPTION: &'static str;

    const FIELDS: &'static [Field<Self>];
}

/// One field of an object: everything about it, in one place (see [`fields!`]).
pub(crate) struct Field<T: 'static> {
    pub(crate) name: &'static str,
    /// The doc comment's lines.
    pub(crate) description: &'static str,
    /// Registers the field's type; gives its name as the schema writes it (`String!`).
    pub(crate) create_type_info: fn(&mut Registry) -> String,
    /// The field's answer, with what is selected below it.
    pub(crate) value: fn(&T, &ContextSelectionSet<'_>) -> Value,
    /// The field's answer as JSON: what serialising `value` writes.
    pub(crate) write_json: fn(&T, &[Selected], &mut Vec<u8>) -> Option<()>,
    /// The plan of a selection below the field, when it can be answered directly.
    pub(crate) plan: fn(&SelectionSet, &Fragments, &mut Plan) -> Option<Vec<Selected>>,
}

/// The fields of an object, each as `/// description` `name: GraphqlType = |record| value`: the
/// value is anything that answers as `GraphqlType` (see [`Answer`]), and the compiler checks it does.
macro_rules! fields {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = |$record:ident| $value:expr),* $(,)?) => {
        &[$($crate::object::Field {
            name: stringify!($name),
            description: concat!($($doc, "\n"),*),
            create_type_info: <$ty as async_graphql::OutputType>::create_type_info,
            value: |$record, ctx| $crate::object::Answer::value($crate::object::typed::<$ty, _>(&$value), ctx),
            write_json: |$record, below, out| {
                $crate::object::Answer::write_json($crate::object::typed::<$ty, _>(&$value), below, out)
            },
            plan: <$ty as $crate::object::Planned>::plan,
        }),*]
    };
}
pub(crate) use fields;

/// An output object over `$record` named `$name` in the schema (and in Rust, as `Object<$record>`).
macro_rules! output_object {
    ($(#[doc = $doc:literal])* $name:ident for $record:ty { $($fields:tt)* }) => {
        $(#[doc = $doc])*
        #[allow(dead_code)] // the type's name in the schema, for readers where it is not written
        pub(crate) type $name = $crate::object::Object<$record>;

        impl $crate::object::OutputObject for $record {
            fn type_name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }

            const DESCRIPTION: &'static str = concat!($($doc, "\n"),*);

            const FIELDS: &'static [$crate::object::Field<Self>] = $crate::object::fields!($($fields)*);
        }

        impl $crate::object::Answer for $record {
            type Graphql = $crate::object::Object<$record>;

            fn value(&self, ctx: &async_graphql::ContextSelectionSet<'_>) -> async_graphql::Value {
                $crate::object::object_value(self, ctx)
            }

            fn write_json(&self, below: &[$crate::object::Selected], out: &mut Vec<u8>) -> Option<()> {
                $crate::object::write_object(self, below, out)
            }
        }
    };
}
pub(crate) use output_object;

/// `answer`, checked to answer as `G`.
pub(crate) fn typed<G, A: Answer<Graphql = G> + ?Sized>(answer: &A) -> &A {
    answer
}

/// A value that answers a field of GraphQL type `Graphql`.
pub(crate) trait Answer: Sync {
    type Graphql: OutputType + Planned;

    /// The answer as async-graphql serialises it (objects: the fields selected in `ctx`).
    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value;

    /// The answer written as JSON: exactly what serialising [`Answer::value`] writes.
    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()>;
}

/// `T` in the schema (`Object<PeerRecord>` is `WireguardPeer`), resolved in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<T>(pub T);

impl<T: OutputObject> OutputType for Object<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        registry.create_output_type::<Self, _>(MetaTypeId::Object, |registry| MetaType::Object {
            name: T::type_name().into_owned(),
            description: description(T::DESCRIPTION),
            fields: T::FIELDS.iter().map(|field| (field.name.to_owned(), meta_field(field, registry))).collect(),
            cache_control: Default::default(),
            extends: false,
            shareable: false,
            resolvable: true,
            inaccessible: false,
            interface_object: false,
            tags: Vec::new(),
            keys: None,
            visible: None,
            is_subscription: false,
            rust_typename: Some(std::any::type_name::<Self>()),
            directive_invocations: Vec::new(),
            requires_scopes: Vec::new(),
        })
    }

    async fn resolve(
        &self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        Ok(object_value(&self.0, ctx))
    }
}

/// A list of `T` (`[T!]!` in the schema), resolved in order, each in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects<T>(pub Vec<T>);

impl<T: OutputObject + Answer> OutputType for Objects<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<Object<T>> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<Object<T>> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<Object<T>> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        Ok(self.0[..].value(ctx))
    }
}

fn meta_field<T>(field: &Field<T>, registry: &mut Registry) -> MetaField {
    MetaField {
        name: field.name.to_owned(),
        description: description(field.description),
        args: Default::default(),
        ty: (field.create_type_info)(registry),
        deprecation: Deprecation::NoDeprecated,
        cache_control: Default::default(),
        external: false,
        requires: None,
        provides: None,
        visible: None,
        shareable: false,
        inaccessible: false,
        tags: Vec::new(),
        override_from: None,
        compute_complexity: None,
        directive_invocations: Vec::new(),
        requires_scopes: Vec::new(),
    }
}

/// A doc comment's lines as a schema description, as async-graphql's derives make it.
fn description(doc: &str) -> Option<String> {
    let text = doc.lines().map(str::trim).collect::<Vec<_>>().join("\n");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The selected fields of `object`, in order; fragments that apply to its type are walked in
/// place (async-graphql removed the skipped selections before execution).
pub(crate) fn object_value<T: OutputObject>(object: &T, ctx: &ContextSelectionSet<'_>) -> Value {
    let mut answer = IndexMap::with_capacity(ctx.item.node.items.len());
    collect_fields(ctx, object, &mut answer);
    Value::Object(answer)
}

fn collect_fields<T: OutputObject>(ctx: &ContextSelectionSet<'_>, object: &T, answer: &mut IndexMap<Name, Value>) {
    for selection in &ctx.item.node.items {
        let (condition, selection_set) = match &selection.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                let value = if name == "__typename" {
                    Value::String(T::type_name().into_owned())
                } else if let Some(described) = T::FIELDS.iter().find(|described| described.name == name) {
                    (described.value)(object, &ctx.with_selection_set(&field.node.selection_set))
                } else {
                    continue; // validation refuses unknown fields before execution
                };
                merge(answer, field.node.response_key().node.clone(), value);
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
        if condition.is_none_or(|condition| *condition.as_str() == *T::type_name()) {
            collect_fields(&ctx.with_selection_set(selection_set), object, answer);
        }
    }
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
    match (existing, value) {
        (Value::Object(existing), Value::Object(fields)) => {
            for (key, value) in fields {
                merge(existing, key, value);
            }
        }
        (Value::List(existing), Value::List(items)) => {
            for (existing, item) in existing.iter_mut().zip(items) {
                if let (Value::Object(existing), Value::Object(fields)) = (existing, item) {
                    for (key, value) in fields {
                        merge(existing, key, value);
                    }
                }
            }
        }
        _ => {}
    }
}

/// One selected field, planned for a direct answer: its response key as JSON with its colon,
/// what answers it, when it is included, and what is selected below it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selected {
    pub(crate) key_json: Vec<u8>,
    pub(crate) answer: Selects,
    /// `@skip` / `@include` conditions, all of which must hold.
    pub(crate) conditions: Vec<Condition>,
    pub(crate) below: Vec<Selected>,
}

/// What answers a selected field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Selects {
    /// The object's field at this index of its [`OutputObject::FIELDS`].
    Field(usize),
    TypeName,
}

/// `@include(if: …)` (`include` true) or `@skip(if: …)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) include: bool,
    pub(crate) when: Flag,
}

/// A directive's `if`: written in the document, or a variable's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Flag {
    Literal(bool),
    Variable(Name),
}

/// The fragments a document defines, by name.
pub(crate) type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// What planning learns of a whole document.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Some field is included or skipped on a condition.
    pub(crate) conditional: bool,
}

/// A GraphQL output type's plan of the selection below a field of that type.
pub(crate) trait Planned {
    fn plan(set: &SelectionSet, fragments: &Fragments, plan: &mut Plan) -> Option<Vec<Selected>>;
}

impl<T: OutputObject> Planned for Object<T> {
    fn plan(set: &SelectionSet, fragments: &Fragments, plan: &mut Plan) -> Option<Vec<Selected>> {
        if set.items.is_empty() {
            return None; // an object's fields must be selected
        }
        let mut selection = Vec::with_capacity(set.items.len());
        plan_object::<T>(set, fragments, &[], plan, &mut selection)?;
        Some(selection)
    }
}

impl<G: Planned> Planned for Vec<G> {
    fn plan(set: &SelectionSet, fragments: &Fragments, plan: &mut Plan) -> Option<Vec<Selected>> {
        G::plan(set, fragments, plan)
    }
}

impl<G: Planned> Planned for Option<G> {
    fn plan(set: &SelectionSet, fragments: &Fragments, plan: &mut Plan) -> Option<Vec<Selected>> {
        G::plan(set, fragments, plan)
    }
}

/// Plans the fields of `set` on an object of type `T` into `selection`, with `conditions` (of the
/// fragments around them) added to each; `None` when it cannot be answered directly: a field with
/// arguments, a directive other than `@skip` and `@include`, or a response key selected twice
/// other than plainly (async-graphql merges those).
fn plan_object<T: OutputObject>(
    set: &SelectionSet, fragments: &Fragments, conditions: &[Condition], plan: &mut Plan, selection: &mut Vec<Selected>,
) -> Option<()> {
    for item in &set.items {
        let mut around = conditions.to_vec();
        around.extend(self::conditions(item.node.directives())?);
        plan.conditional |= !around.is_empty();
        let (on, inner) = match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                if !field.arguments.is_empty() {
                    return None;
                }
                let (answer, below) = if field.name.node == "__typename" {
                    (Selects::TypeName, Vec::new())
                } else {
                    let index = T::FIELDS.iter().position(|described| described.name == field.name.node)?;
                    (Selects::Field(index), (T::FIELDS[index].plan)(&field.selection_set.node, fragments, plan)?)
                };
                let planned = Selected {
                    key_json: key_json(field.response_key().node.as_str()),
                    answer,
                    conditions: around,
                    below,
                };
                match selection.iter_mut().find(|earlier| earlier.key_json == planned.key_json) {
                    None => selection.push(planned),
                    Some(earlier)
                        if earlier.answer == planned.answer
                            && earlier.conditions.is_empty()
                            && planned.conditions.is_empty() =>
                    {
                        merge_planned(&mut earlier.below, planned.below)?;
                    }
                    Some(_) => return None,
                }
                continue;
            }
            Selection::FragmentSpread(spread) => {
                let fragment = &fragments.get(&spread.node.fragment_name.node)?.node;
                (Some(&fragment.type_condition.node.on.node), &fragment.selection_set.node)
            }
            Selection::InlineFragment(fragment) => (
                fragment.node.type_condition.as_ref().map(|condition| &condition.node.on.node),
                &fragment.node.selection_set.node,
            ),
        };
        if on.is_none_or(|on| *on.as_str() == *T::type_name()) {
            plan_object::<T>(inner, fragments, &around, plan, selection)?;
        }
    }
    Some(())
}

/// The `@skip` and `@include` conditions of `directives`; `None` for any other directive.
pub(crate) fn conditions(directives: &[Positioned<async_graphql::parser::types::Directive>]) -> Option<Vec<Condition>> {
    directives
        .iter()
        .map(|directive| {
            let include = match directive.node.name.node.as_str() {
                "include" => true,
                "skip" => false,
                _ => return None,
            };
            let when = match directive.node.get_argument("if")?.node.clone().into_const_with(Err) {
                Ok(Value::Boolean(flag)) => Flag::Literal(flag),
                Err(variable) => Flag::Variable(variable),
                Ok(_) => return None,
            };
            Some(Condition { include, when })
        })
        .collect()
}

/// Merges a plainly repeated field's selection into the earlier one's.
fn merge_planned(earlier: &mut Vec<Selected>, later: Vec<Selected>) -> Option<()> {
    for planned in later {
        match earlier.iter_mut().find(|field| field.key_json == planned.key_json) {
            None => earlier.push(planned),
            Some(field) if field.answer == planned.answer && field.conditions == planned.conditions => {
                merge_planned(&mut field.below, planned.below)?;
            }
            Some(_) => return None,
        }
    }
    Some(())
}

/// `"key":`
pub(crate) fn key_json(key: &str) -> Vec<u8> {
    let mut json = Vec::with_capacity(key.len() + 3);
    write_string(key, &mut json);
    json.push(b':');
    json
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // writing a string into a Vec cannot fail
    let _ = serde_json::to_writer(out, text);
}

/// Writes `{ "k": …, "k2": … }` over `selection`.
pub(crate) fn write_object<T: OutputObject>(object: &T, selection: &[Selected], out: &mut Vec<u8>) -> Option<()> {
    out.push(b'{');
    for (index, field) in selection.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&field.key_json);
        match field.answer {
            Selects::Field(index) => (T::FIELDS.get(index)?.write_json)(object, &field.below, out)?,
            Selects::TypeName => write_string(&T::type_name(), out),
        }
    }
    out.push(b'}');
    Some(())
}

/// Writes `[ …, … ]`.
fn write_list<'a, A: Answer + 'a>(
    items: impl Iterator<Item = &'a A>, below: &[Selected], out: &mut Vec<u8>,
) -> Option<()> {
    out.push(b'[');
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        item.write_json(below, out)?;
    }
    out.push(b']');
    Some(())
}

impl<A: Answer + ?Sized> Answer for &A {
    type Graphql = A::Graphql;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        (**self).value(ctx)
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        (**self).write_json(below, out)
    }
}

impl<A: Answer> Answer for [A] {
    type Graphql = Vec<A::Graphql>;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        Value::List(self.iter().map(|item| item.value(ctx)).collect())
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write_list(self.iter(), below, out)
    }
}

impl<A: Answer> Answer for Vec<A> {
    type Graphql = Vec<A::Graphql>;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        self[..].value(ctx)
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        self[..].write_json(below, out)
    }
}

impl<A: Answer> Answer for Option<A> {
    type Graphql = Option<A::Graphql>;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        self.as_ref().map_or(Value::Null, |value| value.value(ctx))
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        match self {
            Some(value) => value.write_json(below, out),
            None => {
                out.extend_from_slice(b"null");
                Some(())
            }
        }
    }
}

/// Values answered as themselves (async-graphql's scalars and this API's enumerations): nothing is
/// selected below them.
macro_rules! leaves {
    ($($type:ty),* $(,)?) => {
        $(impl $crate::object::Planned for $type {
            fn plan(
                set: &async_graphql::parser::types::SelectionSet,
                _fragments: &$crate::object::Fragments,
                _plan: &mut $crate::object::Plan,
            ) -> Option<Vec<$crate::object::Selected>> {
                set.items.is_empty().then(Vec::new)
            }
        })*
    };
}

leaves!(String, bool, u16, u32, u64, f64, DateTime<Utc>);

impl Answer for str {
    type Graphql = String;

    fn value(&self, _ctx: &ContextSelectionSet<'_>) -> Value {
        Value::String(self.to_owned())
    }

    fn write_json(&self, _below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write_string(self, out);
        Some(())
    }
}

impl Answer for String {
    type Graphql = String;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        self.as_str().value(ctx)
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        self.as_str().write_json(below, out)
    }
}

/// Answers as text whose every character stands in a JSON string as itself (base64 keys, IP
/// addresses and prefixes, cursors: [`AppendText`]): written between quotes without escaping.
macro_rules! answer_as_plain_text {
    ($($type:ty),*) => {
        $(impl Answer for $type {
            type Graphql = String;

            fn value(&self, _ctx: &ContextSelectionSet<'_>) -> Value {
                let mut text = Vec::new();
                self.append_text(&mut text);
                Value::String(String::from_utf8(text).unwrap_or_default())
            }

            fn write_json(&self, _below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
                self.append_json_string(out);
                Some(())
            }
        })*
    };
}

answer_as_plain_text!(argus_core::PublicKey, argus_core::Endpoint, argus_core::Cidr, Cursor);

/// Answers of values async-graphql converts itself ([`InputType::to_value`]), each written by
/// `$write` as serialising the converted value writes it.
macro_rules! answer_as_graphql_value {
    ($write:path: $($type:ty),* $(,)?) => {
        $(impl $crate::object::Answer for $type {
            type Graphql = Self;

            fn value(&self, _ctx: &async_graphql::ContextSelectionSet<'_>) -> async_graphql::Value {
                async_graphql::InputType::to_value(self)
            }

            fn write_json(&self, _below: &[$crate::object::Selected], out: &mut Vec<u8>) -> Option<()> {
                $write(self, out)
            }
        })*
    };
}

answer_as_graphql_value!(write_number: bool, u16, u32, u64, f64);
answer_as_graphql_value!(write_time: DateTime<Utc>);

/// This API's enumerations: answered and written by their items' names.
macro_rules! answer_as_enum {
    ($($type:ty),* $(,)?) => {
        $crate::object::leaves!($($type),*);
        $crate::object::answer_as_graphql_value!($crate::object::write_enum_name: $($type),*);
    };
}
pub(crate) use {answer_as_enum, answer_as_graphql_value, leaves};

fn write_number(number: &impl serde::Serialize, out: &mut Vec<u8>) -> Option<()> {
    serde_json::to_writer(out, number).ok()
}

/// An enumeration's answer: its item's name.
pub(crate) fn write_enum_name<T: EnumType>(value: &T, out: &mut Vec<u8>) -> Option<()> {
    let item = T::items().iter().find(|item| item.value == *value)?;
    out.push(b'"');
    out.extend_from_slice(item.name.as_bytes());
    out.push(b'"');
    Some(())
}

/// async-graphql's `DateTime` text (RFC 3339), which needs no escaping.
fn write_time(at: &DateTime<Utc>, out: &mut Vec<u8>) -> Option<()> {
    out.push(b'"');
    append_rfc3339(at, out);
    out.push(b'"');
    Some(())
}

/// Appends `at` as chrono's `to_rfc3339` writes it (`2026-11-26T04:35:05.123+00:00`), without an
/// allocation or the formatting machinery, for times of the years 0 to 9999 in whole
/// milliseconds (every event time): a page of peers writes a hundred or more.
fn append_rfc3339(at: &DateTime<Utc>, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let nanos = at.nanosecond();
    let (Ok(year @ 0..=9999), 0, 0..1_000_000_000) = (u32::try_from(at.year()), nanos % 1_000_000, nanos) else {
        return out.extend_from_slice(at.to_rfc3339().as_bytes());
    };
    let digits = |out: &mut Vec<u8>, before: &[u8], value: u32| {
        out.extend_from_slice(before);
        out.extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
    };
    digits(out, b"", year / 100);
    digits(out, b"", year % 100);
    digits(out, b"-", at.month());
    digits(out, b"-", at.day());
    digits(out, b"T", at.hour());
    digits(out, b":", at.minute());
    digits(out, b":", at.second());
    let millis = nanos / 1_000_000;
    if millis > 0 {
        digits(out, b".", millis / 10);
        out.push(b'0' + (millis % 10) as u8);
    }
    out.extend_from_slice(b"+00:00");
}

/// A Relay connection: a page of `T` (`…Connection`, `…Edge` and `PageInfo` in the schema, as
/// async-graphql's own connection types name and describe them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Connection<T> {
    pub(crate) edges: Vec<Edge<T>>,
    pub(crate) has_previous_page: bool,
    pub(crate) has_next_page: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Edge<T> {
    pub(crate) node: T,
    pub(crate) cursor: Cursor,
}

impl<T> Connection<T> {
    /// A store page, asked for after a cursor or not.
    pub(crate) fn of(page: argus_store::Page<T>, after_given: bool) -> Self {
        let has_next_page = page.next.is_some();
        let edges = page.items.into_iter().zip(page.cursors).map(|(node, cursor)| Edge { node, cursor }).collect();
        Self { edges, has_previous_page: after_given, has_next_page }
    }

    fn page_info(&self) -> Pagination {
        Pagination {
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
            start_cursor: self.edges.first().map(|edge| edge.cursor.clone()),
            end_cursor: self.edges.last().map(|edge| edge.cursor.clone()),
        }
    }
}

/// Where a page stands in its listing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pagination {
    has_previous_page: bool,
    has_next_page: bool,
    start_cursor: Option<Cursor>,
    end_cursor: Option<Cursor>,
}

output_object! {
    /// Information about pagination in a connection
    PageInfo for Pagination {
        /// When paginating backwards, are there more items?
        hasPreviousPage: bool = |info| info.has_previous_page,
        /// When paginating forwards, are there more items?
        hasNextPage: bool = |info| info.has_next_page,
        /// When paginating backwards, the cursor to continue.
        startCursor: Option<String> = |info| info.start_cursor,
        /// When paginating forwards, the cursor to continue.
        endCursor: Option<String> = |info| info.end_cursor,
    }
}

/// The nodes of a page's edges, as a list.
struct Nodes<'a, T>(&'a [Edge<T>]);

impl<T: Answer> Answer for Nodes<'_, T> {
    type Graphql = Vec<T::Graphql>;

    fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
        Value::List(self.0.iter().map(|edge| edge.node.value(ctx)).collect())
    }

    fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
        write_list(self.0.iter().map(|edge| &edge.node), below, out)
    }
}

/// The object every connection and edge is: its name from its node's.
macro_rules! generic_object {
    ($type:ident, $suffix:literal, $description:literal, { $($fields:tt)* }) => {
        impl<T: OutputObject + Answer<Graphql = Object<T>>> OutputObject for $type<T> {
            fn type_name() -> Cow<'static, str> {
                Cow::Owned(format!(concat!("{}", $suffix), T::type_name()))
            }

            const DESCRIPTION: &'static str = $description;

            const FIELDS: &'static [Field<Self>] = fields!($($fields)*);
        }

        impl<T: OutputObject + Answer<Graphql = Object<T>>> Answer for $type<T> {
            type Graphql = Object<$type<T>>;

            fn value(&self, ctx: &ContextSelectionSet<'_>) -> Value {
                object_value(self, ctx)
            }

            fn write_json(&self, below: &[Selected], out: &mut Vec<u8>) -> Option<()> {
                write_object(self, below, out)
            }
        }
    };
}

generic_object!(Connection, "Connection", "", {
    /// Information to aid in pagination.
    pageInfo: PageInfo = |connection| connection.page_info(),
    /// A list of edges.
    edges: Vec<Object<Edge<T>>> = |connection| connection.edges[..],
    /// A list of nodes.
    nodes: Vec<Object<T>> = |connection| Nodes(&connection.edges),
});

generic_object!(Edge, "Edge", "An edge in a connection.", {
    /// The item at the end of the edge
    node: Object<T> = |edge| edge.node,
    /// A cursor for use in pagination
    cursor: String = |edge| edge.cursor,
});

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn times_are_written_as_chrono_writes_them(millis in -80_000_000_000_000i64..300_000_000_000_000) {
            let at = DateTime::from_timestamp_millis(millis).expect("in range");
            let mut written = Vec::new();
            append_rfc3339(&at, &mut written);
            proptest::prop_assert_eq!(String::from_utf8(written).expect("utf-8"), at.to_rfc3339());
        }
    }

    #[test]
    fn times_of_every_kind_are_written_as_chrono_writes_them() {
        let whole_second = DateTime::from_timestamp_millis(1_780_000_000_000).expect("in range");
        let odd = whole_second + chrono::Duration::nanoseconds(1_500);
        let early = DateTime::from_timestamp_millis(-1).expect("in range");
        let millis = DateTime::from_timestamp_millis(1_780_000_000_007).expect("in range");
        for at in [whole_second, millis, early, odd, DateTime::<Utc>::MIN_UTC] {
            let mut written = Vec::new();
            append_rfc3339(&at, &mut written);
            assert_eq!(String::from_utf8(written).expect("utf-8"), at.to_rfc3339());
        }
    }

    #[test]
    fn text_written_unescaped_needs_no_escaping() {
        let endpoint: argus_core::Endpoint = "[fe80::1%4]:51820".parse().expect("scoped endpoint");
        let mut written = Vec::new();
        endpoint.write_json(&[], &mut written).expect("written");
        assert_eq!(
            String::from_utf8(written).expect("utf-8"),
            serde_json::to_string(&endpoint.to_string()).expect("json")
        );
    }

    #[test]
    fn doc_comments_become_descriptions_as_async_graphqls_derives_make_them() {
        assert_eq!(description(" One line.\n Two\n"), Some("One line.\nTwo".to_owned()));
        assert_eq!(description(""), None);
    }
}

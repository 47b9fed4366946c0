//! Packed serde forms for rows and snapshots: in binary formats (postcard) an endpoint or prefix
//! travels as a few raw bytes instead of its text, so writing and reading a row formats and parses
//! no address. Human-readable formats keep the text. Events keep the text everywhere (their Avro
//! schemas say string), so only fields marked `#[serde(with = "argus_core::packed::...")]` pack.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Up to 22 bytes built on the stack: the longest packed value is an IPv6 endpoint
/// (16 address bytes, 2 port bytes, 4 scope bytes).
#[derive(Debug)]
pub struct Packed {
    bytes: [u8; 22],
    len: usize,
}

impl Packed {
    pub(crate) fn new() -> Self {
        Self { bytes: [0; 22], len: 0 }
    }

    pub(crate) fn push(mut self, part: &[u8]) -> Self {
        self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
        self
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A value with a text form (`Display`, `FromStr`) and a packed one.
pub trait Packable: Sized + fmt::Display + std::str::FromStr<Err: fmt::Display> {
    /// What a deserializer expected, for its error messages.
    const EXPECTING: &'static str;

    fn pack(&self) -> Packed;

    /// The value of packed bytes, or why they are not one.
    fn unpack(bytes: &[u8]) -> Result<Self, String>;
}

/// Reads a byte string (borrowed where the format allows, so nothing is allocated).
pub(crate) struct PackedVisitor<T> {
    expecting: &'static str,
    unpack: fn(&[u8]) -> Result<T, String>,
    _value: PhantomData<T>,
}

impl<T> PackedVisitor<T> {
    pub(crate) fn new(expecting: &'static str, unpack: fn(&[u8]) -> Result<T, String>) -> Self {
        Self { expecting, unpack, _value: PhantomData }
    }
}

impl<T> Visitor<'_> for PackedVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<T, E> {
        (self.unpack)(bytes).map_err(E::custom)
    }
}

/// One value, packed in binary formats and text in human-readable ones.
struct AsPacked<'a, T>(&'a T);

impl<T: Packable> Serialize for AsPacked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self.0)
        } else {
            serializer.serialize_bytes(self.0.pack().as_slice())
        }
    }
}

struct FromPacked<T>(T);

impl<'de, T: Packable> Deserialize<'de> for FromPacked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map(FromPacked).map_err(D::Error::custom)
        } else {
            deserializer.deserialize_bytes(PackedVisitor::new(T::EXPECTING, T::unpack)).map(FromPacked)
        }
    }
}

/// `#[serde(with = "argus_core::packed::one")]` on a `T: Packable` field.
pub mod one {
    use super::*;

    pub fn serialize<T: Packable, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        AsPacked(value).serialize(serializer)
    }

    pub fn deserialize<'de, T: Packable, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        FromPacked::deserialize(deserializer).map(|packed| packed.0)
    }
}

/// `#[serde(with = "argus_core::packed::option")]` on an `Option<T: Packable>` field.
pub mod option {
    use super::*;

    pub fn serialize<T: Packable, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(AsPacked).serialize(serializer)
    }

    pub fn deserialize<'de, T: Packable, D: Deserializer<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
        Option::<FromPacked<T>>::deserialize(deserializer).map(|value| value.map(|packed| packed.0))
    }
}

/// `#[serde(with = "argus_core::packed::list")]` on a `Vec<T>` or `Arc<[T]>` field, `T: Packable`.
pub mod list {
    use super::*;

    pub fn serialize<T: Packable, S: Serializer>(values: &[T], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(values.iter().map(AsPacked))
    }

    pub fn deserialize<'de, T: Packable, L: FromIterator<T>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<L, D::Error> {
        Vec::<FromPacked<T>>::deserialize(deserializer)
            .map(|values| values.into_iter().map(|packed| packed.0).collect())
    }
}

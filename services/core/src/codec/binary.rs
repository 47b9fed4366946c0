//! Avro binary primitives (zigzag varints, length-prefixed bytes, blocks) over byte slices.

use super::DecodeError;

/// Appends Avro binary values to a byte buffer.
#[derive(Debug)]
pub(crate) struct AvroWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> AvroWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    fn buffer(&mut self) -> &mut Vec<u8> {
        self.out
    }

    pub(crate) fn long(&mut self, value: i64) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        let out = self.buffer();
        while zigzag >= 0x80 {
            out.push((zigzag as u8) | 0x80);
            zigzag >>= 7;
        }
        out.push(zigzag as u8);
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.long(value.len() as i64);
        self.buffer().extend_from_slice(value);
    }

    pub(crate) fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub(crate) fn fixed(&mut self, value: &[u8]) {
        self.buffer().extend_from_slice(value);
    }

    pub(crate) fn double(&mut self, value: f64) {
        self.buffer().extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn boolean(&mut self, value: bool) {
        self.buffer().push(u8::from(value));
    }

    /// A union branch index, or an enum symbol index.
    pub(crate) fn index(&mut self, index: usize) {
        self.long(index as i64);
    }

    /// `["null", T]`: writes the branch and, when present, the value.
    pub(crate) fn optional<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.index(0),
            Some(value) => {
                self.index(1);
                write(self, value);
            }
        }
    }

    /// An array (or map) as one block followed by the end marker.
    pub(crate) fn block<T>(&mut self, items: impl ExactSizeIterator<Item = T>, mut write: impl FnMut(&mut Self, T)) {
        if items.len() > 0 {
            self.long(items.len() as i64);
            for item in items {
                write(self, item);
            }
        }
        self.long(0);
    }
}

/// Reads Avro binary values from a byte slice; every failure names the field being read.
#[derive(Debug)]
pub(crate) struct AvroReader<'a> {
    input: &'a [u8],
}

impl<'a> AvroReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len()
    }

    pub(crate) fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for (index, &byte) in self.input.iter().enumerate().take(10) {
            if index == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.input = &self.input[index + 1..];
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        if self.input.len() < 10 && self.input.iter().all(|byte| byte & 0x80 != 0) {
            Err(DecodeError::Truncated { field })
        } else {
            Err(DecodeError::Malformed { field, reason: "varint longer than 64 bits" })
        }
    }

    pub(crate) fn int(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        i32::try_from(self.long(field)?)
            .map_err(|_| DecodeError::Malformed { field, reason: "int out of 32-bit range" })
    }

    /// A length or count: non-negative and not beyond the bytes left.
    fn length(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let length = self.long(field)?;
        let length =
            usize::try_from(length).map_err(|_| DecodeError::Malformed { field, reason: "negative length" })?;
        if length > self.input.len() {
            return Err(DecodeError::Truncated { field });
        }
        Ok(length)
    }

    fn take(&mut self, field: &'static str, length: usize) -> Result<&'a [u8], DecodeError> {
        if length > self.input.len() {
            return Err(DecodeError::Truncated { field });
        }
        let (taken, rest) = self.input.split_at(length);
        self.input = rest;
        Ok(taken)
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let length = self.length(field)?;
        self.take(field, length)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(field)?)
            .map_err(|_| DecodeError::Malformed { field, reason: "string is not UTF-8" })
    }

    pub(crate) fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn double(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.fixed::<8>(field)?))
    }

    pub(crate) fn boolean(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.fixed::<1>(field)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(DecodeError::Malformed { field, reason: "a boolean is one byte, 0 or 1" }),
        }
    }

    /// A union branch or enum symbol index below `count`.
    pub(crate) fn index(&mut self, field: &'static str, count: usize) -> Result<usize, DecodeError> {
        let index = self.long(field)?;
        usize::try_from(index)
            .ok()
            .filter(|index| *index < count)
            .ok_or(DecodeError::Malformed { field, reason: "union or enum index out of range" })
    }

    /// `["null", T]`.
    pub(crate) fn optional<T>(
        &mut self, field: &'static str, read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.index(field, 2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }

    /// An array or map: blocks of items until a zero count; negative counts carry a byte size.
    pub(crate) fn blocks<T>(
        &mut self, field: &'static str, mut read: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut items = Vec::new();
        loop {
            let count = self.long(field)?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                self.length(field)?;
            }
            let count = usize::try_from(count.unsigned_abs())
                .ok()
                .filter(|count| *count <= self.input.len())
                .ok_or(DecodeError::Truncated { field })?;
            items.reserve(count);
            for _ in 0..count {
                items.push(read(self)?);
            }
        }
    }
}

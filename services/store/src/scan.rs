//! Listings over ordered keys, shared by both stores: bounds, cursors, and page assembly.

use std::ops::Bound;

use crate::model::{Cursor, Page, StoreError};

/// Where a listing starts and ends, and in which direction it runs.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub(crate) lower: Bound<Vec<u8>>,
    /// Always exclusive or unbounded-by-prefix: every listing has a finite end.
    pub(crate) upper: Bound<Vec<u8>>,
    pub(crate) newest_first: bool,
}

impl Scan {
    /// Every key under `prefix`, smallest first.
    pub(crate) fn prefix(prefix: Vec<u8>) -> Self {
        let mut end = prefix.clone();
        end.push(0xff);
        Self { lower: Bound::Included(prefix), upper: Bound::Excluded(end), newest_first: false }
    }

    /// Keys from `from` (inclusive) to `to` (exclusive).
    pub(crate) fn between(from: Vec<u8>, to: Vec<u8>, newest_first: bool) -> Self {
        Self { lower: Bound::Included(from), upper: Bound::Excluded(to), newest_first }
    }

    /// Resumes after `cursor`, which must lie inside `scope` (else it is another listing's).
    pub(crate) fn after(mut self, cursor: Option<&Cursor>, scope: &[u8]) -> Result<Self, StoreError> {
        let Some(cursor) = cursor else { return Ok(self) };
        let key = cursor.key()?;
        if !key.starts_with(scope) {
            return Err(StoreError::InvalidCursor);
        }
        if self.newest_first {
            self.upper = Bound::Excluded(key);
        } else {
            self.lower = Bound::Excluded(key);
        }
        Ok(self)
    }

    /// The lower bound as a value for `key >= ?`, and whether a row equal to it must be skipped.
    pub(crate) fn lower_inclusive(&self) -> (Vec<u8>, bool) {
        match &self.lower {
            Bound::Included(key) => (key.clone(), false),
            Bound::Excluded(key) => (key.clone(), true),
            Bound::Unbounded => (Vec::new(), false),
        }
    }

    /// The upper bound as a value for `key < ?`.
    pub(crate) fn upper_exclusive(&self) -> Vec<u8> {
        match &self.upper {
            Bound::Included(key) | Bound::Excluded(key) => key.clone(),
            Bound::Unbounded => vec![0xff; 64],
        }
    }
}

/// Collects up to `first` accepted rows, peeking one more to know whether a next page exists.
#[derive(Debug)]
pub(crate) struct PageBuilder<T> {
    first: usize,
    items: Vec<T>,
    last_key: Vec<u8>,
    more: bool,
}

impl<T> PageBuilder<T> {
    pub(crate) fn new(first: usize) -> Self {
        Self { first, items: Vec::with_capacity(first.min(1_024)), last_key: Vec::new(), more: false }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.first
    }

    /// Offers the row at `key` (`None` when filtered out); returns whether to keep reading.
    pub(crate) fn offer(&mut self, key: &[u8], item: Option<T>) -> bool {
        let Some(item) = item else { return true };
        if self.is_full() {
            self.more = true;
            return false;
        }
        self.items.push(item);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        true
    }

    pub(crate) fn finish(self) -> Page<T> {
        let next = self.more.then(|| Cursor::from_key(&self.last_key));
        Page { items: self.items, next }
    }
}

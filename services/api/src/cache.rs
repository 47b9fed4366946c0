//! The API's one cache mechanism: a bounded map, shared by every thread, from what requests carry
//! again and again (a token, a query text, a read's arguments) to what was worked out from it.
//! Entries are evicted one at a time by quick_cache's policy (recently and frequently used ones
//! stay), never all at once.

use std::hash::Hash;

use quick_cache::Equivalent;

/// A bounded cache of `V` by `K`.
pub(crate) struct Memo<K, V>(quick_cache::sync::Cache<K, V>);

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// A cache of at most `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        Self(quick_cache::sync::Cache::new(entries.max(1)))
    }

    pub(crate) fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<V> {
        self.0.get(key)
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.0.insert(key, value);
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn a_full_cache_keeps_what_is_used_and_stays_bounded() {
        let memo: Memo<u32, u32> = Memo::new(100);
        for key in 0..10_000 {
            memo.insert(key, key * 2);
            // one key asked for all along stays
            memo.insert(7, 14);
            assert_eq!(memo.get(&7), Some(14));
        }
        let kept = (0..10_000).filter(|key| memo.get(key).is_some()).count();
        assert!(kept <= 110, "{kept} entries kept");
        assert_eq!(memo.get(&9_999), Some(19_998));
    }
}

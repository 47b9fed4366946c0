//! The API's one cache mechanism: a bounded map, shared by every thread, from what requests carry
//! again and again (a token, a query text, a read's arguments) to what was worked out from it.
//! Entries are evicted one at a time by quick_cache's policy (recently and frequently used ones
//! stay), never all at once.

use std::hash::Hash;

use quick_cache::{Equivalent, Weighter};

/// A bounded cache of `V` by `K`.
pub(crate) struct Memo<K, V>(quick_cache::sync::Cache<K, V, Weight<V>>);

/// What an entry counts against the cache's bound (at least 1).
pub(crate) struct Weight<V>(fn(&V) -> u64);

impl<V> Clone for Weight<V> {
    fn clone(&self) -> Self {
        Self(self.0)
    }
}

impl<K, V> Weighter<K, V> for Weight<V> {
    fn weight(&self, _key: &K, value: &V) -> u64 {
        (self.0)(value).max(1)
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// A cache of at most `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        Self::weighed(entries, entries as u64, |_| 1)
    }

    /// A cache whose entries weigh `weight` each, at most `most_weight` in all (about `entries`
    /// entries expected).
    pub(crate) fn weighed(entries: usize, most_weight: u64, weight: fn(&V) -> u64) -> Self {
        Self(quick_cache::sync::Cache::with_weighter(entries.max(1), most_weight.max(1), Weight(weight)))
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

    /// Their weight.
    #[cfg(test)]
    fn weight(&self) -> u64 {
        self.0.weight()
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

    #[test]
    fn a_weighed_cache_stays_within_its_weight_whatever_the_count() {
        let memo: Memo<u32, Vec<u8>> = Memo::weighed(100, 1_000, |rows| rows.len() as u64);
        for key in 0..1_000 {
            memo.insert(key, vec![0; 100]);
        }
        assert!(memo.weight() <= 1_000, "{}", memo.weight());
        assert!(memo.len() <= 10, "{} entries of weight 100", memo.len());
    }
}

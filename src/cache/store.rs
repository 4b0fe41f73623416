//! The entry table: every live entry, its exact key, its LRU position, its expiry, and the
//! bounds on entries and bytes.
//!
//! One mutex guards it, held only for O(1) work (a map probe, a list splice) or for a sweep
//! that visits expired entries alone, never during an HNSW search or insert. Entries are
//! kept in a slab with an intrusive doubly-linked LRU list (most recent at the head), a map
//! from exact key and one from entry id (the id the HNSW index knows), and a min-heap of
//! expiry times for the sweep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::answer::CachedAnswer;
use super::exact::ExactKey;
use super::guard::GuardFeatures;
use super::scope::{FlushFilter, ScopeId};

const NIL: u32 = u32::MAX;

/// Fixed bytes charged per entry for the table itself (slab node, two map slots, heap slot).
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// One cached answer with what lookups need to judge it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Local id, also the point id in the HNSW index.
    pub id: u64,
    /// The exact key.
    pub key: ExactKey,
    /// The scope id; a lookup must match it.
    pub scope: ScopeId,
    /// The scope's model (for flush by model).
    pub model: Arc<str>,
    /// The scope's tenant (for flush by tenant).
    pub tenant: Option<Arc<str>>,
    /// The caller's category (it picked the TTL).
    pub category: Option<Arc<str>>,
    /// When it was stored, Unix ms.
    pub created_ms: u64,
    /// When it stops being served, Unix ms.
    pub expires_ms: u64,
    /// The guard's features of the stored prompt.
    pub guard: GuardFeatures,
    /// The answer.
    pub answer: Arc<CachedAnswer>,
    /// Bytes charged against `max_bytes`.
    pub bytes: usize,
    /// The index segment holding its vector; `None` for an exact-only entry.
    pub segment: Option<u32>,
}

/// Why an entry left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Least recently used, beyond `max_entries` or `max_bytes`.
    Evicted,
    /// Past its TTL.
    Expired,
    /// Flushed by request.
    Flushed,
    /// Replaced by a newer answer for the same exact key.
    Replaced,
}

/// An entry that left the table: the index must count its point as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Its id.
    pub id: u64,
    /// Its segment, if it had a vector.
    pub segment: Option<u32>,
    /// Why.
    pub why: Removal,
}

struct Node {
    entry: Entry,
    prev: u32,
    next: u32,
}

/// The table's contents.
struct Inner {
    slots: Vec<Option<Node>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    by_key: HashMap<ExactKey, u32>,
    by_id: HashMap<u64, u32>,
    expiry: BinaryHeap<Reverse<(u64, u64)>>,
    bytes: u64,
    len: usize,
}

/// Bounds the table enforces on every insert.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most entries.
    pub max_entries: usize,
    /// Most bytes.
    pub max_bytes: u64,
}

/// The entry table.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    bounds: Bounds,
}

/// What a lookup by id found.
pub(crate) enum Probe<T> {
    /// No such entry (evicted, flushed, or never stored).
    Missing,
    /// It was past its TTL and has been removed.
    Expired(Removed),
    /// The entry, seen by the caller's closure.
    Found(T),
}

impl Inner {
    fn node(&self, slot: u32) -> Option<&Node> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, slot: u32) -> Option<&mut Node> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn unlink(&mut self, slot: u32) {
        let Some((prev, next)) = self.node(slot).map(|n| (n.prev, n.next)) else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let old_head = self.head;
        if let Some(node) = self.node_mut(slot) {
            node.prev = NIL;
            node.next = old_head;
        }
        match self.node_mut(old_head) {
            Some(h) => h.prev = slot,
            None => self.tail = slot,
        }
        self.head = slot;
    }

    fn touch(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    fn remove_slot(&mut self, slot: u32, why: Removal) -> Option<Removed> {
        self.unlink(slot);
        let node = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        let entry = node.entry;
        if self.by_key.get(&entry.key) == Some(&slot) {
            self.by_key.remove(&entry.key);
        }
        self.by_id.remove(&entry.id);
        self.bytes = self.bytes.saturating_sub(entry.bytes as u64);
        self.len -= 1;
        // The expiry heap is cleaned lazily: a popped item whose entry is gone is skipped.
        Some(Removed {
            id: entry.id,
            segment: entry.segment,
            why,
        })
    }

    fn insert_slot(&mut self, entry: Entry) -> u32 {
        let node = Node {
            entry,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(node);
                slot
            }
            None => {
                self.slots.push(Some(node));
                (self.slots.len() - 1) as u32
            }
        };
        self.push_front(slot);
        slot
    }
}

impl Store {
    /// An empty table with these bounds.
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            inner: Mutex::new(Inner {
                slots: Vec::new(),
                free: Vec::new(),
                head: NIL,
                tail: NIL,
                by_key: HashMap::new(),
                by_id: HashMap::new(),
                expiry: BinaryHeap::new(),
                bytes: 0,
                len: 0,
            }),
            bounds,
        }
    }

    /// Entries and bytes held.
    pub(crate) fn usage(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (inner.len, inner.bytes)
    }

    /// Inserts `entry` (replacing any entry with the same exact key), then evicts least
    /// recently used entries until the bounds hold. The new entry itself is never evicted.
    pub(crate) fn insert(&self, entry: Entry) -> Vec<Removed> {
        let mut removed = Vec::new();
        let mut inner = self.inner.lock();
        if let Some(&old) = inner.by_key.get(&entry.key) {
            removed.extend(inner.remove_slot(old, Removal::Replaced));
        }
        let (key, id, expires, bytes) = (entry.key, entry.id, entry.expires_ms, entry.bytes);
        let slot = inner.insert_slot(entry);
        inner.by_key.insert(key, slot);
        inner.by_id.insert(id, slot);
        inner.expiry.push(Reverse((expires, id)));
        inner.bytes += bytes as u64;
        inner.len += 1;
        while inner.len > self.bounds.max_entries || inner.bytes > self.bounds.max_bytes {
            let victim = inner.tail;
            if victim == slot || victim == NIL {
                break;
            }
            removed.extend(inner.remove_slot(victim, Removal::Evicted));
        }
        // Keep the lazy heap from growing without bound under replacements and evictions.
        if inner.expiry.len() > 2 * inner.len + 1024 {
            let Inner { expiry, by_id, .. } = &mut *inner;
            let live: Vec<Reverse<(u64, u64)>> = std::mem::take(expiry)
                .into_iter()
                .filter(|Reverse((_, id))| by_id.contains_key(id))
                .collect();
            *expiry = live.into();
        }
        removed
    }

    /// The entry under an exact key, if live: `f` judges it and returns `Some` to take it,
    /// which makes it most recent. An expired entry is removed and reported.
    pub(crate) fn get_by_key<T>(
        &self,
        key: &ExactKey,
        now_ms: u64,
        f: impl FnOnce(&Entry) -> Option<T>,
    ) -> Probe<Option<T>> {
        let mut inner = self.inner.lock();
        let Some(&slot) = inner.by_key.get(key) else {
            return Probe::Missing;
        };
        Self::probe_slot(&mut inner, slot, now_ms, f)
    }

    /// The entry with local `id`, if live: `f` judges it (scope, guard) and returns `Some` to
    /// take it, which makes it most recent. An expired entry is removed and reported.
    pub(crate) fn get_by_id<T>(
        &self,
        id: u64,
        now_ms: u64,
        f: impl FnOnce(&Entry) -> Option<T>,
    ) -> Probe<Option<T>> {
        let mut inner = self.inner.lock();
        let Some(&slot) = inner.by_id.get(&id) else {
            return Probe::Missing;
        };
        Self::probe_slot(&mut inner, slot, now_ms, f)
    }

    fn probe_slot<T>(
        inner: &mut Inner,
        slot: u32,
        now_ms: u64,
        f: impl FnOnce(&Entry) -> Option<T>,
    ) -> Probe<Option<T>> {
        let Some(node) = inner.node(slot) else {
            return Probe::Missing;
        };
        if node.entry.expires_ms <= now_ms {
            return match inner.remove_slot(slot, Removal::Expired) {
                Some(removed) => Probe::Expired(removed),
                None => Probe::Missing,
            };
        }
        let taken = f(&node.entry);
        if taken.is_some() {
            inner.touch(slot);
        }
        Probe::Found(taken)
    }

    /// Whether the table holds an entry under `key` created at or after `created_ms` (a copy
    /// arriving from the shared tier or a snapshot is then skipped: it is the same or older).
    pub(crate) fn has_same_or_newer(&self, key: &ExactKey, created_ms: u64) -> bool {
        let inner = self.inner.lock();
        inner
            .by_key
            .get(key)
            .and_then(|&slot| inner.node(slot))
            .is_some_and(|n| n.entry.created_ms >= created_ms)
    }

    /// Removes every entry past its TTL.
    pub(crate) fn remove_expired(&self, now_ms: u64) -> Vec<Removed> {
        let mut removed = Vec::new();
        let mut inner = self.inner.lock();
        while let Some(&Reverse((expires, id))) = inner.expiry.peek() {
            if expires > now_ms {
                break;
            }
            inner.expiry.pop();
            let Some(&slot) = inner.by_id.get(&id) else {
                continue;
            };
            if inner
                .node(slot)
                .is_some_and(|n| n.entry.expires_ms <= now_ms)
            {
                removed.extend(inner.remove_slot(slot, Removal::Expired));
            }
        }
        removed
    }

    /// Removes every entry the filter matches.
    pub(crate) fn flush(&self, filter: &FlushFilter) -> Vec<Removed> {
        let mut inner = self.inner.lock();
        let slots: Vec<u32> = inner
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, node)| {
                let e = &node.as_ref()?.entry;
                filter
                    .matches(&e.scope, &e.model, e.tenant.as_deref())
                    .then_some(slot as u32)
            })
            .collect();
        slots
            .into_iter()
            .filter_map(|slot| inner.remove_slot(slot, Removal::Flushed))
            .collect()
    }

    /// The segment holding entry `id`'s vector, if the entry is live.
    pub(crate) fn segment_of(&self, id: u64) -> Option<u32> {
        let inner = self.inner.lock();
        inner
            .by_id
            .get(&id)
            .and_then(|&slot| inner.node(slot))
            .and_then(|n| n.entry.segment)
    }

    /// Records that entry `id`'s vector moved from segment `from` to `to`. False when the
    /// entry is gone or elsewhere (the copy in `to` is then dead).
    pub(crate) fn relocate(&self, id: u64, from: u32, to: u32) -> bool {
        let mut inner = self.inner.lock();
        let Some(&slot) = inner.by_id.get(&id) else {
            return false;
        };
        match inner.node_mut(slot) {
            Some(node) if node.entry.segment == Some(from) => {
                node.entry.segment = Some(to);
                true
            }
            _ => false,
        }
    }

    /// Copies of the live entries, least recently used first (for snapshots and republishing:
    /// loading them in this order rebuilds the same LRU order).
    pub(crate) fn entries(&self, now_ms: u64) -> Vec<Entry> {
        let inner = self.inner.lock();
        let mut out = Vec::with_capacity(inner.len);
        let mut slot = inner.tail;
        while let Some(node) = inner.node(slot) {
            if node.entry.expires_ms > now_ms {
                out.push(node.entry.clone());
            }
            slot = node.prev;
        }
        out
    }

    /// Ids from most to least recently used (tests of LRU order).
    #[cfg(test)]
    pub(crate) fn lru_ids(&self) -> Vec<u64> {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        let mut slot = inner.head;
        while let Some(node) = inner.node(slot) {
            out.push(node.entry.id);
            slot = node.next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::scope::Digest;

    fn entry(id: u64, bytes: usize, expires_ms: u64) -> Entry {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&id.to_le_bytes());
        Entry {
            id,
            key: Digest(key),
            scope: Digest([1; 16]),
            model: Arc::from("m"),
            tenant: None,
            category: None,
            created_ms: 0,
            expires_ms,
            guard: GuardFeatures::default(),
            answer: Arc::new(CachedAnswer {
                content: "a".into(),
                reasoning_content: None,
                upstream_model: None,
                usage: None,
            }),
            bytes,
            segment: Some(0),
        }
    }

    fn store(max_entries: usize, max_bytes: u64) -> Store {
        Store::new(Bounds {
            max_entries,
            max_bytes,
        })
    }

    #[test]
    fn lru_order_follows_use_and_evicts_the_tail() {
        let s = store(3, u64::MAX);
        for id in 1..=3 {
            assert!(s.insert(entry(id, 10, 100)).is_empty());
        }
        assert_eq!(s.lru_ids(), vec![3, 2, 1]);
        // Using 1 makes it most recent; 2 is now the least recent and goes first.
        assert!(matches!(
            s.get_by_id(1, 0, |_| Some(())),
            Probe::Found(Some(()))
        ));
        assert_eq!(s.lru_ids(), vec![1, 3, 2]);
        let removed = s.insert(entry(4, 10, 100));
        assert_eq!(
            removed,
            vec![Removed {
                id: 2,
                segment: Some(0),
                why: Removal::Evicted
            }]
        );
        assert_eq!(s.lru_ids(), vec![4, 1, 3]);
        // A probe that declines the entry (other scope, guard) does not refresh it.
        assert!(matches!(
            s.get_by_id(3, 0, |_| None::<()>),
            Probe::Found(None)
        ));
        assert_eq!(s.insert(entry(5, 10, 100))[0].id, 3);
        assert_eq!(s.usage(), (3, 30));
    }

    #[test]
    fn byte_bound_evicts_until_it_holds() {
        let s = store(100, 100);
        s.insert(entry(1, 40, 100));
        s.insert(entry(2, 40, 100));
        let removed = s.insert(entry(3, 70, 100));
        assert_eq!(removed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(s.usage(), (1, 70));
    }

    #[test]
    fn expired_entries_are_never_returned_and_are_swept() {
        let s = store(10, u64::MAX);
        s.insert(entry(1, 1, 50));
        s.insert(entry(2, 1, 150));
        let key1 = entry(1, 1, 50).key;
        assert!(matches!(
            s.get_by_key(&key1, 49, |e| Some(e.id)),
            Probe::Found(Some(1))
        ));
        assert!(matches!(
            s.get_by_key(&key1, 50, |e| Some(e.id)),
            Probe::Expired(Removed { id: 1, .. })
        ));
        assert!(matches!(
            s.get_by_key(&key1, 51, |e| Some(e.id)),
            Probe::Missing
        ));
        assert!(s.remove_expired(149).is_empty());
        assert_eq!(
            s.remove_expired(150)
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(s.usage(), (0, 0));
    }

    #[test]
    fn same_key_replaces_and_relocation_tracks_segments() {
        let s = store(10, u64::MAX);
        s.insert(entry(1, 5, 100));
        let mut newer = entry(9, 7, 100);
        newer.key = entry(1, 0, 0).key;
        let removed = s.insert(newer);
        assert_eq!(
            removed,
            vec![Removed {
                id: 1,
                segment: Some(0),
                why: Removal::Replaced
            }]
        );
        assert_eq!(s.usage(), (1, 7));
        assert!(s.relocate(9, 0, 3));
        assert_eq!(s.segment_of(9), Some(3));
        assert!(!s.relocate(9, 0, 4), "not in segment 0 any more");
        assert!(!s.relocate(1, 0, 4), "gone");
    }

    #[test]
    fn flush_by_filter() {
        let s = store(10, u64::MAX);
        s.insert(entry(1, 1, 100));
        let mut other = entry(2, 1, 100);
        other.tenant = Some(Arc::from("t"));
        s.insert(other);
        let removed = s.flush(&FlushFilter {
            tenant: Some("t".into()),
            ..FlushFilter::default()
        });
        assert_eq!(
            removed.iter().map(|r| (r.id, r.why)).collect::<Vec<_>>(),
            vec![(2, Removal::Flushed)]
        );
        assert_eq!(s.flush(&FlushFilter::all()).len(), 1);
        assert_eq!(s.usage(), (0, 0));
    }
}

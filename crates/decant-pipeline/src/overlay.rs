//! The open batch's state changes ([`Overlay`]): store key → the key's new TOAST entry, or a
//! delete, until the batch commits and they are staged into the store.
//!
//! A batch holds one change per key it touched: hundreds of thousands between Iceberg commits.
//! As a map of owned keys and entries that was two allocations, their slack and a bucket per
//! key. Here keys and entries are copied into one arena and the table holds only slot numbers
//! (with the overlay released once staged and the Iceberg sink's smaller staged rows, a
//! 300k-change Iceberg commit peaked 40 MiB lower in the throughput harness). A key changed
//! twice in one batch leaves its older entry behind in the arena until the batch ends; the
//! arena is bounded by the batch.

use ahash::RandomState;
use hashbrown::HashTable;

/// Where a key and its latest entry are in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The key's hash, kept so that the table's growth rehashes without reading the arena.
    hash: u64,
    key_at: usize,
    key_len: usize,
    entry_at: usize,
    /// `None`: the key is deleted.
    entry_len: Option<usize>,
}

impl Slot {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.key_at..self.key_at + self.key_len]
    }

    fn entry<'a>(&self, arena: &'a [u8]) -> Option<&'a [u8]> {
        self.entry_len
            .map(|len| &arena[self.entry_at..self.entry_at + len])
    }
}

/// Changes of the open batch; see the module documentation. aHash: one lookup and one insert
/// per change, and SipHash showed in profiles.
#[derive(Default)]
pub struct Overlay {
    arena: Vec<u8>,
    slots: Vec<Slot>,
    index: HashTable<usize>,
    hasher: RandomState,
}

impl Overlay {
    /// An overlay with room for `keys` changed keys and `bytes` of keys and entries (an
    /// earlier batch's [`Overlay::size`]).
    pub fn with_capacity((keys, bytes): (usize, usize)) -> Self {
        Overlay {
            arena: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(keys),
            index: HashTable::with_capacity(keys),
            hasher: RandomState::new(),
        }
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    fn find_hashed(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slots, arena) = (&self.slots, &self.arena);
        self.index
            .find(hash, |&i| {
                slots[i].hash == hash && slots[i].key(arena) == key
            })
            .copied()
    }

    /// The batch's change of `key`: `Some(None)` is a delete, `None` no change.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.find(key).map(|i| self.slots[i].entry(&self.arena))
    }

    /// Records `key`'s new entry (`None`: deleted), replacing the batch's earlier change.
    pub fn insert(&mut self, key: &[u8], entry: Option<&[u8]>) {
        let hash = self.hasher.hash_one(key);
        let entry_at = self.arena.len();
        let entry_len = entry.map(|e| {
            self.arena.extend_from_slice(e);
            e.len()
        });
        if let Some(i) = self.find_hashed(hash, key) {
            let s = &mut self.slots[i];
            s.entry_at = entry_at;
            s.entry_len = entry_len;
            return;
        }
        let key_at = self.arena.len();
        self.arena.extend_from_slice(key);
        self.slots.push(Slot {
            hash,
            key_at,
            key_len: key.len(),
            entry_at,
            entry_len,
        });
        let slots = &self.slots;
        self.index
            .insert_unique(hash, slots.len() - 1, |&i| slots[i].hash);
    }

    /// Every changed key with its latest entry, in the order the keys first changed.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.slots
            .iter()
            .map(|s| (s.key(&self.arena), s.entry(&self.arena)))
    }

    /// (changed keys, arena bytes).
    pub fn size(&self) -> (usize, usize) {
        (self.slots.len(), self.arena.len())
    }

    /// Memory the overlay holds: the arena's bytes, a slot per key and the table's buckets.
    /// What the batch bound (`state.batch_max_mib`) is compared with.
    pub fn held_bytes(&self) -> usize {
        self.arena.len()
            + self.slots.len() * std::mem::size_of::<Slot>()
            + self.index.capacity() * (std::mem::size_of::<usize>() + 1)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_change_of_each_key_wins() {
        let mut o = Overlay::default();
        assert!(o.is_empty());
        o.insert(b"t\0{\"id\":1}", Some(b"one"));
        o.insert(b"t\0{\"id\":2}", Some(b"two"));
        o.insert(b"t\0{\"id\":1}", None);
        o.insert(b"t\0{\"id\":2}", Some(b"two again"));
        o.insert(b"t\0{\"id\":3}", Some(b""));
        assert_eq!(o.len(), 3);
        assert_eq!(o.get(b"t\0{\"id\":1}"), Some(None));
        assert_eq!(o.get(b"t\0{\"id\":2}"), Some(Some(&b"two again"[..])));
        assert_eq!(o.get(b"t\0{\"id\":3}"), Some(Some(&b""[..])));
        assert_eq!(o.get(b"t\0{\"id\":4}"), None);
        let all: Vec<_> = o.iter().collect();
        assert_eq!(
            all,
            vec![
                (&b"t\0{\"id\":1}"[..], None),
                (&b"t\0{\"id\":2}"[..], Some(&b"two again"[..])),
                (&b"t\0{\"id\":3}"[..], Some(&b""[..])),
            ]
        );
    }

    /// Many keys: the table grows and rehashes from the arena.
    #[test]
    fn keys_survive_growth() {
        let mut o = Overlay::default();
        for i in 0..50_000u32 {
            o.insert(format!("k{i}").as_bytes(), Some(&i.to_le_bytes()));
        }
        for i in (0..50_000u32).step_by(7) {
            o.insert(format!("k{i}").as_bytes(), None);
        }
        assert_eq!(o.len(), 50_000);
        for i in 0..50_000u32 {
            let want = (i % 7 != 0).then(|| i.to_le_bytes().to_vec());
            assert_eq!(
                o.get(format!("k{i}").as_bytes())
                    .map(|e| e.map(<[u8]>::to_vec)),
                Some(want),
                "key {i}"
            );
        }
    }
}

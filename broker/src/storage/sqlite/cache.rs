//! A small read cache of sealed entries (mounts, roles, connection configs,
//! CA bundles): every credential request reads a role and a config, and a
//! revocation reads the config again, each a hand-off to one of SQLite's
//! connection threads that costs more than the row itself.
//!
//! One broker process owns an SQLite file (see [`super::lock`]), and every
//! write to it passes through the writer task, which drops the written key
//! from the cache after each commit attempt, before it answers: a caller
//! that gave up waiting (a dropped request) cannot leave the old value
//! behind, since the writer task itself is never cancelled. The cache holds
//! ciphertext only, exactly as stored; it never holds leases, and it is
//! bounded in keys and in bytes: when full it is emptied, and fills again
//! from what is read.
//!
//! A read that raced a write must not put the old value back: every write
//! moves a generation counter on, and a read caches its value only if no
//! write happened while it was reading.

use std::collections::HashMap;
use std::sync::Mutex;

/// The most keys kept; past that the cache starts over.
const CAPACITY: usize = 4096;
/// The most value bytes kept (a CRL or a stored certificate can be large);
/// past that the cache starts over. A larger value is not cached at all.
const CAPACITY_BYTES: usize = 16 << 20;

/// Entries as read from storage: the value, or `None` for a missing key.
#[derive(Debug, Default)]
pub(super) struct EntryCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    values: HashMap<String, Option<Vec<u8>>>,
    /// The values' bytes, summed.
    bytes: usize,
    /// Moves on with every write.
    generation: u64,
}

/// What a read must show [`EntryCache::fill`] to cache its value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

impl EntryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing here can be left half-done by a panic: a map and a counter.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value of `key` (`Some(None)`: cached as missing), or the
    /// ticket a read from storage must show to cache what it finds.
    pub(super) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Ticket> {
        let inner = self.lock();
        match inner.values.get(key) {
            Some(value) => Ok(value.clone()),
            None => Err(Ticket(inner.generation)),
        }
    }

    /// Caches what a read found, unless a write came in since its ticket.
    pub(super) fn fill(&self, key: &str, value: Option<Vec<u8>>, ticket: Ticket) {
        let size = value.as_ref().map_or(0, Vec::len);
        let mut inner = self.lock();
        if inner.generation != ticket.0 || size > CAPACITY_BYTES {
            return;
        }
        if inner.values.len() >= CAPACITY || inner.bytes + size > CAPACITY_BYTES {
            inner.values.clear();
            inner.bytes = 0;
        }
        if let Some(Some(old)) = inner.values.insert(key.to_owned(), value) {
            inner.bytes = inner.bytes.saturating_sub(old.len());
        }
        inner.bytes += size;
    }

    /// Forgets `key` after a write to it, whatever the write's outcome.
    pub(super) fn invalidate(&self, key: &str) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        if let Some(Some(old)) = inner.values.remove(key) {
            inner.bytes = inner.bytes.saturating_sub(old.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let cache = EntryCache::default();
        let Err(ticket) = cache.get("k") else {
            panic!("an empty cache answered")
        };
        // A write lands while the read is in storage.
        cache.invalidate("k");
        cache.fill("k", Some(b"old".to_vec()), ticket);
        assert!(cache.get("k").is_err(), "the old value was cached");

        let Err(ticket) = cache.get("k") else {
            panic!("nothing should be cached")
        };
        cache.fill("k", Some(b"new".to_vec()), ticket);
        assert_eq!(cache.get("k").ok(), Some(Some(b"new".to_vec())));
        cache.invalidate("k");
        assert!(cache.get("k").is_err());
    }

    #[test]
    fn it_stays_bounded() {
        let cache = EntryCache::default();
        for i in 0..CAPACITY * 3 {
            let key = format!("k{i}");
            let Err(ticket) = cache.get(&key) else {
                panic!("{key} was cached before it was read")
            };
            cache.fill(&key, None, ticket);
        }
        assert!(cache.lock().values.len() <= CAPACITY);

        let big = vec![0u8; CAPACITY_BYTES / 3];
        for i in 0..10 {
            let key = format!("big{i}");
            let Err(ticket) = cache.get(&key) else {
                panic!("{key} was cached before it was read")
            };
            cache.fill(&key, Some(big.clone()), ticket);
            let inner = cache.lock();
            let held: usize = inner.values.values().flatten().map(Vec::len).sum();
            assert_eq!(held, inner.bytes);
            assert!(inner.bytes <= CAPACITY_BYTES);
        }
        let Err(ticket) = cache.get("huge") else {
            panic!("huge was cached before it was read")
        };
        cache.fill("huge", Some(vec![0u8; CAPACITY_BYTES + 1]), ticket);
        assert!(
            cache.get("huge").is_err(),
            "a value past the bound was kept"
        );
    }
}

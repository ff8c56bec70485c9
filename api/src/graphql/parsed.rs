//! Parsed documents by query text, and automatic persisted queries.
//!
//! A desk app or a widget sends the same few query texts over and over. Each
//! is parsed once here and handed to the schema as a copy, so a request skips
//! the parser (about a tenth of the server's work for the agent inbox).
//! Validation, the depth and complexity limits and the visibility policy still
//! run on every request: the cache only saves turning text into a syntax tree,
//! which depends on nothing but the text.
//!
//! Websockets use it too (`websocket.rs`).
//!
//! A text is kept parsed from its second sighting on: a text seen once (say a
//! query with an id written into it instead of passed as a variable) costs
//! only remembering that it was seen, not a copy of its document.
//!
//! Bounded: at most [`ParsedQueries::CAPACITY`] texts of at most
//! [`ParsedQueries::MAX_QUERY_BYTES`] each, the least recently used going
//! first (the `lru` crate): a client sending ever-new texts can only bring
//! the server back to parsing every request, never grow it.
//!
//! Automatic persisted queries (Apollo's protocol, async-graphql's
//! extension, its `lru` storage): a request with
//! `extensions.persistedQuery.sha256Hash` and its query text stores the
//! parse under the hash once the hash is checked; the same hash alone later
//! runs it, and an unknown hash answers `PersistedQueryNotFound`. The text
//! was admitted by `prescan` when it came (the limits do not change while
//! the server runs), so a hash stands only for a text that passed them.
//! At most [`PERSISTED_CAPACITY`] documents, least recently used first out,
//! of texts of at most [`ParsedQueries::MAX_QUERY_BYTES`]: a longer text
//! runs, but is not persisted ([`bound_persisted`]), so its hash alone stays
//! unknown and the client keeps sending the text.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_graphql::extensions::apollo_persisted_queries::LruCacheStorage;
use async_graphql::parser::parse_query;
use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// The documents of automatic persisted queries, by their hash.
#[derive(Clone)]
pub(crate) struct PersistedQueries(pub LruCacheStorage);

impl std::fmt::Debug for PersistedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersistedQueries")
    }
}

/// How many persisted documents the server keeps.
pub(crate) const PERSISTED_CAPACITY: usize = 256;

/// Runs a text too long to persist as a plain request: drops its
/// `persistedQuery` so the extension neither stores nor checks it.
pub(crate) fn bound_persisted(request: &mut async_graphql::Request) {
    if request.query.len() > ParsedQueries::MAX_QUERY_BYTES {
        request.extensions.remove("persistedQuery");
    }
}

/// An empty store of persisted queries.
pub(crate) fn persisted_queries() -> PersistedQueries {
    PersistedQueries(LruCacheStorage::new(PERSISTED_CAPACITY))
}

/// One store per audience: a customer must not learn, by asking for a hash
/// alone, which texts staff send, nor push staff entries out.
#[derive(Clone, Debug)]
pub(crate) struct PersistedStores {
    pub staff: PersistedQueries,
    pub customer: PersistedQueries,
}

impl PersistedStores {
    pub(crate) fn new() -> PersistedStores {
        PersistedStores {
            staff: persisted_queries(),
            customer: persisted_queries(),
        }
    }
}

impl Default for PersistedStores {
    fn default() -> Self {
        PersistedStores::new()
    }
}

pub(crate) struct ParsedQueries {
    /// `None`: seen once, not kept parsed yet.
    documents: Mutex<LruCache<String, Option<ExecutableDocument>>>,
}

impl Default for ParsedQueries {
    fn default() -> Self {
        ParsedQueries {
            documents: Mutex::new(LruCache::new(Self::capacity())),
        }
    }
}

impl ParsedQueries {
    pub(crate) const CAPACITY: usize = 256;
    pub(crate) const MAX_QUERY_BYTES: usize = 8 * 1024;

    const fn capacity() -> NonZeroUsize {
        match NonZeroUsize::new(Self::CAPACITY) {
            Some(n) => n,
            None => NonZeroUsize::MIN,
        }
    }

    /// The parsed document of `query`, from the cache or parsed now (and
    /// remembered if small enough). `None` when it does not parse: the schema
    /// then parses it itself and answers with its usual error.
    pub(crate) fn document(&self, query: &str) -> Option<ExecutableDocument> {
        let seen = match self.lock().get(query) {
            Some(Some(document)) => return Some(document.clone()),
            Some(None) => true,
            None => false,
        };
        let document = parse_query(query).ok()?;
        if query.len() <= Self::MAX_QUERY_BYTES {
            self.lock()
                .put(query.to_owned(), seen.then(|| document.clone()));
        }
        Some(document)
    }

    /// Sets `request`'s parsed document when its query parses.
    pub(crate) fn prepare(&self, request: &mut async_graphql::Request) {
        if let Some(document) = self.document(&request.query) {
            request.set_parsed_query(document);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Option<ExecutableDocument>>> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters: every entry is a whole parse of its key.
        self.documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INBOX: &str = "{ conversations(first: 50) { edges { node { id status } } } }";

    fn same(a: &ExecutableDocument, b: &ExecutableDocument) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    impl ParsedQueries {
        /// How many texts it holds, parsed or only seen.
        fn len(&self) -> usize {
            self.lock().len()
        }

        /// How many texts it holds parsed.
        fn parsed(&self) -> usize {
            self.lock().iter().filter(|(_, d)| d.is_some()).count()
        }

        fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    #[test]
    fn a_cached_document_is_the_parse_of_its_text() {
        let cache = ParsedQueries::default();
        let fresh = parse_query(INBOX).expect("parses");
        for sighting in 1..=3 {
            let document = cache.document(INBOX).expect("parses");
            assert!(same(&document, &fresh), "sighting {sighting}");
            assert_eq!(cache.len(), 1);
            // Kept parsed from the second sighting on.
            assert_eq!(cache.parsed(), usize::from(sighting > 1));
        }

        let other = "query Mine { me { id } }";
        for _ in 0..2 {
            let doc = cache.document(other).expect("parses");
            assert!(same(&doc, &parse_query(other).expect("parses")));
            assert!(!same(&doc, &fresh));
        }
        assert_eq!((cache.len(), cache.parsed()), (2, 2));
    }

    #[test]
    fn the_least_recently_used_text_goes_first() {
        let cache = ParsedQueries::default();
        let kept = "{ me { id } }";
        cache.document(kept);
        cache.document(kept);
        for i in 0..ParsedQueries::CAPACITY * 2 {
            cache.document(&format!("{{ a{i} }}"));
            // Asked for all along, so never the least recently used.
            cache.document(kept);
        }
        assert_eq!(cache.len(), ParsedQueries::CAPACITY);
        assert!(matches!(cache.lock().peek(kept), Some(Some(_))));
        assert!(cache.lock().peek("{ a0 }").is_none());
    }

    #[test]
    fn a_text_that_does_not_parse_is_neither_answered_nor_kept() {
        let cache = ParsedQueries::default();
        assert!(cache.document("{ conversations(first: ").is_none());
        assert!(cache.document("").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_nor_big_texts() {
        let cache = ParsedQueries::default();
        for i in 0..ParsedQueries::CAPACITY * 2 + 7 {
            let query = format!("{{ a{i} }}");
            assert!(cache.document(&query).is_some());
            assert!(cache.document(&query).is_some());
            assert!(cache.len() <= ParsedQueries::CAPACITY);
        }
        assert!(cache.parsed() > 0);
        let cache = ParsedQueries::default();
        let big = format!(
            "{{ {} }}",
            "a ".repeat(ParsedQueries::MAX_QUERY_BYTES / 2 + 1)
        );
        assert!(big.len() > ParsedQueries::MAX_QUERY_BYTES);
        assert!(cache.document(&big).is_some());
        assert!(cache.document(&big).is_some());
        assert!(cache.is_empty());
    }
}

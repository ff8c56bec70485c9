//! The server's configuration, as the `serve` subcommand's flags and
//! environment variables fill it (see `cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backchannel_domain::values::WebOrigin;

use crate::ratelimit::RateLimits;
use crate::transport::TransportLimits;

/// Bounds on what one request may ask (SPEC section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body; more is `413 PAYLOAD_TOO_LARGE`.
    pub max_body_bytes: usize,
    /// Deepest selection set; more is `QUERY_TOO_COMPLEX`. The default, 15,
    /// is what graphql-js' introspection query needs (its `TypeRef` nests
    /// `ofType` nine times); the schemas' own types nest 8 deep at most, so
    /// only introspection's cycles (`fields { type { fields … } } }`) can
    /// use the rest.
    pub max_depth: usize,
    /// Highest complexity (one per field, times page sizes where declared).
    pub max_complexity: usize,
    /// Largest `first` of a page; more is `VALIDATION`. SPEC: at most 100.
    pub max_page_size: usize,
    /// Deepest nesting of brackets in a query (selections, lists, input
    /// objects, arguments), also once its fragments are spread, and of the
    /// variables; more is `QUERY_TOO_COMPLEX` before the query is parsed
    /// (`graphql::prescan`).
    pub max_nesting: usize,
    /// Most fragment definitions in one query.
    pub max_fragments: usize,
    /// Most fragment spreads in one query.
    pub max_fragment_spreads: usize,
    /// Largest query once every fragment spread is replaced by its fragment,
    /// in bytes of tokens (what validation walks).
    pub max_fragment_expansion: usize,
    /// How long one request may execute; then it is stopped and answered
    /// with `TIMEOUT`.
    pub deadline: Duration,
    /// How long a request with `X-Min-Position` (or a websocket with
    /// `minPosition`) waits for this node's read models to reach that
    /// position; then it is answered `NOT_CAUGHT_UP` with a retry delay.
    pub min_position_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_depth: 15,
            max_complexity: 2000,
            max_page_size: MAX_PAGE_SIZE,
            max_nesting: 32,
            max_fragments: 100,
            max_fragment_spreads: 500,
            max_fragment_expansion: 256 * 1024,
            deadline: Duration::from_secs(10),
            min_position_wait: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `store/` (the event log, unless `store` names another), `secret`
    /// and, on a shared log, this node's `checkpoint/`.
    pub data_dir: PathBuf,
    /// The event log (`--store`): `None` is the sled store in
    /// `<data_dir>/store`; a `postgres://` URL is a log several nodes share.
    pub store: Option<backchannel_eventlog::StoreSpec>,
    /// `/readyz` answers 503 once the read models trail the log's head (as
    /// far as this node knows it) by more than this many events.
    pub ready_max_lag: u64,
    pub addr: SocketAddr,
    /// The token signing secret; `None`: generated once into `<data_dir>/secret`.
    pub secret: Option<String>,
    pub graphiql: bool,
    pub introspection: bool,
    pub limits: Limits,
    /// Timeouts and caps of connections and websockets.
    pub transport: TransportLimits,
    pub rate_limits: RateLimits,
    pub token_lifetime: Duration,
    /// Load the demo company (fixtures/demo/demo.json) at start.
    pub demo: bool,
    /// Serve `GET /metrics` (open, on the API's port; see `metrics`).
    pub metrics: bool,
    /// Browser origins the staff desk may call `/graphql` from (CORS).
    pub staff_origins: Vec<WebOrigin>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (rate limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The read audit (SPEC section 12): on by default.
    pub read_audit: crate::read_audit::ReadAuditConfig,
}

impl Config {
    /// Everything at its default, serving on `addr` with data in `data_dir`.
    pub fn new(data_dir: PathBuf, addr: SocketAddr) -> Self {
        Config {
            data_dir,
            store: None,
            ready_max_lag: DEFAULT_READY_MAX_LAG,
            addr,
            secret: None,
            graphiql: true,
            introspection: true,
            limits: Limits::default(),
            transport: TransportLimits::default(),
            rate_limits: RateLimits::default(),
            token_lifetime: Duration::from_secs(30 * 24 * 3600),
            demo: false,
            metrics: true,
            staff_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            read_audit: crate::read_audit::ReadAuditConfig::default(),
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The log this server opens: `--store` if given, else the sled store
    /// under the data dir.
    pub fn store(&self) -> backchannel_eventlog::StoreSpec {
        self.store
            .clone()
            .unwrap_or_else(|| backchannel_eventlog::StoreSpec::sled(self.store_dir()))
    }

    /// Where this server keeps its read models' checkpoint: the store's own
    /// directory for sled, else `<data-dir>/checkpoint` (a node's own, when
    /// several share one log).
    pub fn checkpoint_dir(&self) -> backchannel_projections::checkpoint::CheckpointDir {
        backchannel_projections::checkpoint::CheckpointDir::of_store(&self.store()).unwrap_or_else(
            || backchannel_projections::checkpoint::CheckpointDir(self.data_dir.join("checkpoint")),
        )
    }
}

/// The default of [`Config::ready_max_lag`]: a node this many events behind
/// what it knows of the log's head is taken out of rotation.
pub(crate) const DEFAULT_READY_MAX_LAG: u64 = 1000;

/// The largest page SPEC allows (section 8): the default of
/// [`Limits::max_page_size`], and the most items a page counts for in a
/// query's complexity (the estimate cannot read the configured limit).
pub(crate) const MAX_PAGE_SIZE: usize = 100;

/// The size of a page of conversations, notifications or the access log when
/// the request gives none. (A conversation's timeline and messages default to
/// the page-size limit instead: a chat opens on all it can show.)
pub(crate) const DEFAULT_PAGE_SIZE: usize = 20;

/// How many items a page of `requested` (`first` or `last`; `default` when
/// neither is given) counts for in a query's complexity: at least one, at
/// most [`MAX_PAGE_SIZE`]. Used in the `complexity` of every list field.
pub(crate) fn page_items(requested: Option<i32>, default: usize) -> usize {
    requested
        .map_or(default, |n| usize::try_from(n).unwrap_or(0))
        .clamp(1, MAX_PAGE_SIZE)
}

/// The complexity every mutation field counts for: with the default limit of
/// 2,000, one request carries at most 20 mutations (a page of 100
/// conversations with a dozen fields each still fits).
pub(crate) const MUTATION_COST: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_counts_for_its_size_between_one_and_the_largest_page() {
        assert_eq!(page_items(None, DEFAULT_PAGE_SIZE), DEFAULT_PAGE_SIZE);
        assert_eq!(page_items(None, MAX_PAGE_SIZE), MAX_PAGE_SIZE);
        assert_eq!(page_items(Some(7), DEFAULT_PAGE_SIZE), 7);
        assert_eq!(page_items(Some(0), DEFAULT_PAGE_SIZE), 1);
        assert_eq!(page_items(Some(-5), DEFAULT_PAGE_SIZE), 1);
        assert_eq!(page_items(Some(i32::MAX), DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE);
    }
}

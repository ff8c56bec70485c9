//! Rate limits (SPEC section 8), with `governor`'s keyed GCRA limiters:
//!
//! - anonymous widget calls (`startConversation`, which appends to a log kept
//!   forever) per widget key and client address;
//! - staff mutations per staff member;
//! - customer mutations (`sendMessage`, `closeConversation`) per conversation,
//!   so a customer token minted anonymously cannot fill the log either;
//! - token failures (a bad or expired bearer token) per client address.
//!
//! A refusal is `RATE_LIMITED` with `extensions.retryAfterMs`; refused before
//! GraphQL runs (token failures) it also carries the HTTP `Retry-After`
//! header. A client address is the TCP peer's, unless the peer is a
//! `--trusted-proxy`: then it is the right-most `X-Forwarded-For` address
//! that is not a trusted proxy ([`TrustedProxies`]); IPv6 peers are keyed by their /64, the block one host is usually
//! given, so rotating addresses inside it gains nothing.
//!
//! Memory: each limiter forgets the keys whose state is back to fresh
//! (`retain_recent`) once it has been asked as many times as it held keys at
//! its last sweep (at least [`SWEEP_EVERY`]): amortised O(1) a check, and a
//! map no larger than the keys active within one refill of their bucket.
//!
//! Decision record: `docs/decisions/rate-limits.md`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use backchannel_domain::ids::{ConversationId, StaffId, WidgetKey};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// How often a limiter may be asked, per key: `cells` per `period`, with
/// bursts of up to `burst`. Written `10/m:20` (10 a minute, bursts of 20),
/// `20/s:100`, `500/h`; `off` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub cells: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Rate {
    pub const fn new(cells: u32, period: Duration, burst: u32) -> Rate {
        Rate {
            cells,
            period,
            burst,
        }
    }

    /// No limit.
    pub const OFF: Rate = Rate::new(0, Duration::from_secs(1), 0);

    pub fn is_off(&self) -> bool {
        self.cells == 0
    }

    fn quota(&self) -> Option<Quota> {
        let cells = NonZeroU32::new(self.cells)?;
        let burst = NonZeroU32::new(self.burst.max(1))?;
        let every = self.period.checked_div(cells.get())?;
        Quota::with_period(every).map(|q| q.allow_burst(burst))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let unit = match self.period.as_secs() {
            3600 => "h",
            60 => "m",
            _ => "s",
        };
        write!(f, "{}/{unit}:{}", self.cells, self.burst)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        if s == "off" {
            return Ok(Rate::OFF);
        }
        let bad = || {
            format!(
                "'{s}' is not a rate: write e.g. 10/m:20 (10 a minute, bursts of 20), 20/s, or off"
            )
        };
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let (cells, unit) = rate.split_once('/').ok_or_else(bad)?;
        let cells: u32 = cells.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let burst = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| bad())?,
            None => cells,
        };
        if cells == 0 || burst == 0 {
            return Err(bad());
        }
        Ok(Rate::new(cells, period, burst))
    }
}

/// The configured rates (flags `--rate-*`, env `BACKCHANNEL_RATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `startConversation` per widget key and client address.
    pub widget_starts: Rate,
    /// Mutations per staff member.
    pub staff_mutations: Rate,
    /// Customer mutations per conversation.
    pub customer_mutations: Rate,
    /// Bad or expired bearer tokens per client address.
    pub token_failures: Rate,
}

impl RateLimits {
    /// No limits at all (for scripted tests and benchmarks).
    pub const UNLIMITED: RateLimits = RateLimits {
        widget_starts: Rate::OFF,
        staff_mutations: Rate::OFF,
        customer_mutations: Rate::OFF,
        token_failures: Rate::OFF,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        const SECOND: Duration = Duration::from_secs(1);
        const MINUTE: Duration = Duration::from_secs(60);
        RateLimits {
            // A visitor starts a chat or two; a shared office address a few
            // more. One address cannot add more than ~14,000 a day.
            widget_starts: Rate::new(10, MINUTE, 20),
            // A busy agent clicks a few times a second; an integration
            // replaying a backlog runs at 20 a second.
            staff_mutations: Rate::new(20, SECOND, 100),
            // A chatting customer writes a message every few seconds.
            customer_mutations: Rate::new(60, MINUTE, 30),
            // A desk app with an expired token retries; a guesser is slowed.
            token_failures: Rate::new(60, MINUTE, 30),
        }
    }
}

/// A refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole milliseconds, at least 1.
    pub fn millis(&self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Whole seconds, rounded up (the `Retry-After` header), at least 1.
    pub fn seconds(&self) -> u64 {
        self.millis().div_ceil(1000)
    }
}

/// The client's address as rate limits key it: an IPv4 address, or an IPv6
/// /64 (an IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddrKey(IpAddr);

impl From<IpAddr> for AddrKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    AddrKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// The TCP peer's address, in a request's data for resolvers. Without one
/// (a transport that does not give it) every such call shares one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

impl ClientAddr {
    pub(crate) const UNKNOWN: ClientAddr = ClientAddr(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

    pub(crate) fn key(&self) -> AddrKey {
        AddrKey::from(self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(ClientAddr::UNKNOWN);
        };
        Ok(match parts.extensions.get::<TrustedProxies>() {
            Some(trusted) => ClientAddr(trusted.client(peer.ip(), &parts.headers)),
            None => ClientAddr(peer.ip().to_canonical()),
        })
    }
}

/// `--trusted-proxy`: the address ranges whose `X-Forwarded-For` is believed
/// (a reverse proxy in front of the server). Empty: the header is ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(std::sync::Arc<[IpNet]>);

impl TrustedProxies {
    pub(crate) fn new(ranges: Vec<IpNet>) -> Self {
        TrustedProxies(ranges.into())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(&ip))
    }

    /// The client behind the TCP peer `peer`: the peer itself unless it is a
    /// trusted proxy; else, walking `X-Forwarded-For` from the right (the
    /// hop nearest the server), the first address that is not a trusted
    /// proxy. A malformed entry stops the walk at the last trusted hop, so
    /// a client cannot pass for another by writing the header itself.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|value| value.to_str().unwrap_or("").rsplit(','));
        for hop in hops {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = hop.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// A `--trusted-proxy` value: a CIDR range or one address.
pub(crate) fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a CIDR range (e.g. 10.0.0.0/8)"))
}

/// At least this many checks between two sweeps of a limiter's keys.
pub(crate) const SWEEP_EVERY: u64 = 1024;

/// One keyed limiter with its housekeeping; `None`: the rate is off.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    checks: AtomicU64,
    next_sweep: AtomicU64,
    /// Checks refused so far (for metrics).
    refused: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate) -> Self {
        Keyed {
            limiter: rate.quota().map(RateLimiter::dashmap),
            checks: AtomicU64::new(0),
            next_sweep: AtomicU64::new(SWEEP_EVERY),
            refused: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let outcome = limiter.check_key(key).map_err(|not_until| {
            RetryAfter(not_until.wait_time_from(DefaultClock::default().now()))
        });
        if outcome.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        let checks = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        let due = self.next_sweep.load(Ordering::Relaxed);
        // One caller wins the sweep; the others go on.
        if checks >= due
            && self
                .next_sweep
                .compare_exchange(due, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            let next = checks + SWEEP_EVERY.max(limiter.len() as u64);
            self.next_sweep.store(next, Ordering::Release);
        }
        outcome
    }

    fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// The server's limiters, shared by both schemas and the HTTP handlers.
pub(crate) struct Limiters {
    widget_starts: Keyed<(WidgetKey, AddrKey)>,
    staff_mutations: Keyed<StaffId>,
    customer_mutations: Keyed<ConversationId>,
    token_failures: Keyed<AddrKey>,
}

impl fmt::Debug for Limiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiters")
            .field("widget_starts", &self.widget_starts.len())
            .field("staff_mutations", &self.staff_mutations.len())
            .field("customer_mutations", &self.customer_mutations.len())
            .field("token_failures", &self.token_failures.len())
            .finish()
    }
}

impl Limiters {
    pub(crate) fn new(rates: &RateLimits) -> Limiters {
        Limiters {
            widget_starts: Keyed::new(rates.widget_starts),
            staff_mutations: Keyed::new(rates.staff_mutations),
            customer_mutations: Keyed::new(rates.customer_mutations),
            token_failures: Keyed::new(rates.token_failures),
        }
    }

    pub(crate) fn widget_start(
        &self,
        widget: WidgetKey,
        client: ClientAddr,
    ) -> Result<(), RetryAfter> {
        self.widget_starts.check(&(widget, client.key()))
    }

    pub(crate) fn staff_mutation(&self, staff: StaffId) -> Result<(), RetryAfter> {
        self.staff_mutations.check(&staff)
    }

    pub(crate) fn customer_mutation(&self, conversation: ConversationId) -> Result<(), RetryAfter> {
        self.customer_mutations.check(&conversation)
    }

    /// Counts a bad or expired token from `client`; `Err` once it has failed
    /// too often.
    pub(crate) fn token_failure(&self, client: ClientAddr) -> Result<(), RetryAfter> {
        self.token_failures.check(&client.key())
    }

    /// Refusals so far, by limit (for metrics).
    pub(crate) fn refusals(&self) -> [(&'static str, u64); 4] {
        let refused = |keyed: &AtomicU64| keyed.load(Ordering::Relaxed);
        [
            ("widget_starts", refused(&self.widget_starts.refused)),
            ("staff_mutations", refused(&self.staff_mutations.refused)),
            (
                "customer_mutations",
                refused(&self.customer_mutations.refused),
            ),
            ("token_failures", refused(&self.token_failures.refused)),
        ]
    }

    /// Keys held, all limiters together.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.widget_starts.len()
            + self.staff_mutations.len()
            + self.customer_mutations.len()
            + self.token_failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies() {
        let trusted = TrustedProxies::new(vec![
            parse_trusted_proxy("10.0.0.0/8").unwrap(),
            parse_trusted_proxy("::1").unwrap(),
        ]);
        let client = |peer: &str, forwarded: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            trusted.client(peer.parse().unwrap(), &headers).to_string()
        };
        // Not a proxy: the peer, whatever the header says.
        assert_eq!(client("192.0.2.1", &["198.51.100.1"]), "192.0.2.1");
        // A proxy: the right-most untrusted hop, across repeated headers.
        assert_eq!(
            client("10.1.1.1", &["198.51.100.1, 203.0.113.5"]),
            "203.0.113.5"
        );
        assert_eq!(
            client("::1", &["198.51.100.1", "203.0.113.5, 10.2.2.2"]),
            "203.0.113.5"
        );
        assert_eq!(client("::ffff:10.1.1.1", &["203.0.113.5"]), "203.0.113.5");
        // No header, or only proxies: the last proxy.
        assert_eq!(client("10.1.1.1", &[]), "10.1.1.1");
        assert_eq!(client("10.1.1.1", &["10.3.3.3"]), "10.3.3.3");
        // A malformed hop stops the walk at the last trusted one.
        assert_eq!(client("10.1.1.1", &["203.0.113.5, unknown"]), "10.1.1.1");
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxy("proxy.lan").is_err());
    }

    #[test]
    fn rates_parse_and_print() {
        let cases = [
            ("10/m:20", Rate::new(10, Duration::from_secs(60), 20)),
            ("20/s:100", Rate::new(20, Duration::from_secs(1), 100)),
            ("500/h", Rate::new(500, Duration::from_secs(3600), 500)),
            ("off", Rate::OFF),
        ];
        for (text, rate) in cases {
            assert_eq!(text.parse::<Rate>(), Ok(rate), "{text}");
            assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        }
        for bad in ["", "10", "10/d", "x/m", "0/m", "10/m:0", "10/m:x", "-1/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_rates_print_as_flags_take_them() {
        let defaults = RateLimits::default();
        for rate in [
            defaults.widget_starts,
            defaults.staff_mutations,
            defaults.customer_mutations,
            defaults.token_failures,
        ] {
            assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        }
    }

    #[test]
    fn a_key_is_refused_after_its_burst_with_a_retry_delay_and_others_are_not() {
        let rates = RateLimits {
            token_failures: Rate::new(1, Duration::from_secs(60), 3),
            ..RateLimits::default()
        };
        let limiters = Limiters::new(&rates);
        let a = ClientAddr("127.0.0.2".parse().unwrap());
        let b = ClientAddr("127.0.0.3".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limiters.token_failure(a), Ok(()));
        }
        let refused = limiters.token_failure(a).unwrap_err();
        assert!(refused.millis() > 0 && refused.millis() <= 60_000);
        assert!(refused.seconds() >= 1 && refused.seconds() <= 60);
        assert_eq!(limiters.token_failure(b), Ok(()));
    }

    #[test]
    fn an_ipv6_host_is_keyed_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let key = |s: &str| ClientAddr(s.parse().unwrap()).key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }

    #[test]
    fn an_off_rate_never_refuses_and_holds_nothing() {
        let rates = RateLimits {
            staff_mutations: Rate::OFF,
            ..RateLimits::default()
        };
        let limiters = Limiters::new(&rates);
        let staff = StaffId::new();
        for _ in 0..1000 {
            assert_eq!(limiters.staff_mutation(staff), Ok(()));
        }
        assert_eq!(limiters.keys(), 0);
    }

    #[test]
    fn stale_keys_are_swept_so_memory_stays_bounded() {
        // A fast-refilling rate: a key is fresh again 1 ms after its use.
        let rates = RateLimits {
            token_failures: Rate::new(1000, Duration::from_secs(1), 1),
            ..RateLimits::default()
        };
        let limiters = Limiters::new(&rates);
        let addr = |i: u32| ClientAddr(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        for i in 0..SWEEP_EVERY as u32 {
            let _ = limiters.token_failure(addr(i));
        }
        std::thread::sleep(Duration::from_millis(5));
        // Every key is fresh again: the next sweep drops them all but the
        // ones used since.
        for i in 0..(2 * SWEEP_EVERY) as u32 {
            let _ = limiters.token_failure(addr(1_000_000 + i % 8));
        }
        assert!(limiters.keys() <= 8 + SWEEP_EVERY as usize, "{limiters:?}");
        assert!(limiters.keys() < SWEEP_EVERY as usize, "{limiters:?}");
    }
}

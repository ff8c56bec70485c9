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

mod client;
mod rate;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use backchannel_domain::ids::{ConversationId, StaffId, WidgetKey};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};

use client::AddrKey;
pub(crate) use client::{ClientAddr, TrustedProxies, parse_trusted_proxy};
pub use rate::{Rate, RateLimits, RetryAfter};

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
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;

    /// The limiters of the default rates, but for what `set` changes.
    fn limiters_with(set: impl FnOnce(&mut RateLimits)) -> Limiters {
        let mut rates = RateLimits::default();
        set(&mut rates);
        Limiters::new(&rates)
    }

    #[test]
    fn a_key_is_refused_after_its_burst_with_a_retry_delay_and_others_are_not() {
        let limiters =
            limiters_with(|rates| rates.token_failures = Rate::new(1, Duration::from_secs(60), 3));
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
    fn an_off_rate_never_refuses_and_holds_nothing() {
        let limiters = limiters_with(|rates| rates.staff_mutations = Rate::OFF);
        let staff = StaffId::new();
        for _ in 0..1000 {
            assert_eq!(limiters.staff_mutation(staff), Ok(()));
        }
        assert_eq!(limiters.keys(), 0);
    }

    #[test]
    fn stale_keys_are_swept_so_memory_stays_bounded() {
        // A fast-refilling rate: a key is fresh again 1 ms after its use.
        let limiters = limiters_with(|rates| {
            rates.token_failures = Rate::new(1000, Duration::from_secs(1), 1)
        });
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

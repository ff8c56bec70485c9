//! Rates: how often a limiter may be asked per key, as flags write them;
//! the configured set; and the delay a refusal names.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::Quota;

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

    pub(super) fn quota(&self) -> Option<Quota> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

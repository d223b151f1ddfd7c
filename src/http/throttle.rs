//! Per-integration-key rate limiting (GCRA, via `governor`), so one runaway
//! monitoring system cannot starve the others or the database.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::IntakeConfig;

pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Throttle {
    pub fn new(config: &IntakeConfig) -> Self {
        let rate = NonZeroU32::new(config.rate_per_key).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst_per_key).unwrap_or(rate);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(seconds)` to wait when the key is over its rate. `key` is an
    /// integration name, never the secret itself, since it stays in memory.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
        }
    }

    /// Drops state for keys that are back to full burst; called periodically.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

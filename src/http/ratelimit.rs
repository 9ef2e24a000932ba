//! A token bucket per API user, off unless `serve --rate-limit` is given.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: f64,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `10` (10/s, burst 10) or `10/50` (10/s, burst 50).
    fn from_str(s: &str) -> Result<RateLimit, String> {
        let (rate, burst) = s.split_once('/').unwrap_or((s, s));
        let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
        match (parse(rate), parse(burst)) {
            (Some(per_second), Some(burst)) => Ok(RateLimit { per_second, burst: burst.max(1.0) }),
            _ => Err(format!("{s:?} is not a rate: use REQUESTS_PER_SECOND or REQUESTS_PER_SECOND/BURST")),
        }
    }
}

/// Buckets kept before idle ones are pruned; keys are API key ids, so this
/// bounds memory, not the number of keys served.
const MAX_BUCKETS: usize = 10_000;

pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        Limiter { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `who`; Err(seconds to wait) when none is left.
    pub fn check(&self, who: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // A bucket idle long enough to have refilled is the same as no
            // bucket: forget those rather than grow without bound.
            let refill = std::time::Duration::from_secs_f64(self.limit.burst / self.limit.per_second);
            buckets.retain(|_, (_, last)| now.duration_since(*last) < refill);
        }
        let (tokens, last) = buckets.entry(who.to_string()).or_insert((self.limit.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.limit.per_second).min(self.limit.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_then_refuses() {
        let limiter = Limiter::new("1/2".parse().unwrap());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert_eq!(limiter.check("a"), Err(1));
        assert!(limiter.check("b").is_ok());
    }
}

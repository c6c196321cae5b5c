//! The arithmetic of the shared rate limit (the files live in the host's `rate_limit`): requests
//! to an origin are spaced `1 / requests_per_second` apart, and the next free slot is kept as
//! nanoseconds since the Unix epoch. A rate is bounded to what a SCIM tenant can mean, so that one
//! reservation moves the slot at most a second; and a slot further ahead than the horizon (the
//! longest wait the host honours from a server, `retry_after_cap_ms`) is not trusted: a clock
//! stepped back or a file written by a misconfigured host must never lock an origin out.

use std::time::Duration;

/// The lowest `requests_per_second`: a tenant that takes fewer than one request a second serves
/// no playbook (ZPA's own SDK sends about one write a second, ZIA takes 5, ZIdentity 50).
pub const MIN_REQUESTS_PER_SECOND: f64 = 1.0;
/// The highest `requests_per_second`.
pub const MAX_REQUESTS_PER_SECOND: f64 = 10_000.0;

/// The spacing of a rate, in nanoseconds; `rate` within the bounds above.
pub fn interval_nanos(rate: f64) -> u128 {
    (1e9 / rate.clamp(MIN_REQUESTS_PER_SECOND, MAX_REQUESTS_PER_SECOND)) as u128
}

/// A slot given out: wait this long, and the next free slot is `following`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub wait: Duration,
    pub following: u128,
    /// How far ahead a stored slot stood when it was not trusted and now was taken instead.
    pub distrusted: Option<Duration>,
}

/// The wait a request needs, when it would pass the caller's budget: nothing was reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLate {
    pub wait: Duration,
}

/// The slot after `next` (the stored next free slot) at `now`: the later of the two, unless `next`
/// lies further ahead than `horizon` (then now); `TooLate` when waiting for it would pass `budget`.
pub fn reserve(
    next: u128,
    now: u128,
    interval: u128,
    budget: Duration,
    horizon: Duration,
) -> Result<Reservation, TooLate> {
    let ahead = next.saturating_sub(now);
    let (slot, distrusted) = if ahead > horizon.as_nanos().saturating_add(interval) {
        (now, Some(Duration::from_nanos(ahead.min(u64::MAX as u128) as u64)))
    } else {
        (next.max(now), None)
    };
    let wait = Duration::from_nanos((slot - now).min(u64::MAX as u128) as u64);
    if wait > budget {
        return Err(TooLate { wait });
    }
    Ok(Reservation { wait, following: slot.saturating_add(interval), distrusted })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn slots_are_evenly_spaced_and_a_wait_past_the_budget_reserves_nothing() {
        let first = reserve(0, 1_000, 200, SECOND, MINUTE).unwrap();
        assert_eq!((first.wait, first.following, first.distrusted), (Duration::ZERO, 1_200, None));
        let second = reserve(1_200, 1_000, 200, SECOND, MINUTE).unwrap();
        assert_eq!((second.wait, second.following), (Duration::from_nanos(200), 1_400));
        assert_eq!(reserve(5_000_000_000, 0, 200, SECOND, MINUTE), Err(TooLate { wait: 5 * SECOND }));
    }

    #[test]
    fn a_slot_beyond_the_horizon_is_not_trusted() {
        let now = 1_000_000_000_000u128;
        // Written by a host set to one request every 11.6 days, or before the clock went back.
        let poisoned = now + Duration::from_secs(1_000_000).as_nanos();
        let reserved = reserve(poisoned, now, interval_nanos(5.0), SECOND, MINUTE).unwrap();
        assert_eq!(reserved.wait, Duration::ZERO);
        assert_eq!(reserved.following, now + interval_nanos(5.0));
        assert!(reserved.distrusted.is_some());
        // A queue within the horizon is kept, even when this caller cannot wait for it.
        let queued = now + (30 * SECOND).as_nanos();
        assert_eq!(reserve(queued, now, interval_nanos(5.0), SECOND, MINUTE), Err(TooLate { wait: 30 * SECOND }));
    }

    #[test]
    fn a_rate_moves_the_slot_at_most_a_second_and_never_overflows() {
        for rate in [1e-300, 1e-6, 0.0, -1.0, f64::NAN, 1.0] {
            assert!(interval_nanos(rate) <= SECOND.as_nanos(), "{rate}");
        }
        assert_eq!(interval_nanos(f64::INFINITY), (1e9 / MAX_REQUESTS_PER_SECOND) as u128);
        assert_eq!(reserve(1, 1, u128::MAX, SECOND, MINUTE).unwrap().following, u128::MAX);
        assert!(reserve(u128::MAX - 1, 0, u128::MAX, SECOND, MINUTE).is_err());
    }
}

//! How long changes take to show: percentiles of durations, and a meter the
//! views keep of the time from each change of a setting to the first image
//! on screen that includes it (the latent pad shows its own).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Median and 95th percentile of `samples` (nearest rank); zero when empty.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

/// Latencies of the last changes kept.
const KEPT: usize = 200;

/// Each change's time is kept until an image of a state at least as new is
/// shown; its latency is then the time from the change to that showing.
#[derive(Debug, Default)]
pub struct ChangeLatency {
    pending: Vec<Instant>,
    shown: VecDeque<Duration>,
}

impl ChangeLatency {
    /// The setting changed at `at`.
    pub fn changed(&mut self, at: Instant) {
        self.pending.push(at);
    }

    /// An image of the state as it was at `asked` reached the screen at `now`.
    pub fn shown(&mut self, asked: Instant, now: Instant) {
        let (done, waiting): (Vec<Instant>, Vec<Instant>) = self.pending.iter().partition(|&&t| t <= asked);
        self.pending = waiting;
        for t in done {
            if self.shown.len() == KEPT {
                self.shown.pop_front();
            }
            self.shown.push_back(now - t);
        }
    }

    /// p50 and p95 of the kept latencies and how many there are.
    pub fn summary(&self) -> Option<(Duration, Duration, usize)> {
        if self.shown.is_empty() {
            return None;
        }
        let mut samples: Vec<Duration> = self.shown.iter().copied().collect();
        let (p50, p95) = percentiles(&mut samples);
        Some((p50, p95, samples.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_waits_for_an_image_that_includes_it() {
        let t0 = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut meter = ChangeLatency::default();
        meter.changed(t0);
        meter.changed(t0 + ms(10));
        meter.changed(t0 + ms(30)); // after the render was asked for
        meter.shown(t0 + ms(10), t0 + ms(60));
        let (p50, p95, n) = meter.summary().unwrap();
        assert_eq!((p50, p95, n), (ms(60), ms(60), 2), "50 and 60 ms; the median by nearest rank");
        meter.shown(t0 + ms(40), t0 + ms(100));
        assert_eq!(meter.summary().unwrap().2, 3, "the later change is counted once its image shows");
        assert_eq!(percentiles(&mut []), (Duration::ZERO, Duration::ZERO));
    }
}

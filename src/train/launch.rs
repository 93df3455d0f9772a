//! How a training run is carried out beyond its configuration and data ([`Launch`]): the
//! engine, the ranks, whether it resumes, where it stops, and the [`Clock`] that `--budget`
//! reads (the wall clock, or a test's own).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::distributed::World;
use crate::engine::Compute;

/// Seconds since a `train` command started.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> f64 + Send + Sync>);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({:.1} s)", self.seconds())
    }
}

impl Clock {
    /// The wall clock, from now.
    pub fn wall() -> Self {
        let start = Instant::now();
        Clock(Arc::new(move || start.elapsed().as_secs_f64()))
    }

    /// A clock that reads `readings` in turn (then the last again): a test's time.
    pub fn scripted(readings: Vec<f64>) -> Self {
        assert!(!readings.is_empty(), "a scripted clock needs a reading");
        let next = AtomicUsize::new(0);
        Clock(Arc::new(move || {
            let i = next.fetch_add(1, Ordering::Relaxed).min(readings.len() - 1);
            readings[i]
        }))
    }

    pub fn seconds(&self) -> f64 {
        (self.0)()
    }
}

/// How a run trains: on what, on which ranks, from where to where, against which clock.
#[derive(Clone, Debug)]
pub struct Launch {
    pub compute: Compute,
    pub world: World,
    /// Continue from the run's last checkpoint.
    pub resume: bool,
    /// Stop after this epoch, as an interrupted run would (the schedule still planned for all).
    pub stop_after: Option<usize>,
    pub clock: Clock,
}

impl Launch {
    /// A fresh run on `compute` in one process, to its last epoch, on the wall clock.
    pub fn on(compute: Compute) -> Self {
        Launch {
            compute,
            world: World::single(),
            resume: false,
            stop_after: None,
            clock: Clock::wall(),
        }
    }

    pub fn resuming(self, resume: bool) -> Self {
        Launch { resume, ..self }
    }

    pub fn stopping_after(self, epoch: usize) -> Self {
        Launch {
            stop_after: Some(epoch),
            ..self
        }
    }

    pub fn timed_by(self, clock: Clock) -> Self {
        Launch { clock, ..self }
    }
}

/// The epochs a `--budget` of `minutes` fits, chosen once the first epoch is done: `now` seconds
/// since the command started, the first epoch (training, validation, checkpoints) took
/// `epoch` seconds; one more epoch's time is kept for the final evaluation and figures. At
/// least 1, at most `most` (`--epochs` given with `--budget`).
pub fn epochs_within(minutes: f64, now: f64, epoch: f64, most: Option<usize>) -> usize {
    let left = minutes * 60.0 - now - epoch;
    let more = (left / epoch.max(1e-9)).floor().max(0.0) as usize;
    (1 + more).min(most.unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_fits_the_epochs_left_after_the_first() {
        // 30 minutes, 2 minutes gone after a first epoch of 1 minute: 1 minute kept for the
        // evaluation, 27 more epochs.
        assert_eq!(epochs_within(30.0, 120.0, 60.0, None), 28);
        assert_eq!(epochs_within(30.0, 120.0, 60.0, Some(20)), 20);
        // A budget already spent still finishes the schedule it has: one epoch.
        assert_eq!(epochs_within(1.0, 200.0, 60.0, None), 1);
        // Parts of an epoch do not count.
        assert_eq!(epochs_within(10.0, 100.0, 100.0, None), 1 + 4);
    }

    #[test]
    fn a_scripted_clock_reads_in_turn_then_stays() {
        let clock = Clock::scripted(vec![1.0, 5.0]);
        assert_eq!(
            [clock.seconds(), clock.seconds(), clock.seconds()],
            [1.0, 5.0, 5.0]
        );
    }
}

//! One training run across several processes (ranks), as data parallelism does it: what the
//! ranks of a run share ([`World`]: sums across ranks, rank 0's bytes on every rank, a flag
//! any rank raises) and the time spent sharing it. A run in one process is a [`World::single`]
//! whose sums change nothing. The engine that connects the ranks is MPI ([`mpi`], behind the
//! `mpi` Cargo feature): convlab has no wire protocol of its own.

#[cfg(feature = "mpi")]
mod mpi;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// How the ranks of a run are connected (`--distributed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// MPI: ranks started by `mpirun` or `srun`.
    Mpi,
}

impl Launch {
    pub const ALL: [Launch; 1] = [Launch::Mpi];

    pub fn name(self) -> &'static str {
        match self {
            Launch::Mpi => "mpi",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Launch::Mpi => {
                "The ranks started by mpirun or srun train one run together (build with `--features mpi`)"
            }
        }
    }
}

/// What a transport between ranks provides. Every rank calls the same methods in the same
/// order (they are collective operations).
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Replaces each value by its sum over the ranks.
    fn sum_f32(&self, values: &mut [f32]);
    fn sum_f64(&self, values: &mut [f64]);
    /// Replaces `bytes` by rank `root`'s on every rank.
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>);
    /// Every rank's `value`, in rank order.
    fn gather_all(&self, value: u64) -> Vec<u64>;
    /// Ends every rank's process with `code` (a rank failed on its own, and the others would
    /// wait for it forever).
    fn abort(&self, code: i32) -> !;
}

/// Why the ranks of a run could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error(
        "--distributed mpi: this convlab was built without MPI; build it with `cargo build --release --features mpi` (needs OpenMPI: see README)"
    )]
    NotBuilt,
    #[error("--distributed mpi: MPI could not be started ({0})")]
    Start(String),
}

impl DistributedError {
    /// Whether the error is the user's input (a build or launch to change), not a failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, DistributedError::NotBuilt)
    }
}

/// The ranks of one run, as every part of it sees them: a single process, or the ranks a
/// launcher (`mpirun`, `srun`) started. Cloning shares the same connection and clock.
#[derive(Clone)]
pub struct World {
    transport: Option<Arc<dyn Collective>>,
    /// Nanoseconds spent in collective operations (waiting for the slowest rank included).
    communication_ns: Arc<AtomicU64>,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.size())
    }
}

impl Default for World {
    fn default() -> Self {
        World::single()
    }
}

impl World {
    /// A run in one process.
    pub fn single() -> Self {
        World {
            transport: None,
            communication_ns: Arc::default(),
        }
    }

    /// The ranks of `launch`, or a single process.
    pub fn start(launch: Option<Launch>) -> Result<Self, DistributedError> {
        match launch {
            None => Ok(World::single()),
            Some(Launch::Mpi) => World::mpi(),
        }
    }

    /// The ranks started by an MPI launcher (one rank when started without one).
    #[cfg(feature = "mpi")]
    pub fn mpi() -> Result<Self, DistributedError> {
        Ok(World::over(Arc::new(mpi::Mpi::start()?)))
    }

    /// Without the `mpi` feature: why not.
    #[cfg(not(feature = "mpi"))]
    pub fn mpi() -> Result<Self, DistributedError> {
        Err(DistributedError::NotBuilt)
    }

    /// The ranks connected by `transport` (MPI, or a test's own).
    pub fn over(transport: Arc<dyn Collective>) -> Self {
        World {
            transport: Some(transport),
            communication_ns: Arc::default(),
        }
    }

    /// Whether the run was started as a distributed one (even with a single rank): its steps
    /// then compute on their share of each batch and add across ranks.
    pub fn is_distributed(&self) -> bool {
        self.transport.is_some()
    }

    pub fn rank(&self) -> usize {
        self.transport.as_ref().map_or(0, |t| t.rank())
    }

    pub fn size(&self) -> usize {
        self.transport.as_ref().map_or(1, |t| t.size())
    }

    /// Rank 0: the one that validates, writes the run folder and prints.
    pub fn leads(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's images of a global batch of `n`: consecutive slices, the first `n % size`
    /// ranks one image more (an epoch's short last batch splits unevenly; a rank may get none).
    pub fn share(&self, n: usize) -> Range<usize> {
        let (size, rank) = (self.size(), self.rank());
        let (base, extra) = (n / size, n % size);
        let start = rank * base + rank.min(extra);
        start..start + base + usize::from(rank < extra)
    }

    fn timed<R>(&self, op: impl FnOnce(&dyn Collective) -> R) -> Option<R> {
        let transport = self.transport.as_deref()?;
        let started = Instant::now();
        let out = op(transport);
        let ns = started.elapsed().as_nanos() as u64;
        self.communication_ns.fetch_add(ns, Ordering::Relaxed);
        Some(out)
    }

    /// Each value summed over the ranks.
    pub fn sum_f32(&self, values: &mut [f32]) {
        self.timed(|t| t.sum_f32(values));
    }

    pub fn sum_f64(&self, values: &mut [f64]) {
        self.timed(|t| t.sum_f64(values));
    }

    /// Rank 0's bytes on every rank.
    pub fn broadcast(&self, bytes: &mut Vec<u8>) {
        self.broadcast_from(0, bytes);
    }

    /// Rank `root`'s bytes on every rank.
    pub fn broadcast_from(&self, root: usize, bytes: &mut Vec<u8>) {
        self.timed(|t| t.broadcast(root, bytes));
    }

    /// Ends every rank's process with `code`; a single process just exits.
    pub fn abort(&self, code: i32) -> ! {
        match &self.transport {
            Some(transport) => transport.abort(code),
            None => std::process::exit(code),
        }
    }

    /// Every rank's `value`, in rank order.
    pub fn gather_all(&self, value: u64) -> Vec<u64> {
        self.timed(|t| t.gather_all(value))
            .unwrap_or_else(|| vec![value])
    }

    /// Whether any rank says `flag` (all ranks learn it in the same call).
    pub fn any(&self, flag: bool) -> bool {
        let mut votes = [f64::from(u8::from(flag))];
        self.sum_f64(&mut votes);
        votes[0] > 0.0
    }

    /// Rank 0's `flag` on every rank.
    pub fn leader_says(&self, flag: bool) -> bool {
        let mut bytes = vec![u8::from(flag)];
        self.broadcast(&mut bytes);
        bytes.first() == Some(&1)
    }

    /// Seconds spent in collective operations so far.
    pub fn communication_seconds(&self) -> f64 {
        self.communication_ns.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world of `size` ranks seen from `rank`, whose operations are never called.
    struct Seat(usize, usize);

    impl Collective for Seat {
        fn rank(&self) -> usize {
            self.0
        }
        fn size(&self) -> usize {
            self.1
        }
        fn sum_f32(&self, _: &mut [f32]) {}
        fn sum_f64(&self, _: &mut [f64]) {}
        fn broadcast(&self, _: usize, _: &mut Vec<u8>) {}
        fn gather_all(&self, value: u64) -> Vec<u64> {
            vec![value; self.1]
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    #[test]
    fn shares_cover_a_batch_once_in_order() {
        for (n, size) in [(64, 2), (7, 2), (10, 4), (3, 4), (0, 3)] {
            let shares: Vec<Range<usize>> = (0..size)
                .map(|rank| World::over(Arc::new(Seat(rank, size))).share(n))
                .collect();
            assert_eq!(shares[0].start, 0);
            assert_eq!(shares[size - 1].end, n);
            for pair in shares.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "{n} over {size}: {shares:?}");
                assert!(pair[0].len() >= pair[1].len() && pair[0].len() <= pair[1].len() + 1);
            }
        }
        assert_eq!(World::single().share(5), 0..5);
    }

    #[test]
    fn a_single_process_changes_nothing() {
        let world = World::single();
        let mut v = [1.5f32, -2.0];
        world.sum_f32(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        assert!(world.any(true) && !world.any(false));
        assert!(world.leads() && !world.is_distributed());
        assert_eq!(world.gather_all(9), vec![9]);
    }
}

//! The ranks of a run over MPI (rsmpi on the system's OpenMPI): started by `mpirun`, `srun`
//! or alone (one rank). MPI is finalised when the last clone of the [`World`](super::World)
//! holding it is dropped.

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use super::{Collective, DistributedError};

/// MPI's world communicator. Calls come from whichever thread trains, one at a time (the
/// mutex), which is what MPI's `SERIALIZED` threading level allows.
pub struct Mpi {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

// SAFETY: MPI is initialised at `Threading::Serialized` (checked in `start`), which allows
// calls from any thread as long as no two are concurrent; the mutex serialises every call.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    pub fn start() -> Result<Self, DistributedError> {
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| DistributedError::Start("MPI was already initialised".into()))?;
        if level < Threading::Serialized {
            return Err(DistributedError::Start(format!(
                "the MPI library offers threading level {level:?}, convlab needs Serialized"
            )));
        }
        let world = universe.world();
        Ok(Mpi {
            rank: world.rank() as usize,
            size: world.size() as usize,
            world: Mutex::new(world),
            _universe: universe,
        })
    }

    fn with<R>(&self, op: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        op(&self.world.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, values: &mut [f32]) {
        self.with(|world| {
            let sent = values.to_vec();
            world.all_reduce_into(&sent[..], values, SystemOperation::sum());
        })
    }

    fn sum_f64(&self, values: &mut [f64]) {
        self.with(|world| {
            let sent = values.to_vec();
            world.all_reduce_into(&sent[..], values, SystemOperation::sum());
        })
    }

    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>) {
        self.with(|world| {
            let root = world.process_at_rank(root as i32);
            let mut len = [bytes.len() as u64];
            root.broadcast_into(&mut len[..]);
            bytes.resize(len[0] as usize, 0);
            root.broadcast_into(&mut bytes[..]);
        })
    }

    fn gather_all(&self, value: u64) -> Vec<u64> {
        self.with(|world| {
            let mut all = vec![0u64; self.size];
            world.all_gather_into(&value, &mut all[..]);
            all
        })
    }

    fn abort(&self, code: i32) -> ! {
        self.with(|world| world.abort(code))
    }
}

//! Opening a run folder for training: afresh, or for `--resume` with its saved configuration.

use std::path::PathBuf;

use super::Clock;
use crate::distributed::World;
use crate::engine::Compute;
use crate::run::config::{HyperParams, Recipe, RunConfig, TaskSettings, TrainOptions};
use crate::run::json::read_json;
use crate::run::{RunDir, RunError};

/// What a `train` command asks for.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub options: TrainOptions,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// The run folder.
    pub out: PathBuf,
    /// The data set's folder (default: the data roots of `data::locate`).
    pub data: Option<PathBuf>,
    pub compute: Compute,
    /// The ranks that train it together (one process unless launched by `mpirun` with
    /// `--distributed mpi`).
    pub world: World,
    /// Seconds since the command started (`--budget` reads it).
    pub clock: Clock,
}

/// The run folder and configuration a `train` command works with: for `--resume`, the saved
/// configuration (checked against `model` and the given options); otherwise a fresh folder and
/// the configuration `fresh` builds from the checked hyper-parameters (before the folder is
/// made, so a configuration refused leaves nothing behind).
pub fn open_for_training<S: TaskSettings, E: From<RunError>>(
    request: &TrainRequest,
    model: &str,
    recipe: &Recipe,
    fresh: impl FnOnce(HyperParams) -> Result<RunConfig<S>, E>,
) -> Result<(RunDir, RunConfig<S>), E> {
    if request.resume {
        let run = RunDir::existing(&request.out)?;
        let saved: RunConfig<S> = read_json(&run.config())?;
        if saved.model_name() != model {
            return Err(E::from(RunError::invalid(
                "--model",
                format!(
                    "the run in {} trains '{}'",
                    request.out.display(),
                    saved.model_name()
                ),
            )));
        }
        let params = request.options.resume_with(&saved.params)?;
        Ok((run, RunConfig { params, ..saved }))
    } else {
        let config = fresh(request.options.check(recipe)?)?;
        Ok((RunDir::fresh(&request.out)?, config))
    }
}

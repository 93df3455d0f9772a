use thiserror::Error;

/// What can go wrong choosing an engine or moving a model in and out of one.
#[derive(Debug, Error)]
pub enum EngineError {
    /// `--device` names hardware this build or machine cannot use.
    #[error("--device: {0}")]
    Device(String),
    /// `--engine` cannot run on the chosen device.
    #[error("--engine: {0}")]
    Choice(String),
    /// A model's parameters (burn's record) could not be read or written.
    #[error("model parameters: {0}")]
    Record(String),
    /// The optimiser's saved state does not fit the model.
    #[error("optimiser state: {0}")]
    OptimizerState(String),
    /// A parameter the architecture needs is absent or has another shape.
    #[error("{0}")]
    Parameters(String),
}

impl EngineError {
    /// Errors the user can fix by changing an input (a flag, a file).
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

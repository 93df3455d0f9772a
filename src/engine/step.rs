//! What a training step takes and reports, the same on every engine: the batch, the optimiser's
//! recipe and the step's outcome. Each engine's trainer and the switch between them
//! (`trainer.rs`) share them from here.

/// A batch ready for a step: images `[n, c, h, w]` and one class index per image or per pixel.
#[derive(Clone, Debug)]
pub struct StepBatch {
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub targets: Vec<u8>,
}

impl StepBatch {
    /// The images at `images` (a range of the batch) with their targets.
    pub fn share(&self, images: std::ops::Range<usize>) -> StepBatch {
        let [n, c, h, w] = self.shape;
        let (values, targets) = (c * h * w, self.targets.len() / n.max(1));
        StepBatch {
            images: self.images[images.start * values..images.end * values].to_vec(),
            shape: [images.len(), c, h, w],
            targets: self.targets[images.start * targets..images.end * targets].to_vec(),
        }
    }
}

/// What one optimiser step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    /// The batch's mean loss.
    pub loss: f32,
    /// Correct predictions in the batch (images or pixels), and predictions made.
    pub hits: usize,
    pub count: usize,
}

/// The optimiser: Adam with L2 weight decay in the gradient (PyTorch's
/// `Adam(weight_decay=...)`), or AdamW's decoupled decay; and the decay of a moving average of
/// the weights kept beside it (see `engine::average`), when there is one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    pub weight_decay: f64,
    pub decoupled_decay: bool,
    pub average: Option<f32>,
}

/// How a fresh model's weights start: burn's initialisers (PyTorch's defaults) seeded by
/// `seed`, the same on both engines; with `identity_convs`, each convolution's first filters
/// then pass their input channel through (see [`CpuNet::with_identity_convs`]).
///
/// [`CpuNet::with_identity_convs`]: crate::engine::CpuNet::with_identity_convs
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitSpec {
    pub seed: u64,
    pub identity_convs: bool,
}

impl InitSpec {
    /// burn's initialisers seeded by `seed`, nothing changed after.
    pub fn seeded(seed: u64) -> Self {
        InitSpec {
            seed,
            identity_convs: false,
        }
    }
}

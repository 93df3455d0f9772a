/// A layer list whose shapes do not fit together.
#[derive(Debug, thiserror::Error)]
#[error("model {model}: layer {layer}: {reason}")]
pub struct SpecError {
    pub model: String,
    pub layer: usize,
    pub reason: String,
}

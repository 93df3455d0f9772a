//! Choosing where tensors live, at run time: burn's pure-Rust CPU backend by default, a GPU
//! through the `wgpu` feature.

use burn::tensor::Device;

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (flex), multi-threaded.
    #[default]
    Cpu,
    /// A GPU through burn's wgpu backend (build with `--features wgpu`).
    Gpu,
}

/// The inference device for `kind`, or a message saying why it is not available.
pub fn device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Gpu => gpu(),
    }
}

#[cfg(feature = "wgpu")]
fn gpu() -> Result<Device, String> {
    Ok(Device::wgpu(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn gpu() -> Result<Device, String> {
    Err(
        "this build has no GPU support; rebuild with `cargo build --release --features wgpu`"
            .into(),
    )
}

//! A model's parameters as PyTorch's `state_dict` in a safetensors file: the names of an
//! `nn.Sequential` of the same layers (`<i>.weight`, `<i>.bias`, batch norm's `running_mean`,
//! `running_var` and `num_batches_tracked`) and PyTorch's layouts (linear weights `[out, in]`).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, TensorView};

use super::ModelTensors;
use crate::models::{LayerSpec, ModelSpec};
use crate::run::RunError;

/// One tensor of the state dict: its name, dtype, shape and little-endian bytes.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn floats(name: String, shape: &[usize], values: &[f32]) -> Entry {
    Entry {
        name,
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// `[rows, cols]` values as `[cols, rows]`.
fn transposed(shape: &[usize], values: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let (rows, cols) = (shape[0], shape[1]);
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    (vec![cols, rows], out)
}

/// The state dict of `spec` with `tensors`; `steps` optimiser steps trained (batch norm's
/// `num_batches_tracked`).
fn state_dict(spec: &ModelSpec, tensors: &ModelTensors, steps: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let same = |name: &str, as_name: &str| {
            let (shape, values) = tensors.get(i, name);
            floats(format!("{i}.{as_name}"), shape, values)
        };
        match layer {
            LayerSpec::Conv { bias, .. } => {
                out.push(same("weight", "weight"));
                if *bias {
                    out.push(same("bias", "bias"));
                }
            }
            LayerSpec::ConvTranspose { .. } => {
                out.push(same("weight", "weight"));
                out.push(same("bias", "bias"));
            }
            LayerSpec::BatchNorm { .. } => {
                out.push(same("gamma", "weight"));
                out.push(same("beta", "bias"));
                out.push(same("running_mean", "running_mean"));
                out.push(same("running_var", "running_var"));
                out.push(Entry {
                    name: format!("{i}.num_batches_tracked"),
                    dtype: Dtype::I64,
                    shape: Vec::new(),
                    bytes: (steps as i64).to_le_bytes().to_vec(),
                });
            }
            LayerSpec::Linear { .. } => {
                let (shape, values) = tensors.get(i, "weight");
                let (shape, values) = transposed(shape, values);
                out.push(floats(format!("{i}.weight"), &shape, &values));
                out.push(same("bias", "bias"));
            }
            _ => {}
        }
    }
    out
}

/// The safetensors file's bytes, with `metadata` in its `__metadata__`.
pub fn state_dict_bytes(
    spec: &ModelSpec,
    tensors: &ModelTensors,
    steps: usize,
    metadata: Vec<(String, String)>,
) -> Result<Vec<u8>, RunError> {
    let entries = state_dict(spec, tensors, steps);
    let views = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes).map(|view| (e.name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RunError::Record {
            path: spec.name.clone().into(),
            reason: e.to_string(),
        })?;
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| RunError::Record {
        path: spec.name.clone().into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        let (shape, values) = transposed(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(shape, vec![3, 2]);
        assert_eq!(values, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}

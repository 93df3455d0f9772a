//! A run's model as an ONNX graph (opset 17): plain pixels in `[0, 1]` go in (the data set's
//! normalisation is the graph's first two nodes), logits come out; batch norm in its inference
//! form, no dropout. Built from the same layer list both engines build from.

use prost::Message;

use super::ModelTensors;
use super::onnx_proto::{
    AttributeProto, Dimension, DimensionValue, FLOAT, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, attribute_type,
};
use crate::data::Normalization;
use crate::models::{LayerSpec, ModelSpec};

pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
const IR_VERSION: i64 = 8;
/// burn's and PyTorch's batch-norm epsilon.
const BATCH_NORM_EPSILON: f32 = 1e-5;
pub const INPUT: &str = "image";
pub const OUTPUT: &str = "logits";

/// The ONNX model's bytes.
pub fn model_bytes(
    spec: &ModelSpec,
    tensors: &ModelTensors,
    normalization: Normalization,
    metadata: &[(String, String)],
) -> Vec<u8> {
    let mut graph = Graph::default();
    let normalized = graph.normalize(normalization, spec.input[0]);
    let last = graph.layers(spec, tensors, normalized);
    graph.node("Identity", &[&last], OUTPUT, Vec::new());
    let output_shape = spec
        .summary()
        .expect("a trained run's spec is consistent")
        .last()
        .map(|row| row.output_shape.clone())
        .unwrap_or_default();
    let model = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "convlab".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("convlab model '{}'", spec.name),
        graph: Some(GraphProto {
            node: graph.nodes,
            name: spec.name.clone(),
            initializer: graph.initializers,
            input: vec![value_info(INPUT, &spec.input)],
            output: vec![value_info(OUTPUT, &output_shape)],
        }),
        metadata_props: metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    };
    model.encode_to_vec()
}

/// A float tensor of shape `[N, dims...]`, with a dynamic batch dimension `N`.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(DimensionValue::DimParam("N".into())),
    };
    let fixed = dims.iter().map(|&d| Dimension {
        value: Some(DimensionValue::DimValue(d as i64)),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(fixed).collect(),
                }),
            }),
        }),
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: value,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: value,
        ..Default::default()
    }
}

/// The nodes and initialisers being built.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
        });
    }

    fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name.into()
    }

    /// `(image - mean) / std`: the input the network was trained on.
    fn normalize(&mut self, normalization: Normalization, channels: usize) -> String {
        let shape = [1, channels, 1, 1];
        let mean = self.initializer(
            "normalization.mean",
            &shape,
            &normalization.mean[..channels],
        );
        let std = self.initializer("normalization.std", &shape, &normalization.std[..channels]);
        self.node("Sub", &[INPUT, &mean], "centred", Vec::new());
        self.node("Div", &["centred", &std], "normalized", Vec::new());
        "normalized".into()
    }

    /// One node per layer (none for dropout and for keeping a skip); returns the last output.
    fn layers(&mut self, spec: &ModelSpec, tensors: &ModelTensors, input: String) -> String {
        let mut x = input;
        let mut saved: Vec<String> = Vec::new();
        for (i, layer) in spec.layers.iter().enumerate() {
            let out = format!("layers.{i}");
            let param = |graph: &mut Graph, name: &str| {
                let (shape, values) = tensors.get(i, name);
                graph.initializer(&format!("layers.{i}.{name}"), shape, values)
            };
            match *layer {
                LayerSpec::Conv {
                    kernel,
                    stride,
                    padding,
                    bias,
                    ..
                } => {
                    let mut inputs = vec![x.clone(), param(self, "weight")];
                    if bias {
                        inputs.push(param(self, "bias"));
                    }
                    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    let attributes = vec![
                        ints("kernel_shape", &[kernel, kernel]),
                        ints("strides", &[stride, stride]),
                        ints("pads", &[padding; 4]),
                    ];
                    self.node("Conv", &inputs, &out, attributes);
                }
                LayerSpec::ConvTranspose {
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let (w, b) = (param(self, "weight"), param(self, "bias"));
                    let attributes = vec![
                        ints("kernel_shape", &[kernel, kernel]),
                        ints("strides", &[stride, stride]),
                        ints("pads", &[padding; 4]),
                    ];
                    self.node("ConvTranspose", &[&x, &w, &b], &out, attributes);
                }
                LayerSpec::BatchNorm { .. } => {
                    let inputs = ["gamma", "beta", "running_mean", "running_var"]
                        .map(|name| param(self, name));
                    let [g, b, m, v] = &inputs;
                    let attributes = vec![float("epsilon", BATCH_NORM_EPSILON)];
                    self.node("BatchNormalization", &[&x, g, b, m, v], &out, attributes);
                }
                LayerSpec::Relu => self.node("Relu", &[&x], &out, Vec::new()),
                LayerSpec::LeakyRelu { slope } => {
                    let attributes = vec![float("alpha", slope as f32)];
                    self.node("LeakyRelu", &[&x], &out, attributes);
                }
                LayerSpec::MaxPool2 => {
                    let attributes = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
                    self.node("MaxPool", &[&x], &out, attributes);
                }
                LayerSpec::Dropout { .. } => continue,
                LayerSpec::Flatten => self.node("Flatten", &[&x], &out, vec![int("axis", 1)]),
                LayerSpec::Linear { .. } => {
                    // convlab keeps linear weights as `[in, out]`: Y = X W + b.
                    let (w, b) = (param(self, "weight"), param(self, "bias"));
                    self.node("Gemm", &[&x, &w, &b], &out, Vec::new());
                }
                LayerSpec::SaveSkip => {
                    saved.push(x.clone());
                    continue;
                }
                LayerSpec::ConcatSkip => {
                    let skip = saved.pop().expect("ModelSpec::summary pairs every concat");
                    self.node("Concat", &[&x, &skip], &out, vec![int("axis", 1)]);
                }
                LayerSpec::AddSkip => {
                    let skip = saved.pop().expect("ModelSpec::summary pairs every add");
                    self.node("Add", &[&x, &skip], &out, Vec::new());
                }
                LayerSpec::GlobalAvgPool => {
                    self.node("GlobalAveragePool", &[&x], &out, Vec::new());
                }
            }
            x = out;
        }
        x
    }
}

//! convlab's CPU engine against burn's autodiff (the reference): every operation's forward
//! output and gradients on random inputs (several shapes, strides and paddings, batch sizes 1
//! and 3), a finite-difference check, the losses, the optimisers, and one full training step of
//! every model.
//!
//! Tolerances: f32 on both sides with different summation orders, so values are compared
//! relative to the tensor's largest magnitude: 1e-4 for outputs, 2e-3 for gradients of single
//! operations and 5e-3 through whole models (a batch norm divides by a batch standard
//! deviation, which amplifies rounding).

use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, SgdConfig, decay::WeightDecayConfig,
    momentum::MomentumConfig,
};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use convlab::engine::burn::{Layer, Net, burn_tensors, cpu_from_burn, init_cpu};
use convlab::engine::cpu::loss::cross_entropy;
use convlab::engine::cpu::{Activation, CpuNet, LossSpec, Optimizer, OptimizerKind};
use convlab::models::{ClassifierKind, LayerSpec, ModelSpec, SegmenterKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// burn's CPU backend keeps one random generator per process: tests that seed it take turns.
static BURN_RNG: Mutex<()> = Mutex::new(());

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest difference relative to the largest magnitude of `expected`.
fn relative_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "lengths");
    let scale = expected.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    actual
        .iter()
        .zip(expected)
        .fold(0.0f32, |m, (a, e)| m.max((a - e).abs()))
        / scale
}

fn l2(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

fn spec(input: [usize; 3], layers: Vec<LayerSpec>) -> ModelSpec {
    let spec = ModelSpec {
        name: "t".into(),
        input,
        layers,
    };
    spec.summary().expect("test spec is consistent");
    spec
}

/// burn's gradients of the trainable tensors, in the CPU engine's order.
fn burn_param_grads(net: &Net, grads: &burn::tensor::Gradients) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    let mut push = |t: Tensor<1>| out.push(values(t));
    for layer in &net.layers {
        match layer {
            Layer::Conv(l) => {
                push(l.weight.val().grad(grads).unwrap().flatten(0, 3));
                if let Some(b) = &l.bias {
                    push(b.val().grad(grads).unwrap());
                }
            }
            Layer::ConvTranspose(l) => {
                push(l.weight.val().grad(grads).unwrap().flatten(0, 3));
                push(l.bias.as_ref().unwrap().val().grad(grads).unwrap());
            }
            Layer::BatchNorm(l) => {
                push(l.gamma.val().grad(grads).unwrap());
                push(l.beta.val().grad(grads).unwrap());
            }
            Layer::Linear(l) => {
                push(l.weight.val().grad(grads).unwrap().flatten(0, 1));
                push(l.bias.as_ref().unwrap().val().grad(grads).unwrap());
            }
            _ => {}
        }
    }
    out
}

/// Both engines, training mode, loss `sum(output · r)`: outputs, input and parameter gradients.
fn check_against_burn(spec: &ModelSpec, batch: usize, seed: u64) {
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(seed);
    let net = Net::init(spec, &device);
    let mut cpu = cpu_from_burn(spec, &net);
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let x = random(shape.iter().product(), seed + 1);

    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
    let out = net.forward_maps(xt.clone());
    let out_shape = out.dims();
    let r = random(out_shape.iter().product(), seed + 2);
    let loss = (out.clone()
        * Tensor::<4>::from_data(TensorData::new(r.clone(), out_shape), &device))
    .sum();
    let grads = loss.backward();

    let (cpu_out, tape) = cpu.forward_train(Activation::new(x, shape), seed);
    assert_eq!(cpu_out.shape, out_shape, "{spec:?}");
    let e = relative_error(&cpu_out.data, &values(out));
    assert!(
        e < 1e-4,
        "output differs by {e} for {:?} batch {batch}",
        spec.layers
    );
    let (param_grads, input_grad) = cpu.backward_to_input(tape, r, true);
    let e = relative_error(&input_grad.unwrap(), &values(xt.grad(&grads).unwrap()));
    assert!(
        e < 2e-3,
        "input gradient differs by {e} for {:?} batch {batch}",
        spec.layers
    );
    let expected = burn_param_grads(&net, &grads);
    assert_eq!(param_grads.len(), expected.len());
    for (i, (a, b)) in param_grads.iter().zip(&expected).enumerate() {
        let e = relative_error(a, b);
        assert!(
            e < 2e-3,
            "gradient {i} differs by {e} for {:?} batch {batch}",
            spec.layers
        );
    }
}

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, bias: bool) -> LayerSpec {
    LayerSpec::Conv {
        in_channels: c_in,
        out_channels: c_out,
        kernel: k,
        stride,
        padding: pad,
        bias,
    }
}

#[test]
fn convolutions_match_burn_for_strides_paddings_and_batch_sizes() {
    for (input, layer) in [
        ([3, 7, 5], conv(3, 4, 3, 1, 1, true)),
        ([2, 9, 8], conv(2, 3, 3, 2, 1, false)),
        ([4, 6, 6], conv(4, 2, 1, 1, 0, true)),
        ([2, 5, 5], conv(2, 3, 3, 1, 0, true)),
        ([3, 8, 8], conv(3, 5, 4, 2, 1, true)),
        ([1, 28, 28], conv(1, 8, 3, 1, 1, true)),
    ] {
        for batch in [1, 3] {
            check_against_burn(&spec(input, vec![layer]), batch, 11);
        }
    }
}

#[test]
fn transposed_convolutions_match_burn() {
    for (input, c_out, k, stride, pad) in [
        ([4, 4, 4], 3, 4, 2, 1),
        ([3, 5, 3], 2, 3, 1, 1),
        ([2, 3, 3], 4, 3, 2, 0),
        ([2, 8, 8], 2, 4, 2, 1),
    ] {
        let layer = LayerSpec::ConvTranspose {
            in_channels: input[0],
            out_channels: c_out,
            kernel: k,
            stride,
            padding: pad,
        };
        for batch in [1, 3] {
            check_against_burn(&spec(input, vec![layer]), batch, 12);
        }
    }
}

#[test]
fn batch_norm_relu_leaky_relu_and_pooling_match_burn() {
    let cases = vec![
        ([3, 5, 4], vec![LayerSpec::BatchNorm { channels: 3 }]),
        (
            [3, 5, 4],
            vec![
                conv(3, 4, 3, 1, 1, false),
                LayerSpec::BatchNorm { channels: 4 },
                LayerSpec::Relu,
            ],
        ),
        (
            [2, 6, 6],
            vec![
                conv(2, 3, 3, 1, 1, true),
                LayerSpec::LeakyRelu { slope: 0.01 },
            ],
        ),
        (
            [2, 5, 7],
            vec![conv(2, 3, 3, 1, 1, true), LayerSpec::MaxPool2],
        ),
        ([2, 6, 6], vec![LayerSpec::MaxPool2, LayerSpec::Relu]),
    ];
    for (input, layers) in cases {
        for batch in [1, 3] {
            check_against_burn(&spec(input, layers.clone()), batch, 13);
        }
    }
}

#[test]
fn linear_flatten_and_skip_concat_match_burn() {
    let linear = vec![
        conv(2, 3, 3, 1, 1, true),
        LayerSpec::Relu,
        LayerSpec::Flatten,
        LayerSpec::Linear {
            inputs: 3 * 4 * 4,
            outputs: 5,
        },
        LayerSpec::LeakyRelu { slope: 0.1 },
        LayerSpec::Linear {
            inputs: 5,
            outputs: 3,
        },
    ];
    let skip = vec![
        LayerSpec::SaveSkip,
        conv(2, 3, 3, 1, 1, true),
        LayerSpec::SaveSkip,
        conv(3, 2, 3, 2, 1, true),
        LayerSpec::ConvTranspose {
            in_channels: 2,
            out_channels: 3,
            kernel: 4,
            stride: 2,
            padding: 1,
        },
        LayerSpec::ConcatSkip,
        conv(6, 2, 1, 1, 0, true),
        LayerSpec::ConcatSkip,
    ];
    for batch in [1, 3] {
        check_against_burn(&spec([2, 4, 4], linear.clone()), batch, 14);
        check_against_burn(&spec([2, 4, 4], skip.clone()), batch, 15);
    }
}

#[test]
fn residual_additions_and_global_average_pooling_match_burn() {
    let residual = vec![
        conv(2, 3, 3, 1, 1, false),
        LayerSpec::BatchNorm { channels: 3 },
        LayerSpec::Relu,
        LayerSpec::SaveSkip,
        conv(3, 3, 3, 1, 1, false),
        LayerSpec::BatchNorm { channels: 3 },
        LayerSpec::Relu,
        // A residual inside a residual: the stack pairs each add with its own skip.
        LayerSpec::SaveSkip,
        conv(3, 3, 3, 1, 1, true),
        LayerSpec::AddSkip,
        LayerSpec::AddSkip,
        LayerSpec::GlobalAvgPool,
        LayerSpec::Flatten,
        LayerSpec::Linear {
            inputs: 3,
            outputs: 4,
        },
    ];
    for batch in [1, 3] {
        check_against_burn(&spec([2, 5, 5], residual.clone()), batch, 21);
    }
}

/// Central differences of `loss = sum(output · r)` in a few weights of a conv + batch norm +
/// ReLU + pool + linear network agree with the backward pass.
#[test]
fn gradients_agree_with_finite_differences() {
    let s = spec(
        [2, 6, 6],
        vec![
            conv(2, 3, 3, 2, 1, false),
            LayerSpec::BatchNorm { channels: 3 },
            LayerSpec::LeakyRelu { slope: 0.1 },
            LayerSpec::ConvTranspose {
                in_channels: 3,
                out_channels: 2,
                kernel: 4,
                stride: 2,
                padding: 1,
            },
            LayerSpec::MaxPool2,
            LayerSpec::Flatten,
            LayerSpec::Linear {
                inputs: 18,
                outputs: 4,
            },
        ],
    );
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let net = init_cpu(&s, 3);
    let shape = [3, 2, 6, 6];
    let x = random(shape.iter().product(), 4);
    let r = random(3 * 4, 5);
    let loss = |net: &mut CpuNet| -> f64 {
        let (out, _) = net.forward_train(Activation::new(x.clone(), shape), 0);
        out.data
            .iter()
            .zip(&r)
            .map(|(o, r)| (*o as f64) * (*r as f64))
            .sum()
    };
    let (_, tape) = net
        .clone()
        .forward_train(Activation::new(x.clone(), shape), 0);
    let grads = net.backward(tape, r.clone());
    let h = 1e-2f32;
    for (tensor, index) in [
        (0, 5),
        (0, 40),
        (1, 2),
        (2, 0),
        (3, 17),
        (4, 1),
        (5, 30),
        (6, 3),
    ] {
        let mut plus = net.clone();
        plus.trainable_mut()[tensor][index] += h;
        let mut minus = net.clone();
        minus.trainable_mut()[tensor][index] -= h;
        let numeric = (loss(&mut plus) - loss(&mut minus)) / (2.0 * h as f64);
        let analytic = grads[tensor][index] as f64;
        assert!(
            (numeric - analytic).abs() < 2e-2 * analytic.abs().max(0.1),
            "tensor {tensor}[{index}]: {numeric} vs {analytic}"
        );
    }
}

/// The training target as a tensor `t` so that the loss is `-sum(log_softmax(logits) · t)`:
/// `((1 - alpha) one_hot + alpha / C) / n` per image, `w[y] one_hot / sum w[y]` per pixel.
fn target_weights(loss: &LossSpec, targets: &[u8], shape: [usize; 4]) -> Vec<f32> {
    let [n, classes, h, w] = shape;
    let plane = h * w;
    let mut t = vec![0.0f32; n * classes * plane];
    let (alpha, weights) = match loss {
        LossSpec::Image { smoothing } => (smoothing.unwrap_or(0.0), None),
        LossSpec::Pixel { weights } => (0.0, weights.clone()),
    };
    let weight = |y: u8| weights.as_ref().map_or(1.0, |w| w[y as usize]);
    let total: f32 = targets.iter().map(|&y| weight(y)).sum();
    for (i, &y) in targets.iter().enumerate() {
        let (image, p) = (i / plane, i % plane);
        for c in 0..classes {
            let target = alpha / classes as f32 + if c == y as usize { 1.0 - alpha } else { 0.0 };
            t[(image * classes + c) * plane + p] = weight(y) * target / total;
        }
    }
    t
}

#[test]
fn losses_match_burns_log_softmax_for_images_and_weighted_pixels() {
    let device = Device::flex().autodiff();
    for (loss, shape) in [
        (LossSpec::Image { smoothing: None }, [5, 10, 1, 1]),
        (
            LossSpec::Image {
                smoothing: Some(0.1),
            },
            [3, 10, 1, 1],
        ),
        (LossSpec::Pixel { weights: None }, [2, 5, 3, 4]),
        (
            LossSpec::Pixel {
                weights: Some(vec![0.7, 0.6, 2.7, 1.0, 1.8]),
            },
            [1, 5, 6, 2],
        ),
    ] {
        let [n, classes, h, w] = shape;
        let logits = random(n * classes * h * w, 21)
            .iter()
            .map(|v| 4.0 * v)
            .collect::<Vec<f32>>();
        let targets: Vec<u8> = (0..n * h * w).map(|i| (i * 7 % classes) as u8).collect();
        let ours = cross_entropy(&loss, &logits, n, classes, &targets);
        let lt =
            Tensor::<4>::from_data(TensorData::new(logits.clone(), shape), &device).require_grad();
        let t = Tensor::<4>::from_data(
            TensorData::new(target_weights(&loss, &targets, shape), shape),
            &device,
        );
        let reference = (log_softmax(lt.clone(), 1) * t).sum().neg();
        let grads = reference.backward();
        let expected_loss: f32 = values(reference)[0];
        assert!(
            (ours.loss - expected_loss).abs() < 1e-5 * expected_loss.abs().max(1.0),
            "{loss:?}"
        );
        let e = relative_error(&ours.grad, &values(lt.grad(&grads).unwrap()));
        assert!(e < 1e-5, "{loss:?}: gradient differs by {e}");
    }
}

fn burn_step(net: Net, kind: OptimizerKind, grads: GradientsParams, lr: f64) -> Net {
    match kind {
        OptimizerKind::Adam { weight_decay } => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay((weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay)))
            .init()
            .step(lr, net, grads),
        OptimizerKind::AdamW { weight_decay } => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(weight_decay)
            .init()
            .step(lr, net, grads),
        OptimizerKind::Sgd {
            momentum,
            weight_decay,
        } => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(momentum as f64)
                    .with_dampening(0.0),
            ))
            .with_weight_decay((weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay)))
            .init()
            .step(lr, net, grads),
    }
}

/// One training step (forward, loss, backward, optimiser) of `spec` on both engines from the
/// same weights and batch: the same loss, and the same parameters afterwards.
fn one_step_matches(spec: &ModelSpec, batch: usize, loss: LossSpec, kind: OptimizerKind) {
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let lr = 1e-3;
    let device = Device::flex().autodiff();
    device.seed(31);
    let net = Net::init(spec, &device);
    let mut cpu = cpu_from_burn(spec, &net);
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let x = random(shape.iter().product(), 32);

    let logits = net.forward_maps(Tensor::from_data(
        TensorData::new(x.clone(), shape),
        &device,
    ));
    let out_shape = logits.dims();
    let plane = out_shape[2] * out_shape[3];
    let targets: Vec<u8> = (0..batch * plane)
        .map(|i| ((i * 13 + i / 7) % out_shape[1]) as u8)
        .collect();
    let t = Tensor::<4>::from_data(
        TensorData::new(target_weights(&loss, &targets, out_shape), out_shape),
        &device,
    );
    let burn_loss = (log_softmax(logits, 1) * t).sum().neg();
    let burn_loss_value = values(burn_loss.clone())[0];
    let raw_grads = burn_loss.backward();
    let burn_grads = burn_param_grads(&net, &raw_grads);
    let grads = GradientsParams::from_grads(raw_grads, &net);
    let stepped = burn_step(net, kind, grads, lr);

    let (out, tape) = cpu.forward_train(Activation::new(x, shape), 0);
    let l = cross_entropy(&loss, &out.data, batch, out_shape[1], &targets);
    let grads = cpu.backward(tape, l.grad);
    Optimizer::new(kind).step(lr, cpu.trainable_mut(), &grads);

    // 1e-3: unet's forward pass has 23 batch norms, several over only 8x8 pixels.
    assert!(
        (l.loss - burn_loss_value).abs() < 1e-3 * burn_loss_value.abs(),
        "{}: loss {} vs burn {}",
        spec.name,
        l.loss,
        burn_loss_value
    );
    for (i, (ours, reference)) in grads.iter().zip(&burn_grads).enumerate() {
        // Deeper than the single operations above, and at 256x256 a batch norm sums 65,536
        // values per channel (burn in f32, this engine in f64), so the whole-tensor relative
        // error is used: below 2e-2. Measured: fcn 2e-3 throughout; unet's grows smoothly from
        // 5e-5 at its last layer to 1e-2 at its first, through 23 batch norms (a wrong layer
        // would show as a jump to order 1, as the single-operation tests above would). The biases feeding a batch norm have an
        // exact gradient of zero; both engines give rounding noise there (this one 3-10x
        // smaller than burn's), so those are only checked to be negligible.
        let (norm, reference_norm) = (l2(ours), l2(reference));
        if reference_norm < 1e-6 {
            assert!(
                norm < 1e-6,
                "{}: gradient {i} should vanish, has norm {norm}",
                spec.name
            );
        } else {
            let diff: Vec<f32> = ours.iter().zip(reference).map(|(a, b)| a - b).collect();
            let e = l2(&diff) / reference_norm;
            assert!(
                e < 2e-2,
                "{}: gradient {i} differs by {e} (relative L2)",
                spec.name
            );
        }
    }
    // Adam's first step moves a weight by lr · g / (|g| + eps), about ±lr whatever |g|: where
    // the two engines' gradients differ in sign (rounding-level gradients, e.g. of a weight
    // feeding a batch norm) the steps may differ by up to 2 lr. Elsewhere they agree to 5% of lr.
    let expected = burn_tensors(&stepped);
    let trainable: Vec<String> = cpu
        .tensors()
        .into_iter()
        .map(|(n, _, _)| n)
        .filter(|n| !n.contains("running"))
        .collect();
    for (name, _, v) in cpu.tensors() {
        let reference = &expected[&name];
        let index = trainable.iter().position(|n| *n == name);
        for (j, (a, b)) in v.iter().zip(reference).enumerate() {
            let determined = index.is_none_or(|i| {
                let (ours, theirs) = (grads[i][j], burn_grads[i][j]);
                ours.signum() == theirs.signum() && ours.abs().min(theirs.abs()) > 1e-6
            });
            let bound = if determined { 0.05 } else { 2.05 } * lr as f32;
            assert!(
                (a - b).abs() < bound,
                "{}: {name}[{j}] is {a}, burn's {b} after one step",
                spec.name
            );
        }
    }
}

/// The model with its dropout off: the engines draw different masks.
fn without_dropout(mut spec: ModelSpec) -> ModelSpec {
    for layer in &mut spec.layers {
        if let LayerSpec::Dropout { prob } = layer {
            *prob = 0.0;
        }
    }
    spec
}

#[test]
fn one_training_step_of_each_classifier_matches_burn() {
    one_step_matches(
        &ClassifierKind::Base.spec(),
        3,
        LossSpec::Image { smoothing: None },
        OptimizerKind::Adam { weight_decay: 0.0 },
    );
    one_step_matches(
        &ClassifierKind::Wide.spec(),
        2,
        LossSpec::Image { smoothing: None },
        OptimizerKind::Adam { weight_decay: 1e-4 },
    );
    one_step_matches(
        &without_dropout(ClassifierKind::Own.spec()),
        3,
        LossSpec::Image {
            smoothing: Some(0.1),
        },
        OptimizerKind::AdamW { weight_decay: 0.02 },
    );
    one_step_matches(
        &ClassifierKind::Res.spec(),
        2,
        LossSpec::Image {
            smoothing: Some(0.1),
        },
        OptimizerKind::AdamW { weight_decay: 0.02 },
    );
    one_step_matches(
        &ClassifierKind::Base.spec(),
        1,
        LossSpec::Image { smoothing: None },
        OptimizerKind::Sgd {
            momentum: 0.9,
            weight_decay: 1e-4,
        },
    );
}

#[test]
fn one_training_step_of_each_segmenter_matches_burn() {
    let weights = Some(vec![0.68, 0.64, 2.67, 1.0, 1.8]);
    one_step_matches(
        &SegmenterKind::Fcn.spec(),
        1,
        LossSpec::Pixel { weights: None },
        OptimizerKind::Adam { weight_decay: 0.0 },
    );
    one_step_matches(
        &SegmenterKind::Unet.spec(),
        2,
        LossSpec::Pixel { weights },
        OptimizerKind::AdamW { weight_decay: 1e-4 },
    );
}

#[test]
fn dropout_masks_the_gradient_as_it_masked_the_output() {
    let s = spec(
        [1, 4, 4],
        vec![
            LayerSpec::Flatten,
            LayerSpec::Dropout { prob: 0.5 },
            LayerSpec::Linear {
                inputs: 16,
                outputs: 1,
            },
        ],
    );
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = init_cpu(&s, 9);
    let x = vec![1.0; 16];
    let (_, tape) = net.forward_train(Activation::new(x.clone(), [1, 1, 4, 4]), 77);
    let grads = net.backward(tape, vec![1.0]);
    // d out / d weight_j = x_j · mask_j: 0 where dropped, 2 where kept.
    assert!(grads[0].iter().all(|&g| g == 0.0 || g == 2.0));
    let dropped = grads[0].iter().filter(|&&g| g == 0.0).count();
    assert!((2..=14).contains(&dropped), "{dropped} of 16 dropped");
    // Another seed draws another mask; evaluation drops nothing.
    let (_, tape) = net.forward_train(Activation::new(x.clone(), [1, 1, 4, 4]), 78);
    assert_ne!(net.backward(tape, vec![1.0])[0], grads[0]);
    let eval = net.forward(Activation::new(x, [1, 1, 4, 4]));
    let weights_sum: f32 = net.trainable_mut()[0].iter().sum::<f32>() + net.trainable_mut()[1][0];
    assert!((eval.data[0] - weights_sum).abs() < 1e-5);
}

/// A batch norm that follows a convolution runs partly inside it, on each group of images as
/// it is written (in training the sums behind its statistics, in evaluation all of it): the
/// same values as the batch norm's own passes, which run when an identity layer (dropout with
/// probability 0) stands between them; in training bit for bit. Gammas and betas are not the
/// initial ones, nor are the running statistics evaluation uses (the training pass updated
/// them); the planes are large enough for the convolutions' own kernels and several groups of
/// images, and the batch norms are followed by a ReLU, a leaky ReLU and nothing.
#[test]
fn batch_norm_inside_the_convolution_matches_its_own_passes() {
    let block = |c_in: usize, c_out: usize, activation: Option<LayerSpec>, apart: bool| {
        let mut layers = vec![conv(c_in, c_out, 3, 1, 1, c_in == 3)];
        if apart {
            layers.push(LayerSpec::Dropout { prob: 0.0 });
        }
        layers.push(LayerSpec::BatchNorm { channels: c_out });
        layers.extend(activation);
        layers
    };
    let layers = |apart: bool| {
        [
            block(3, 32, Some(LayerSpec::Relu), apart),
            block(32, 32, Some(LayerSpec::LeakyRelu { slope: 0.1 }), apart),
            block(32, 16, None, apart),
        ]
        .concat()
    };
    let (fused, apart) = (
        spec([3, 28, 28], layers(false)),
        spec([3, 28, 28], layers(true)),
    );
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (mut a, mut b) = (init_cpu(&fused, 5), init_cpu(&apart, 5));
    for (i, (ta, tb)) in a
        .trainable_mut()
        .into_iter()
        .zip(b.trainable_mut())
        .enumerate()
    {
        let values = random(ta.len(), 100 + i as u64);
        ta.copy_from_slice(&values);
        tb.copy_from_slice(&values);
    }
    let shape = [6, 3, 28, 28];
    let x = random(shape.iter().product(), 4);
    let (trained, _) = a.forward_train(Activation::new(x.clone(), shape), 1);
    let (expected, _) = b.forward_train(Activation::new(x.clone(), shape), 1);
    assert!(trained.data == expected.data, "training differs");
    let x = random(shape.iter().product(), 5);
    let out = a.forward(Activation::new(x.clone(), shape));
    let expected = b.forward(Activation::new(x, shape));
    assert_eq!(out.shape, expected.shape);
    let e = relative_error(&out.data, &expected.data);
    assert!(e < 1e-6, "evaluation differs by {e}");
    assert!(
        out.data.iter().any(|&v| v < 0.0),
        "the last block has no ReLU"
    );
}

/// `--ema` on both engines: three Adam steps of `res` (batch norm, whose running statistics
/// are averaged too) on the same batches from the same initial weights, decay 0.5 (ramped:
/// 1/10, 2/11, 3/12); the averaged models' outputs agree between the engines within 5e-3 of
/// the largest logit (the whole-model tolerance above; measured 8e-7), and differ from the
/// CPU engine's live model (by 0.15), so the average is what `Trainer::model` validates.
#[test]
fn the_weight_average_is_kept_alike_on_both_engines() {
    use convlab::engine::{Compute, InitSpec, OptimizerSpec, StepBatch, Trainer};
    let _serial = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let spec = ClassifierKind::Res.spec();
    let batch = |seed| StepBatch {
        images: random(4 * 28 * 28, seed),
        shape: [4, 1, 28, 28],
        targets: vec![0, 3, 7, 9],
    };
    let loss = LossSpec::Image { smoothing: None };
    let optim = |average| OptimizerSpec {
        weight_decay: 0.0,
        decoupled_decay: false,
        average,
    };
    let trained = |compute: &Compute, average| {
        let mut trainer =
            Trainer::new(&spec, &optim(average), &InitSpec::seeded(5), compute).unwrap();
        for seed in 0..3 {
            trainer.step(batch(seed), &loss, 1e-4, 0).unwrap();
        }
        let (logits, _) = trainer
            .model()
            .forward(random(3 * 28 * 28, 9), [3, 1, 28, 28]);
        logits
    };
    let (cpu, burn) = (Compute::cpu_engine(), Compute::burn_cpu());
    let averaged_cpu = trained(&cpu, Some(0.5));
    let averaged_burn = trained(&burn, Some(0.5));
    let live_cpu = trained(&cpu, None);
    let error = relative_error(&averaged_cpu, &averaged_burn);
    assert!(
        error < 5e-3,
        "averaged models differ between engines by {error}"
    );
    let apart = relative_error(&averaged_cpu, &live_cpu);
    assert!(
        apart > 100.0 * error.max(1e-6),
        "the averaged model's logits are the live model's ({apart})"
    );
}

/// `--whiten`'s frozen filters: held filters stay exactly as written through AdamW steps with
/// weight decay (which would move any value), on both engines, in the live and the averaged
/// weights, while the first convolution's other filters train; and the two engines' trained
/// models agree within the whole-model tolerance above (so burn's written filters are leaves
/// of its graph like any parameter).
#[test]
fn held_first_filters_stay_while_the_rest_trains_on_both_engines() {
    use convlab::engine::burn::cpu_from_record;
    use convlab::engine::cpu::LayerParams;
    use convlab::engine::{Compute, InitSpec, OptimizerSpec, StepBatch, Trainer};
    let _serial = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let spec = ClassifierKind::Res.spec();
    let held = random(18 * 9, 21);
    let optim = OptimizerSpec {
        weight_decay: 0.1,
        decoupled_decay: true,
        average: Some(0.5),
    };
    let loss = LossSpec::Image { smoothing: None };
    let trained = |compute: &Compute| {
        let mut trainer = Trainer::new(&spec, &optim, &InitSpec::seeded(5), compute).unwrap();
        let before = trainer.first_conv_weights().unwrap();
        trainer.hold_first_filters(held.clone());
        for seed in 0..3 {
            let batch = StepBatch {
                images: random(4 * 28 * 28, seed),
                shape: [4, 1, 28, 28],
                targets: vec![0, 3, 7, 9],
            };
            trainer.step(batch, &loss, 1e-2, 0).unwrap();
        }
        let after = trainer.first_conv_weights().unwrap();
        assert_eq!(after[..held.len()], held[..], "live held filters moved");
        let trained_part = relative_error(&after[held.len()..], &before[held.len()..]);
        assert!(trained_part > 1e-3, "the other filters did not train");
        let averaged = cpu_from_record(&spec, &trainer.model_record().unwrap()).unwrap();
        let LayerParams::Conv { weight, .. } = &averaged.layers[0] else {
            panic!("res starts with a convolution");
        };
        assert_eq!(
            weight[..held.len()],
            held[..],
            "averaged held filters moved"
        );
        let (logits, _) = trainer
            .model()
            .forward(random(3 * 28 * 28, 9), [3, 1, 28, 28]);
        logits
    };
    let cpu = trained(&Compute::cpu_engine());
    let burn = trained(&Compute::burn_cpu());
    let error = relative_error(&cpu, &burn);
    assert!(
        error < 5e-3,
        "the engines' trained models differ by {error}"
    );
}

/// `--identity-init`: each convolution's first `min(out, in)` filters pass their input channel
/// through the centre tap and nothing else (PyTorch's `nn.init.dirac_(w[:w.size(1)])`, which
/// also zeroes those filters' other taps); the later filters, biases, transposed convolutions
/// and linear layers keep burn's initial values; a 3x3 convolution of as many channels in as
/// out, its bias zeroed, then gives back its input exactly; and both engines' trainers start
/// from the same weights (their first outputs agree within the whole-model tolerance above).
#[test]
fn identity_init_makes_the_first_filters_pass_their_channel_through() {
    use convlab::engine::{Compute, InitSpec, OptimizerSpec, Trainer};
    let _serial = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let transposed = LayerSpec::ConvTranspose {
        in_channels: 3,
        out_channels: 2,
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    let s = spec(
        [3, 6, 6],
        vec![
            conv(3, 5, 3, 1, 1, true),
            conv(5, 3, 3, 1, 1, true),
            conv(3, 3, 3, 1, 1, true),
            transposed,
        ],
    );
    let plain = init_cpu(&s, 4);
    let identity = plain.clone().with_identity_convs();
    let weights = |net: &CpuNet| {
        net.tensors()
            .into_iter()
            .map(|(name, _, v)| (name, v.to_vec()))
            .collect::<Vec<_>>()
    };
    for ((name, before), (_, after)) in weights(&plain).into_iter().zip(weights(&identity)) {
        let filters = match name.as_str() {
            "layers.0.weight" => Some((3, 3)),
            "layers.1.weight" => Some((5, 3)),
            "layers.2.weight" => Some((3, 3)),
            _ => None,
        };
        let Some((c_in, identities)) = filters else {
            assert_eq!(before, after, "{name} changed");
            continue;
        };
        let filter = c_in * 9;
        for (d, (b, a)) in before.chunks(filter).zip(after.chunks(filter)).enumerate() {
            if d >= identities {
                assert_eq!(b, a, "{name} filter {d} changed");
                continue;
            }
            for (j, &v) in a.iter().enumerate() {
                let want = if j == d * 9 + 4 { 1.0 } else { 0.0 };
                assert_eq!(v, want, "{name} filter {d} value {j}");
            }
        }
    }
    // The third convolution alone, its bias zeroed: the identity.
    let alone = spec([3, 6, 6], vec![conv(3, 3, 3, 1, 1, true)]);
    let mut net = init_cpu(&alone, 4).with_identity_convs();
    net.trainable_mut()[1].fill(0.0);
    let x = random(2 * 3 * 6 * 6, 8);
    let out = net.forward(Activation::new(x.clone(), [2, 3, 6, 6]));
    assert_eq!(out.data.to_vec(), x);

    let optim = OptimizerSpec {
        weight_decay: 0.0,
        decoupled_decay: false,
        average: None,
    };
    let init = InitSpec {
        seed: 4,
        identity_convs: true,
    };
    let first_output = |compute: &Compute| {
        let trainer = Trainer::new(&s, &optim, &init, compute).unwrap();
        let (out, _) = trainer.model().forward(x.clone(), [2, 3, 6, 6]);
        out
    };
    let cpu = first_output(&Compute::cpu_engine());
    let burn = first_output(&Compute::burn_cpu());
    let error = relative_error(&cpu, &burn);
    assert!(error < 5e-3, "the engines start apart by {error}");
    let from_identity = identity.forward(Activation::new(x.clone(), [2, 3, 6, 6]));
    assert_eq!(cpu, from_identity.data.to_vec());
}

/// burn's pass over `net` (on the autodiff device) with loss `sum(output · r)`: the output,
/// the input gradient and the trainable tensors' gradients in the CPU engine's order.
fn burn_pass(
    net: &Net,
    x: Vec<f32>,
    shape: [usize; 4],
    r: &[f32],
    device: &Device,
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let xt = Tensor::<4>::from_data(TensorData::new(x, shape), device).require_grad();
    let out = net.forward_maps(xt.clone());
    let out_shape = out.dims();
    let rt = Tensor::<4>::from_data(TensorData::new(r.to_vec(), out_shape), device);
    let grads = (out.clone() * rt).sum().backward();
    let dx = values(xt.grad(&grads).unwrap());
    (values(out), dx, burn_param_grads(net, &grads))
}

/// convlab's CPU engine's pass with loss `sum(output · r)`: the output, the input gradient and
/// the trainable tensors' gradients.
fn cpu_pass(
    net: &CpuNet,
    x: Vec<f32>,
    shape: [usize; 4],
    r: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let (out, tape) = net.clone().forward_train(Activation::new(x, shape), 0);
    let out = out.data.to_vec();
    let (grads, dx) = net.backward_to_input(tape, r.to_vec(), true);
    (out, dx.unwrap(), grads)
}

/// `--precision bf16` on one product layer, three ways:
/// - against the same engine in fp32 on the operands rounded to bf16 by hand (the input and
///   weights; the output gradient `r` for the gradients): the same numbers up to the order of
///   the sums (1e-5 of the largest; bit for bit where no bf16 kernel runs), so the rounding
///   falls on exactly the products' operands (a missed rounding shows at 2^-9);
/// - against burn on those rounded operands, with this file's tolerances (another summation
///   order);
/// - against fp32 on the operands as they are, within what bf16 rounding allows: bf16 keeps 8
///   significant bits, so rounding to nearest moves each operand by at most 2^-8 of itself,
///   each product by at most (2 * 2^-8 + 2^-16) of itself and each output by that much of
///   `Σ |a| |b|` over its products, which burn computes as the same pass over `|x|`, `|w|` and
///   `|r|` (its bias adds |b|, which only widens the bound), plus 1e-6 of the largest value
///   for the last bits of fp32's own sums.
///
/// The bias is no product's operand: its gradient sums the fp32 output gradient, as fp32 does.
fn check_bf16_against_burn(spec: &ModelSpec, batch: usize, seed: u64, kernels: bool) {
    // A max-pool after the product picks its maximum anew in bf16, and near ties (within
    // bf16's rounding) move gradients wholesale: the bound holds for products alone.
    let pooled = spec.layers.contains(&LayerSpec::MaxPool2);
    use convlab::engine::Precision;
    use convlab::engine::burn::burn_from_cpu;
    use convlab::engine::cpu::bf16::round;
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(seed);
    let fp32 = cpu_from_burn(spec, &Net::init(spec, &device));
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let x = random(shape.iter().product(), seed + 1);
    let out_len = fp32.forward(Activation::new(x.clone(), shape)).data.len();
    let r = random(out_len, seed + 2);
    let net = fp32.clone().with_precision(Precision::Bf16);
    let net = net.with_bf16_kernels(kernels);
    let bf16 = cpu_pass(&net, x.clone(), shape, &r);
    let weight = |g: &[Vec<f32>]| g[0].clone();

    let rounded = |v: &[f32]| v.iter().map(|&a| round(a)).collect::<Vec<_>>();
    let mut by_hand = fp32.clone();
    let first = by_hand.trainable_mut().into_iter().next().unwrap();
    first.copy_from_slice(&rounded(first));
    let (rx, rr) = (rounded(&x), rounded(&r));
    let ours = cpu_pass(&by_hand, rx.clone(), shape, &rr);
    for (what, a, b) in [
        ("output", &bf16.0, &ours.0),
        ("input gradient", &bf16.1, &ours.1),
        ("weight gradient", &weight(&bf16.2), &weight(&ours.2)),
    ] {
        // Equal but for the order of the sums (the bf16 micro-kernel adds pairs of products);
        // without it, the same kernels on the same values.
        let e = relative_error(a, b);
        let allowed = if net.bf16_kernels { 1e-5 } else { 0.0 };
        assert!(
            e <= allowed,
            "{what} differs from fp32 on rounded operands by {e}: {spec:?}"
        );
    }

    let burn = burn_pass(&burn_from_cpu(&by_hand, &device), rx, shape, &rr, &device);
    for (what, a, b, tolerance) in [
        ("output", &bf16.0, &burn.0, 1e-4),
        ("input gradient", &bf16.1, &burn.1, 2e-3),
        ("weight gradient", &weight(&bf16.2), &weight(&burn.2), 2e-3),
    ] {
        let e = relative_error(a, b);
        assert!(
            e < tolerance,
            "{what} differs from burn's on rounded operands by {e}: {spec:?}"
        );
    }

    let exact = cpu_pass(&fp32, x.clone(), shape, &r);
    if pooled {
        return;
    }
    let mut magnitudes = fp32.clone();
    for t in magnitudes.trainable_mut() {
        t.iter_mut().for_each(|v| *v = v.abs());
    }
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let sums = burn_pass(
        &burn_from_cpu(&magnitudes, &device),
        abs(&x),
        shape,
        &abs(&r),
        &device,
    );
    for (what, got, want, sums) in [
        ("output", &bf16.0, &exact.0, &sums.0),
        ("input gradient", &bf16.1, &exact.1, &sums.1),
        (
            "weight gradient",
            &weight(&bf16.2),
            &weight(&exact.2),
            &weight(&sums.2),
        ),
    ] {
        let slack = 1e-6 * want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, ((g, w), s)) in got.iter().zip(want).zip(sums).enumerate() {
            let allowed = (2f32.powi(-7) + 2f32.powi(-16)) * s * (1.0 + 1e-5) + slack;
            assert!(
                (g - w).abs() <= allowed,
                "{what}[{i}]: bf16 {g} vs fp32 {w}, more than bf16 rounding allows ({allowed}): {spec:?}"
            );
        }
    }
    if bf16.2.len() == 2 {
        let e = relative_error(&bf16.2[1], &exact.2[1]);
        assert!(
            e < 1e-6,
            "bias gradient differs from fp32's by {e}: {spec:?}"
        );
    }
}

#[test]
fn bf16_products_match_burn_on_rounded_operands_and_fp32_within_rounding() {
    let transposed = |c_in, c_out, k, stride, padding| LayerSpec::ConvTranspose {
        in_channels: c_in,
        out_channels: c_out,
        kernel: k,
        stride,
        padding,
    };
    let linear = LayerSpec::Linear {
        inputs: 37,
        outputs: 11,
    };
    for (input, layers) in [
        ([3, 7, 5], vec![conv(3, 4, 3, 1, 1, true)]),
        ([2, 9, 8], vec![conv(2, 3, 3, 2, 1, false)]),
        ([4, 6, 6], vec![conv(4, 2, 1, 1, 0, true)]),
        ([3, 8, 8], vec![conv(3, 5, 4, 2, 1, true)]),
        ([16, 28, 28], vec![conv(16, 32, 3, 1, 1, true)]),
        // Small planes with the output channels in the lanes (`conv::lanes`): an odd channel
        // count (the last pair half zero), four vectors of outputs, two.
        ([17, 14, 14], vec![conv(17, 64, 3, 1, 1, true)]),
        ([16, 7, 7], vec![conv(16, 48, 3, 1, 1, false)]),
        // Wide enough for Winograd's method in fp32; bf16 takes the lanes kernel instead.
        ([128, 7, 7], vec![conv(128, 128, 3, 1, 1, false)]),
        ([32, 14, 14], vec![conv(32, 64, 3, 2, 1, false)]),
        // A grid without borders (2x2, stride 2): pairs of positions span rows.
        ([8, 10, 10], vec![conv(8, 16, 2, 2, 0, true)]),
        ([4, 4, 4], vec![transposed(4, 3, 4, 2, 1)]),
        ([3, 5, 3], vec![transposed(3, 2, 3, 1, 1)]),
        ([16, 8, 8], vec![transposed(16, 8, 4, 2, 1)]),
        ([37, 1, 1], vec![LayerSpec::Flatten, linear]),
        (
            [3, 8, 8],
            vec![conv(3, 4, 3, 1, 1, true), LayerSpec::MaxPool2],
        ),
        // Pooled after a strided convolution: no flipped kernel, the input gradient by phases.
        (
            [4, 8, 8],
            vec![conv(4, 5, 3, 2, 1, true), LayerSpec::MaxPool2],
        ),
    ] {
        // Both routes wherever the CPU has AVX512-BF16, whichever `with_precision` chose:
        // the bf16 kernels, and fp32's kernels on operands the network rounded.
        for (batch, kernels) in [(1, true), (3, true), (1, false), (3, false)] {
            check_bf16_against_burn(&spec(input, layers.clone()), batch, 21, kernels);
        }
    }
}

/// A bf16 training pass stores the activations between convolutions and batch norms in bf16
/// (a convolution's output before its batch norm; a batch norm's output before the
/// convolution that reads it, also through a saved skip and a concatenation;
/// `engine::cpu::conv` and `layers` hold each of those passes to the fp32 pass on the stored
/// values, bit for bit). The whole pass of a small segmenter, on the same weights and batch
/// as fp32:
/// - the two bf16 routes (the bf16 kernels, fp32's on rounded operands) agree to the order of
///   their sums (1e-5 of the largest value; measured at most 3.7e-7);
/// - the output, and the gradients of the last convolution (no batch norm after it), within
///   0.02 of fp32's (relative to the largest value; measured at most 0.0054);
/// - every other gradient within 0.25 of fp32's in L2 norm (measured 0.004-0.20; a
///   convolution followed by batch norm has a weight gradient orthogonal to its weights, far
///   smaller than its products, so bf16's rounding of them is large beside it), but for the
///   transposed convolution's bias: batch norm after it removes any shift, so its gradient
///   is zero but for rounding, held below 1e-5 of its weights' largest gradient on every
///   route (measured 2e-7).
///
/// Measured on an Intel Xeon (family 6 model 207).
#[test]
fn bf16_activations_between_layers_stay_within_bf16_error_of_fp32() {
    use convlab::engine::Precision;
    let _turn = BURN_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    device.seed(5);
    let bn_relu = |channels| [LayerSpec::BatchNorm { channels }, LayerSpec::Relu];
    // A segmenter in small: a skip saved from a stored activation, a strided convolution, a
    // transposed one, the concatenation feeding a convolution, a 1x1 head.
    let layers = [
        vec![conv(4, 8, 3, 1, 1, false)],
        bn_relu(8).to_vec(),
        vec![LayerSpec::SaveSkip, conv(8, 8, 3, 2, 1, false)],
        bn_relu(8).to_vec(),
        vec![LayerSpec::ConvTranspose {
            in_channels: 8,
            out_channels: 8,
            kernel: 4,
            stride: 2,
            padding: 1,
        }],
        bn_relu(8).to_vec(),
        vec![LayerSpec::ConcatSkip, conv(16, 8, 3, 1, 1, false)],
        bn_relu(8).to_vec(),
        vec![conv(8, 3, 1, 1, 0, true)],
    ];
    let spec = spec([4, 12, 12], layers.concat());
    let fp32 = cpu_from_burn(&spec, &Net::init(&spec, &device));
    let shape = [3, 4, 12, 12];
    let x = random(shape.iter().product(), 6);
    let r = random(3 * 3 * 12 * 12, 7);
    let parts =
        |(out, dx, grads): (Vec<f32>, Vec<f32>, Vec<Vec<f32>>)| [vec![out, dx], grads].concat();
    let exact = parts(cpu_pass(&fp32, x.clone(), shape, &r));
    let routes = [false, true].map(|kernels| {
        let net = fp32.clone().with_precision(Precision::Bf16);
        parts(cpu_pass(
            &net.with_bf16_kernels(kernels),
            x.clone(),
            shape,
            &r,
        ))
    });
    // The output, the last convolution's weight and bias gradients.
    let last = [0, exact.len() - 2, exact.len() - 1];
    // The transposed convolution's weight and bias gradients.
    let (up, up_bias) = (8, 9);
    let largest = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for p in routes.iter().chain([&exact]) {
        let (bias, weight) = (largest(&p[up_bias]), largest(&p[up]));
        assert!(bias < 1e-5 * weight, "a bias before batch norm: {bias}");
    }
    for bf16 in &routes {
        for (i, (got, want)) in bf16.iter().zip(&exact).enumerate() {
            if last.contains(&i) {
                let e = relative_error(got, want);
                assert!(e < 0.02, "part {i} differs from fp32 by {e}");
            } else if i != up_bias {
                let d: Vec<f32> = got.iter().zip(want).map(|(a, b)| a - b).collect();
                let e = l2(&d) / l2(want);
                assert!(e < 0.25, "part {i} differs from fp32 by {e} (L2)");
            }
        }
    }
    for (i, (a, b)) in routes[0].iter().zip(&routes[1]).enumerate() {
        let e = relative_error(a, b);
        assert!(
            e < 1e-5 || i == up_bias,
            "part {i}: the routes differ by {e}"
        );
    }
}

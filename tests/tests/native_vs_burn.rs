//! The native engine against burn's autodiff, the oracle: the same loss and the same gradient
//! for every layer on random 2D and 3D networks, and the same loss curve over 50 Adam steps.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use msnet::config::InitSpec;
use msnet::sample::Sample;
use msnet::{Config, Spec, Weights};
use msnet_io::phantom::nested_ellipses;
use msnet_native::{NativeOptions, NativeTrainer};
use msnet_trainer::MsNet;
use msnet_trainer::loss::soft_dice;

/// Relative L2 error per tensor that every layer's gradient must meet.
const GRADIENT_TOLERANCE: f64 = 1e-4;

fn problem(dims: usize, size: [usize; 3], samples: usize) -> (Spec, Weights, Vec<Sample>) {
    let mut config = Config::new(dims, 2, 3);
    config.input_size = size;
    config.normalization.mean = vec![0.4, 0.5];
    config.normalization.std = vec![0.2, 0.3];
    let spec = Spec::new(&config);
    let weights = msnet::weights::init(&spec, 11, InitSpec::default());
    let samples = (0..samples)
        .map(|i| nested_ellipses(70 + i as u64, 2, size, 3))
        .collect();
    (spec, weights, samples)
}

fn tensors(batch: &[&Sample], classes: usize, device: &Device) -> (Tensor<5>, Tensor<5>) {
    let [d, h, w] = batch[0].shape;
    let n = batch.len();
    let image: Vec<f32> = batch.iter().flat_map(|s| s.image.iter().copied()).collect();
    let voxels = d * h * w;
    let mut one_hot = vec![0f32; n * classes * voxels];
    for (b, s) in batch.iter().enumerate() {
        for (j, &l) in s.labels.iter().enumerate() {
            one_hot[(b * classes + l as usize) * voxels + j] = 1.0;
        }
    }
    let c = batch[0].channels;
    (
        Tensor::from_data(TensorData::new(image, [n, c, d, h, w]), device),
        Tensor::from_data(TensorData::new(one_hot, [n, classes, d, h, w]), device),
    )
}

fn to_vec(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// burn's loss and per-layer gradients (file layout); `None` for a layer the output does not
/// depend on (the coarsest grid's right-hand side).
fn burn_gradients(
    spec: &Spec,
    weights: &Weights,
    batch: &[&Sample],
) -> (f64, Vec<Option<Vec<f32>>>) {
    let device = Device::flex().autodiff();
    let net = MsNet::from_weights(spec, weights, &device);
    let (images, targets) = tensors(batch, spec.config.classes, &device);
    let loss = soft_dice(net.forward(spec, images), targets);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let grads = loss.backward();
    let per_layer = net
        .convs
        .iter()
        .map(|p| p.val().grad(&grads).map(to_vec))
        .collect();
    (value, per_layer)
}

fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let norm: f64 = b.iter().map(|&b| (b as f64).powi(2)).sum();
    (diff / norm.max(1e-30)).sqrt()
}

fn compare_gradients(dims: usize, size: [usize; 3]) {
    let (spec, weights, samples) = problem(dims, size, 2);
    let batch: Vec<&Sample> = samples.iter().collect();
    let (burn_loss, burn) = burn_gradients(&spec, &weights, &batch);
    let mut native = NativeTrainer::new(&spec, &weights, NativeOptions::default()).unwrap();
    let (loss, grads) = native.loss_and_gradients(&batch).unwrap();
    assert!(
        (loss - burn_loss).abs() < 1e-5,
        "{dims}D loss {loss} vs burn {burn_loss}"
    );
    let mut worst = (0.0, "");
    // Layers no live node applies (the coarsest grid's right-hand side): burn has no
    // gradient for them, and the native engine must give exactly zero.
    let graph = msnet::ir::Graph::record(&spec);
    let live = graph.live();
    let mut used = vec![false; spec.convs.len()];
    for (node, &l) in graph.nodes.iter().zip(&live) {
        if let (msnet::ir::Op::Conv(c), true) = (&node.op, l) {
            used[c.index] = true;
        }
    }
    for (c, (ours, theirs)) in spec.convs.iter().zip(grads.iter().zip(&burn)) {
        let Some(theirs) = theirs else {
            assert!(
                !used[c.index],
                "{}: burn has no gradient for a live layer",
                c.name
            );
            assert!(
                ours.iter().all(|&g| g == 0.0),
                "{}: a dead layer's gradient",
                c.name
            );
            continue;
        };
        let e = relative_l2(ours, theirs);
        if e > worst.0 {
            worst = (e, c.name.as_str());
        }
    }
    assert_eq!(
        burn.iter().filter(|g| g.is_none()).count(),
        used.iter().filter(|u| !**u).count(),
        "{dims}D: burn's gradient-free layers are the graph's dead ones"
    );
    eprintln!(
        "{dims}D worst relative L2 gradient error: {:.2e} ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= GRADIENT_TOLERANCE,
        "{dims}D: `{}` gradient differs from burn's by {:.2e} (relative L2)",
        worst.1,
        worst.0
    );
}

#[test]
fn gradients_2d_equal_burns() {
    compare_gradients(2, [1, 32, 32]);
}

#[test]
fn gradients_3d_equal_burns() {
    compare_gradients(3, [16, 32, 32]);
}

#[test]
fn fifty_adam_steps_follow_burns_loss_curve() {
    let (spec, weights, samples) = problem(2, [1, 32, 32], 5);
    let lr = |it: usize| 1e-3 * 0.8f64.powi((it / 20) as i32);
    let pick = |it: usize| -> Vec<&Sample> { (0..2).map(|k| &samples[(2 * it + k) % 5]).collect() };

    let device = Device::flex().autodiff();
    let mut net = MsNet::from_weights(&spec, &weights, &device);
    let mut adam = AdamConfig::new().with_epsilon(1e-8).init();
    let mut burn_losses = Vec::new();
    for it in 0..50 {
        let (images, targets) = tensors(&pick(it), 3, &device);
        let loss = soft_dice(net.forward(&spec, images), targets);
        burn_losses.push(loss.clone().into_scalar::<f32>() as f64);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = adam.step(lr(it), net, grads);
    }
    let _ = net.devices();

    let mut native = NativeTrainer::new(&spec, &weights, NativeOptions::default()).unwrap();
    let losses: Vec<f64> = (0..50)
        .map(|it| native.step(&pick(it), lr(it)).unwrap())
        .collect();
    let worst = losses
        .iter()
        .zip(&burn_losses)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "loss {:.4} -> {:.4} (burn {:.4} -> {:.4}); largest difference {worst:.2e}",
        losses[0], losses[49], burn_losses[0], burn_losses[49]
    );
    assert!(
        losses[49] < losses[0] - 0.05,
        "the loss did not fall: {losses:?}"
    );
    assert!(worst < 2e-3, "native {losses:?}\nburn {burn_losses:?}");
}

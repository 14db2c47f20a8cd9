//! Whole-network gradients of the native engine against central finite differences of its own
//! loss, and bit-identical training at any thread count. (The comparison with burn's autodiff
//! lives in the workspace's `tests` crate, which may link burn.)

use msnet::config::InitSpec;
use msnet::sample::Sample;
use msnet::{Config, Spec, Weights};
use msnet_io::phantom::nested_ellipses;
use msnet_native::{NativeOptions, NativeTrainer};

fn setup(dims: usize, size: [usize; 3], batch: usize) -> (Spec, Weights, Vec<Sample>) {
    let mut config = Config::new(dims, 2, 3);
    config.input_size = size;
    let spec = Spec::new(&config);
    let weights = msnet::weights::init(&spec, 3, InitSpec::default());
    let samples = (0..batch)
        .map(|i| nested_ellipses(40 + i as u64, 2, size, 3))
        .collect();
    (spec, weights, samples)
}

fn direction(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `<∇L, v>` against the central difference `(L(w + hv) − L(w − hv)) / 2h` for a random
/// direction `v` over each of `layers` (all others fixed), `h` scaled to the layer's weights.
/// A loose check (5%): the network's ReLUs make the loss only piecewise smooth and float32
/// round-off bounds how small `h` can be, so this catches a wrong rule (a sign, a factor, a
/// missed path), while the comparison with burn's autodiff (the `tests` crate) checks every
/// layer to a relative L2 error of 1e-4.
fn check_direction(dims: usize, size: [usize; 3], layers: &[&str]) {
    let (spec, weights, samples) = setup(dims, size, 2);
    let batch: Vec<&Sample> = samples.iter().collect();
    let mut trainer = NativeTrainer::new(&spec, &weights, NativeOptions::default()).unwrap();
    let (_, grads) = trainer.loss_and_gradients(&batch).unwrap();
    for name in layers {
        let layer = spec.conv(name).unwrap().index;
        let v = direction(weights.tensors[layer].len(), layer as u64 + 1);
        let scale = weights.tensors[layer]
            .iter()
            .map(|w| w.abs())
            .fold(0.0, f32::max);
        let loss_at = |step: f32| {
            let mut w = weights.clone();
            for (w, v) in w.tensors[layer].iter_mut().zip(&v) {
                *w += step * v;
            }
            let mut t = NativeTrainer::new(&spec, &w, NativeOptions::default()).unwrap();
            t.loss_and_gradients(&batch).unwrap().0
        };
        let h = 2e-3 * scale;
        let numeric = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
        let analytic: f64 = grads[layer]
            .iter()
            .zip(&v)
            .map(|(&g, &v)| g as f64 * v as f64)
            .sum();
        let err = (numeric - analytic).abs() / numeric.abs().max(analytic.abs());
        assert!(
            err < 5e-2 && analytic.abs() > 1e-6,
            "{dims}D {name}: finite difference {numeric:e}, gradient {analytic:e}"
        );
    }
}

#[test]
fn gradients_2d_match_finite_differences() {
    check_direction(
        2,
        [1, 32, 32],
        &[
            "head.weight",
            "down.1.L1.weight",
            "down.1.T2.weight",
            "down.3.K.weight",
            "restrict_u.weight",
            "restrict_r.weight",
            "up.1.T1.weight",
            "out.O2.weight",
        ],
    );
}

#[test]
fn gradients_3d_match_finite_differences() {
    check_direction(
        3,
        [16, 16, 16],
        &[
            "head.weight",
            "down.2.L2.weight",
            "restrict_u.weight",
            "up.1.K.weight",
            "out.O1.weight",
        ],
    );
}

#[test]
fn training_is_bit_identical_at_any_thread_count() {
    let (spec, weights, samples) = setup(2, [1, 64, 48], 3);
    let run = |threads: usize| {
        let opts = NativeOptions {
            threads,
            ..NativeOptions::default()
        };
        let mut t = NativeTrainer::new(&spec, &weights, opts).unwrap();
        let mut losses = Vec::new();
        for it in 0..3 {
            let batch: Vec<&Sample> = (0..2).map(|k| &samples[(it + k) % 3]).collect();
            losses.push(t.step(&batch, 1e-3).unwrap());
        }
        (t.weights(), losses)
    };
    let (one, losses) = run(1);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    assert_ne!(one, weights, "the steps changed nothing");
    for threads in [2, 3] {
        let (w, l) = run(threads);
        assert_eq!(l, losses, "{threads} threads: losses");
        assert!(
            w == one,
            "{threads} threads: the weights differ from one thread's"
        );
    }
}

#[test]
fn bad_samples_are_named_errors() {
    let (spec, weights, mut samples) = setup(2, [1, 32, 32], 3);
    let trainer = NativeTrainer::new(&spec, &weights, NativeOptions::default()).unwrap();
    samples[0].labels[5] = 7;
    samples[1].image[3] = f32::NAN;
    samples[2].shape = [1, 16, 64];
    for (s, want) in samples.iter().zip(["label 7", "NaN", "[1, 16, 64]"]) {
        let e = trainer.check(&[s]).unwrap_err().to_string();
        assert!(e.contains(&s.name) && e.contains(want), "{e}");
    }
    let mut wrong = weights.clone();
    wrong.tensors[4].pop();
    assert!(NativeTrainer::new(&spec, &wrong, NativeOptions::default()).is_err());
}

#[test]
fn a_step_reports_the_largest_phase_softmax_input_the_probe_sees() {
    let (spec, weights, samples) = setup(2, [1, 32, 32], 1);
    let mut t = NativeTrainer::new(&spec, &weights, NativeOptions::default()).unwrap();
    let batch = [&samples[0]];
    let probed = t.probe(&batch).unwrap();
    let largest = probed
        .phases
        .iter()
        .map(|p| p.max_abs_input)
        .fold(0.0f32, f32::max);
    assert!(largest > 0.0 && probed.phases.len() == 2 * spec.config.grids);
    // The step's forward pass runs on the probed weights.
    t.step(&batch, 1e-3).unwrap();
    assert_eq!(t.largest_phase_input(), largest);
    // Larger weights, larger energies: the measure follows the network, not a constant.
    let mut doubled = weights.clone();
    for w in &mut doubled.tensors {
        w.iter_mut().for_each(|v| *v *= 2.0);
    }
    let mut t = NativeTrainer::new(&spec, &doubled, NativeOptions::default()).unwrap();
    t.step(&batch, 1e-3).unwrap();
    assert!(
        t.largest_phase_input() > 2.0 * largest,
        "{} {largest}",
        t.largest_phase_input()
    );
}

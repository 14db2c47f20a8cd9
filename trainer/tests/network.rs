//! The burn lowering against the definitions of MSNET.md: simplex constraints, the
//! prolongation and pooling formulas, the Dice loss, and weight round trips.

use burn::tensor::{Device, Tensor, TensorData};
use msnet::config::InitSpec;
use msnet::graph::{self, Lowering};
use msnet::spec::ConvSpec;
use msnet::{Config, Model, Spec};
use msnet_trainer::lowering::BurnLowering;
use msnet_trainer::{MsNet, loss};

fn device() -> Device {
    Device::flex()
}

fn tensor(data: Vec<f32>, shape: [usize; 5]) -> Tensor<5> {
    Tensor::from_data(TensorData::new(data, shape), &device())
}

fn values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 23) as f32) * 0.1 - 1.0).collect()
}

/// A lowering that forwards to burn and marks values that must lie on the phase simplex:
/// the outputs of the phase softmax and everything pooled or prolonged from them.
struct SimplexCheck<'a> {
    inner: BurnLowering<'a>,
    phases: usize,
    checked: usize,
}

impl SimplexCheck<'_> {
    fn check(&mut self, t: &Tensor<5>) {
        let [b, c, d, h, w] = t.dims();
        let v = values(t.clone());
        let i_per = c / self.phases;
        let vox = d * h * w;
        for bi in 0..b {
            for i in 0..i_per {
                for j in 0..vox {
                    let sum: f32 = (0..self.phases)
                        .map(|n| v[((bi * c) + n * i_per + i) * vox + j])
                        .sum();
                    assert!((sum - 1.0).abs() < 1e-5, "phase sum {sum}");
                }
            }
        }
        assert!(v.iter().all(|x| (0.0..=1.0 + 1e-6).contains(x)));
        self.checked += 1;
    }
}

impl<'a> Lowering for SimplexCheck<'a> {
    type Value = (Tensor<5>, bool);
    fn normalize(&mut self, x: &Self::Value, m: &[f32], s: &[f32]) -> Self::Value {
        (self.inner.normalize(&x.0, m, s), false)
    }
    fn conv(&mut self, l: &ConvSpec, x: &Self::Value) -> Self::Value {
        (self.inner.conv(l, &x.0), false)
    }
    fn relu(&mut self, x: &Self::Value) -> Self::Value {
        (self.inner.relu(&x.0), false)
    }
    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        (self.inner.add(&a.0, &b.0), false)
    }
    fn sub(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        (self.inner.sub(&a.0, &b.0), false)
    }
    fn mul(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        (self.inner.mul(&a.0, &b.0), false)
    }
    fn affine(&mut self, x: &Self::Value, s: f32, t: f32) -> Self::Value {
        (self.inner.affine(&x.0, s, t), false)
    }
    fn square(&mut self, x: &Self::Value) -> Self::Value {
        (self.inner.square(&x.0), false)
    }
    fn phase_softmax(&mut self, x: &Self::Value, p: usize) -> Self::Value {
        let v = self.inner.phase_softmax(&x.0, p);
        self.check(&v);
        (v, true)
    }
    fn avg_pool(&mut self, x: &Self::Value) -> Self::Value {
        let v = self.inner.avg_pool(&x.0);
        if x.1 {
            self.check(&v);
        }
        (v, x.1)
    }
    fn prolong(&mut self, x: &Self::Value) -> Self::Value {
        let v = self.inner.prolong(&x.0);
        if x.1 {
            self.check(&v);
        }
        (v, x.1)
    }
    fn class_softmax(&mut self, x: &Self::Value) -> Self::Value {
        (self.inner.class_softmax(&x.0), false)
    }
}

fn small_config(dims: usize, in_ch: usize, classes: usize) -> Config {
    let mut c = Config::new(dims, in_ch, classes);
    c.input_size = if dims == 3 { [16, 16, 16] } else { [1, 32, 32] };
    c
}

#[test]
fn v_stays_on_the_simplex_and_probabilities_sum_to_one() {
    for (dims, in_ch, classes) in [(2, 3, 3), (3, 1, 4)] {
        let cfg = small_config(dims, in_ch, classes);
        let spec = Spec::new(&cfg);
        let net = msnet_trainer::train::initial_network(&spec, 5, InitSpec::default(), &device());
        let [d, h, w] = cfg.input_size;
        let n = 2 * in_ch * d * h * w;
        let image = tensor(
            ramp(n).iter().map(|v| (v + 1.0) / 2.5).collect(),
            [2, in_ch, d, h, w],
        );
        let dev = device();
        let mut check = SimplexCheck {
            inner: BurnLowering {
                weights: &net.convs,
                dims,
                device: &dev,
            },
            phases: cfg.phases,
            checked: 0,
        };
        let (probs, _) = graph::forward(&mut check, &spec, &(image, false));
        // 1 initial + 9 FEM updates of v, 4 pooled, 4 prolonged.
        assert_eq!(check.checked, 18);
        assert_eq!(probs.dims(), [2, classes, d, h, w]);
        let p = values(probs);
        let vox = d * h * w;
        for b in 0..2 {
            for j in 0..vox {
                let s: f32 = (0..classes).map(|c| p[(b * classes + c) * vox + j]).sum();
                assert!((s - 1.0).abs() < 1e-5, "class sum {s}");
            }
        }
    }
}

/// MSNET.md's prolongation along one axis, written directly from the formula.
fn prolong_reference(x: &[f32], dims: [usize; 5], axis: usize) -> (Vec<f32>, [usize; 5]) {
    let mut out_dims = dims;
    out_dims[axis] *= 2;
    let n = dims[axis];
    let stride: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let mut out = vec![0f32; x.len() * 2];
    for o in 0..outer {
        for i in 0..n {
            for s in 0..stride {
                let at = |k: usize| x[(o * n + k) * stride + s];
                let even = 0.75 * at(i) + 0.25 * at(i.saturating_sub(1));
                let odd = 0.75 * at(i) + 0.25 * at((i + 1).min(n - 1));
                out[(o * 2 * n + 2 * i) * stride + s] = even;
                out[(o * 2 * n + 2 * i + 1) * stride + s] = odd;
            }
        }
    }
    (out, out_dims)
}

#[test]
fn prolongation_matches_the_formula_in_2d_and_3d() {
    let dev = device();
    for (dims, shape) in [
        (2, [1, 2, 1, 3, 4]),
        (3, [2, 1, 2, 3, 5]),
        (3, [1, 1, 1, 1, 2]),
    ] {
        let n: usize = shape.iter().product();
        let x = ramp(n);
        let mut low = BurnLowering {
            weights: &[],
            dims,
            device: &dev,
        };
        let got = low.prolong(&tensor(x.clone(), shape));
        let axes: &[usize] = if dims == 3 { &[2, 3, 4] } else { &[3, 4] };
        let (mut want, mut want_dims) = (x, shape);
        for &a in axes {
            (want, want_dims) = prolong_reference(&want, want_dims, a);
        }
        assert_eq!(got.dims(), want_dims);
        for (g, w) in values(got).iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}

#[test]
fn average_pooling_matches_the_formula() {
    let dev = device();
    let shape = [1, 2, 4, 4, 6];
    let x = ramp(shape.iter().product());
    let mut low = BurnLowering {
        weights: &[],
        dims: 3,
        device: &dev,
    };
    let got = values(low.avg_pool(&tensor(x.clone(), shape)));
    let at = |c: usize, z: usize, y: usize, w: usize| x[((c * 4 + z) * 4 + y) * 6 + w];
    let mut k = 0;
    for c in 0..2 {
        for z in 0..2 {
            for y in 0..2 {
                for w in 0..3 {
                    let mut s = 0.0;
                    for dz in 0..2 {
                        for dy in 0..2 {
                            for dw in 0..2 {
                                s += at(c, 2 * z + dz, 2 * y + dy, 2 * w + dw);
                            }
                        }
                    }
                    assert!((got[k] - s / 8.0).abs() < 1e-6);
                    k += 1;
                }
            }
        }
    }
}

#[test]
fn dice_loss_matches_a_hand_computed_case() {
    // Two classes, four pixels. Class 0: p = [0.9, 0.8, 0.3, 0.1], y = [1, 1, 0, 0]
    // overlap 1.7, sums 2.1 + 2 -> (3.4 + 1) / (4.1 + 1) = 0.862745...
    // Class 1: p = [0.1, 0.2, 0.7, 0.9], y = [0, 0, 1, 1]
    // overlap 1.6, sums 1.9 + 2 -> (3.2 + 1) / (3.9 + 1) = 0.857142...
    let p = tensor(
        vec![0.9, 0.8, 0.3, 0.1, 0.1, 0.2, 0.7, 0.9],
        [1, 2, 1, 2, 2],
    );
    let y = tensor(vec![1., 1., 0., 0., 0., 0., 1., 1.], [1, 2, 1, 2, 2]);
    let l = loss::soft_dice(p, y).into_scalar::<f32>();
    let want = 1.0 - (4.4 / 5.1 + 4.2 / 4.9) / 2.0;
    assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    // A perfect prediction has zero loss.
    let y2 = tensor(vec![1., 1., 0., 0., 0., 0., 1., 1.], [1, 2, 1, 2, 2]);
    let perfect = loss::soft_dice(y2.clone(), y2).into_scalar::<f32>();
    assert!(perfect.abs() < 1e-7);
}

#[test]
fn weights_round_trip_bit_exactly_through_burn_and_disk() {
    let cfg = small_config(3, 1, 4);
    let spec = Spec::new(&cfg);
    let weights = msnet::weights::init(&spec, 11, InitSpec::default());
    let net = MsNet::from_weights(&spec, &weights, &device());
    assert_eq!(net.to_weights(), weights);
    let dir = std::env::temp_dir().join(format!("msnet-rt-{}", std::process::id()));
    let model = Model {
        spec: spec.clone(),
        weights,
    };
    model.save(&dir).unwrap();
    let back = Model::load(&dir).unwrap();
    assert_eq!(back.weights, model.weights);
    assert_eq!(back.spec.config, cfg);
    std::fs::remove_dir_all(&dir).unwrap();
}

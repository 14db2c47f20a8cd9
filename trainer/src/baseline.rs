//! The U-Net baseline of the paper's comparisons (Ronneberger, Fischer and Brox, 2015),
//! trained by the same loop as MSNet: same batches, soft Dice loss, Adam and schedule.
//!
//! It is the original architecture (two 3×3 convolutions + ReLU per level, 2×2 max
//! pooling, 2×2 stride-2 transposed convolutions, skip concatenation, a 1×1 head, no batch
//! normalisation) with the channel widths divided: base width 16 gives 16-32-64-128-256 and
//! about 1.9M parameters, where the paper's U-Net (base 64) has 31M. Convolutions are padded
//! ("same") so the output matches the input size, as in every segmentation comparison that
//! quotes it. Initialisation is burn's default (Kaiming uniform), seeded by the run's seed.
//!
//! Training only, 2D only: the baseline is never exported and is not part of MSNet's spec.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};

/// Two 3×3 convolutions, each followed by ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    first: Conv2d,
    second: Conv2d,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            first: conv(cin, cout),
            second: conv(cout, cout),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.second.forward(relu(self.first.forward(x))))
    }
}

/// U-Net with `levels` poolings; level `l` has `width · 2^l` channels.
#[derive(Module, Debug)]
pub struct UNet {
    /// Encoder blocks, finest first; the last one is the bottleneck.
    encoder: Vec<DoubleConv>,
    /// Transposed convolutions, coarsest first.
    up: Vec<ConvTranspose2d>,
    /// Decoder blocks, coarsest first.
    decoder: Vec<DoubleConv>,
    head: Conv2d,
    pool: MaxPool2d,
}

/// Poolings of the baseline: 4, as the original (input sides must divide by 16, as MSNet's).
pub const LEVELS: usize = 4;

impl UNet {
    /// A freshly initialised U-Net; the same `seed` gives the same weights.
    pub fn new(
        in_channels: usize,
        classes: usize,
        width: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        // Burn's generator is process-wide and burn draws parameters lazily, at first use:
        // seed it and draw every parameter under one lock, so that no other network built at
        // the same time (a test beside this one) draws from this stream or moves it.
        static DRAW: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = DRAW.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let ch = |l: usize| width << l;
        let encoder = (0..=LEVELS)
            .map(|l| DoubleConv::new(if l == 0 { in_channels } else { ch(l - 1) }, ch(l), device))
            .collect();
        let up = (0..LEVELS)
            .rev()
            .map(|l| {
                ConvTranspose2dConfig::new([ch(l + 1), ch(l)], [2, 2])
                    .with_stride([2, 2])
                    .init(device)
            })
            .collect();
        let decoder = (0..LEVELS)
            .rev()
            .map(|l| DoubleConv::new(2 * ch(l), ch(l), device))
            .collect();
        let net = Self {
            encoder,
            up,
            decoder,
            head: Conv2dConfig::new([width, classes], [1, 1]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        };
        let drawn = net.clone().into_record();
        net.load_record(drawn)
    }

    /// Learnable parameters (weights and biases).
    pub fn parameter_count(&self) -> usize {
        self.num_params()
    }

    /// Whether every parameter is finite: a checkpoint must never keep weights that blew up.
    pub fn is_finite(&self) -> bool {
        struct Finite(bool);
        impl ModuleVisitor for Finite {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0 = self.0 && param.val().into_data().iter::<f32>().all(|v| v.is_finite());
            }
        }
        let mut finite = Finite(true);
        self.visit(&mut finite);
        finite.0
    }

    /// Class probabilities `[B, classes, 1, H, W]` for images `[B, in, 1, H, W]`.
    pub fn forward(&self, images: Tensor<5>) -> Tensor<5> {
        let [b, c, _, h, w] = images.dims();
        let mut x = images.reshape([b, c, h, w]);
        let mut skips = Vec::with_capacity(LEVELS);
        for (l, block) in self.encoder.iter().enumerate() {
            x = block.forward(x);
            if l < LEVELS {
                skips.push(x.clone());
                x = self.pool.forward(x);
            }
        }
        for (up, block) in self.up.iter().zip(&self.decoder) {
            let skip = skips
                .pop()
                .unwrap_or_else(|| unreachable!("one skip per level"));
            x = block.forward(Tensor::cat(vec![skip, up.forward(x)], 1));
        }
        let probs = softmax(self.head.forward(x), 1);
        let classes = probs.dims()[1];
        probs.reshape([b, classes, 1, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_infinite_weight_makes_the_network_not_finite() {
        let device = crate::device::device();
        let net = UNet::new(3, 3, 4, 1, &device);
        assert!(net.is_finite());
        /// Sets the first weight of the last float parameter it meets to infinity.
        struct Poison(bool);
        impl burn::module::ModuleMapper for Poison {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if self.0 {
                    return param;
                }
                self.0 = true;
                param.map(|t| {
                    let mut data = t.to_data().try_to_vec::<f32>().unwrap();
                    data[0] = f32::INFINITY;
                    Tensor::from_data(burn::tensor::TensorData::new(data, t.shape()), &t.device())
                })
            }
        }
        assert!(!net.map(&mut Poison(false)).is_finite());
    }

    #[test]
    fn shapes_parameter_count_and_seeded_init() {
        let device = crate::device::device();
        let net = UNet::new(3, 3, 16, 7, &device);
        // Per level l (width w_l = 16·2^l): two 3×3 convs with bias in the encoder, a 2×2
        // transposed conv and two 3×3 convs in the decoder, plus the 1×1 head.
        let conv = |i: usize, o: usize, k: usize| i * o * k * k + o;
        let mut expected = conv(3, 16, 3) + conv(16, 16, 3) + conv(16, 3, 1);
        for l in 1..=LEVELS {
            let (lo, hi) = (16 << (l - 1), 16 << l);
            expected += conv(lo, hi, 3) + conv(hi, hi, 3); // encoder
            expected += conv(hi, lo, 2) + conv(hi, lo, 3) + conv(lo, lo, 3); // decoder
        }
        assert_eq!(net.num_params(), expected);
        let x = Tensor::<5>::ones([2, 3, 1, 32, 48], &device);
        let p = net.forward(x.clone());
        assert_eq!(p.dims(), [2, 3, 1, 32, 48]);
        let sums = p
            .clone()
            .sum_dim(1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
        let again = UNet::new(3, 3, 16, 7, &device).forward(x.clone());
        assert_eq!(p.clone().into_data(), again.into_data());
        let other = UNet::new(3, 3, 16, 8, &device).forward(x);
        assert_ne!(p.into_data(), other.into_data());
    }
}

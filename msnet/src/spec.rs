//! The layer list: every learnable tensor of MSNet, its name, kind and shape.
//!
//! Every learnable tensor is a bias-free 3x3 (3x3x3 in 3D) convolution kernel; there is no
//! normalisation layer, no bias and no learnable scalar. Names and layouts are those of the
//! weight file ([`crate::weights`]): Conv `[out, in, k...]`, ConvTranspose `[in, out, k...]`.
//!
//! | name | kind | channels | stride |
//! |---|---|---|---|
//! | `head.weight` | conv | in → C | 1 |
//! | `down.{h}.{L1,L2,K}.weight`, h = 1..H | conv | C → C | 1 |
//! | `down.{h}.{T1,T2}.weight` | conv-transpose | C → C | 1 |
//! | `up.{h}.{…}.weight`, h = 1..H-1 | as `down` | C → C | 1 |
//! | `restrict_u.weight` (Π, shared by all levels) | conv | C → C | 2 |
//! | `restrict_r.weight` (R, shared by all levels) | conv | C → C | 2 |
//! | `out.O1.weight` | conv | C → C | 1 |
//! | `out.O2.weight` | conv | C → classes | 1 |

use crate::config::Config;

/// Whether a layer is a convolution or a transposed convolution (the learnable adjoint `L*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    Conv,
    ConvTranspose,
}

/// Which sweep of the V-cycle a feature extractor module belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    Down,
    Up,
}

impl Sweep {
    fn prefix(self) -> &'static str {
        match self {
            Sweep::Down => "down",
            Sweep::Up => "up",
        }
    }
}

/// One learnable convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Position in [`Spec::convs`]; engines index their weights by it.
    pub index: usize,
    /// Tensor name in the weight file.
    pub name: String,
    pub kind: ConvKind,
    pub in_channels: usize,
    pub out_channels: usize,
    /// 1, or 2 for the restrictions Π and R (same stride on every spatial axis).
    pub stride: usize,
    /// Kernel extent on every spatial axis (3).
    pub kernel: usize,
    /// 2 or 3 spatial axes.
    pub dims: usize,
}

impl ConvSpec {
    /// Weight shape in the file's (ONNX/PyTorch) layout.
    pub fn shape(&self) -> Vec<usize> {
        let (a, b) = match self.kind {
            ConvKind::Conv => (self.out_channels, self.in_channels),
            ConvKind::ConvTranspose => (self.in_channels, self.out_channels),
        };
        let mut s = vec![a, b];
        s.extend(std::iter::repeat_n(self.kernel, self.dims));
        s
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Never true: every layer has weights. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inputs feeding one output value (for initialisation bounds and FLOP counts).
    pub fn fan_in(&self) -> usize {
        self.in_channels * self.kernel.pow(self.dims as u32)
    }
}

/// The five convolutions of one feature extractor module (FEM):
/// `L = L2 relu L1`, its adjoint `L* = T2 relu T1`, and the length-term kernel `K`.
#[derive(Clone, Copy, Debug)]
pub struct FemLayers<'a> {
    pub l1: &'a ConvSpec,
    pub l2: &'a ConvSpec,
    pub t1: &'a ConvSpec,
    pub t2: &'a ConvSpec,
    pub k: &'a ConvSpec,
}

/// The network's layer list, derived from a validated [`Config`].
#[derive(Clone, Debug)]
pub struct Spec {
    pub config: Config,
    pub convs: Vec<ConvSpec>,
}

const FEM_PARTS: [(&str, ConvKind); 5] = [
    ("L1", ConvKind::Conv),
    ("L2", ConvKind::Conv),
    ("T1", ConvKind::ConvTranspose),
    ("T2", ConvKind::ConvTranspose),
    ("K", ConvKind::Conv),
];

impl Spec {
    /// Builds the layer list. The config must be valid ([`Config::validate`]).
    pub fn new(config: &Config) -> Self {
        let c = config.channels;
        let mut convs = Vec::new();
        let mut push = |name: String, kind, in_channels, out_channels, stride| {
            convs.push(ConvSpec {
                index: convs.len(),
                name,
                kind,
                in_channels,
                out_channels,
                stride,
                kernel: 3,
                dims: config.dims,
            })
        };
        push(
            "head.weight".into(),
            ConvKind::Conv,
            config.in_channels,
            c,
            1,
        );
        for (sweep, levels) in [(Sweep::Down, config.grids), (Sweep::Up, config.grids - 1)] {
            for h in 1..=levels {
                for (part, kind) in FEM_PARTS {
                    push(
                        format!("{}.{h}.{part}.weight", sweep.prefix()),
                        kind,
                        c,
                        c,
                        1,
                    );
                }
            }
        }
        push("restrict_u.weight".into(), ConvKind::Conv, c, c, 2);
        push("restrict_r.weight".into(), ConvKind::Conv, c, c, 2);
        push("out.O1.weight".into(), ConvKind::Conv, c, c, 1);
        push("out.O2.weight".into(), ConvKind::Conv, c, config.classes, 1);
        Self {
            config: config.clone(),
            convs,
        }
    }

    /// Total number of learnable scalars.
    pub fn parameter_count(&self) -> usize {
        self.convs.iter().map(ConvSpec::len).sum()
    }

    /// The layer with this tensor name.
    pub fn conv(&self, name: &str) -> Option<&ConvSpec> {
        self.convs.iter().find(|c| c.name == name)
    }

    fn named(&self, name: &str) -> &ConvSpec {
        // Names below are generated by `new` from the same config, so they always exist.
        self.conv(name)
            .unwrap_or_else(|| unreachable!("layer {name} is generated by Spec::new"))
    }

    /// `Head`: input → C features.
    pub fn head(&self) -> &ConvSpec {
        self.named("head.weight")
    }

    /// The FEM of grid `h` (1 = finest) on the given sweep.
    pub fn fem(&self, sweep: Sweep, h: usize) -> FemLayers<'_> {
        let p = |part: &str| self.named(&format!("{}.{h}.{part}.weight", sweep.prefix()));
        FemLayers {
            l1: p("L1"),
            l2: p("L2"),
            t1: p("T1"),
            t2: p("T2"),
            k: p("K"),
        }
    }

    /// Π, restriction of `u` and `f` (stride-2 conv shared by all levels).
    pub fn restrict_u(&self) -> &ConvSpec {
        self.named("restrict_u.weight")
    }

    /// R, restriction of the FAS residual (stride-2 conv shared by all levels).
    pub fn restrict_r(&self) -> &ConvSpec {
        self.named("restrict_r.weight")
    }

    /// `O1` and `O2` of the output head.
    pub fn out(&self) -> (&ConvSpec, &ConvSpec) {
        (self.named("out.O1.weight"), self.named("out.O2.weight"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_paper() {
        assert_eq!(Spec::new(&Config::new(2, 3, 3)).parameter_count(), 111_456);
        assert_eq!(Spec::new(&Config::new(3, 1, 4)).parameter_count(), 333_936);
    }

    #[test]
    fn layer_list_has_48_square_convs_plus_head_and_o2() {
        let spec = Spec::new(&Config::new(2, 3, 3));
        assert_eq!(spec.convs.len(), 50);
        let square = spec
            .convs
            .iter()
            .filter(|c| c.in_channels == 16 && c.out_channels == 16)
            .count();
        assert_eq!(square, 48);
        assert_eq!(spec.head().shape(), vec![16, 3, 3, 3]);
        assert_eq!(spec.out().1.shape(), vec![3, 16, 3, 3]);
        assert_eq!(spec.fem(Sweep::Up, 4).t1.kind, ConvKind::ConvTranspose);
        assert_eq!(spec.restrict_r().stride, 2);
        for (i, c) in spec.convs.iter().enumerate() {
            assert_eq!(c.index, i);
        }
    }
}

//! The weight file `model.safetensors` and weight initialisation.
//!
//! # Format
//! A model directory holds `config.json` ([`crate::config::Config`]) and `model.safetensors`:
//! one float32 (little-endian) tensor per layer of [`crate::spec::Spec`], nothing else.
//! Names: `head.weight`, `down.{h}.{L1,L2,T1,T2,K}.weight` (h = 1..H),
//! `up.{h}.{L1,L2,T1,T2,K}.weight` (h = 1..H-1), `restrict_u.weight` (Π), `restrict_r.weight`
//! (R), `out.O1.weight`, `out.O2.weight`. Layouts are ONNX/PyTorch: Conv `[out, in, k, k(, k)]`,
//! ConvTranspose (`T1`, `T2`) `[in, out, k, k(, k)]`. A PyTorch user writes one with
//! `safetensors.torch.save_file({name: conv.weight for ...}, "model.safetensors")` from
//! `nn.Conv2d(..., bias=False)` / `nn.ConvTranspose2d(..., bias=False)` modules.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::InitSpec;
use crate::fsutil::{self, FsError};
use crate::spec::{ConvKind, ConvSpec, Spec};

/// All weights of one network, in [`Spec::convs`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub tensors: Vec<Vec<f32>>,
}

/// A weight file that does not match the spec, or cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: not a safetensors file: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path}: tensor `{name}` is missing")]
    Missing { path: String, name: String },
    #[error("{path}: tensor `{name}` is not part of MSNet (unexpected extra tensor)")]
    Extra { path: String, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, the config needs {expected:?}")]
    Shape {
        path: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` is {dtype}, expected F32")]
    Dtype {
        path: String,
        name: String,
        dtype: String,
    },
    #[error("{path}: tensor `{name}` holds a non-finite value at index {index}")]
    NonFinite {
        path: String,
        name: String,
        index: usize,
    },
    #[error("weights do not match the spec: {0}")]
    Mismatch(String),
}

impl Weights {
    /// Checks the tensor count and lengths against the spec.
    pub fn check(&self, spec: &Spec) -> Result<(), WeightsError> {
        if self.tensors.len() != spec.convs.len() {
            return Err(WeightsError::Mismatch(format!(
                "{} tensors for {} layers",
                self.tensors.len(),
                spec.convs.len()
            )));
        }
        for (t, c) in self.tensors.iter().zip(&spec.convs) {
            if t.len() != c.len() {
                return Err(WeightsError::Mismatch(format!(
                    "`{}` has {} values, its shape {:?} needs {}",
                    c.name,
                    t.len(),
                    c.shape(),
                    c.len()
                )));
            }
        }
        Ok(())
    }

    /// The first non-finite weight, as (layer name, index).
    pub fn first_non_finite<'s>(&self, spec: &'s Spec) -> Option<(&'s str, usize)> {
        self.tensors.iter().zip(&spec.convs).find_map(|(t, c)| {
            t.iter()
                .position(|v| !v.is_finite())
                .map(|i| (c.name.as_str(), i))
        })
    }

    /// Serialises to safetensors bytes (names and layouts of the module docs).
    pub fn to_bytes(&self, spec: &Spec) -> Result<Vec<u8>, WeightsError> {
        self.check(spec)?;
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|t| t.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views = spec
            .convs
            .iter()
            .zip(&bytes)
            .map(|(c, b)| {
                TensorView::new(Dtype::F32, c.shape(), b)
                    .map(|v| (c.name.clone(), v))
                    .map_err(|e| WeightsError::Mismatch(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = HashMap::from([("format".to_string(), "msnet".to_string())]);
        safetensors::serialize(views, Some(meta)).map_err(|e| WeightsError::Mismatch(e.to_string()))
    }

    /// Parses safetensors bytes, checking every name, dtype and shape against the spec.
    /// `path` is only used in error messages.
    pub fn from_bytes(spec: &Spec, bytes: &[u8], path: &str) -> Result<Self, WeightsError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let mut names: Vec<&str> = st.names();
        names.sort_unstable();
        if let Some(extra) = names.iter().find(|n| spec.conv(n).is_none()) {
            return Err(WeightsError::Extra {
                path: path.into(),
                name: extra.to_string(),
            });
        }
        let mut tensors = Vec::with_capacity(spec.convs.len());
        for c in &spec.convs {
            let view = st.tensor(&c.name).map_err(|_| WeightsError::Missing {
                path: path.into(),
                name: c.name.clone(),
            })?;
            if view.dtype() != Dtype::F32 {
                return Err(WeightsError::Dtype {
                    path: path.into(),
                    name: c.name.clone(),
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != c.shape() {
                return Err(WeightsError::Shape {
                    path: path.into(),
                    name: c.name.clone(),
                    expected: c.shape(),
                    found: view.shape().to_vec(),
                });
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(WeightsError::NonFinite {
                    path: path.into(),
                    name: c.name.clone(),
                    index,
                });
            }
            tensors.push(values);
        }
        Ok(Self { tensors })
    }

    /// Writes `model.safetensors` atomically.
    pub fn save(&self, spec: &Spec, path: &Path) -> Result<(), WeightsError> {
        let bytes = self.to_bytes(spec)?;
        fsutil::write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Reads and checks `model.safetensors`.
    pub fn load(spec: &Spec, path: &Path) -> Result<Self, WeightsError> {
        let bytes = fsutil::read(path)?;
        Self::from_bytes(spec, &bytes, &path.display().to_string())
    }
}

/// Deterministic initialisation: each weight uniform in `±gain / sqrt(fan_in)`, drawn from
/// ChaCha8 seeded with `seed`, layer by layer in spec order (independent of any backend).
///
/// Why gains 2 and 6 (MSNET.md, "Numerics"): He's gain (about 2.45) drives the phase-softmax
/// inputs to |z| near 400 at initialisation, where float32 round-off reaches 3e-5 at the output
/// and the softmax saturates; gain 2 keeps |z| under 10. With gain 2 everywhere the output is
/// nearly constant, so the output head `O1`, `O2` uses `out_gain` (6) to start from a
/// non-degenerate prediction.
pub fn init(spec: &Spec, seed: u64, init: InitSpec) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (o1, o2) = spec.out();
    let tensors = spec
        .convs
        .iter()
        .map(|c| {
            let gain = if c.index == o1.index || c.index == o2.index {
                init.out_gain
            } else {
                init.gain
            };
            let bound = gain / (c.fan_in() as f32).sqrt();
            (0..c.len())
                .map(|_| rng.random_range(-bound..=bound))
                .collect()
        })
        .collect();
    Weights { tensors }
}

/// The engines' kernel layout of one layer: `[k…][cin][cout]` (taps, then input channels, then
/// output channels innermost), where a transposed convolution is stored as the convolution
/// with the flipped kernel (stride 1, padding 1: the two are the same operator). The runtime's
/// plan and the native trainer hold weights this way; files hold the layout of the module
/// docs. The one definition of that correspondence: `(kernel index, file index)` of every
/// weight.
fn kernel_layout_pairs(layer: &ConvSpec) -> impl Iterator<Item = (usize, usize)> + '_ {
    let taps = layer.kernel.pow(layer.dims as u32);
    let (cin, cout) = (layer.in_channels, layer.out_channels);
    (0..taps).flat_map(move |t| {
        (0..cin).flat_map(move |ci| {
            (0..cout).map(move |co| {
                let file = match layer.kind {
                    ConvKind::Conv => (co * cin + ci) * taps + t,
                    ConvKind::ConvTranspose => (ci * cout + co) * taps + (taps - 1 - t),
                };
                ((t * cin + ci) * cout + co, file)
            })
        })
    })
}

/// A layer's weights (file layout) in the kernel layout (see [`kernel_layout_pairs`]).
pub fn to_kernel_layout(layer: &ConvSpec, file: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; file.len()];
    for (k, f) in kernel_layout_pairs(layer) {
        out[k] = file[f];
    }
    out
}

/// The inverse of [`to_kernel_layout`] (also maps a gradient or optimiser moment back).
pub fn from_kernel_layout(layer: &ConvSpec, kernel: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; kernel.len()];
    for (k, f) in kernel_layout_pairs(layer) {
        out[f] = kernel[k];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn spec() -> Spec {
        Spec::new(&Config::new(2, 3, 3))
    }

    #[test]
    fn roundtrip_is_bit_exact() {
        let s = spec();
        let w = init(&s, 7, InitSpec::default());
        let bytes = w.to_bytes(&s).unwrap();
        let back = Weights::from_bytes(&s, &bytes, "mem").unwrap();
        assert_eq!(w, back);
    }

    #[test]
    fn kernel_layout_roundtrips_and_flips_transposed_convolutions() {
        let s = spec();
        let w = init(&s, 5, InitSpec::default());
        for (c, t) in s.convs.iter().zip(&w.tensors) {
            let k = to_kernel_layout(c, t);
            assert_eq!(&from_kernel_layout(c, &k), t, "{}", c.name);
        }
        // head: Conv [16, 3, 3, 3]; weight (co 5, ci 2, ky 1, kx 0) is tap t = 3.
        let head = s.head();
        let k = to_kernel_layout(head, &w.tensors[head.index]);
        assert_eq!(
            k[(3 * 3 + 2) * 16 + 5],
            w.tensors[head.index][(5 * 3 + 2) * 9 + 3]
        );
        // A transposed convolution [in, out, 3, 3]: tap t reads the flipped tap 8 - t.
        let t1 = s
            .convs
            .iter()
            .find(|c| c.kind == ConvKind::ConvTranspose)
            .unwrap();
        let (cin, cout) = (t1.in_channels, t1.out_channels);
        let k = to_kernel_layout(t1, &w.tensors[t1.index]);
        assert_eq!(
            k[(2 * cin + 1) * cout + 4],
            w.tensors[t1.index][(cout + 4) * 9 + 6]
        );
    }

    #[test]
    fn init_is_deterministic_and_bounded() {
        let s = spec();
        let a = init(&s, 3, InitSpec::default());
        assert_eq!(a, init(&s, 3, InitSpec::default()));
        assert_ne!(a, init(&s, 4, InitSpec::default()));
        let head = &a.tensors[0];
        let bound = 2.0 / (27f32).sqrt();
        assert!(head.iter().all(|v| v.abs() <= bound));
        assert!(head.iter().any(|v| v.abs() > 0.5 * bound));
    }

    #[test]
    fn wrong_shape_names_tensor_and_both_shapes() {
        let s2 = spec();
        let s3 = Spec::new(&Config::new(2, 1, 3));
        let bytes = init(&s2, 1, InitSpec::default()).to_bytes(&s2).unwrap();
        let e = Weights::from_bytes(&s3, &bytes, "m.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("head.weight"), "{e}");
        assert!(
            e.contains("[16, 3, 3, 3]") && e.contains("[16, 1, 3, 3]"),
            "{e}"
        );
    }

    #[test]
    fn missing_extra_and_corrupt_are_errors() {
        let s = spec();
        let mut grids4 = Config::new(2, 3, 3);
        grids4.grids = 4;
        let small = Spec::new(&grids4);
        let bytes = init(&small, 1, InitSpec::default())
            .to_bytes(&small)
            .unwrap();
        let e = Weights::from_bytes(&s, &bytes, "f")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("down.5.L1.weight") && e.contains("missing"),
            "{e}"
        );
        let bytes = init(&s, 1, InitSpec::default()).to_bytes(&s).unwrap();
        let e = Weights::from_bytes(&small, &bytes, "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        let e = Weights::from_bytes(&s, &bytes[..bytes.len() / 2], "cut.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.safetensors"), "{e}");
    }
}

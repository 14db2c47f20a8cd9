//! Golden bundles: deterministic inputs with the reference outputs of one exported model, so
//! that any engine (tract, ONNX Runtime, the device runtime) can prove it gives the same answer.
//!
//! # On disk (`MODEL_DIR/golden/`)
//! - `manifest.json` ([`Manifest`]): tensor names and shapes, the tolerance, the engine that
//!   produced the outputs, and the sha256 of the model files the bundle belongs to;
//! - per case, `NAME.input.npy` (float32 `[1, in, (D,) H, W]`, intensities in `[0, 1]`: the
//!   normalisation is inside the model) and `NAME.output.npy` (float32 `[1, classes, (D,) H, W]`,
//!   class probabilities).
//!
//! Agreement means, for every value, `|ref − x| ≤ atol + rtol·|ref|` and the same argmax
//! class at every voxel where the reference's top classes are not tied within that tolerance
//! ([`compare`]).

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use msnet::Config;
use msnet_io::phantom;
use msnet_io::{IoError, npy};
use ndarray::ArrayViewD;

/// The bundle's folder inside a model directory.
pub const GOLDEN_DIR: &str = "golden";
/// In the bundle of a 2D model: the phantom case's input as an 8-bit PNG, for trying
/// `msnet-run segment` without a dataset (the datasets' images may not be redistributed).
pub const SAMPLE_IMAGE: &str = "phantom.png";
/// The manifest's file name inside [`GOLDEN_DIR`].
pub const MANIFEST_FILE: &str = "manifest.json";
/// The model's input tensor, in the ONNX and NNEF files and in every manifest.
pub const INPUT_NAME: &str = "image";
/// The model's output tensor (class probabilities).
pub const OUTPUT_NAME: &str = "probabilities";
/// Version of the manifest layout; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
/// Absolute part of the agreement tolerance (tract's "approximate").
pub const ATOL: f32 = 1e-4;
/// Relative part of the agreement tolerance.
pub const RTOL: f32 = 5e-4;

/// `golden/manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Name of the model input (`image`).
    pub input_name: String,
    /// Name of the model output (`probabilities`).
    pub output_name: String,
    /// `[1, in, H, W]` or `[1, in, D, H, W]`.
    pub input_shape: Vec<usize>,
    /// `[1, classes, H, W]` or `[1, classes, D, H, W]`.
    pub output_shape: Vec<usize>,
    pub tolerance: Tolerance,
    /// The engine whose outputs are stored, e.g. "burn 0.22.1 (flex CPU), msnet-trainer".
    pub reference: String,
    /// The model files this bundle belongs to, with their sha256.
    pub model_files: Vec<FileDigest>,
    pub cases: Vec<Case>,
}

/// `|ref − x| ≤ atol + rtol·|ref|`, and (when `argmax_equal`) the same class everywhere the
/// reference's classes are not tied within that tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub atol: f32,
    pub rtol: f32,
    pub argmax_equal: bool,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            atol: ATOL,
            rtol: RTOL,
            argmax_equal: true,
        }
    }
}

/// A file of the model directory and its digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Relative to the model directory, e.g. `model.onnx`.
    pub file: String,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of `path`, recorded under the name `file`.
    pub fn of(file: &str, path: &Path) -> Result<Self, GoldenError> {
        let bytes = msnet::fsutil::read(path)?;
        Ok(Self {
            file: file.into(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        })
    }
}

/// One golden case: its files relative to the bundle folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub input: String,
    pub output: String,
}

/// The engine whose outputs golden bundles store and other engines must reproduce (the
/// trainer's burn forward pass implements it).
pub trait Reference {
    /// Names the engine in the golden manifest.
    fn name(&self) -> String;
    /// Class probabilities `[classes, D, H, W]` of one input `[in, D, H, W]` (values in
    /// `[0, 1]`) at input size `size = [D, H, W]`.
    fn forward(&self, input: &[f32], size: [usize; 3]) -> Vec<f32>;
}

/// An engine the comparison harness ([`check_engines`]) runs: one golden input in, C order
/// as in the bundle, its class probabilities out, C order of the manifest's output shape.
pub trait Engine {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError>;
}

/// Why an engine could not run an input.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Reference`] run at one input size `[D, H, W]`, as an [`Engine`].
pub struct AtSize<'a, R: ?Sized>(pub &'a R, pub [usize; 3]);

impl<R: Reference + ?Sized> Engine for AtSize<'_, R> {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        Ok(self.0.forward(input, self.1))
    }
}

#[cfg(feature = "runtime")]
impl Engine for msnet_runtime::host::Session<'_> {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        let mut output = vec![0.0; self.plan().output_len()];
        self.run(input, &mut output)?;
        Ok(output)
    }
}

/// One engine's result on one golden case.
#[derive(Clone, Debug)]
pub struct EngineDiff {
    /// The name the engine was given to [`check_engines`].
    pub engine: String,
    /// Its output against the case's reference output.
    pub comparison: Comparison,
    /// Its output, for comparing engines with each other.
    pub output: Vec<f32>,
}

/// Every engine's result on one golden case, in the order the engines were given.
#[derive(Clone, Debug)]
pub struct CaseDiff {
    pub case: String,
    pub engines: Vec<EngineDiff>,
}

/// The engine-comparison harness: runs every named engine on every case, case by case, and
/// compares each output with the case's reference output (`[classes, voxels]`) at
/// `tolerance`. The export self-check, the exporter and regression tests, `msnet-run verify`
/// and `msnet-run finetune` all check engines through this one loop; they decide what a
/// disagreement means.
pub fn check_engines(
    cases: &[LoadedCase],
    engines: &mut [(&str, &mut dyn Engine)],
    classes: usize,
    tolerance: Tolerance,
) -> Result<Vec<CaseDiff>, GoldenError> {
    cases
        .iter()
        .map(|case| {
            let engines = engines
                .iter_mut()
                .map(|(name, engine)| {
                    let output =
                        engine
                            .infer(&case.input)
                            .map_err(|source| GoldenError::Engine {
                                engine: name.to_string(),
                                case: case.name.clone(),
                                source,
                            })?;
                    Ok(EngineDiff {
                        engine: name.to_string(),
                        comparison: compare_with(&case.output, &output, classes, tolerance),
                        output,
                    })
                })
                .collect::<Result<_, GoldenError>>()?;
            Ok(CaseDiff {
                case: case.name.clone(),
                engines,
            })
        })
        .collect()
}

/// A generated input for a golden case.
#[derive(Clone, Debug)]
pub struct GoldenInput {
    pub name: &'static str,
    pub description: String,
    /// `in·D·H·W` values in `[0, 1]`, channel-first.
    pub data: Vec<f32>,
}

/// The tensor shape of a batch of one with `channels` channels at `size = [D, H, W]`:
/// `[1, channels, H, W]` in 2D, `[1, channels, D, H, W]` in 3D.
pub fn tensor_shape(dims: usize, channels: usize, size: [usize; 3]) -> Vec<usize> {
    let spatial = if dims == 3 { &size[..] } else { &size[1..] };
    [&[1, channels][..], spatial].concat()
}

/// How far the generated inputs reach around each channel's training mean, in training
/// standard deviations.
pub const INPUT_SPREAD_STD: f32 = 2.0;

/// The value range `[low, high]` of each input channel in the generated cases: the training
/// mean ± [`INPUT_SPREAD_STD`] standard deviations, within `[0, 1]`.
///
/// Why not all of `[0, 1]`: a trained network is only well conditioned on inputs like its
/// training images. For a fundus model (blue channel mean 0.08, std 0.06) uniform `[0, 1)`
/// noise lies up to 15 standard deviations out; its phase-softmax inputs grow so large that
/// scaling the input by 1 + 1e-6 moves output probabilities by 1e-2, and float32 rounding
/// alone then separates any two engines by more than the tolerance. An untrained model
/// (mean 0, std 1) gets the full `[0, 1]`.
pub fn channel_ranges(config: &Config) -> Vec<[f32; 2]> {
    let n = &config.normalization;
    n.mean
        .iter()
        .zip(&n.std)
        .map(|(&mean, &std)| {
            let low = (mean - INPUT_SPREAD_STD * std).clamp(0.0, 1.0);
            let high = (mean + INPUT_SPREAD_STD * std).clamp(0.0, 1.0);
            if high > low { [low, high] } else { [0.0, 1.0] }
        })
        .collect()
}

/// The golden inputs of a model with `config`, at input size `size`. Always the same three
/// cases for the same arguments, each channel spanning its [`channel_ranges`]: a phantom with
/// structure (nested regions, shading, noise), uniform noise, and a constant image at the
/// middle of each range.
pub fn inputs(config: &Config, size: [usize; 3]) -> Vec<GoldenInput> {
    let per_channel = size.iter().product::<usize>();
    let ranges = channel_ranges(config);
    let span = ranges
        .iter()
        .map(|[low, high]| format!("[{low:.3}, {high:.3}]"))
        .collect::<Vec<_>>()
        .join(", ");
    // Maps a value in [0, 1] at flat index `i` into its channel's range.
    let to_range = |i: usize, v: f32| {
        let [low, high] = ranges[i / per_channel];
        low + v * (high - low)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x601d);
    let phantom = phantom::nested_ellipses(1, config.in_channels, size, config.classes).image;
    vec![
        GoldenInput {
            name: "phantom",
            description: format!(
                "nested ellipses with shading and noise (msnet_io::phantom, seed 1), channels \
                 mapped onto {span}"
            ),
            data: phantom
                .iter()
                .enumerate()
                .map(|(i, &v)| to_range(i, v))
                .collect(),
        },
        GoldenInput {
            name: "noise",
            description: format!("independent uniform noise (ChaCha8, seed 0x601d) in {span}"),
            data: (0..config.in_channels * per_channel)
                .map(|i| to_range(i, rng.random::<f32>()))
                .collect(),
        },
        GoldenInput {
            name: "constant",
            description: format!("each channel at the middle of {span}"),
            data: (0..config.in_channels * per_channel)
                .map(|i| to_range(i, 0.5))
                .collect(),
        },
    ]
}

/// What a bundle holds besides its arrays: who computed the outputs, and the model files it
/// belongs to.
pub struct BundleInfo {
    /// The engine whose outputs these are ([`Reference::name`]).
    pub reference: String,
    pub input_name: String,
    pub output_name: String,
    pub model_files: Vec<FileDigest>,
}

/// Writes a bundle into `dir` (created): every input with its output (`outputs[i]` of
/// `inputs[i]`), for a 2D model the phantom as [`SAMPLE_IMAGE`], and the manifest, written
/// last. Each file is written atomically; the caller stages `dir` if the bundle as a whole
/// must appear at once.
pub fn write_bundle(
    dir: &Path,
    config: &Config,
    size: [usize; 3],
    inputs: &[GoldenInput],
    outputs: &[Vec<f32>],
    info: BundleInfo,
) -> Result<Manifest, GoldenError> {
    let input_shape = tensor_shape(config.dims, config.in_channels, size);
    let output_shape = tensor_shape(config.dims, config.classes, size);
    msnet::fsutil::create_dir_all(dir)?;
    let mut cases = Vec::new();
    for (input, output) in inputs.iter().zip(outputs) {
        let case = Case {
            name: input.name.into(),
            description: input.description.clone(),
            input: format!("{}.input.npy", input.name),
            output: format!("{}.output.npy", input.name),
        };
        write_array(&dir.join(&case.input), &input_shape, &input.data)?;
        write_array(&dir.join(&case.output), &output_shape, output)?;
        cases.push(case);
    }
    if let Some(phantom) = inputs
        .iter()
        .find(|i| i.name == "phantom" && config.dims == 2)
    {
        let [_, h, w] = size;
        msnet_io::write_image_png(
            &dir.join(SAMPLE_IMAGE),
            config.in_channels,
            [h, w],
            &phantom.data,
        )?;
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        input_name: info.input_name,
        output_name: info.output_name,
        input_shape,
        output_shape,
        tolerance: Tolerance::default(),
        reference: info.reference,
        model_files: info.model_files,
        cases,
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| GoldenError::Manifest {
        path: dir.join(MANIFEST_FILE),
        reason: format!("cannot serialise: {e}"),
    })?;
    msnet::fsutil::write_atomic(&dir.join(MANIFEST_FILE), json.as_bytes())?;
    Ok(manifest)
}

/// Writes `data` of `shape` as an `.npy` file; values that do not fill the shape are an error
/// naming the file.
fn write_array(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), GoldenError> {
    let array = ArrayViewD::from_shape(shape, data).map_err(|e| IoError::BadBuffer {
        path: path.to_path_buf(),
        reason: format!("{} values for shape {shape:?}: {e}", data.len()),
    })?;
    Ok(npy::write_npy_f32(path, &array)?)
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How closely another engine's output agrees with the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Largest `|reference − other|` (infinite if the lengths differ or a value is NaN).
    pub max_abs_diff: f32,
    /// `|a − b| ≤ ATOL + RTOL·|a|` for every value (`a` from the reference).
    pub within_tolerance: bool,
    /// The per-voxel argmax over classes is the same everywhere (or the tolerance does not
    /// ask for it).
    pub argmax_equal: bool,
    /// Largest `|a − b| / (ATOL + RTOL·|a|)`: below 1 is within tolerance, and how far below
    /// says how much margin is left.
    pub worst_ratio: f32,
}

impl Comparison {
    /// Within tolerance and with the same argmax everywhere.
    pub fn agrees(&self) -> bool {
        self.within_tolerance && self.argmax_equal
    }
}

/// Compares `other` with `reference`, both `[classes, voxels]` row-major (a batch of 1), with
/// the tolerance [`ATOL`] + [`RTOL`].
pub fn compare(reference: &[f32], other: &[f32], classes: usize) -> Comparison {
    compare_with(reference, other, classes, Tolerance::default())
}

/// [`compare`] with another tolerance (a manifest's). `argmax_equal` is always computed;
/// [`Comparison::agrees`] requires it only when `tolerance.argmax_equal` is set.
pub fn compare_with(
    reference: &[f32],
    other: &[f32],
    classes: usize,
    tolerance: Tolerance,
) -> Comparison {
    if reference.len() != other.len() || classes == 0 || !reference.len().is_multiple_of(classes) {
        return Comparison {
            max_abs_diff: f32::INFINITY,
            within_tolerance: false,
            argmax_equal: false,
            worst_ratio: f32::INFINITY,
        };
    }
    let mut max_abs_diff = 0.0f32;
    let mut worst_ratio = 0.0f32;
    for (&a, &b) in reference.iter().zip(other) {
        let d = (a - b).abs();
        if d.is_nan() {
            max_abs_diff = f32::INFINITY;
            worst_ratio = f32::INFINITY;
            continue;
        }
        max_abs_diff = max_abs_diff.max(d);
        worst_ratio = worst_ratio.max(d / (tolerance.atol + tolerance.rtol * a.abs()));
    }
    Comparison {
        max_abs_diff,
        within_tolerance: worst_ratio <= 1.0,
        argmax_equal: !tolerance.argmax_equal || same_classes(reference, other, classes, tolerance),
        worst_ratio,
    }
}

/// Whether `other` picks the reference's class at every voxel, except where the reference
/// itself cannot tell the two classes apart: where its scores for both lie within each
/// other's tolerance window, an engine within tolerance may rank them either way (a tie at
/// float32 rounding, as a generated noise input can hold), and no engine is more right.
fn same_classes(reference: &[f32], other: &[f32], classes: usize, tolerance: Tolerance) -> bool {
    let voxels = reference.len() / classes;
    let window = |v: f32| tolerance.atol + tolerance.rtol * v.abs();
    (0..voxels).all(|j| {
        let (r, o) = (
            msnet_labels::class_at(reference, classes, j),
            msnet_labels::class_at(other, classes, j),
        );
        let (best, chosen) = (reference[r * voxels + j], reference[o * voxels + j]);
        r == o || best - chosen <= window(best) + window(chosen)
    })
}

/// Why a golden bundle cannot be read or does not belong to its model.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Fs(#[from] msnet::fsutil::FsError),
    #[error("{path}: not a golden manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: holds shape {found:?}, the manifest says {expected:?}")]
    Shape {
        path: PathBuf,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{engine} fails on golden case `{case}`: {source}")]
    Engine {
        engine: String,
        case: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "{path}: sha256 {found} differs from the golden manifest's {expected}: the bundle belongs \
         to another export (run `msnet export` again)"
    )]
    Digest {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// A golden case: read from disk by [`load`], or built in memory from generated inputs and
/// reference outputs before a bundle is written.
#[derive(Clone, Debug)]
pub struct LoadedCase {
    pub name: String,
    pub input: Vec<f32>,
    pub output: Vec<f32>,
}

/// Reads `MODEL_DIR/golden`: the manifest and every case, each array checked against the
/// manifest's shapes.
pub fn load(model_dir: &Path) -> Result<(Manifest, Vec<LoadedCase>), GoldenError> {
    let dir = model_dir.join(GOLDEN_DIR);
    let path = dir.join(MANIFEST_FILE);
    let bad = |reason: String| GoldenError::Manifest {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "format_version {} (this build reads {FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    let read = |file: &str, expected: &[usize]| -> Result<Vec<f32>, GoldenError> {
        let path = dir.join(file);
        let array = npy::read_npy_f32(&path)?;
        if array.shape() != expected {
            return Err(GoldenError::Shape {
                path,
                expected: expected.to_vec(),
                found: array.shape().to_vec(),
            });
        }
        Ok(array.into_iter().collect())
    };
    let cases = manifest
        .cases
        .iter()
        .map(|case| {
            Ok(LoadedCase {
                name: case.name.clone(),
                input: read(&case.input, &manifest.input_shape)?,
                output: read(&case.output, &manifest.output_shape)?,
            })
        })
        .collect::<Result<_, GoldenError>>()?;
    Ok((manifest, cases))
}

/// Checks that the model files listed in `manifest` hold the bytes it names.
pub fn check_digests(model_dir: &Path, manifest: &Manifest) -> Result<(), GoldenError> {
    for entry in &manifest.model_files {
        let path = model_dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|e| msnet_io::unreadable(&path, e))?;
        let found = sha256_hex(&bytes);
        if found != entry.sha256 {
            return Err(GoldenError::Digest {
                path,
                expected: entry.sha256.clone(),
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_strings() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn inputs_are_deterministic_and_in_range() {
        let cfg = Config::new(2, 3, 3);
        let a = inputs(&cfg, [1, 32, 32]);
        let b = inputs(&cfg, [1, 32, 32]);
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.data.len(), 3 * 32 * 32);
            assert_eq!(x.data, y.data);
            assert!(x.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_ne!(a[0].data, a[1].data);
        // Untrained (mean 0, std 1): the full [0, 1], the constant case at 0.5.
        assert!(a[2].data.iter().all(|&v| v == 0.5));
        assert!(a[1].data.iter().any(|&v| v > 0.9) && a[1].data.iter().any(|&v| v < 0.1));
        assert_eq!(tensor_shape(2, 3, [1, 32, 48]), vec![1, 3, 32, 48]);
        assert_eq!(tensor_shape(3, 1, [16, 32, 48]), vec![1, 1, 16, 32, 48]);
    }

    #[test]
    fn inputs_stay_within_the_training_distribution() {
        // A fundus-like normalisation: the blue channel is dark and narrow, red near the top.
        let mut cfg = Config::new(2, 3, 3);
        cfg.normalization.mean = vec![0.9, 0.25, 0.075];
        cfg.normalization.std = vec![0.1, 0.11, 0.06];
        let ranges = channel_ranges(&cfg);
        assert_eq!(ranges[0], [0.7, 1.0]);
        assert!((ranges[2][0] - 0.0).abs() < 1e-6 && (ranges[2][1] - 0.195).abs() < 1e-6);
        let n = 16 * 16;
        for case in inputs(&cfg, [1, 16, 16]) {
            for (c, [low, high]) in ranges.iter().enumerate() {
                let channel = &case.data[c * n..(c + 1) * n];
                assert!(
                    channel.iter().all(|v| (low..=high).contains(&v)),
                    "{} channel {c} leaves [{low}, {high}]",
                    case.name
                );
            }
            assert!(
                case.description.contains("[0.700, 1.000]"),
                "{}",
                case.description
            );
        }
    }

    /// Returns its input (the reference output in these cases) moved by `shift`, or an error
    /// on the case whose input starts with `fail_on`; records the first value of each input.
    struct Fake {
        calls: Vec<f32>,
        shift: f32,
        fail_on: f32,
    }

    impl Engine for Fake {
        fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
            self.calls.push(input[0]);
            if input[0] == self.fail_on {
                return Err("out of memory".into());
            }
            Ok(input.iter().map(|v| v + self.shift).collect())
        }
    }

    fn case(name: &str, first: f32) -> LoadedCase {
        let values = vec![first, 1.0 - first, 0.25, 0.75];
        LoadedCase {
            name: name.into(),
            input: values.clone(),
            output: values,
        }
    }

    #[test]
    fn check_engines_runs_every_engine_on_every_case_in_order() {
        let cases = [case("a", 0.9), case("b", 0.1)];
        let fake = |shift| Fake {
            calls: vec![],
            shift,
            fail_on: -1.0,
        };
        let (mut exact, mut off) = (fake(0.0), fake(0.01));
        let diffs = check_engines(
            &cases,
            &mut [("exact", &mut exact), ("off", &mut off)],
            2,
            Tolerance::default(),
        )
        .unwrap();
        assert_eq!(exact.calls, [0.9, 0.1]);
        assert_eq!(off.calls, [0.9, 0.1]);
        assert_eq!(diffs.len(), 2);
        for (d, c) in diffs.iter().zip(&cases) {
            assert_eq!(d.case, c.name);
            let names: Vec<&str> = d.engines.iter().map(|e| e.engine.as_str()).collect();
            assert_eq!(names, ["exact", "off"]);
            assert!(d.engines[0].comparison.agrees());
            assert_eq!(d.engines[0].comparison.max_abs_diff, 0.0);
            assert!(!d.engines[1].comparison.within_tolerance);
            assert!((d.engines[1].comparison.max_abs_diff - 0.01).abs() < 1e-6);
            assert!((d.engines[1].output[2] - 0.26).abs() < 1e-6);
        }
        // A looser tolerance is honoured.
        let loose = Tolerance {
            atol: 0.02,
            ..Tolerance::default()
        };
        let diffs = check_engines(&cases, &mut [("off", &mut off)], 2, loose).unwrap();
        assert!(diffs.iter().all(|d| d.engines[0].comparison.agrees()));
    }

    #[test]
    fn check_engines_names_the_engine_and_case_that_fail() {
        let cases = [case("a", 0.9), case("b", 0.1)];
        let mut failing = Fake {
            calls: vec![],
            shift: 0.0,
            fail_on: 0.1,
        };
        let e = check_engines(
            &cases,
            &mut [("tract-nnef", &mut failing)],
            2,
            Tolerance::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "tract-nnef fails on golden case `b`: out of memory"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_reference_at_its_size_is_an_engine() {
        struct Halves;
        impl Reference for Halves {
            fn name(&self) -> String {
                "halves".into()
            }
            fn forward(&self, input: &[f32], size: [usize; 3]) -> Vec<f32> {
                assert_eq!(size, [1, 1, 2]);
                input.iter().map(|v| v / 2.0).collect()
            }
        }
        let mut engine = AtSize(&Halves, [1, 1, 2]);
        assert_eq!(engine.infer(&[1.0, 3.0]).unwrap(), [0.5, 1.5]);
    }

    #[test]
    fn compare_checks_tolerance_and_argmax() {
        let reference = [0.7, 0.3, 0.4, 0.6];
        assert!(compare(&reference, &reference, 2).agrees());
        let close = [0.70005, 0.29995, 0.4, 0.6];
        assert!(compare(&reference, &close, 2).agrees());
        let far = [0.7, 0.3, 0.41, 0.59];
        let c = compare(&reference, &far, 2);
        assert!(!c.within_tolerance && c.argmax_equal);
        let flipped = [0.3, 0.7, 0.4, 0.6];
        assert!(!compare(&reference, &flipped, 2).argmax_equal);
        // A tie within the tolerance may go either way; a clear lead may not.
        let tie = [0.50002, 0.3, 0.49998, 0.6];
        let tie_flipped = [0.49999, 0.3, 0.50001, 0.6];
        assert!(compare(&tie, &tie_flipped, 2).agrees());
        let lead = [0.5010, 0.3, 0.4990, 0.6];
        let lead_flipped = [0.4990, 0.3, 0.5010, 0.6];
        assert!(!compare(&lead, &lead_flipped, 2).argmax_equal);
        assert!(
            compare(&reference, &[f32::NAN, 0.3, 0.4, 0.6], 2)
                .max_abs_diff
                .is_infinite()
        );
        assert!(!compare(&reference, &reference[..2], 2).agrees());
    }
}

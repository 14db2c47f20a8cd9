//! `config.json`: every value that fixes the network and its input, stored next to the weights.
//!
//! A model directory is `config.json` + `model.safetensors`. The config says which MSNet this is
//! (2D or 3D, channels, classes, grids, phases, the fixed scalars of the variational model), what
//! input it expects (size and normalisation) and, for trained models, how it was trained and on
//! which split, so that evaluation never scores a model on its own training images.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};
use crate::sample::{DatasetKind, Sample};

/// Current version of the config format. Bumped when a field changes meaning.
pub const CONFIG_VERSION: u32 = 1;

/// Per-channel input normalisation, applied inside the network (its first operation), so every
/// engine sees the same input: pixel intensities scaled to `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Subtracted from each channel.
    pub mean: Vec<f32>,
    /// Each channel is divided by this after the subtraction.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The smallest standard deviation stored: a channel that is constant over the training
    /// images would otherwise divide by zero.
    pub const MIN_STD: f32 = 1e-3;

    /// Per-channel mean and standard deviation over every pixel (voxel) of `samples`, each
    /// with `channels` channel-first planes: the statistics of the training images a model
    /// normalises its input by.
    pub fn of_samples(samples: &[Sample], channels: usize) -> Self {
        let mut sum = vec![0f64; channels];
        let mut sq = vec![0f64; channels];
        let mut count = 0usize;
        for s in samples {
            let per = s.image.len() / channels;
            for (c, plane) in s.image.chunks(per).enumerate() {
                for &v in plane {
                    sum[c] += v as f64;
                    sq[c] += (v as f64) * (v as f64);
                }
            }
            count += per;
        }
        let n = count.max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, &m)| ((q / n - (m as f64).powi(2)).max(0.0).sqrt() as f32).max(Self::MIN_STD))
            .collect();
        Normalization { mean, std }
    }
}

/// Which network a training run builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// MSNet, as [`Config`] describes it (the single-grid ablation is MSNet with
    /// [`Config::grids`] = 1, not another network).
    MSNet,
    /// The paper's U-Net baseline (`msnet-trainer`'s `baseline::UNet`): 2D, trained to be
    /// compared against, never exported.
    UNet,
}

impl Arch {
    /// Every network, in a stable order.
    pub const ALL: [Arch; 2] = [Arch::MSNet, Arch::UNet];

    /// Its name on the command line and in reports: `msnet` or `unet`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::MSNet => "msnet",
            Arch::UNet => "unet",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The network's definition: everything the spec, the trainer, the exporter and the runtime need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// [`CONFIG_VERSION`] of the writer.
    pub format_version: u32,
    /// 2 for images, 3 for volumes.
    pub dims: usize,
    /// Input channels (3 for RGB, 1 for gray or MRI).
    pub in_channels: usize,
    /// Output classes, background included.
    pub classes: usize,
    /// Feature channels `C` on every grid (the paper: 16, no channel doubling).
    pub channels: usize,
    /// Phases `N` of the threshold-dynamics softmax; `C = N * I`.
    pub phases: usize,
    /// Number of grids `H` of the V-cycle (the paper: 5).
    pub grids: usize,
    /// Weight of the regulariser `L* v L` in `A = v + lambda L* v L`.
    pub lambda: f32,
    /// Weight of the length (threshold dynamics) term `K(1 - 2v)`.
    pub alpha: f32,
    /// Temperature of the phase softmax.
    pub eps: f32,
    /// Relaxation step of the `u` update.
    pub dt: f32,
    /// Input size `[D, H, W]`; `D = 1` in 2D. Each spatial size divides by `2^(grids-1)`.
    pub input_size: [usize; 3],
    /// Input normalisation (one entry per input channel).
    pub normalization: Normalization,
    /// Class names, background first.
    pub class_names: Vec<String>,
    /// How the weights were made; absent for untrained (random) models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingRecord>,
}

/// What a training run recorded about itself, so that evaluation and model cards can say exactly
/// which data the weights saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// What the run trained on: a dataset (`wbc`, `drishti`, `acdc`, `folder`, ...) or other
    /// data (`finetune`, `phantom`).
    pub dataset: TrainedOn,
    /// Seed of the split, the initialisation and the batch order.
    pub seed: u64,
    /// Names of the training images (volumes).
    pub train: Vec<String>,
    /// Names of the held-out test images (volumes): `msnet eval` uses these by default.
    pub test: Vec<String>,
    /// Iterations completed.
    pub iterations: usize,
    /// Images per iteration.
    pub batch_size: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Multiplied into the learning rate every `lr_step` iterations.
    pub lr_decay: f64,
    /// Iterations between learning-rate decays.
    pub lr_step: usize,
    /// Weight initialisation that was used.
    pub init: InitSpec,
    /// Mean training loss over the last iterations.
    pub final_loss: f64,
    /// Wall-clock training time in seconds (all sessions of a resumed run).
    pub seconds: f64,
    /// Where the run happened (backend and device), for model cards.
    pub hardware: String,
    /// For `folder` datasets: the mask value of each class, so evaluation reads masks exactly
    /// as training did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_classes: Option<Vec<(u8, String)>>,
    /// The augmentation of the training batches (absent: none).
    #[serde(default, skip_serializing_if = "Augmentation::is_off")]
    pub augmentation: Augmentation,
    /// The training loss (absent: the paper's soft Dice).
    #[serde(default, skip_serializing_if = "Loss::is_dice")]
    pub loss: Loss,
    /// For a fine-tuned model (`msnet-run finetune`): the model it started from. Absent: the
    /// weights were initialised afresh (`init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseModel>,
}

/// The model a fine-tuning run started from, so a card can say what the weights saw before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaseModel {
    /// Its directory, as given on the command line.
    pub path: String,
    /// sha256 of its `model.safetensors`.
    pub weights_sha256: String,
    /// Its own training record (absent if its config had none).
    pub training: Option<Box<TrainingRecord>>,
}

/// The training loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// The paper's soft multi-class Dice over every class (MSNET.md, "Training").
    #[default]
    #[serde(rename = "dice")]
    Dice,
    /// The soft Dice plus the mean voxel cross-entropy, weight 1. A deviation from the paper,
    /// for tasks whose foreground is a small fraction of the voxels (ACDC): the Dice alone lets
    /// the class softmax saturate on the background, where no foreground gradient is left;
    /// the cross-entropy's gradient on a misclassified voxel does not vanish there.
    #[serde(rename = "dice+ce")]
    DiceCe,
}

impl Loss {
    pub fn is_dice(&self) -> bool {
        *self == Loss::Dice
    }

    /// Its name on the command line and in config.json: `dice` or `dice+ce`.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Dice => "dice",
            Loss::DiceCe => "dice+ce",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        [Loss::Dice, Loss::DiceCe]
            .into_iter()
            .find(|l| l.name() == text.trim())
            .ok_or_else(|| format!("unknown loss `{text}`: use dice or dice+ce"))
    }
}

/// What a training run trained on, stored in config.json as its name: one of the project's
/// datasets, whose split can be loaded again to evaluate the model, or other data its writer
/// names, such as `finetune` (a device's own images) or `phantom` (generated benchmark
/// images), which no loader can read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TrainedOn {
    Dataset(DatasetKind),
    Other(String),
}

impl TrainedOn {
    /// The dataset, if it is one.
    pub fn kind(&self) -> Option<DatasetKind> {
        match self {
            TrainedOn::Dataset(kind) => Some(*kind),
            TrainedOn::Other(_) => None,
        }
    }

    /// The name stored in config.json.
    pub fn name(&self) -> &str {
        match self {
            TrainedOn::Dataset(kind) => kind.name(),
            TrainedOn::Other(name) => name,
        }
    }
}

impl From<DatasetKind> for TrainedOn {
    fn from(kind: DatasetKind) -> Self {
        TrainedOn::Dataset(kind)
    }
}

/// A name is a dataset's when a dataset has it (as [`DatasetKind`] parses names), so a
/// record written before this type existed reads back as the dataset it names.
impl From<&str> for TrainedOn {
    fn from(name: &str) -> Self {
        name.parse()
            .map_or_else(|_| TrainedOn::Other(name.to_string()), TrainedOn::Dataset)
    }
}

impl From<String> for TrainedOn {
    fn from(name: String) -> Self {
        TrainedOn::from(name.as_str())
    }
}

impl From<TrainedOn> for String {
    fn from(on: TrainedOn) -> Self {
        on.name().to_string()
    }
}

impl fmt::Display for TrainedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TrainingRecord {
    /// The record of a run on `dataset` with these training and test images, before training:
    /// the training loop fills in the schedule, the outcome and the hardware.
    pub fn new(dataset: impl Into<TrainedOn>, train: Vec<String>, test: Vec<String>) -> Self {
        Self {
            dataset: dataset.into(),
            seed: 0,
            train,
            test,
            iterations: 0,
            batch_size: 0,
            learning_rate: 0.0,
            lr_decay: 0.0,
            lr_step: 0,
            init: InitSpec::default(),
            final_loss: f64::NAN,
            seconds: 0.0,
            hardware: String::new(),
            folder_classes: None,
            augmentation: Augmentation::default(),
            loss: Loss::Dice,
            base: None,
        }
    }
}

/// Random transforms of each training image, seeded by (seed, iteration, batch slot), so a
/// resumed run sees the same images. Geometric ones act on image and labels alike;
/// intensity ones on the image only, which stays in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Flip each in-plane axis (H, W) with probability 1/2.
    #[serde(default)]
    pub flip: bool,
    /// Flip W alone (left and right) with probability 1/2, for images that have an up: a
    /// mirrored left fundus is a right one, but upside down it is no eye a camera sees, and
    /// the rim's thickness differs above and below the cup. `flip` includes it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mirror: bool,
    /// Rotate in-plane by a random multiple of 90° (180° only when H ≠ W).
    #[serde(default)]
    pub rot90: bool,
    /// Add a uniform offset in `±brightness`.
    #[serde(default)]
    pub brightness: f32,
    /// Scale around 0.5 by a factor uniform in `1 ± contrast`.
    #[serde(default)]
    pub contrast: f32,
    /// Raise to the power `exp(u)`, `u` uniform in `±gamma`.
    #[serde(default)]
    pub gamma: f32,
    /// Zoom in-plane about the centre by `exp(u)`, `u` uniform in `±scale`: hearts, cells and
    /// discs come in many sizes, and four training volumes show four. Bilinear for the image,
    /// nearest for the labels; what comes from outside the image is 0 and background.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scale: f32,
    /// Rotate in-plane about the centre by an angle uniform in `±rotate` degrees (sampled as
    /// `scale`); applied after the flips and quarter turns.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rotate: f32,
    /// Scale each pixel's colour away from or towards its grey (the channels' mean) by
    /// `exp(u)`, `u` uniform in `±saturation`: stains differ from slide to slide in strength.
    /// No effect on one-channel images.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saturation: f32,
    /// Rotate each pixel's colour about the grey axis by an angle uniform in `±hue` degrees:
    /// stains differ in hue (purple, blue, pink). Three-channel images only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hue: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl Augmentation {
    /// `default`: flips, 90° rotations and ±0.1 brightness, contrast and gamma.
    pub const DEFAULT: Augmentation = Augmentation {
        flip: true,
        mirror: false,
        rot90: true,
        brightness: 0.1,
        contrast: 0.1,
        gamma: 0.1,
        scale: 0.0,
        rotate: 0.0,
        saturation: 0.0,
        hue: 0.0,
    };

    pub fn is_off(&self) -> bool {
        *self == Augmentation::default()
    }

    /// Parses `none`, `default`, or a comma list of `flip`, `mirror`, `rot90`, `brightness=A`,
    /// `contrast=A`, `gamma=A`, `scale=A`, `saturation=A` (amplitudes in `[0, 1]`), `rotate=D`
    /// and `hue=D` (degrees in `[0, 180]`).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" | "" => return Ok(Self::default()),
            "default" => return Ok(Self::DEFAULT),
            _ => {}
        }
        let mut a = Self::default();
        for item in text.split(',').map(str::trim) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => {
                    let (most, what) = match n {
                        "rotate" | "hue" => (180.0, "the angle must be in [0, 180] degrees"),
                        _ => (1.0, "the amplitude must be in [0, 1]"),
                    };
                    let v: f32 = v
                        .parse()
                        .ok()
                        .filter(|v: &f32| (0.0..=most).contains(v))
                        .ok_or_else(|| format!("{n}={v}: {what}"))?;
                    (n, Some(v))
                }
                None => (item, None),
            };
            match (name, value) {
                ("flip", None) => a.flip = true,
                ("mirror", None) => a.mirror = true,
                ("rot90", None) => a.rot90 = true,
                ("brightness", Some(v)) => a.brightness = v,
                ("contrast", Some(v)) => a.contrast = v,
                ("gamma", Some(v)) => a.gamma = v,
                ("scale", Some(v)) => a.scale = v,
                ("rotate", Some(v)) => a.rotate = v,
                ("saturation", Some(v)) => a.saturation = v,
                ("hue", Some(v)) => a.hue = v,
                _ => {
                    return Err(format!(
                        "unknown augmentation `{item}`: use none, default, or a comma list of flip, mirror, rot90, brightness=A, contrast=A, gamma=A, scale=A, rotate=DEGREES, saturation=A, hue=DEGREES"
                    ));
                }
            }
        }
        Ok(a)
    }
}

/// Weight initialisation: uniform in `±gain / sqrt(fan_in)`, with a larger gain on the output
/// head. See [`crate::weights::init`] for why the defaults are 2 and 6.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitSpec {
    /// Gain of every convolution but `O1`, `O2`.
    pub gain: f32,
    /// Gain of the output convolutions `O1`, `O2`.
    pub out_gain: f32,
}

impl Default for InitSpec {
    fn default() -> Self {
        Self {
            gain: 2.0,
            out_gain: 6.0,
        }
    }
}

/// A config that cannot describe a valid MSNet, or a config file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: not a valid MSNet config: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid MSNet config: {0}")]
    Invalid(String),
    /// [`ConfigError::Invalid`] of a config read from a file: the file is named, because a
    /// user fixes the file, and a command may read several.
    #[error("{path}: invalid MSNet config: {reason}")]
    InvalidFile { path: String, reason: String },
}

impl Config {
    /// The paper's network with default scalars for the given problem; input normalisation is
    /// the identity until a dataset sets it.
    pub fn new(dims: usize, in_channels: usize, classes: usize) -> Self {
        let input_size = if dims == 3 {
            [16, 128, 128]
        } else {
            [1, 128, 128]
        };
        Self {
            format_version: CONFIG_VERSION,
            dims,
            in_channels,
            classes,
            channels: 16,
            phases: 4,
            grids: 5,
            lambda: 1.0,
            alpha: 1.0,
            eps: 1.0,
            dt: 0.5,
            input_size,
            normalization: Normalization {
                mean: vec![0.0; in_channels],
                std: vec![1.0; in_channels],
            },
            class_names: (0..classes).map(|c| format!("class{c}")).collect(),
            training: None,
        }
    }

    /// `I`, the features per phase.
    pub fn features_per_phase(&self) -> usize {
        self.channels / self.phases.max(1)
    }

    /// Spatial size `[D, H, W]` of grid `h` (1 = finest).
    pub fn grid_size(&self, h: usize) -> [usize; 3] {
        let f = 1usize << (h - 1);
        let [d, hh, w] = self.input_size;
        [if self.dims == 3 { d / f } else { 1 }, hh / f, w / f]
    }

    /// Checks every invariant the spec and the engines rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.format_version != CONFIG_VERSION {
            return bad(format!(
                "format_version {} is not supported (this build reads {CONFIG_VERSION})",
                self.format_version
            ));
        }
        if self.dims != 2 && self.dims != 3 {
            return bad(format!("dims must be 2 or 3, got {}", self.dims));
        }
        if self.in_channels == 0 || self.classes < 2 || self.channels == 0 {
            return bad(format!(
                "need in_channels >= 1, classes >= 2, channels >= 1 (got {}, {}, {})",
                self.in_channels, self.classes, self.channels
            ));
        }
        if self.phases == 0 || !self.channels.is_multiple_of(self.phases) {
            return bad(format!(
                "channels ({}) must be a multiple of phases ({})",
                self.channels, self.phases
            ));
        }
        if !(1..=8).contains(&self.grids) {
            return bad(format!("grids must be 1..=8, got {}", self.grids));
        }
        let factor = 1usize << (self.grids - 1);
        let [d, h, w] = self.input_size;
        let spatial: &[usize] = if self.dims == 3 { &[d, h, w] } else { &[h, w] };
        if self.dims == 2 && d != 1 {
            return bad(format!("2D input_size must have D = 1, got {d}"));
        }
        if spatial.iter().any(|&s| s == 0 || !s.is_multiple_of(factor)) {
            return bad(format!(
                "input size {:?} must divide by 2^(grids-1) = {factor} on every spatial axis",
                spatial
            ));
        }
        for (name, v) in [
            ("lambda", self.lambda),
            ("alpha", self.alpha),
            ("eps", self.eps),
            ("dt", self.dt),
        ] {
            if !v.is_finite() {
                return bad(format!("{name} must be finite, got {v}"));
            }
        }
        if self.eps <= 0.0 {
            return bad(format!("eps must be > 0, got {}", self.eps));
        }
        let n = &self.normalization;
        // Statistics that agree with each other were computed on the training data, so it is
        // in_channels that disagrees with the model, usually edited for gray images.
        if n.mean.len() == n.std.len() && n.mean.len() != self.in_channels {
            return bad(format!(
                "in_channels is {}, but the model was trained on {} channels (its normalization \
                 has statistics for {}): set in_channels back to {}; `msnet-run` converts gray \
                 images to RGB and RGB to gray as the model needs",
                self.in_channels,
                n.mean.len(),
                n.mean.len(),
                n.mean.len()
            ));
        }
        if n.mean.len() != self.in_channels || n.std.len() != self.in_channels {
            return bad(format!(
                "normalization needs {} means and stds, got {} and {}",
                self.in_channels,
                n.mean.len(),
                n.std.len()
            ));
        }
        if n.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || n.mean.iter().any(|m| !m.is_finite())
        {
            return bad("normalization means must be finite and stds finite and > 0".into());
        }
        if self.class_names.len() != self.classes {
            return bad(format!(
                "{} class names for {} classes",
                self.class_names.len(),
                self.classes
            ));
        }
        Ok(())
    }

    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fsutil::read_to_string(path)?;
        let cfg: Config = serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid(reason) => ConfigError::InvalidFile {
                path: path.display().to_string(),
                reason,
            },
            e => e,
        })?;
        Ok(cfg)
    }

    /// Writes `config.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        fsutil::write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod augmentation_tests {
    use super::Augmentation;

    #[test]
    fn augmentation_specs_parse_and_bad_ones_say_why() {
        assert!(Augmentation::parse("none").unwrap().is_off());
        assert_eq!(
            Augmentation::parse("default").unwrap(),
            Augmentation::DEFAULT
        );
        let a = Augmentation::parse("flip, gamma=0.2").unwrap();
        assert!(a.flip && !a.mirror && !a.rot90 && a.gamma == 0.2 && a.brightness == 0.0);
        let a = Augmentation::parse("mirror").unwrap();
        assert!(a.mirror && !a.flip && !a.is_off());
        let a = Augmentation::parse("scale=0.2,rotate=15").unwrap();
        assert!(a.scale == 0.2 && a.rotate == 15.0 && !a.flip);
        let a = Augmentation::parse("saturation=0.3,hue=20").unwrap();
        assert!(a.saturation == 0.3 && a.hue == 20.0 && a.scale == 0.0);
        assert!(
            Augmentation::parse("hue=181")
                .unwrap_err()
                .contains("[0, 180]")
        );
        assert!(
            Augmentation::parse("rotate=200")
                .unwrap_err()
                .contains("[0, 180]")
        );
        assert!(
            Augmentation::parse("scale=2")
                .unwrap_err()
                .contains("[0, 1]")
        );
        assert!(
            Augmentation::parse("gamma=3")
                .unwrap_err()
                .contains("[0, 1]")
        );
        assert!(Augmentation::parse("warp").unwrap_err().contains("unknown"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(channels: usize, image: Vec<f32>) -> Sample {
        let labels = vec![0; image.len() / channels];
        Sample {
            name: "s".into(),
            channels,
            shape: [1, 1, labels.len()],
            image,
            labels,
        }
    }

    #[test]
    fn normalization_is_per_channel_over_every_training_pixel() {
        // Channel 0: 0, 1, 0, 1 over two images (mean 0.5, std 0.5); channel 1 constant.
        let samples = [
            sample(2, vec![0.0, 1.0, 0.25, 0.25]),
            sample(2, vec![0.0, 1.0, 0.25, 0.25]),
        ];
        let n = Normalization::of_samples(&samples, 2);
        assert_eq!(n.mean, [0.5, 0.25]);
        assert_eq!(n.std[0], 0.5);
        assert_eq!(n.std[1], Normalization::MIN_STD, "a constant channel");
        // Images of different sizes weigh by their pixels, not equally.
        let uneven = [sample(1, vec![1.0]), sample(1, vec![0.0, 0.0, 0.0])];
        assert_eq!(Normalization::of_samples(&uneven, 1).mean, [0.25]);
    }

    #[test]
    fn a_record_names_its_dataset_as_before_and_reads_old_names_back_typed() {
        let mut record = TrainingRecord::new(DatasetKind::DrishtiFull, vec![], vec![]);
        record.final_loss = 0.0; // training sets it; JSON has no NaN
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["dataset"], "drishti-full");
        let back: TrainingRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.dataset.kind(), Some(DatasetKind::DrishtiFull));
        for other in ["finetune", "phantom"] {
            let on = TrainedOn::from(other);
            assert_eq!((on.kind(), on.name()), (None, other));
            let json = serde_json::to_string(&on).unwrap();
            assert_eq!(json, format!("\"{other}\""));
            assert_eq!(serde_json::from_str::<TrainedOn>(&json).unwrap(), on);
        }
        assert_eq!(
            TrainedOn::from("acdc"),
            TrainedOn::Dataset(DatasetKind::Acdc)
        );
    }

    #[test]
    fn arch_names() {
        let names: Vec<String> = Arch::ALL.iter().map(Arch::to_string).collect();
        assert_eq!(names, ["msnet", "unet"]);
    }

    #[test]
    fn defaults_are_valid_in_2d_and_3d() {
        Config::new(2, 3, 3).validate().unwrap();
        Config::new(3, 1, 4).validate().unwrap();
    }

    #[test]
    fn rejects_sizes_not_divisible_by_16() {
        let mut c = Config::new(2, 3, 3);
        c.input_size = [1, 120, 128];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("divide by 2^(grids-1) = 16"), "{e}");
    }

    #[test]
    fn rejects_phases_not_dividing_channels() {
        let mut c = Config::new(2, 3, 3);
        c.phases = 3;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("multiple of phases")
        );
    }

    #[test]
    fn in_channels_edited_away_from_the_normalization_says_so() {
        let mut c = Config::new(2, 3, 3);
        c.normalization.mean = vec![0.5, 0.4, 0.3];
        c.in_channels = 1;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid MSNet config: in_channels is 1, but the model was trained on 3 channels \
             (its normalization has statistics for 3): set in_channels back to 3; `msnet-run` \
             converts gray images to RGB and RGB to gray as the model needs"
        );
        // Statistics that disagree with each other are the normalization's own fault.
        c.in_channels = 3;
        c.normalization.std = vec![1.0; 2];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("normalization needs 3 means and stds, got 3 and 2"),
            "{e}"
        );
    }

    #[test]
    fn a_config_file_that_is_invalid_is_named_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("msnet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let mut c = Config::new(2, 3, 4);
        c.class_names.pop();
        std::fs::write(&path, serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(
            Config::load(&path).unwrap_err().to_string(),
            format!(
                "{}: invalid MSNet config: 3 class names for 4 classes",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn grid_sizes_halve() {
        let c = Config::new(3, 1, 4);
        assert_eq!(c.grid_size(1), [16, 128, 128]);
        assert_eq!(c.grid_size(5), [1, 8, 8]);
        assert_eq!(Config::new(2, 3, 3).grid_size(3), [1, 32, 32]);
    }
}

//! `msnet-run finetune`: a shipped model trained further on a few labelled images of this
//! device's own, into a new model directory that `segment`, `watch` and `verify` take at once.
//!
//! - **Inputs** are read exactly as `segment` (2D) or `segment-volume` (3D) reads them ([`msnet_run::preprocess`]: channel
//!   matching, brought to the model's input by its [`InputFit`]), so the model trains on what
//!   it will see, in the geometry its base model was trained in.
//!   **Masks** are read as `segment` writes them (class `c` of `n` is gray `c·⌊255/(n−1)⌋`,
//!   [`msnet_labels::mask_png`]), so a corrected device mask can go straight back in, or
//!   with `--mask-values` in any other gray coding; they follow the image's fit. 3D label
//!   volumes hold class indices, as `segment-volume` writes them.
//! - **Training** is the native engine ([`msnet_native`], msnet-runtime's kernels) in the
//!   shared loop ([`msnet_training::train`]): checkpoints every `--checkpoint-every`
//!   iterations, `--resume` bit-identical to an uninterrupted run, and a non-finite loss
//!   stops with the last good checkpoint kept. A killed run (Ctrl-C included) continues with
//!   `--resume`.
//! - **The device files**: the runtime plan ([`msnet_compiler`]) and a golden bundle whose
//!   reference outputs are the native engine's forward pass ([`NativeReference`]). The plan
//!   is run on every golden input and compared before either is written; the bundle is
//!   written beside the directory and moved in whole. ONNX and NNEF are host files:
//!   `msnet export OUT` writes them later.
//!
//! No burn and no tract: `cargo tree -p msnet-run` shows neither.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use msnet::config::{Augmentation, BaseModel, Loss, TrainingRecord};
use msnet::model::{CONFIG_FILE, WEIGHTS_FILE};
use msnet::sample::Sample;
use msnet_eval::golden::{self, BundleInfo, FileDigest, LoadedCase, Tolerance};
use msnet_io::fit::InputFit;
use msnet_io::{read_mask, read_volume_u8};
use msnet_labels::mask_png;
use msnet_native::{NativeOptions, NativeReference, NativeTrainer};
use msnet_run::preprocess::{ImageBudget, read_model_image};
use msnet_runtime::format::PLAN_FILE;
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_training::{Outcome, Run, Step, TrainOptions, checkpoint};

use crate::model::Threads;
use crate::segment::stem;
use crate::volume::{resample_nearest, volume_input};

#[derive(Args)]
pub struct FinetuneArgs {
    /// The model to start from: a directory with config.json and model.safetensors.
    #[arg(long)]
    model: PathBuf,
    /// Training images (PNG, JPEG, BMP or TIFF), read as `segment` reads them; for a 3D model,
    /// NIfTI volumes, read as `segment-volume` reads them.
    #[arg(long, required = true, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Their masks, in the same order: 8-bit gray, the size of their image, coded as
    /// `segment` writes NAME.mask.png (class c of n as gray c × ⌊255/(n−1)⌋); for a 3D model,
    /// NIfTI label volumes of class indices on their volume's grid (as `segment-volume` writes
    /// them). --mask-values gives another coding.
    #[arg(long, required = true, num_args = 1..)]
    masks: Vec<PathBuf>,
    /// The gray value of each class, in class order, for masks in another coding, e.g.
    /// `0,128,255`.
    #[arg(long, value_name = "V0,V1,...")]
    mask_values: Option<String>,
    /// Training iterations.
    #[arg(long)]
    iterations: usize,
    /// The new model directory (never the --model directory).
    #[arg(long)]
    out: PathBuf,
    /// Initial learning rate, × 0.8 every 200 iterations. The default is training's own: on
    /// WBC (scripts/finetune-demo.sh, docs/results.md) a tenth of it left the model worse
    /// than its base after 1,000 iterations, this one improved it.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Images per iteration (default: 4, or all of them when fewer).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the batch order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Augmentation (none, default, or a list such as flip,rot90,gamma=0.1; see `msnet
    /// train --help`). Default: what the base model was trained with.
    #[arg(long)]
    augment: Option<String>,
    /// Loss: dice or dice+ce. Default: what the base model was trained with.
    #[arg(long)]
    loss: Option<String>,
    /// Write a checkpoint every this many iterations (and at the end).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Continue the run whose checkpoint is in --out.
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Discard a model or checkpoint already in --out and start afresh.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    threads: Threads,
    #[command(flatten)]
    image_budget: ImageBudget,
}

pub fn run(a: &FinetuneArgs) -> Result<ExitCode> {
    if a.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if a.images.len() != a.masks.len() {
        bail!(
            "{} images but {} masks: give one mask per image, in the same order",
            a.images.len(),
            a.masks.len()
        );
    }
    if a.out.exists() && same_dir(&a.out, &a.model) {
        bail!(
            "--out {} is the --model directory: a fine-tuned model goes into a new directory, \
             so the model it started from stays as it was",
            a.out.display()
        );
    }
    let base = msnet::Model::load(&a.model)
        .with_context(|| format!("cannot load the base model {}", a.model.display()))?;
    let cfg = base.config().clone();
    if cfg.dims == 3 && cfg.in_channels != 1 {
        bail!(
            "{}: a 3D model of {} channels; a NIfTI volume gives 1",
            a.model.display(),
            cfg.in_channels
        );
    }
    let values = MaskValues::new(a.mask_values.as_deref(), cfg.classes, cfg.dims)?;
    let base_record = cfg.training.clone();
    let opts = TrainOptions {
        iterations: a.iterations,
        batch_size: a.batch_size.unwrap_or(a.images.len().min(4)),
        learning_rate: a.lr,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        augmentation: match &a.augment {
            Some(text) => Augmentation::parse(text).map_err(|e| anyhow!("--augment: {e}"))?,
            None => base_record
                .as_ref()
                .map_or_else(Augmentation::default, |r| r.augmentation),
        },
        loss: match &a.loss {
            Some(text) => Loss::parse(text).map_err(|e| anyhow!("--loss: {e}"))?,
            None => base_record.as_ref().map_or(Loss::Dice, |r| r.loss),
        },
        ..TrainOptions::default()
    };
    let samples = a
        .images
        .iter()
        .zip(&a.masks)
        .map(|(image, mask)| match cfg.dims {
            3 => read_volume_pair(image, mask, &cfg, &values),
            _ => read_pair(image, mask, &cfg, &values, &a.image_budget),
        })
        .collect::<Result<Vec<_>>>()?;

    if a.force {
        checkpoint::discard(&a.out)?;
    }
    let mut spec = base.spec.clone();
    spec.config.training = None;
    let native = NativeOptions {
        threads: a.threads.count(),
        loss: opts.loss,
        ..NativeOptions::default()
    };
    let mut engine = NativeTrainer::new(&spec, &base.weights, native)?;
    let mut record = TrainingRecord::new(
        "finetune",
        samples.iter().map(|s| s.name.clone()).collect(),
        vec![],
    );
    record.base = Some(BaseModel {
        path: a.model.display().to_string(),
        weights_sha256: FileDigest::of(WEIGHTS_FILE, &a.model.join(WEIGHTS_FILE))?.sha256,
        training: base_record.map(Box::new),
    });
    eprintln!(
        "fine-tuning {} on {} images: {} iterations of {} at lr {:.1e}, loss {}, {}",
        a.model.display(),
        samples.len(),
        opts.iterations,
        opts.batch_size,
        opts.learning_rate,
        opts.loss.name(),
        msnet_training::Engine::describe(&engine)
    );
    let every = (opts.iterations / 20).max(1);
    let report = msnet_training::train(
        &mut engine,
        &spec,
        &samples,
        &opts,
        Run {
            out: &a.out,
            resume: a.resume,
            record,
            validation: None,
        },
        &mut |s: &Step| {
            if s.iteration.is_multiple_of(every) || s.iteration == s.iterations {
                eprintln!(
                    "iteration {}/{} loss {:.4} lr {:.2e} {:.1} img/s ETA {:.0} s",
                    s.iteration, s.iterations, s.loss, s.lr, s.images_per_second, s.eta_seconds
                );
            }
        },
        &AtomicBool::new(false),
    )?;
    if let Outcome::Interrupted { iteration } = report.outcome {
        bail!(
            "stopped at iteration {iteration}; continue with --resume (the checkpoint is in {})",
            a.out.display()
        );
    }
    write_device_files(&a.out, &report.model)?;
    eprintln!(
        "wrote {}: {CONFIG_FILE}, {WEIGHTS_FILE}, {PLAN_FILE}, {}/ (final loss {:.4}, {:.0} s); \
         check it with `msnet-run verify --model {}`; ONNX and NNEF: `msnet export {}` on a host",
        a.out.display(),
        golden::GOLDEN_DIR,
        report.record.final_loss,
        report.record.seconds,
        a.out.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether `a` and `b` name the same directory (either may not exist yet).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Which gray value codes which class.
struct MaskValues {
    /// `class_of[gray]`.
    class_of: [Option<u8>; 256],
    /// The values, for messages.
    listed: String,
    /// Whether they came from --mask-values.
    explicit: bool,
}

impl MaskValues {
    /// `explicit` (--mask-values), else the coding `segment` writes (2D, gray steps) or
    /// `segment-volume` writes (3D, class indices).
    fn new(explicit: Option<&str>, classes: usize, dims: usize) -> Result<Self> {
        let values: Vec<u8> = match explicit {
            Some(text) => text
                .split(',')
                .map(|v| {
                    v.trim().parse::<u8>().map_err(|_| {
                        anyhow!("--mask-values: `{}` is not a gray value 0..=255", v.trim())
                    })
                })
                .collect::<Result<_>>()?,
            None if dims == 3 => (0..classes).map(|c| c as u8).collect(),
            None => (0..classes)
                .map(|c| mask_png::gray_of(c as u8, classes))
                .collect(),
        };
        if values.len() != classes {
            bail!(
                "--mask-values gives {} values; the model has {classes} classes",
                values.len()
            );
        }
        let mut class_of = [None; 256];
        for (class, &v) in values.iter().enumerate() {
            if class_of[usize::from(v)].replace(class as u8).is_some() {
                bail!("--mask-values gives gray {v} to two classes");
            }
        }
        let listed = values
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            class_of,
            listed,
            explicit: explicit.is_some(),
        })
    }

    fn labels(&self, path: &Path, grays: &[u8]) -> Result<Vec<u8>> {
        grays
            .iter()
            .map(|&g| {
                self.class_of[usize::from(g)].ok_or_else(|| {
                    let hint = if self.explicit {
                        ""
                    } else {
                        " (the coding `segment` and `segment-volume` write; give another with \
                         --mask-values)"
                    };
                    anyhow!(
                        "{}: gray value {g} is no class of this model; the classes are {{{}}}{hint}",
                        path.display(),
                        self.listed
                    )
                })
            })
            .collect()
    }
}

/// One training sample: the image as the model's input, the mask as its labels.
fn read_pair(
    image: &Path,
    mask: &Path,
    cfg: &msnet::Config,
    values: &MaskValues,
    budget: &ImageBudget,
) -> Result<Sample> {
    let [_, h, w] = cfg.input_size;
    let fit = InputFit::of(cfg);
    let read = read_model_image(image, budget, cfg.in_channels, [h, w], fit)?;
    let (mask_hw, grays) = read_mask(mask)?;
    if mask_hw != read.hw {
        bail!(
            "{} is {}×{} but its image {} is {}×{}: a mask must be the size of its image",
            mask.display(),
            mask_hw[1],
            mask_hw[0],
            image.display(),
            read.hw[1],
            read.hw[0]
        );
    }
    let labels = values.labels(mask, &grays)?;
    Ok(Sample {
        name: stem(image),
        channels: cfg.in_channels,
        shape: cfg.input_size,
        image: read.input,
        labels: fit.labels(&labels, mask_hw, [h, w]),
    })
}

/// One 3D training sample: a NIfTI volume as `segment-volume` reads it, and its label volume
/// (the same grid) resampled by nearest neighbour.
fn read_volume_pair(
    image: &Path,
    mask: &Path,
    cfg: &msnet::Config,
    values: &MaskValues,
) -> Result<Sample> {
    let (shape, input) = volume_input(image, cfg.input_size)?;
    let (mask_shape, raw) = read_volume_u8(mask)?;
    if mask_shape != shape {
        bail!(
            "{} is {mask_shape:?} ([D, H, W]) but its volume {} is {shape:?}: a label volume \
             must be on its volume's grid",
            mask.display(),
            image.display()
        );
    }
    let labels = values.labels(mask, &raw)?;
    Ok(Sample {
        name: stem(image),
        channels: 1,
        shape: cfg.input_size,
        image: input,
        labels: resample_nearest(&labels, shape, cfg.input_size),
    })
}

/// The plan and golden bundle of the trained model in `out`, checked against each other
/// before either is written.
fn write_device_files(out: &Path, model: &msnet::Model) -> Result<()> {
    let cfg = model.config();
    let size = cfg.input_size;
    let plan = msnet_compiler::compile_plan(model, size)?;
    let reference = NativeReference::new(&model.spec, &model.weights)?;
    let inputs = golden::inputs(cfg, size);
    let outputs: Vec<Vec<f32>> = inputs
        .iter()
        .map(|i| golden::Reference::forward(&reference, &i.data, size))
        .collect();

    let buffer = PlanBuffer::from_bytes(&plan.bytes);
    let parsed = buffer
        .plan()
        .map_err(|e| anyhow!("the compiled plan does not load: {e}"))?;
    let mut session = Session::new(parsed).map_err(|e| anyhow!("the compiled plan: {e}"))?;
    let cases: Vec<LoadedCase> = inputs
        .iter()
        .zip(&outputs)
        .map(|(input, output)| LoadedCase {
            name: input.name.into(),
            input: input.data.clone(),
            output: output.clone(),
        })
        .collect();
    let diffs = golden::check_engines(
        &cases,
        &mut [("the compiled plan", &mut session)],
        cfg.classes,
        Tolerance::default(),
    )?;
    for diff in &diffs {
        let c = diff.engines[0].comparison;
        if !c.agrees() {
            bail!(
                "the compiled plan disagrees with the native forward pass on golden case `{}` \
                 (max abs diff {:.3e}, argmax equal: {}); nothing was written beside the \
                 trained weights",
                diff.case,
                c.max_abs_diff,
                c.argmax_equal
            );
        }
    }

    msnet::fsutil::write_atomic(&out.join(PLAN_FILE), &plan.bytes)?;
    let staged = out.join(format!("{}.new", golden::GOLDEN_DIR));
    if staged.exists() {
        std::fs::remove_dir_all(&staged)
            .with_context(|| format!("cannot remove {}", staged.display()))?;
    }
    let model_files = [CONFIG_FILE, WEIGHTS_FILE, PLAN_FILE]
        .iter()
        .map(|f| FileDigest::of(f, &out.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    let info = BundleInfo {
        reference: golden::Reference::name(&reference),
        input_name: golden::INPUT_NAME.into(),
        output_name: golden::OUTPUT_NAME.into(),
        model_files,
    };
    golden::write_bundle(&staged, cfg, size, &inputs, &outputs, info)?;
    let bundle = out.join(golden::GOLDEN_DIR);
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle)
            .with_context(|| format!("cannot remove the old {}", bundle.display()))?;
    }
    std::fs::rename(&staged, &bundle)
        .with_context(|| format!("cannot move {} into place", staged.display()))?;
    Ok(())
}

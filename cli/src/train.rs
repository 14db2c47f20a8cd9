//! `msnet train`: load a dataset, print the split, build the engine, train with a progress
//! bar (the loop is `msnet_training::train`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use msnet::config::{Arch, Augmentation, InitSpec, Loss, TrainingRecord};
use msnet::{Spec, Weights};
use msnet_datasets::DatasetKind;
use msnet_trainer::{BurnEngine, device};
use msnet_training::{
    Engine, Outcome, Run, Step, TrainError, TrainOptions, Validation, checkpoint,
};

use msnet_native::{NativeOptions, NativeTrainer};

use crate::choices::ArchArg;
use crate::{DataArgs, baseline, setup};

/// Which engine computes the training steps.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Training engine. native: MSNet's own CPU trainer on the runtime's kernels (the ones a
    /// device runs), no burn; it uses --threads threads. burn: burn's flex CPU backend (the
    /// reference); its threads follow RAYON_NUM_THREADS. Both run the same loop (batches,
    /// schedule, Adam, checkpoints); a checkpoint resumes only with the engine that wrote it.
    #[arg(long, default_value = "native", value_parser = ["native", "burn"])]
    pub engine: String,
    /// Threads of the native engine (default: the available parallelism). burn ignores it and
    /// keeps RAYON_NUM_THREADS.
    #[arg(long)]
    pub threads: Option<usize>,
}

impl EngineArgs {
    /// The native engine's thread count: --threads, else the available parallelism.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Builds the engine with fresh weights (`msnet::weights::init`).
    pub fn build(&self, spec: &Spec, opts: &TrainOptions) -> Result<Box<dyn Engine>> {
        if self.engine == "burn" && self.threads.is_some() {
            eprintln!(
                "note: --threads is for the native engine; burn uses RAYON_NUM_THREADS threads"
            );
        }
        let weights = msnet::weights::init(spec, opts.seed, opts.init);
        engine_for(&self.engine, spec, &weights, opts, self.threads())
    }
}

/// The engine called `name` (`native` or `burn`), starting from `weights`.
pub(crate) fn engine_for(
    name: &str,
    spec: &Spec,
    weights: &Weights,
    opts: &TrainOptions,
    threads: usize,
) -> Result<Box<dyn Engine>> {
    if threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    match name {
        "native" => {
            let native = NativeOptions {
                threads,
                adam_epsilon: opts.adam_epsilon,
                loss: opts.loss,
            };
            Ok(Box::new(NativeTrainer::new(spec, weights, native)?))
        }
        "burn" if !opts.loss.is_dice() => anyhow::bail!(
            "--loss {}: the burn engine trains on the soft Dice only; use --engine native",
            opts.loss.name()
        ),
        "burn" => Ok(Box::new(BurnEngine::new(
            spec,
            weights,
            opts,
            device::device(),
        ))),
        other => anyhow::bail!("unknown engine {other:?}; use native or burn"),
    }
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Number of training images (volumes) S, chosen by --seed (wbc: 10/30/60; drishti: <= 50;
    /// acdc: 2/3/4).
    #[arg(long, default_value_t = 10)]
    train_size: usize,
    /// Seed of the split, the weight initialisation and the batch order: same seed, same
    /// weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training iterations (one mini-batch each).
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// Images per iteration.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Initial learning rate (Adam).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Multiply the learning rate by this every --lr-step iterations.
    #[arg(long, default_value_t = 0.8)]
    lr_decay: f64,
    /// Iterations between learning-rate decays.
    #[arg(long, default_value_t = 200)]
    lr_step: usize,
    /// Write a checkpoint every this many iterations (Ctrl-C also writes one).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Continue from OUT/checkpoint (same data options, seed and --engine as the first run;
    /// with --arch unet, from OUT/baseline-checkpoint.bin). Without it (or --force), an OUT
    /// that already holds a model or checkpoint is refused.
    #[arg(long)]
    resume: bool,
    /// Start afresh even if OUT holds a model or checkpoint: they are deleted first (other
    /// files, such as evaluations and exports, are kept).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Augmentation of the training images, seeded by --seed and recorded in config.json:
    /// none, default (flip, rot90, brightness=0.1, contrast=0.1, gamma=0.1), or a comma list
    /// of flip (H and W, each with probability 1/2), mirror (W alone: left and right, for
    /// images that have an up, such as fundus photographs), rot90 (in-plane quarter turns; half turns
    /// when H != W), brightness=A (offset ±A), contrast=A (scale 1±A around 0.5), gamma=A
    /// (power exp(±A)), scale=A (in-plane zoom by exp(±A)), rotate=D (in-plane rotation by
    /// ±D degrees), saturation=A (colour away from grey by exp(±A)), hue=D (colour rotated
    /// about the grey axis by ±D degrees; RGB only). Off unless validation shows it helps.
    #[arg(long, default_value = "none", value_parser = parse_augmentation)]
    augment: Augmentation,
    #[command(flatten)]
    network: NetworkArgs,
    /// Hold this many of the S training images out as a validation set (the last V of the
    /// seeded training list), scored into OUT/validation.csv. Use it to choose iterations and
    /// settings without touching the test set; the final model trains on all S.
    #[arg(long, default_value_t = 0)]
    val_count: usize,
    /// Score the validation set every this many iterations (default: --checkpoint-every).
    #[arg(long)]
    val_every: Option<usize>,
    /// Network.
    #[arg(long, value_enum, default_value_t = ArchArg(Arch::MSNet))]
    arch: ArchArg,
    /// Base channel width of the U-Net baseline (the original: 64, 31M parameters).
    #[arg(long, default_value_t = 16)]
    unet_width: usize,
    #[command(flatten)]
    engine: EngineArgs,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: &TrainArgs) -> Result<ExitCode> {
    // Refuse before loading any data (the loop refuses too, for other callers).
    let ArchArg(arch) = a.arch;
    if arch == Arch::MSNet
        && !a.resume
        && !a.force
        && let Some(found) = checkpoint::in_use(&a.out)
    {
        return Err(TrainError::OutputInUse {
            out: a.out.clone(),
            found,
        }
        .into());
    }
    let kind = a.data.dataset.map_or(DatasetKind::Wbc, |d| d.0);
    let opts = setup::load_options(&a.data, kind, a.train_size, a.seed)?;
    eprintln!("loading {kind} from {}", opts.root.display());
    let mut ds = msnet_datasets::load(&opts)?;
    let held_out = ds
        .hold_out(a.val_count)
        .with_context(|| format!("--val-count {}", a.val_count))?;
    let validation_names: Vec<String> = held_out.iter().map(|s| s.name.clone()).collect();
    eprintln!(
        "split (seed {}): {} training, {} validation, {} test",
        a.seed,
        ds.train.len(),
        held_out.len(),
        ds.test.len()
    );
    eprintln!("  train: {}", ds.split.train.join(" "));
    if !held_out.is_empty() {
        eprintln!("  validation: {}", validation_names.join(" "));
    }
    eprintln!("  test:  {}", ds.split.test.join(" "));
    let validation = (!held_out.is_empty()).then(|| Validation {
        samples: &held_out,
        every: a.val_every.unwrap_or(a.checkpoint_every),
    });

    let config = a.network.config(&ds)?;
    let spec = Spec::new(&config);
    let options = TrainOptions {
        iterations: a.iterations,
        batch_size: a.batch_size,
        learning_rate: a.lr,
        lr_decay: a.lr_decay,
        lr_step: a.lr_step,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        init: a.network.init(),
        augmentation: a.augment,
        loss: a.network.loss,
        ..TrainOptions::default()
    };
    let record = opts.training_record(&ds.split);
    if arch == Arch::UNet {
        let target = baseline::Target {
            out: &a.out,
            width: a.unet_width,
            kind,
            root: &opts.root,
            resume: a.resume,
            force: a.force,
        };
        return baseline::run(&target, &ds, &options, validation);
    }
    if a.resume {
        check_resume(&a.out, &record, &a.engine.engine)?;
    }
    let mut engine = a.engine.build(&spec, &options)?;
    eprintln!(
        "MSNet {}D, {} parameters, {} engine: {}; {} iterations of {} images",
        config.dims,
        spec.parameter_count(),
        engine.name(),
        engine.describe(),
        a.iterations,
        a.batch_size
    );
    if a.force && checkpoint::in_use(&a.out).is_some() {
        checkpoint::discard(&a.out)?;
        eprintln!(
            "--force: deleted the model and checkpoints in {}",
            a.out.display()
        );
    }

    let stop = stop_on_ctrl_c("finishing this iteration and writing a checkpoint")?;

    let mut progress = Progress::new(a.iterations);
    let report = msnet_training::train(
        &mut *engine,
        &spec,
        &ds.train,
        &options,
        Run {
            out: &a.out,
            resume: a.resume,
            record,
            validation,
        },
        &mut |s| progress.step(s),
        &stop,
    );
    progress.finish();
    let report = report?;
    match report.outcome {
        Outcome::Finished => {
            eprintln!(
                "done: {} iterations in {:.0} s, final loss {:.4}; model in {}",
                report.record.iterations,
                report.record.seconds,
                report.record.final_loss,
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Interrupted { iteration } => {
            eprintln!(
                "stopped at iteration {iteration}; checkpoint in {}. Continue with the same command and --resume",
                checkpoint::dir(&a.out).display()
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// The network a dataset gets, its initialisation and the loss: what `train` builds and
/// `probe` inspects.
#[derive(Args, Clone)]
pub struct NetworkArgs {
    /// Initialisation gain of the hidden convolutions (uniform ±gain/sqrt(fan_in)).
    #[arg(long, default_value_t = InitSpec::default().gain)]
    init_gain: f32,
    /// Initialisation gain of the output convolutions O1, O2.
    #[arg(long, default_value_t = InitSpec::default().out_gain)]
    out_gain: f32,
    /// Number of grids H of the V-cycle (the paper: 5; 1 = single grid ablation).
    #[arg(long, default_value_t = 5)]
    grids: usize,
    /// Phases N of the threshold-dynamics softmax (C = 16 = N * I).
    #[arg(long, default_value_t = 4)]
    phases: usize,
    /// lambda, alpha, eps, dt of the variational model (fixed, not trained).
    #[arg(long, value_names = ["LAMBDA", "ALPHA", "EPS", "DT"], num_args = 4)]
    scalars: Option<Vec<f32>>,
    /// Training loss: dice (the paper's soft multi-class Dice over every class) or dice+ce
    /// (that plus the mean voxel cross-entropy; native engine only), for tasks whose
    /// foreground is a small fraction of the voxels, where the Dice alone can settle on a
    /// background-only map.
    #[arg(long, default_value = "dice", value_parser = Loss::parse)]
    pub loss: Loss,
}

impl NetworkArgs {
    /// The dataset's network with these grids, phases and scalars, validated.
    pub fn config(&self, ds: &msnet_datasets::Dataset) -> Result<msnet::Config> {
        let mut config = ds.network_config();
        config.grids = self.grids;
        config.phases = self.phases;
        if let Some(s) = &self.scalars {
            (config.lambda, config.alpha, config.eps, config.dt) = (s[0], s[1], s[2], s[3]);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn init(&self) -> InitSpec {
        InitSpec {
            gain: self.init_gain,
            out_gain: self.out_gain,
        }
    }
}

/// A flag set by Ctrl-C, after printing what happens next.
pub(crate) fn stop_on_ctrl_c(what: &'static str) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        eprintln!("\ninterrupted: {what}...");
        flag.store(true, Ordering::SeqCst);
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// A resumed run must train on the same images, with the same engine, as the run that wrote
/// the checkpoint. The checkpoint is found as the loop finds it ([`checkpoint::load`]: the
/// newest complete one, even mid-swap after a crash).
fn check_resume(out: &std::path::Path, record: &TrainingRecord, engine: &str) -> Result<()> {
    let ck = checkpoint::load(out)
        .with_context(|| format!("--resume: cannot read the checkpoint in {}", out.display()))?;
    checkpoint::check_engine(&ck, engine).context("--resume")?;
    if let Some(t) = &ck.model.spec.config.training
        && (t.train != record.train || t.seed != record.seed || t.dataset != record.dataset)
    {
        anyhow::bail!(
            "--resume: the checkpoint in {} was trained on another split (dataset {}, seed {}); use the same --dataset, --train-size and --seed",
            out.display(),
            t.dataset,
            t.seed
        );
    }
    Ok(())
}

/// A progress bar on a terminal; plain lines every 10% otherwise (logs, CI).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {msg} [{elapsed_precise} elapsed, ETA {eta_precise}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Self { bar, total }
    }

    pub(crate) fn step(&mut self, s: &Step) {
        let energy = s
            .largest_phase_input
            .map(|z| format!(", |z| {z:.2e}"))
            .unwrap_or_default();
        if let Some(v) = &s.validation {
            self.say(format!(
                "iteration {}: validation DSC {:.4} mIoU {:.4} ASD {:.3} (train loss {:.4}{energy})",
                s.iteration, v.dsc, v.iou, v.asd, s.loss
            ));
        }
        let msg = format!(
            "loss {:.4} lr {:.2e} {:.1} img/s{energy}",
            s.loss, s.lr, s.images_per_second
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(s.iteration as u64);
                bar.set_message(msg);
            }
            None => {
                let every = (self.total / 10).max(1);
                if s.iteration.is_multiple_of(every)
                    || s.iteration == self.total
                    || s.iteration == 1
                {
                    eprintln!(
                        "iteration {}/{} {msg} ETA {:.0} s",
                        s.iteration, self.total, s.eta_seconds
                    );
                }
            }
        }
    }

    /// A line above the bar, or on stderr without one.
    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn parse_augmentation(text: &str) -> Result<Augmentation, String> {
    Augmentation::parse(text)
}

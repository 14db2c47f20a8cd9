//! The training loop: Adam on the soft Dice loss with a step learning-rate schedule,
//! checkpoints, resume, and a clean stop on Ctrl-C or a non-finite loss.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use msnet::config::{InitSpec, TrainingRecord};
use msnet::data::Sample;
use msnet::metrics::ClassMetrics;
use msnet::{Model, Spec, Weights};

use crate::baseline::UNet;
use crate::checkpoint::{self, CheckpointState};
use crate::infer::{Predictor, argmax_classes};
use crate::network::MsNet;
use crate::validation::{self, Validation};
use crate::{TrainError, batch, loss};

/// Hyper-parameters of a run. Defaults are the paper's (section 6.1).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub iterations: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// The learning rate is multiplied by this every `lr_step` iterations.
    pub lr_decay: f64,
    pub lr_step: usize,
    pub seed: u64,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    pub init: InitSpec,
    /// Adam's epsilon. 1e-8 as PyTorch's default (burn's is 1e-5), since the paper's setup is
    /// PyTorch's Adam.
    pub adam_epsilon: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 4,
            learning_rate: 1e-3,
            lr_decay: 0.8,
            lr_step: 200,
            seed: 0,
            checkpoint_every: 100,
            init: InitSpec::default(),
            adam_epsilon: 1e-8,
        }
    }
}

impl TrainOptions {
    /// Learning rate in force at `iteration` (0-based).
    pub fn lr_at(&self, iteration: usize) -> f64 {
        self.learning_rate * self.lr_decay.powi((iteration / self.lr_step.max(1)) as i32)
    }
}

/// One iteration's report, for progress display.
#[derive(Clone, Debug)]
pub struct Step {
    /// Iterations completed, 1-based.
    pub iteration: usize,
    pub iterations: usize,
    pub loss: f64,
    pub lr: f64,
    /// Training images per second since this session started.
    pub images_per_second: f64,
    /// Estimated seconds to the last iteration at this session's pace.
    pub eta_seconds: f64,
    /// Validation metrics (mean over classes), on iterations that were scored.
    pub validation: Option<ClassMetrics>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All iterations done; the model is in the output directory.
    Finished,
    /// Stopped on request; a checkpoint at this iteration lets `--resume` continue.
    Interrupted { iteration: usize },
}

/// What the caller gets back.
pub struct Report {
    pub outcome: Outcome,
    pub model: Model,
    pub record: TrainingRecord,
}

/// Where a run writes and what it is.
pub struct Run<'a> {
    /// Output model directory (the final model, and `checkpoint/` inside).
    pub out: &'a Path,
    /// Continue from `out/checkpoint` instead of starting afresh.
    pub resume: bool,
    /// The training record's dataset fields (dataset, split); the loop fills in the rest.
    pub record: TrainingRecord,
    pub device: Device,
    /// Images held out of the training set, scored into `out/validation.csv`.
    pub validation: Option<Validation<'a>>,
}

/// Where an optimiser step draws its mini-batch from.
#[derive(Clone, Copy)]
struct BatchSource<'a> {
    samples: &'a [Sample],
    classes: usize,
    device: &'a Device,
}

/// An optimiser step's outcome: the loss, or the non-finite loss that stopped it.
type StepResult<M> = Result<(M, f64), f64>;

/// One optimisation step on iteration `it`'s mini-batch, shared by MSNet and the baseline:
/// forward, soft Dice, backward, Adam at the scheduled rate. A non-finite loss leaves the
/// module's weights untouched.
fn optimise<M: Module>(
    model: M,
    forward: &dyn Fn(&M, Tensor<5>) -> Tensor<5>,
    source: &BatchSource<'_>,
    opts: &TrainOptions,
    it: usize,
    optimizer: &mut ModuleOptimizer,
) -> StepResult<M> {
    let BatchSource {
        samples,
        classes,
        device,
    } = *source;
    let picked: Vec<&Sample> = batch::batch_indices(samples.len(), opts.batch_size, opts.seed, it)
        .into_iter()
        .map(|i| &samples[i])
        .collect();
    let images = batch::images(&picked, device);
    let targets = batch::one_hot(&picked, classes, device);
    let loss = loss::soft_dice(forward(&model, images), targets);
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return Err(value);
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optimizer.step(opts.lr_at(it), model, grads), value))
}

/// Progress bookkeeping common to both loops.
fn step_report(
    opts: &TrainOptions,
    iteration: usize,
    first: usize,
    loss: f64,
    started: Instant,
    validation: Option<ClassMetrics>,
) -> Step {
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let done = (iteration - first).max(1);
    Step {
        iteration,
        iterations: opts.iterations,
        loss,
        lr: opts.lr_at(iteration - 1),
        images_per_second: (done * opts.batch_size) as f64 / elapsed,
        eta_seconds: elapsed / done as f64 * (opts.iterations - iteration) as f64,
        validation,
    }
}

fn check_options(opts: &TrainOptions) -> Result<(), TrainError> {
    if opts.batch_size == 0 || opts.lr_step == 0 || opts.checkpoint_every == 0 {
        return Err(TrainError::Options(
            "batch size, lr step and checkpoint interval must be >= 1".into(),
        ));
    }
    Ok(())
}

fn mean_tail(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len().saturating_sub(20)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Trains `spec` on `samples`, calling `on_step` after every iteration and stopping cleanly
/// (with a checkpoint) as soon as `stop` is set.
pub fn train(
    spec: &Spec,
    samples: &[Sample],
    opts: &TrainOptions,
    run: Run<'_>,
    on_step: &mut dyn FnMut(&Step),
    stop: &AtomicBool,
) -> Result<Report, TrainError> {
    check_samples(spec, samples)?;
    if let Some(v) = &run.validation {
        check_samples(spec, v.samples)?;
    }
    check_options(opts)?;
    if run.validation.is_some() {
        validation::start_log(run.out, run.resume)?;
    }
    let device = run.device.clone().autodiff();
    let mut optimizer = AdamConfig::new().with_epsilon(opts.adam_epsilon).init();
    let (weights, mut state) = if run.resume {
        let ck = checkpoint::load(run.out)?;
        let mut saved = ck.model.spec.config.clone();
        saved.training = None;
        let mut wanted = spec.config.clone();
        wanted.training = None;
        if saved != wanted {
            return Err(TrainError::Checkpoint(format!(
                "{}: the checkpoint was made for a different network or input; start without --resume or use another --out",
                checkpoint::dir(run.out).display()
            )));
        }
        optimizer = checkpoint::restore_optimizer(optimizer, ck.optimizer)?;
        (ck.model.weights, ck.state)
    } else {
        let fresh = CheckpointState {
            iteration: 0,
            seconds: 0.0,
            recent_losses: Vec::new(),
        };
        (msnet::weights::init(spec, opts.seed, opts.init), fresh)
    };
    let mut model = MsNet::from_weights(spec, &weights, &device);
    let mut record = run.record.clone();
    let finish_record = |record: &mut TrainingRecord, state: &CheckpointState| {
        record.seed = opts.seed;
        record.iterations = state.iteration;
        record.batch_size = opts.batch_size;
        record.learning_rate = opts.learning_rate;
        record.lr_decay = opts.lr_decay;
        record.lr_step = opts.lr_step;
        record.init = opts.init;
        record.final_loss = mean_tail(&state.recent_losses);
        record.seconds = state.seconds;
        record.hardware = crate::device::describe();
    };
    let with_record = |record: &TrainingRecord| {
        let mut s = spec.clone();
        s.config.training = Some(record.clone());
        s
    };

    let started = Instant::now();
    let seconds_before = state.seconds;
    let first = state.iteration;
    let classes = spec.config.classes;
    let forward = |m: &MsNet, x: Tensor<5>| m.forward(spec, x);
    let source = BatchSource {
        samples,
        classes,
        device: &device,
    };
    for it in first..opts.iterations {
        if stop.load(Ordering::SeqCst) {
            finish_record(&mut record, &state);
            let stopped = Model {
                spec: with_record(&record),
                weights: model.to_weights(),
            };
            checkpoint::save(run.out, &stopped.spec, &stopped.weights, &optimizer, &state)?;
            return Ok(Report {
                outcome: Outcome::Interrupted { iteration: it },
                model: stopped,
                record,
            });
        }
        let value = match optimise(model, &forward, &source, opts, it, &mut optimizer) {
            Ok((next, value)) => {
                model = next;
                value
            }
            Err(_) => {
                return Err(TrainError::NonFinite {
                    iteration: it + 1,
                    checkpoint: state_on_disk(run.out),
                });
            }
        };

        state.iteration = it + 1;
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        state.recent_losses.push(value);
        let excess = state.recent_losses.len().saturating_sub(50);
        state.recent_losses.drain(..excess);
        let scored = match &run.validation {
            Some(v) if v.due(state.iteration, opts.iterations) => {
                let current = Model {
                    spec: spec.clone(),
                    weights: model.to_weights(),
                };
                let predictor = Predictor::new(&current, run.device.clone());
                let m = validation::score(
                    &|batch| predictor.labels(batch),
                    v.samples,
                    &spec.config.class_names,
                )?;
                validation::append(
                    run.out,
                    state.iteration,
                    mean_tail(&state.recent_losses),
                    &m,
                )?;
                Some(m)
            }
            _ => None,
        };
        on_step(&step_report(
            opts,
            state.iteration,
            first,
            value,
            started,
            scored,
        ));
        if state.iteration.is_multiple_of(opts.checkpoint_every)
            || state.iteration == opts.iterations
        {
            let weights = model.to_weights();
            // Never replace a good checkpoint with weights that have blown up.
            if weights.first_non_finite(spec).is_some() {
                return Err(TrainError::NonFinite {
                    iteration: state.iteration,
                    checkpoint: state_on_disk(run.out),
                });
            }
            finish_record(&mut record, &state);
            checkpoint::save(run.out, &with_record(&record), &weights, &optimizer, &state)?;
        }
    }
    finish_record(&mut record, &state);
    // The last iteration always writes a checkpoint, which checked the weights are finite.
    let final_model = Model {
        spec: with_record(&record),
        weights: model.to_weights(),
    };
    final_model.save(run.out)?;
    Ok(Report {
        outcome: Outcome::Finished,
        model: final_model,
        record,
    })
}

/// What a baseline run gives back.
pub struct BaselineReport {
    pub outcome: Outcome,
    pub net: UNet,
    /// Training seconds.
    pub seconds: f64,
    /// Mean loss of the last 20 iterations.
    pub final_loss: f64,
}

/// Where a baseline run writes and what it scores.
pub struct BaselineRun<'a> {
    /// Folder of `validation.csv`.
    pub out: &'a Path,
    /// Class names; their count is the network's output classes.
    pub class_names: &'a [String],
    pub validation: Option<Validation<'a>>,
}

/// Trains the U-Net baseline with MSNet's loop: the same batches (seeded by `opts.seed`), loss,
/// optimiser and schedule. It writes no checkpoints: a stopped run returns what it has, and the
/// caller decides whether to keep it. Validation lines go to `out/validation.csv` as for MSNet.
pub fn train_baseline(
    net: UNet,
    samples: &[Sample],
    opts: &TrainOptions,
    run: BaselineRun<'_>,
    on_step: &mut dyn FnMut(&Step),
    stop: &AtomicBool,
) -> Result<BaselineReport, TrainError> {
    let BaselineRun {
        out,
        class_names,
        validation,
    } = run;
    let classes = class_names.len();
    check_options(opts)?;
    if validation.is_some() {
        validation::start_log(out, false)?;
    }
    let device = net.devices().first().cloned().unwrap_or_default();
    let source = BatchSource {
        samples,
        classes,
        device: &device,
    };
    let mut optimizer = AdamConfig::new().with_epsilon(opts.adam_epsilon).init();
    let started = Instant::now();
    let mut net = net;
    let mut losses = Vec::new();
    let forward = |m: &UNet, x: Tensor<5>| m.forward(x);
    for it in 0..opts.iterations {
        if stop.load(Ordering::SeqCst) {
            return Ok(BaselineReport {
                outcome: Outcome::Interrupted { iteration: it },
                net,
                seconds: started.elapsed().as_secs_f64(),
                final_loss: mean_tail(&losses),
            });
        }
        let value = match optimise(net, &forward, &source, opts, it, &mut optimizer) {
            Ok((next, value)) => {
                net = next;
                value
            }
            Err(_) => {
                return Err(TrainError::NonFinite {
                    iteration: it + 1,
                    checkpoint: "the baseline writes no checkpoints".into(),
                });
            }
        };
        losses.push(value);
        let scored = match &validation {
            Some(v) if v.due(it + 1, opts.iterations) => {
                let m = validation::score(
                    &|batch| baseline_labels(&net, batch, classes),
                    v.samples,
                    class_names,
                )?;
                validation::append(out, it + 1, mean_tail(&losses), &m)?;
                Some(m)
            }
            _ => None,
        };
        on_step(&step_report(opts, it + 1, 0, value, started, scored));
    }
    Ok(BaselineReport {
        outcome: Outcome::Finished,
        net,
        seconds: started.elapsed().as_secs_f64(),
        final_loss: mean_tail(&losses),
    })
}

/// Predicted classes of the baseline for each sample.
pub fn baseline_labels(net: &UNet, samples: &[&Sample], classes: usize) -> Vec<Vec<u8>> {
    let Some(device) = net.devices().first().cloned() else {
        return Vec::new();
    };
    let probs = net.forward(batch::images(samples, &device));
    let flat = probs
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| unreachable!("probabilities are f32: {e:?}"));
    let per = flat.len() / samples.len().max(1);
    flat.chunks(per.max(1))
        .map(|p| argmax_classes(p, classes))
        .collect()
}

/// Describes the checkpoint a failed run leaves behind.
fn state_on_disk(out: &Path) -> String {
    match checkpoint::load(out) {
        Ok(ck) => format!(
            "the last good checkpoint (iteration {}) is in {}",
            ck.state.iteration,
            checkpoint::dir(out).display()
        ),
        Err(_) => "no checkpoint was written before it".into(),
    }
}

fn check_samples(spec: &Spec, samples: &[Sample]) -> Result<(), TrainError> {
    let cfg = &spec.config;
    if samples.is_empty() {
        return Err(TrainError::Options("no training samples".into()));
    }
    for s in samples {
        if s.channels != cfg.in_channels || s.shape != cfg.input_size {
            return Err(TrainError::Options(format!(
                "sample {} is {} channels of {:?}; the network takes {} channels of {:?}",
                s.name, s.channels, s.shape, cfg.in_channels, cfg.input_size
            )));
        }
        if let Some(&l) = s.labels.iter().find(|&&l| l as usize >= cfg.classes) {
            return Err(TrainError::Options(format!(
                "sample {} has label {l}, the network has {} classes",
                s.name, cfg.classes
            )));
        }
        if s.image.iter().any(|v| !v.is_finite()) {
            return Err(TrainError::Options(format!(
                "sample {} has a non-finite pixel",
                s.name
            )));
        }
    }
    Ok(())
}

/// Weights of a freshly initialised network on `device` (for tests and benchmarks).
pub fn initial_network(spec: &Spec, seed: u64, init: InitSpec, device: &Device) -> MsNet {
    let weights: Weights = msnet::weights::init(spec, seed, init);
    MsNet::from_weights(spec, &weights, device)
}

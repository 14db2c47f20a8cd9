//! The training loop: an engine's Adam steps on its loss (the soft Dice) with a step learning-rate
//! schedule, checkpoints, resume, validation, and a clean stop on Ctrl-C or a non-finite loss.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use msnet::config::{Augmentation, InitSpec, Loss, TrainingRecord};
use msnet::sample::Sample;
use msnet::{Model, Spec};
use msnet_eval::metrics::ClassMetrics;

use crate::checkpoint::{self, CheckpointState};
use crate::validation::{self, Validation};
use crate::{Engine, TrainError, batch};

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
    /// Transforms of the training images ([`crate::augment`]); off by default.
    pub augmentation: Augmentation,
    /// The loss the engine minimises (the engine is built with it; recorded here).
    pub loss: Loss,
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
            augmentation: Augmentation::default(),
            loss: Loss::Dice,
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
    /// The largest phase-softmax input of this step's forward pass, where the engine measures
    /// it: the number whose growth puts a run on the background plateau.
    pub largest_phase_input: Option<f32>,
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
    /// Continue from the checkpoint in `out` instead of starting afresh. Without it, an `out`
    /// that already holds a model or checkpoint is refused ([`TrainError::OutputInUse`]);
    /// [`checkpoint::discard`] clears it for a fresh start.
    pub resume: bool,
    /// The training record's dataset fields (dataset, split); the loop fills in the rest.
    pub record: TrainingRecord,
    /// Images held out of the training set, scored into `out/validation.csv`.
    pub validation: Option<Validation<'a>>,
}

/// Progress bookkeeping common to every loop (MSNet's here, the U-Net baseline's in
/// `msnet-trainer`).
pub fn step_report(
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
        largest_phase_input: None,
    }
}

/// Rejects options the loop cannot run with.
pub fn check_options(opts: &TrainOptions) -> Result<(), TrainError> {
    if opts.batch_size == 0 || opts.lr_step == 0 || opts.checkpoint_every == 0 {
        return Err(TrainError::Options(
            "batch size, lr step and checkpoint interval must be >= 1".into(),
        ));
    }
    Ok(())
}

/// Losses a checkpoint keeps (more than [`mean_tail`] reads, for its figure after a resume).
const RECENT_LOSSES: usize = 50;

/// Appends `loss` to a run's recent losses, keeping the last [`RECENT_LOSSES`].
pub fn push_recent_loss(recent: &mut Vec<f64>, loss: f64) {
    recent.push(loss);
    let excess = recent.len().saturating_sub(RECENT_LOSSES);
    recent.drain(..excess);
}

/// Mean of the last 20 losses (the training record's final loss).
pub fn mean_tail(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len().saturating_sub(20)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Checks that every sample fits the network (channels, size, labels) and is finite, naming
/// the first one that does not.
pub fn check_samples<'a>(
    spec: &Spec,
    samples: impl IntoIterator<Item = &'a Sample>,
) -> Result<(), TrainError> {
    let cfg = &spec.config;
    let voxels: usize = cfg.input_size.iter().product();
    let mut any = false;
    for s in samples {
        any = true;
        if s.channels != cfg.in_channels || s.shape != cfg.input_size {
            return Err(TrainError::Options(format!(
                "sample {} is {} channels of {:?}; the network takes {} channels of {:?}",
                s.name, s.channels, s.shape, cfg.in_channels, cfg.input_size
            )));
        }
        if s.image.len() != cfg.in_channels * voxels || s.labels.len() != voxels {
            return Err(TrainError::Options(format!(
                "sample {} has {} pixel values and {} labels for {} channels of {voxels} voxels",
                s.name,
                s.image.len(),
                s.labels.len(),
                cfg.in_channels
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
                "sample {} has a non-finite (NaN or infinite) pixel",
                s.name
            )));
        }
    }
    if !any {
        return Err(TrainError::Options("no training samples".into()));
    }
    Ok(())
}

/// Describes the checkpoint a failed run leaves behind.
fn state_on_disk(out: &Path) -> String {
    match checkpoint::load(out) {
        Ok(ck) => format!(
            "the last good checkpoint (iteration {}) is in {}",
            ck.state.iteration,
            ck.path.display()
        ),
        Err(_) => "no checkpoint was written before it".into(),
    }
}

/// Trains `spec` on `samples` with `engine`, calling `on_step` after every iteration and
/// stopping cleanly (with a checkpoint) as soon as `stop` is set.
///
/// The engine comes with fresh weights (`msnet::weights::init(spec, opts.seed, opts.init)`);
/// with `run.resume` the loop replaces them and the optimiser state with the checkpoint's,
/// which must have been written by the same engine. Iteration `t` trains on
/// [`batch::batch_indices`] at [`TrainOptions::lr_at`], so a resumed run sees what an
/// uninterrupted one would.
pub fn train(
    engine: &mut dyn Engine,
    spec: &Spec,
    samples: &[Sample],
    opts: &TrainOptions,
    run: Run<'_>,
    on_step: &mut dyn FnMut(&Step),
    stop: &AtomicBool,
) -> Result<Report, TrainError> {
    check_samples(spec, samples)?;
    if opts.batch_size > samples.len() {
        return Err(TrainError::Options(format!(
            "batch size {} is larger than the training set ({} images): every batch would \
             repeat images; use a batch size of {} or fewer",
            opts.batch_size,
            samples.len(),
            samples.len()
        )));
    }
    if let Some(v) = &run.validation {
        check_samples(spec, v.samples)?;
    }
    check_options(opts)?;
    let mut state = if run.resume {
        checkpoint::recover(run.out)?;
        let ck = checkpoint::load(run.out)?;
        let mut saved = ck.model.spec.config.clone();
        saved.training = None;
        let mut wanted = spec.config.clone();
        wanted.training = None;
        if saved != wanted {
            return Err(TrainError::Checkpoint(format!(
                "{}: the checkpoint was made for a different network or input; start without --resume or use another --out",
                ck.path.display()
            )));
        }
        checkpoint::check_engine(&ck, engine.name())?;
        engine
            .restore(&ck.model.weights, &ck.optimizer)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", ck.path.display())))?;
        ck.state
    } else {
        // A fresh run would overwrite (and its validation log truncate) what is there.
        if let Some(found) = checkpoint::in_use(run.out) {
            return Err(TrainError::OutputInUse {
                out: run.out.to_path_buf(),
                found,
            });
        }
        CheckpointState::fresh(engine.name(), engine.optimizer_file())
    };
    if run.validation.is_some() {
        validation::start_log(run.out, run.resume, &spec.config.class_names)?;
        validation::forget_after(run.out, state.iteration)?;
    }
    let hardware = engine.describe();
    let mut record = run.record.clone();
    let finish_record = |record: &mut TrainingRecord, state: &CheckpointState| {
        record.seed = opts.seed;
        record.iterations = state.iteration;
        record.batch_size = opts.batch_size;
        record.learning_rate = opts.learning_rate;
        record.lr_decay = opts.lr_decay;
        record.lr_step = opts.lr_step;
        record.init = opts.init;
        record.augmentation = opts.augmentation;
        record.loss = opts.loss;
        record.final_loss = mean_tail(&state.recent_losses);
        record.seconds = state.seconds;
        record.hardware = hardware.clone();
    };
    let with_record = |record: &TrainingRecord| {
        let mut s = spec.clone();
        s.config.training = Some(record.clone());
        s
    };
    // Never replace a good checkpoint with weights that have blown up.
    let checked_save = |engine: &dyn Engine,
                        record: &TrainingRecord,
                        state: &CheckpointState|
     -> Result<msnet::Weights, TrainError> {
        let weights = engine.weights();
        if weights.first_non_finite(spec).is_some() {
            return Err(TrainError::NonFinite {
                iteration: state.iteration,
                checkpoint: state_on_disk(run.out),
            });
        }
        let optimizer = engine.optimizer_state().map_err(|e| {
            TrainError::Checkpoint(format!("cannot serialise optimizer state: {e}"))
        })?;
        checkpoint::save(run.out, &with_record(record), &weights, &optimizer, state)?;
        Ok(weights)
    };

    let started = Instant::now();
    let seconds_before = state.seconds;
    let first = state.iteration;
    for it in first..opts.iterations {
        if stop.load(Ordering::SeqCst) {
            finish_record(&mut record, &state);
            let weights = checked_save(&*engine, &record, &state)?;
            return Ok(Report {
                outcome: Outcome::Interrupted { iteration: it },
                model: Model {
                    spec: with_record(&record),
                    weights,
                },
                record,
            });
        }
        let batch =
            batch::training_batch(samples, opts.batch_size, opts.seed, it, &opts.augmentation);
        let picked: Vec<&Sample> = batch.iter().map(|s| s.as_ref()).collect();
        let value = match engine.step(&picked, opts.lr_at(it)) {
            Ok(value) if value.is_finite() => value,
            _ => {
                return Err(TrainError::NonFinite {
                    iteration: it + 1,
                    checkpoint: state_on_disk(run.out),
                });
            }
        };

        state.iteration = it + 1;
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        push_recent_loss(&mut state.recent_losses, value);
        let scored = match &run.validation {
            Some(v) if v.due(state.iteration, opts.iterations) => {
                let m = validation::score(
                    &mut |batch| engine.predict(batch),
                    v.samples,
                    &spec.config.class_names,
                )?;
                validation::append(
                    run.out,
                    state.iteration,
                    mean_tail(&state.recent_losses),
                    &m,
                )?;
                Some(m.mean_all)
            }
            _ => None,
        };
        let mut report = step_report(opts, state.iteration, first, value, started, scored);
        report.largest_phase_input = engine.largest_phase_input();
        on_step(&report);
        if state.iteration.is_multiple_of(opts.checkpoint_every)
            || state.iteration == opts.iterations
        {
            finish_record(&mut record, &state);
            checked_save(&*engine, &record, &state)?;
        }
    }
    finish_record(&mut record, &state);
    let weights = engine.weights();
    // A run resumed from a finished checkpoint did no iteration (so wrote no checkpoint).
    if weights.first_non_finite(spec).is_some() {
        return Err(TrainError::NonFinite {
            iteration: state.iteration,
            checkpoint: state_on_disk(run.out),
        });
    }
    let final_model = Model {
        spec: with_record(&record),
        weights,
    };
    final_model.save(run.out)?;
    Ok(Report {
        outcome: Outcome::Finished,
        model: final_model,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_its_last_losses_and_reports_the_mean_of_the_last_twenty() {
        let mut recent = Vec::new();
        for i in 0..60 {
            push_recent_loss(&mut recent, i as f64);
        }
        assert_eq!(recent, (10..60).map(f64::from).collect::<Vec<_>>());
        // 40..=59
        assert_eq!(mean_tail(&recent), 49.5);
        assert_eq!(mean_tail(&[]), 0.0);
    }
}

//! Burn's optimisation step (shared by [`crate::BurnEngine`] and the U-Net baseline) and the
//! baseline's own loop. MSNet's loop is `msnet_training::train`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::{Bytes, Device, Tensor};
use msnet::config::InitSpec;
use msnet::sample::Sample;
use msnet::{Spec, Weights};
use msnet_training::batch::training_batch;
use msnet_training::validation::{self, Validation};
use msnet_training::{
    Outcome, Step, TrainError, TrainOptions, check_options, mean_tail, push_recent_loss,
    step_report,
};

use crate::baseline::UNet;
use crate::baseline_checkpoint::{self, BaselineCheckpoint, BaselineSetup, BaselineState};
use crate::network::MsNet;
use crate::{batch, loss};

/// Burn's Adam with the paper's settings: β 0.9/0.999 (burn's defaults) and `epsilon`.
pub fn adam(epsilon: f32) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(epsilon)
        .init()
}

/// One optimisation step on `batch`: forward, soft Dice, backward, Adam at `lr`. Returns the
/// module (updated, or untouched with the optimiser when the loss is non-finite) and the loss
/// (`Err` when non-finite).
pub(crate) fn optimise<M: Module>(
    model: M,
    forward: &dyn Fn(&M, Tensor<5>) -> Tensor<5>,
    batch: &[&Sample],
    classes: usize,
    device: &Device,
    lr: f64,
    optimizer: &mut ModuleOptimizer,
) -> (M, Result<f64, f64>) {
    let images = batch::images(batch, device);
    let targets = batch::one_hot(batch, classes, device);
    let loss = loss::soft_dice(forward(&model, images), targets);
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return (model, Err(value));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(lr, model, grads), Ok(value))
}

/// What a baseline run gives back.
pub struct BaselineReport {
    pub outcome: Outcome,
    pub net: UNet,
    /// Training seconds, over every session of the run.
    pub seconds: f64,
    /// Mean loss of the last 20 iterations.
    pub final_loss: f64,
}

/// Where a baseline run writes, what it scores and what it continues.
pub struct BaselineRun<'a> {
    /// Folder of `validation.csv` and the checkpoint ([`baseline_checkpoint`]).
    pub out: &'a Path,
    /// Class names; their count is the network's output classes.
    pub class_names: &'a [String],
    pub validation: Option<Validation<'a>>,
    /// What the checkpoint records and a resumed run must match.
    pub setup: BaselineSetup,
    /// Continue from `out`'s checkpoint (the network passed in is replaced by its weights).
    pub resume: bool,
}

/// Trains the U-Net baseline the way MSNet is trained: the same batches and augmentation
/// (seeded by `opts.seed`, [`training_batch`]), loss, optimiser and schedule. A checkpoint
/// is written every `opts.checkpoint_every` iterations, at the end and when stopped, and a
/// resumed run continues exactly where it stopped. Validation lines go to
/// `out/validation.csv` as for MSNet.
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
        setup,
        resume,
    } = run;
    let classes = class_names.len();
    check_options(opts)?;
    let device = net.devices().first().cloned().unwrap_or_default();
    let (mut net, mut optimizer, mut state) = if resume {
        restore(out, net, opts, setup)?
    } else {
        let state = BaselineState {
            setup,
            iteration: 0,
            seconds: 0.0,
            recent_losses: Vec::new(),
        };
        (net, adam(opts.adam_epsilon), state)
    };
    if validation.is_some() {
        validation::start_log(out, resume, class_names)?;
    }
    // Never replace a good checkpoint with weights that have blown up.
    let save = |net: &UNet, optimizer: &ModuleOptimizer, state: &BaselineState| {
        if !net.is_finite() {
            return Err(TrainError::NonFinite {
                iteration: state.iteration,
                checkpoint: last_good(out),
            });
        }
        let bytes = |r: Result<Bytes, RecordError>| {
            r.map(|b| b.to_vec())
                .map_err(|e| TrainError::Checkpoint(format!("cannot serialise: {e:?}")))
        };
        baseline_checkpoint::save(
            out,
            &BaselineCheckpoint {
                state: state.clone(),
                module: bytes(net.clone().into_record().into_bytes())?,
                optimizer: bytes(optimizer.into_bytes())?,
            },
        )
    };
    let started = Instant::now();
    let (first, seconds_before) = (state.iteration, state.seconds);
    let forward = |m: &UNet, x: Tensor<5>| m.forward(x);
    for it in first..opts.iterations {
        if stop.load(Ordering::SeqCst) {
            save(&net, &optimizer, &state)?;
            return Ok(BaselineReport {
                outcome: Outcome::Interrupted { iteration: it },
                net,
                seconds: state.seconds,
                final_loss: mean_tail(&state.recent_losses),
            });
        }
        let batch = training_batch(samples, opts.batch_size, opts.seed, it, &opts.augmentation);
        let picked: Vec<&Sample> = batch.iter().map(|s| s.as_ref()).collect();
        let (next, value) = optimise(
            net,
            &forward,
            &picked,
            classes,
            &device,
            opts.lr_at(it),
            &mut optimizer,
        );
        net = next;
        let Ok(value) = value else {
            return Err(TrainError::NonFinite {
                iteration: it + 1,
                checkpoint: last_good(out),
            });
        };
        state.iteration = it + 1;
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        push_recent_loss(&mut state.recent_losses, value);
        let scored = match &validation {
            Some(v) if v.due(it + 1, opts.iterations) => {
                let m = validation::score(
                    &mut |batch| baseline_labels(&net, batch, classes),
                    v.samples,
                    class_names,
                )?;
                validation::append(out, it + 1, mean_tail(&state.recent_losses), &m)?;
                Some(m.mean_all)
            }
            _ => None,
        };
        on_step(&step_report(opts, it + 1, first, value, started, scored));
        if state.iteration.is_multiple_of(opts.checkpoint_every)
            || state.iteration == opts.iterations
        {
            save(&net, &optimizer, &state)?;
        }
    }
    Ok(BaselineReport {
        outcome: Outcome::Finished,
        net,
        seconds: state.seconds,
        final_loss: mean_tail(&state.recent_losses),
    })
}

/// Where the run's last good checkpoint is, for an error that stops it.
fn last_good(out: &Path) -> String {
    match baseline_checkpoint::load(out) {
        Ok(ck) => format!(
            "the last good checkpoint (iteration {}) is {}",
            ck.state.iteration,
            baseline_checkpoint::path(out).display()
        ),
        Err(_) => "no checkpoint was written before it".into(),
    }
}

/// The network, optimiser and progress of `out`'s checkpoint, which must have been written
/// by a run with this `setup`.
fn restore(
    out: &Path,
    net: UNet,
    opts: &TrainOptions,
    setup: BaselineSetup,
) -> Result<(UNet, ModuleOptimizer, BaselineState), TrainError> {
    let ck = baseline_checkpoint::load(out)?;
    baseline_checkpoint::check_setup(out, &ck.state.setup, &setup)?;
    let file = baseline_checkpoint::path(out);
    let refused = |what: &str, e: RecordError| {
        TrainError::Checkpoint(format!("{}: {what}: {e:?}", file.display()))
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(ck.module))
        .map_err(|e| refused("corrupt network record", e))?;
    let net = net
        .try_load_record(record)
        .map_err(|e| refused("the network record does not fit this U-Net", e))?;
    let optimizer = adam(opts.adam_epsilon)
        .from_bytes(Bytes::from_bytes_vec(ck.optimizer))
        .map_err(|e| refused("corrupt optimizer state", e))?;
    Ok((net, optimizer, ck.state))
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
        .map(|p| msnet_labels::argmax(p, classes))
        .collect()
}

/// Weights of a freshly initialised network on `device` (for tests and benchmarks).
pub fn initial_network(spec: &Spec, seed: u64, init: InitSpec, device: &Device) -> MsNet {
    let weights: Weights = msnet::weights::init(spec, seed, init);
    MsNet::from_weights(spec, &weights, device)
}

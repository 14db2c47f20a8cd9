//! Training end to end on generated phantoms: the loss falls, runs are reproducible, and a
//! resumed run equals an uninterrupted one.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::tensor::Device;
use msnet::config::{Augmentation, TrainingRecord};
use msnet::sample::Sample;
use msnet::{Config, Model, Spec};
use msnet_io::phantom::nested_ellipses;
use msnet_trainer::baseline::UNet;
use msnet_trainer::baseline_checkpoint::{self, BaselineSetup};
use msnet_trainer::{BaselineReport, BaselineRun, BurnEngine, baseline_labels, train_baseline};
use msnet_training::{
    Outcome, Report, Run, TrainError, TrainOptions, Validation, checkpoint, train,
};

fn phantoms(n: usize) -> Vec<Sample> {
    (0..n as u64)
        .map(|s| nested_ellipses(s, 3, [1, 32, 32], 3))
        .collect()
}

/// A U-Net for the phantoms.
fn unet(width: usize, seed: u64) -> UNet {
    UNet::new(3, 3, width, seed, &Device::flex().autodiff())
}

/// How a test runs the baseline: a U-Net of `width` on three phantom classes.
struct UnetRun<'a> {
    width: usize,
    out: &'a PathBuf,
    validation: Option<Validation<'a>>,
    resume: bool,
    /// Sets the stop flag after this iteration (0: never).
    stop_after: usize,
}

/// Trains the baseline as `run` says on `train`, pushing every iteration's loss to `losses`.
fn train_unet(
    run: UnetRun<'_>,
    train: &[Sample],
    opts: &TrainOptions,
    losses: &mut Vec<f64>,
) -> Result<BaselineReport, TrainError> {
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let stop = AtomicBool::new(false);
    train_baseline(
        unet(run.width, opts.seed),
        train,
        opts,
        BaselineRun {
            out: run.out,
            class_names: &names,
            validation: run.validation,
            setup: BaselineSetup::new(run.width, &[], opts),
            resume: run.resume,
        },
        &mut |s| {
            losses.push(s.loss);
            if s.iteration == run.stop_after {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        },
        &stop,
    )
}

fn spec() -> Spec {
    let mut c = Config::new(2, 3, 3);
    c.input_size = [1, 32, 32];
    Spec::new(&c)
}

fn record() -> TrainingRecord {
    TrainingRecord::new("phantom", vec![], vec![])
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msnet-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Trains on `samples`, recording the losses; `stop` set means "stop before the first step".
fn try_training(
    samples: &[Sample],
    opts: &TrainOptions,
    out: &PathBuf,
    resume: bool,
    stop: bool,
    losses: &mut Vec<f64>,
) -> Result<Report, TrainError> {
    train_validated(samples, None, opts, out, resume, stop, losses)
}

fn train_validated(
    samples: &[Sample],
    validation: Option<Validation<'_>>,
    opts: &TrainOptions,
    out: &PathBuf,
    resume: bool,
    stop: bool,
    losses: &mut Vec<f64>,
) -> Result<Report, TrainError> {
    let spec = spec();
    // The caller's fresh weights; a resume replaces them with the checkpoint's.
    let weights = msnet::weights::init(&spec, opts.seed, opts.init);
    let mut engine = BurnEngine::new(&spec, &weights, opts, Device::flex());
    train(
        &mut engine,
        &spec,
        samples,
        opts,
        Run {
            out,
            resume,
            record: record(),
            validation,
        },
        &mut |s| losses.push(s.loss),
        &AtomicBool::new(stop),
    )
}

fn run_training(
    samples: &[Sample],
    opts: &TrainOptions,
    out: &PathBuf,
    resume: bool,
    losses: &mut Vec<f64>,
) -> Report {
    try_training(samples, opts, out, resume, false, losses).unwrap()
}

/// Parses `validation.csv` into (iteration, val DSC) rows.
fn validation_rows(out: &std::path::Path) -> Vec<(usize, f64)> {
    let text = std::fs::read_to_string(out.join("validation.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("iteration,train_loss,val_acc,val_miou,val_dsc,val_asd,dsc_"),
        "{header}"
    );
    let columns = header.split(',').count();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), columns, "{l}");
            let values: Vec<f64> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
            assert!(values.iter().all(|v| v.is_finite()), "{l}");
            (f[0].parse().unwrap(), values[3])
        })
        .collect()
}

#[test]
fn training_on_phantoms_lowers_the_loss_and_logs_validation() {
    let samples = phantoms(10);
    let (train_set, held_out) = samples.split_at(8);
    let opts = TrainOptions {
        iterations: 40,
        batch_size: 4,
        checkpoint_every: 1000,
        ..TrainOptions::default()
    };
    let out = out_dir("loss");
    let mut losses = Vec::new();
    let validation = Validation {
        samples: held_out,
        every: 15,
    };
    let report = train_validated(
        train_set,
        Some(validation),
        &opts,
        &out,
        false,
        false,
        &mut losses,
    )
    .unwrap();
    let rows = validation_rows(&out);
    let iterations: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert_eq!(iterations, [15, 30, 40]);
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.1)), "{rows:?}");
    // Held-out phantoms are segmented better than by chance once the loss has fallen.
    assert!(rows[2].1 > 0.5, "{rows:?}");
    assert_eq!(report.outcome, Outcome::Finished);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.6 * first, "loss {first:.4} -> {last:.4}");
    // The written model loads and records its training.
    let model = Model::load(&out).unwrap();
    assert_eq!(model.config().training.as_ref().unwrap().iterations, 40);
    assert!(
        report.record.hardware.starts_with("burn "),
        "{}",
        report.record.hardware
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn same_seed_same_weights_and_resume_is_exact() {
    let samples = phantoms(5);
    let opts = TrainOptions {
        iterations: 6,
        batch_size: 2,
        seed: 9,
        checkpoint_every: 3,
        ..TrainOptions::default()
    };
    let (a, b) = (out_dir("a"), out_dir("b"));
    let wa = run_training(&samples, &opts, &a, false, &mut vec![])
        .model
        .weights;
    let wb = run_training(&samples, &opts, &b, false, &mut vec![])
        .model
        .weights;
    assert_eq!(wa, wb, "same seed must give the same weights");
    assert!(
        !a.join("validation.csv").exists(),
        "a run without held-out images writes no validation log"
    );

    // Stop after 3 iterations, then resume to 6: same weights as the uninterrupted run.
    let c = out_dir("c");
    let half = TrainOptions {
        iterations: 3,
        ..opts.clone()
    };
    run_training(&samples, &half, &c, false, &mut vec![]);
    let wc = run_training(&samples, &opts, &c, true, &mut vec![])
        .model
        .weights;
    assert_eq!(wa, wc, "a resumed run must equal an uninterrupted one");

    let other = TrainOptions { seed: 10, ..opts };
    let d = out_dir("d");
    let wd = run_training(&samples, &other, &d, false, &mut vec![])
        .model
        .weights;
    assert_ne!(wa, wd);
    for dir in [a, b, c, d] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn bad_samples_are_rejected_with_their_name() {
    let mut samples = phantoms(2);
    samples[1].image[7] = f32::NAN;
    let out = out_dir("nan");
    let err = try_training(
        &samples,
        &TrainOptions::default(),
        &out,
        false,
        false,
        &mut vec![],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("phantom1") && err.contains("non-finite"),
        "{err}"
    );
}

#[test]
fn a_stop_request_writes_a_checkpoint_that_resumes() {
    let samples = phantoms(3);
    let out = out_dir("stop");
    let opts = TrainOptions {
        iterations: 4,
        batch_size: 1,
        ..TrainOptions::default()
    };
    let report = try_training(&samples, &opts, &out, false, true, &mut vec![]).unwrap();
    assert_eq!(report.outcome, Outcome::Interrupted { iteration: 0 });
    let ck = checkpoint::load(&out).unwrap();
    assert_eq!(ck.state.iteration, 0);
    assert_eq!(ck.state.engine, "burn");
    assert!(ck.path.join("optimizer.bpk").is_file());
    let resumed = run_training(&samples, &opts, &out, true, &mut vec![]);
    assert_eq!(resumed.outcome, Outcome::Finished);
    assert_eq!(resumed.record.iterations, 4);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_message_and_keeps_the_last_checkpoint() {
    let samples = phantoms(2);
    let out = out_dir("nan-loss");
    let opts = TrainOptions {
        iterations: 6,
        batch_size: 1,
        learning_rate: 1e30,
        checkpoint_every: 1,
        ..TrainOptions::default()
    };
    let err = try_training(&samples, &opts, &out, false, false, &mut vec![])
        .err()
        .expect("a learning rate of 1e30 must diverge")
        .to_string();
    assert!(err.contains("NaN or infinite"), "{err}");
    let ck = checkpoint::load(&out).unwrap();
    assert!(
        err.contains(&format!("iteration {}", ck.state.iteration)),
        "{err}"
    );
    assert!(ck.model.weights.first_non_finite(&ck.model.spec).is_none());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn baseline_unet_trains_with_the_same_loop_and_is_reproducible() {
    let samples = phantoms(10);
    let (train_set, held_out) = samples.split_at(8);
    let opts = TrainOptions {
        iterations: 30,
        batch_size: 4,
        seed: 3,
        ..TrainOptions::default()
    };
    let run = |out: &PathBuf, losses: &mut Vec<f64>| {
        let validation = Validation {
            samples: held_out,
            every: 10,
        };
        let run = UnetRun {
            width: 8,
            out,
            validation: Some(validation),
            resume: false,
            stop_after: 0,
        };
        train_unet(run, train_set, &opts, losses).unwrap()
    };
    let (a, b) = (out_dir("unet-a"), out_dir("unet-b"));
    let mut losses = Vec::new();
    let ra = run(&a, &mut losses);
    assert_eq!(ra.outcome, Outcome::Finished);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    // Without normalisation layers the U-Net starts slowly (0.708 -> 0.666 here); a broken
    // backward pass or optimiser step would leave the loss where it started.
    assert!(
        ra.final_loss < first - 0.02,
        "loss {first:.4} -> {:.4}",
        ra.final_loss
    );
    assert_eq!(validation_rows(&a).len(), 3);
    let rb = run(&b, &mut vec![]);
    let refs: Vec<&Sample> = held_out.iter().collect();
    assert_eq!(
        baseline_labels(&ra.net, &refs, 3),
        baseline_labels(&rb.net, &refs, 3),
        "same seed, same baseline"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The baseline trains on the augmented batches MSNet's loop trains on: before the loops
/// shared `training_batch`, `--augment` was ignored by the baseline and these losses were equal.
#[test]
fn baseline_unet_trains_on_augmented_batches() {
    let samples = phantoms(4);
    let first_losses = |augmentation: Augmentation| {
        let opts = TrainOptions {
            iterations: 2,
            batch_size: 2,
            seed: 5,
            augmentation,
            ..TrainOptions::default()
        };
        let out = out_dir("unet-augment");
        let mut losses = Vec::new();
        let run = UnetRun {
            width: 4,
            out: &out,
            validation: None,
            resume: false,
            stop_after: 0,
        };
        train_unet(run, &samples, &opts, &mut losses).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        losses
    };
    let plain = first_losses(Augmentation::default());
    assert_eq!(plain, first_losses(Augmentation::default()), "seeded");
    let augmented = first_losses(Augmentation::DEFAULT);
    assert_eq!(augmented, first_losses(Augmentation::DEFAULT), "seeded");
    assert_ne!(plain, augmented);
}

/// A baseline run stopped after 3 iterations and resumed from its checkpoint ends where an
/// uninterrupted run ends (same losses, same predictions); a resume with another setup is
/// refused, naming what differs.
#[test]
fn a_resumed_baseline_equals_an_uninterrupted_one() {
    let samples = phantoms(6);
    let (train_set, held_out) = samples.split_at(4);
    let opts = TrainOptions {
        iterations: 6,
        batch_size: 2,
        seed: 9,
        checkpoint_every: 2,
        augmentation: Augmentation::DEFAULT,
        ..TrainOptions::default()
    };
    let run = |out: &PathBuf,
               resume: bool,
               stop_after: usize,
               losses: &mut Vec<f64>,
               opts: &TrainOptions| {
        let run = UnetRun {
            width: 4,
            out,
            validation: None,
            resume,
            stop_after,
        };
        train_unet(run, train_set, opts, losses)
    };
    let (whole, parts) = (out_dir("unet-whole"), out_dir("unet-parts"));
    let mut expected = Vec::new();
    let full = run(&whole, false, 0, &mut expected, &opts).unwrap();
    let mut losses = Vec::new();
    let stopped = run(&parts, false, 3, &mut losses, &opts).unwrap();
    assert_eq!(stopped.outcome, Outcome::Interrupted { iteration: 3 });
    assert_eq!(
        baseline_checkpoint::load(&parts).unwrap().state.iteration,
        3,
        "a stop writes a checkpoint"
    );
    let mut other = opts.clone();
    other.seed = 10;
    let err = run(&parts, true, 0, &mut vec![], &other)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("different seed"), "{err}");
    let resumed = run(&parts, true, 0, &mut losses, &opts).unwrap();
    assert_eq!(resumed.outcome, Outcome::Finished);
    assert_eq!(losses, expected);
    assert_eq!(resumed.final_loss, full.final_loss);
    let refs: Vec<&Sample> = held_out.iter().collect();
    assert_eq!(
        baseline_labels(&resumed.net, &refs, 3),
        baseline_labels(&full.net, &refs, 3)
    );
    for d in [whole, parts] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A baseline that diverges stops with an error naming its last good checkpoint, which holds
/// finite weights.
#[test]
fn a_diverging_baseline_keeps_its_last_good_checkpoint() {
    let samples = phantoms(4);
    let opts = TrainOptions {
        iterations: 20,
        batch_size: 2,
        seed: 2,
        learning_rate: 1e30,
        checkpoint_every: 1,
        ..TrainOptions::default()
    };
    let out = out_dir("unet-diverge");
    let run = UnetRun {
        width: 4,
        out: &out,
        validation: None,
        resume: false,
        stop_after: 0,
    };
    let err = train_unet(run, &samples, &opts, &mut vec![])
        .err()
        .expect("a learning rate of 1e30 must diverge")
        .to_string();
    assert!(err.contains("NaN or infinite"), "{err}");
    if let Ok(ck) = baseline_checkpoint::load(&out) {
        assert!(
            err.contains(&format!("iteration {})", ck.state.iteration)),
            "{err}"
        );
        let net = unet(4, opts.seed).load_record(
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(ck.module))
                .unwrap(),
        );
        assert!(net.is_finite());
    } else {
        assert!(err.contains("no checkpoint was written"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

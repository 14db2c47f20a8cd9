//! The loop against a scripted engine (no numerics): batch order, resume, stop, non-finite
//! stop, checkpoints, engine checks, validation log, refusal to overwrite a run.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use msnet::config::TrainingRecord;
use msnet::sample::Sample;
use msnet::{Config, Model, Spec, Weights};
use msnet_io::phantom::nested_ellipses;
use msnet_training::batch::batch_indices;
use msnet_training::{
    Engine, Outcome, Report, Run, TrainError, TrainOptions, Validation, checkpoint, train,
};

/// Steps move one weight by `lr` times a number derived from the batch; the "optimiser
/// state" is the step count and the batches seen, so a resume that lost or replayed anything
/// shows.
struct Scripted {
    name: &'static str,
    weights: Weights,
    steps: usize,
    seen: Vec<String>,
    /// Return a NaN loss on this step (0-based step count).
    nan_at: Option<usize>,
    /// Make the weights infinite (with a finite loss) on this step.
    blow_up_at: Option<usize>,
    /// Every batch handed to `step`, shared with the test.
    log: Rc<RefCell<Vec<Vec<String>>>>,
    /// Report |first weight| before each step as the largest phase-softmax input, as a forward
    /// pass on those weights would.
    measures: bool,
    energy: f32,
}

impl Scripted {
    fn new(name: &'static str, spec: &Spec, opts: &TrainOptions) -> Self {
        Self {
            name,
            weights: msnet::weights::init(spec, opts.seed, opts.init),
            steps: 0,
            seen: Vec::new(),
            nan_at: None,
            blow_up_at: None,
            log: Rc::default(),
            measures: false,
            energy: 0.0,
        }
    }
}

impl Engine for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn describe(&self) -> String {
        format!("scripted {}", self.name)
    }
    fn optimizer_file(&self) -> &'static str {
        "scripted.json"
    }
    fn step(&mut self, batch: &[&Sample], lr: f64) -> Result<f64, f64> {
        let names: Vec<String> = batch.iter().map(|s| s.name.clone()).collect();
        self.log.borrow_mut().push(names.clone());
        if self.nan_at == Some(self.steps) {
            return Err(f64::NAN);
        }
        self.energy = self.weights.tensors[0][0].abs();
        let pull: f64 = batch.iter().map(|s| s.image[0] as f64 + 1.0).sum();
        self.weights.tensors[0][0] -= (lr * pull) as f32;
        if self.blow_up_at == Some(self.steps) {
            self.weights.tensors[1][0] = f32::INFINITY;
        }
        self.steps += 1;
        self.seen.extend(names);
        Ok(1.0 / (self.steps as f64 + 1.0))
    }
    fn largest_phase_input(&self) -> Option<f32> {
        self.measures.then_some(self.energy)
    }
    fn weights(&self) -> Weights {
        self.weights.clone()
    }
    fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&(self.steps, &self.seen)).map_err(|e| e.to_string())
    }
    fn restore(&mut self, weights: &Weights, state: &[u8]) -> Result<(), String> {
        (self.steps, self.seen) = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        self.weights = weights.clone();
        Ok(())
    }
    fn predict(&mut self, samples: &[&Sample]) -> Vec<Vec<u8>> {
        samples.iter().map(|s| s.labels.clone()).collect()
    }
}

fn spec() -> Spec {
    let mut c = Config::new(2, 1, 3);
    c.input_size = [1, 32, 32];
    Spec::new(&c)
}

fn phantoms(n: usize) -> Vec<Sample> {
    (0..n as u64)
        .map(|s| nested_ellipses(s, 1, [1, 32, 32], 3))
        .collect()
}

fn record() -> TrainingRecord {
    TrainingRecord::new("phantom", vec![], vec![])
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msnet-loop-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts() -> TrainOptions {
    TrainOptions {
        iterations: 7,
        batch_size: 3,
        seed: 5,
        checkpoint_every: 2,
        lr_step: 3,
        ..TrainOptions::default()
    }
}

/// Runs the loop; `stop_after` sets the stop flag once that many iterations are done.
fn run(
    engine: &mut dyn Engine,
    samples: &[Sample],
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    validation: Option<Validation<'_>>,
    stop_after: Option<usize>,
) -> Result<Report, TrainError> {
    let stop = AtomicBool::new(stop_after == Some(0));
    train(
        engine,
        &spec(),
        samples,
        opts,
        Run {
            out,
            resume,
            record: record(),
            validation,
        },
        &mut |s| {
            if Some(s.iteration) == stop_after {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &stop,
    )
}

#[test]
fn batches_follow_batch_indices_and_a_resume_is_exact() {
    let samples = phantoms(5);
    let opts = opts();
    let whole = out_dir("whole");
    let mut a = Scripted::new("scripted", &spec(), &opts);
    let log = a.log.clone();
    let ra = run(&mut a, &samples, &opts, &whole, false, None, None).unwrap();
    assert_eq!(ra.outcome, Outcome::Finished);
    let expected: Vec<Vec<String>> = (0..opts.iterations)
        .map(|t| {
            batch_indices(samples.len(), opts.batch_size, opts.seed, t)
                .into_iter()
                .map(|i| samples[i].name.clone())
                .collect()
        })
        .collect();
    assert_eq!(*log.borrow(), expected);
    assert_eq!(ra.record.iterations, 7);
    assert_eq!(ra.record.hardware, "scripted scripted");
    let saved = Model::load(&whole).unwrap();
    assert_eq!(saved.weights, ra.model.weights);
    assert_eq!(saved.config().training.as_ref().unwrap().iterations, 7);
    let ck = checkpoint::load(&whole).unwrap();
    assert_eq!(
        (ck.state.iteration, ck.state.engine.as_str()),
        (7, "scripted")
    );
    assert!(ck.path.join("scripted.json").is_file());

    // Stopped after 3 iterations (checkpoint at 3, not a multiple of 2), then resumed.
    let split = out_dir("split");
    let mut b = Scripted::new("scripted", &spec(), &opts);
    let rb = run(&mut b, &samples, &opts, &split, false, None, Some(3)).unwrap();
    assert_eq!(rb.outcome, Outcome::Interrupted { iteration: 3 });
    assert_eq!(checkpoint::load(&split).unwrap().state.iteration, 3);
    let mut c = Scripted::new("scripted", &spec(), &opts);
    let rc = run(&mut c, &samples, &opts, &split, true, None, None).unwrap();
    assert_eq!(rc.outcome, Outcome::Finished);
    assert_eq!(rc.model.weights, ra.model.weights);
    assert_eq!((c.steps, &c.seen), (a.steps, &a.seen));
    assert_eq!(rc.record.iterations, 7);
    for d in [whole, split] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_non_finite_loss_or_weight_keeps_the_last_good_checkpoint() {
    let samples = phantoms(3);
    let opts = opts();
    for (nan, blow) in [(Some(4), None), (None, Some(4))] {
        let out = out_dir("nan");
        let mut e = Scripted::new("scripted", &spec(), &opts);
        e.nan_at = nan;
        e.blow_up_at = blow;
        let err = run(&mut e, &samples, &opts, &out, false, None, None)
            .err()
            .expect("must stop")
            .to_string();
        assert!(err.contains("NaN or infinite"), "{err}");
        let ck = checkpoint::load(&out).unwrap();
        assert_eq!(ck.state.iteration, 4);
        assert!(err.contains("(iteration 4)"), "{err}");
        assert!(ck.model.weights.first_non_finite(&ck.model.spec).is_none());
        assert!(!out.join("config.json").exists(), "no final model");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn a_checkpoint_resumes_only_with_its_engine_and_old_ones_are_burns() {
    let samples = phantoms(3);
    let opts = opts();
    let out = out_dir("engine");
    let mut burn = Scripted::new("burn", &spec(), &opts);
    run(&mut burn, &samples, &opts, &out, false, None, Some(2)).unwrap();
    let longer = TrainOptions {
        iterations: 9,
        ..opts.clone()
    };
    let mut native = Scripted::new("native", &spec(), &opts);
    let err = run(&mut native, &samples, &longer, &out, true, None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("was written by the burn engine; resume with --engine burn"),
        "{err}"
    );
    assert_eq!(native.steps, 0);

    // A checkpoint from before engines were recorded: no engine field, optimizer.bpk.
    let ck = checkpoint::dir(&out);
    std::fs::rename(ck.join("scripted.json"), ck.join("optimizer.bpk")).unwrap();
    let state = r#"{"iteration": 2, "seconds": 0.5, "recent_losses": [0.4, 0.3]}"#;
    std::fs::write(ck.join("state.json"), state).unwrap();
    let err = run(&mut native, &samples, &longer, &out, true, None, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("resume with --engine burn"), "{err}");
    let loaded = checkpoint::load(&out).unwrap();
    assert_eq!(loaded.state.engine, "burn");
    assert_eq!(loaded.state.optimizer_file, "optimizer.bpk");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_fresh_run_refuses_an_out_that_holds_a_run() {
    let samples = phantoms(6);
    let (train_set, held_out) = samples.split_at(4);
    let opts = opts();
    let out = out_dir("in-use");
    let validation = Validation {
        samples: held_out,
        every: 3,
    };
    let mut e = Scripted::new("scripted", &spec(), &opts);
    run(
        &mut e,
        train_set,
        &opts,
        &out,
        false,
        Some(validation),
        None,
    )
    .unwrap();
    let log = std::fs::read_to_string(out.join("validation.csv")).unwrap();
    let iterations: Vec<&str> = log.lines().skip(1).map(|l| &l[..1]).collect();
    assert_eq!(iterations, ["3", "6", "7"], "{log}");
    assert!(
        log.lines()
            .nth(1)
            .unwrap()
            .contains(",1.000000,1.000000,1.000000,"),
        "{log}"
    );

    let mut again = Scripted::new("scripted", &spec(), &opts);
    let err = run(
        &mut again,
        train_set,
        &opts,
        &out,
        false,
        Some(validation),
        None,
    )
    .err()
    .unwrap();
    assert!(matches!(err, TrainError::OutputInUse { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("--resume") && msg.contains("--force"), "{msg}");
    assert_eq!(again.steps, 0);
    assert_eq!(
        std::fs::read_to_string(out.join("validation.csv")).unwrap(),
        log,
        "the refused run left the log alone"
    );
    // Only a model (no checkpoint) is refused too.
    std::fs::remove_dir_all(checkpoint::dir(&out)).unwrap();
    assert!(run(&mut again, train_set, &opts, &out, false, None, None).is_err());

    checkpoint::discard(&out).unwrap();
    let r = run(&mut again, train_set, &opts, &out, false, None, None).unwrap();
    assert_eq!(r.outcome, Outcome::Finished);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_resume_after_a_crash_between_the_renames_continues_from_the_newest() {
    let samples = phantoms(4);
    let opts = opts();
    let out = out_dir("mid-swap");
    let mut e = Scripted::new("scripted", &spec(), &opts);
    run(&mut e, &samples, &opts, &out, false, None, Some(2)).unwrap();
    let older = out.join("older");
    copy_dir(&checkpoint::dir(&out), &older);
    let mut e = Scripted::new("scripted", &spec(), &opts);
    run(&mut e, &samples, &opts, &out, true, None, Some(4)).unwrap();
    // The crash: `checkpoint/` moved aside to `.old` (here: iteration 2's), iteration 4's
    // complete in `.new`, no `checkpoint/`.
    std::fs::rename(checkpoint::dir(&out), out.join("checkpoint.new")).unwrap();
    std::fs::rename(&older, out.join("checkpoint.old")).unwrap();
    let mut e = Scripted::new("scripted", &spec(), &opts);
    let r = run(&mut e, &samples, &opts, &out, true, None, None).unwrap();
    assert_eq!(r.outcome, Outcome::Finished);
    assert_eq!(e.steps, 7, "resumed at 4, not 2");
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("checkpoint"))
        .collect();
    assert_eq!(names, ["checkpoint"]);
    std::fs::remove_dir_all(&out).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_batch_larger_than_the_training_set_is_refused() {
    let samples = phantoms(2);
    let opts = opts();
    let out = out_dir("big-batch");
    let mut e = Scripted::new("scripted", &spec(), &opts);
    let err = run(&mut e, &samples, &opts, &out, false, None, None)
        .err()
        .expect("batch 3 of 2 images")
        .to_string();
    assert!(
        err.contains("batch size 3") && err.contains("(2 images)"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

/// The largest phase-softmax input of every step's report.
fn reported_energies(e: &mut Scripted, samples: &[Sample], out: &Path) -> Vec<Option<f32>> {
    let stop = AtomicBool::new(false);
    let mut reported = Vec::new();
    let run = Run {
        out,
        resume: false,
        record: record(),
        validation: None,
    };
    let on_step = &mut |s: &msnet_training::Step| reported.push(s.largest_phase_input);
    train(e, &spec(), samples, &opts(), run, on_step, &stop).unwrap();
    std::fs::remove_dir_all(out).unwrap();
    reported
}

#[test]
fn each_step_reports_the_engines_largest_phase_softmax_input() {
    let samples = phantoms(4);
    let out = out_dir("energy");
    let mut e = Scripted::new("scripted", &spec(), &opts());
    e.measures = true;
    let start = e.weights.tensors[0][0].abs();
    let reported = reported_energies(&mut e, &samples, &out);
    assert_eq!(reported.len(), 7);
    assert_eq!(
        reported[0],
        Some(start),
        "the first step's forward pass: the start"
    );
    assert_eq!(reported[6], Some(e.energy));

    let mut blind = Scripted::new("scripted", &spec(), &opts());
    let reported = reported_energies(&mut blind, &samples, &out);
    assert!(reported.len() == 7 && reported.iter().all(Option::is_none));
}

#[test]
fn a_resume_from_an_older_checkpoint_scores_its_iterations_once() {
    let samples = phantoms(6);
    let out = out_dir("rescore");
    let every_step = Validation {
        samples: &samples[4..],
        every: 1,
    };
    let train_until = |resume: bool, stop_after: Option<usize>| {
        let mut e = Scripted::new("scripted", &spec(), &opts());
        let r = run(
            &mut e,
            &samples[..4],
            &opts(),
            &out,
            resume,
            Some(every_step),
            stop_after,
        );
        r.unwrap();
    };
    train_until(false, Some(4));
    let older = out.join("older");
    copy_dir(&checkpoint::dir(&out), &older);
    train_until(true, Some(6));
    // A crash after iteration 6 was scored, with the checkpoint still at 4.
    std::fs::remove_dir_all(checkpoint::dir(&out)).unwrap();
    std::fs::rename(&older, checkpoint::dir(&out)).unwrap();
    train_until(true, None);
    let csv = std::fs::read_to_string(out.join("validation.csv")).unwrap();
    let rows: Vec<usize> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rows, (1..=7).collect::<Vec<_>>(), "{csv}");
    std::fs::remove_dir_all(&out).unwrap();
}

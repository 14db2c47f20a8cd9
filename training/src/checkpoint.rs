//! Training checkpoints: everything needed to continue a run exactly where it stopped, with
//! any engine's optimiser state.
//!
//! `OUT/checkpoint/` holds `config.json` + `model.safetensors` (a loadable model), the
//! engine's optimiser state (opaque bytes in the file the engine names, `optimizer.bpk` for
//! burn) and `state.json` ([`CheckpointState`]: progress, which engine wrote it and its
//! optimiser file). Every file is written atomically.
//!
//! A new checkpoint is written to `checkpoint.new/` and swapped in with renames
//! (`checkpoint/` → `checkpoint.old/`, `checkpoint.new/` → `checkpoint/`, remove
//! `checkpoint.old/`). A crash can stop that sequence anywhere, so the checkpoint to use is
//! the newest *complete* one ([`newest`]): a complete `checkpoint.new/` (all files present,
//! `state.json` parseable) is newer than `checkpoint/`, which is newer than
//! `checkpoint.old/`. [`recover`] finishes an interrupted swap; [`save`] runs it first, so it
//! never deletes the newest checkpoint.

use std::fs;
use std::path::{Path, PathBuf};

use msnet::model::{CONFIG_FILE, WEIGHTS_FILE};
use msnet::{Model, Spec, Weights, fsutil};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The progress file of a checkpoint.
pub const STATE_FILE: &str = "state.json";

/// Progress of a run, saved with each checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Iterations completed.
    pub iteration: usize,
    /// Training seconds so far, over all sessions.
    pub seconds: f64,
    /// Recent losses (for the final-loss figure after a resume).
    pub recent_losses: Vec<f64>,
    /// The engine that wrote the checkpoint ([`crate::Engine::name`]); only it can resume
    /// it. Checkpoints from before engines were pluggable are burn's.
    #[serde(default = "burn")]
    pub engine: String,
    /// The file holding the engine's optimiser state ([`crate::Engine::optimizer_file`]).
    #[serde(default = "burn_optimizer_file")]
    pub optimizer_file: String,
}

fn burn() -> String {
    "burn".into()
}

fn burn_optimizer_file() -> String {
    "optimizer.bpk".into()
}

impl CheckpointState {
    /// The state of a run that has not started, for `engine`.
    pub fn fresh(engine: &str, optimizer_file: &str) -> Self {
        Self {
            iteration: 0,
            seconds: 0.0,
            recent_losses: Vec::new(),
            engine: engine.into(),
            optimizer_file: optimizer_file.into(),
        }
    }
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub model: Model,
    /// The engine's optimiser state, as it wrote it.
    pub optimizer: Vec<u8>,
    pub state: CheckpointState,
    /// The directory it was read from (`checkpoint/`, or a sibling after a crash mid-swap).
    pub path: PathBuf,
}

/// `OUT/checkpoint`.
pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    out.join(format!("checkpoint.{suffix}"))
}

/// The three places a checkpoint can be, newest first.
fn candidates(out: &Path) -> [PathBuf; 3] {
    [sibling(out, "new"), dir(out), sibling(out, "old")]
}

fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> TrainError + 'a {
    move |source| {
        TrainError::Fs(fsutil::FsError {
            path: path.to_path_buf(),
            action,
            source,
        })
    }
}

/// An optimiser file name must stay inside the checkpoint and not shadow its other files.
fn check_optimizer_file(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && ![CONFIG_FILE, WEIGHTS_FILE, STATE_FILE].contains(&name);
    if plain {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid optimizer file name"))
    }
}

fn read_state(path: &Path) -> Result<CheckpointState, TrainError> {
    let file = path.join(STATE_FILE);
    let text = fsutil::read_to_string(&file)?;
    let state: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", file.display())))?;
    check_optimizer_file(&state.optimizer_file)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", file.display())))?;
    Ok(state)
}

/// Whether `path` is a complete checkpoint: its state parses and every file it names is there.
pub fn is_complete(path: &Path) -> bool {
    path.is_dir()
        && read_state(path).is_ok_and(|s| {
            [CONFIG_FILE, WEIGHTS_FILE, s.optimizer_file.as_str()]
                .iter()
                .all(|f| path.join(f).is_file())
        })
}

/// The newest complete checkpoint of `out`, wherever a crash mid-swap left it.
pub fn newest(out: &Path) -> Option<PathBuf> {
    candidates(out).into_iter().find(|p| is_complete(p))
}

/// A model or a checkpoint already in `out` (the first one found), which a fresh run would
/// overwrite.
pub fn in_use(out: &Path) -> Option<PathBuf> {
    std::iter::once(out.join(CONFIG_FILE))
        .chain(candidates(out))
        .chain([out.join(WEIGHTS_FILE)])
        .find(|p| p.exists())
}

/// Deletes the model and every checkpoint in `out`, so a run can start afresh there
/// (`msnet train --force`). Other files (evaluations, exports) are left alone.
pub fn discard(out: &Path) -> Result<(), TrainError> {
    for d in candidates(out) {
        if d.exists() {
            fs::remove_dir_all(&d).map_err(io_err(&d, "cannot remove"))?;
        }
    }
    for f in [CONFIG_FILE, WEIGHTS_FILE].map(|f| out.join(f)) {
        if f.exists() {
            fs::remove_file(&f).map_err(io_err(&f, "cannot remove"))?;
        }
    }
    Ok(())
}

/// A crash-injection point for tests: production code runs every step.
struct Steps {
    /// Steps still allowed to run; `None`: all.
    left: Option<usize>,
    /// Set when a step was refused: the simulated crash happened.
    crashed: bool,
}

impl Steps {
    fn all() -> Self {
        Self {
            left: None,
            crashed: false,
        }
    }

    /// Whether the next step may run (false: the "crash" happens before it).
    fn next(&mut self) -> bool {
        match &mut self.left {
            _ if self.crashed => false,
            None => true,
            Some(0) => {
                self.crashed = true;
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    /// Removes a directory if it exists; false if crashed first.
    fn remove_dir(&mut self, path: &Path) -> Result<bool, TrainError> {
        if !path.exists() {
            return Ok(!self.crashed);
        }
        if !self.next() {
            return Ok(false);
        }
        fs::remove_dir_all(path).map_err(io_err(path, "cannot remove"))?;
        Ok(true)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<bool, TrainError> {
        if !self.next() {
            return Ok(false);
        }
        fs::rename(from, to).map_err(io_err(from, "cannot rename"))?;
        Ok(true)
    }

    /// Installs the complete `new` as `current` (moving a previous `current` aside first).
    fn install(&mut self, new: &Path, current: &Path, old: &Path) -> Result<bool, TrainError> {
        if current.exists() && !(self.remove_dir(old)? && self.rename(current, old)?) {
            return Ok(false);
        }
        Ok(self.rename(new, current)? && self.remove_dir(old)?)
    }
}

/// Finishes a swap that a crash interrupted: the newest complete checkpoint becomes
/// `checkpoint/` and the stale siblings are removed. Returns where the checkpoint now is
/// (`None`: there is no complete one). Safe to call at any time, and itself crash-safe: at
/// every step [`newest`] still finds the same checkpoint.
pub fn recover(out: &Path) -> Result<Option<PathBuf>, TrainError> {
    recover_steps(out, &mut Steps::all())
}

fn recover_steps(out: &Path, steps: &mut Steps) -> Result<Option<PathBuf>, TrainError> {
    let [new, current, old] = candidates(out);
    let Some(best) = newest(out) else {
        return Ok(None);
    };
    let done = if best == new {
        // The swap stopped before `checkpoint.new/` was installed.
        steps.install(&new, &current, &old)?
    } else if best == current {
        // Left-overs: an incomplete `.new`, or the `.old` of a swap that finished.
        steps.remove_dir(&new)? && steps.remove_dir(&old)?
    } else {
        // `.old` only: the swap moved `checkpoint/` aside, and `.new` is incomplete or gone
        // (as is `checkpoint/`, unless something else damaged it).
        steps.remove_dir(&new)? && steps.remove_dir(&current)? && steps.rename(&old, &current)?
    };
    Ok(done.then_some(current))
}

/// Writes a checkpoint for `spec`/`weights` with the engine's optimiser bytes (into
/// `state.optimizer_file`), replacing the previous one only once the new one is complete.
pub fn save(
    out: &Path,
    spec: &Spec,
    weights: &Weights,
    optimizer: &[u8],
    state: &CheckpointState,
) -> Result<(), TrainError> {
    save_steps(out, spec, weights, optimizer, state, &mut Steps::all())
}

fn save_steps(
    out: &Path,
    spec: &Spec,
    weights: &Weights,
    optimizer: &[u8],
    state: &CheckpointState,
    steps: &mut Steps,
) -> Result<(), TrainError> {
    check_optimizer_file(&state.optimizer_file).map_err(TrainError::Checkpoint)?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::Checkpoint(format!("cannot serialise state: {e}")))?;
    // Never delete the newest checkpoint below: first finish any swap a crash interrupted.
    recover_steps(out, steps)?;
    let [new, current, old] = candidates(out);
    // What is left in `.new` now is incomplete.
    if !steps.remove_dir(&new)? || !steps.next() {
        return Ok(());
    }
    fsutil::create_dir_all(&new)?;
    // The model's two files as `Model::save` writes them (weights first), then the optimiser
    // state, and last the state: a parseable state.json marks the checkpoint complete.
    if !steps.next() {
        return Ok(());
    }
    weights
        .save(spec, &new.join(WEIGHTS_FILE))
        .map_err(|e| TrainError::Model(e.into()))?;
    if !steps.next() {
        return Ok(());
    }
    spec.config
        .save(&new.join(CONFIG_FILE))
        .map_err(|e| TrainError::Model(e.into()))?;
    for (name, bytes) in [
        (state.optimizer_file.as_str(), optimizer),
        (STATE_FILE, &json),
    ] {
        if !steps.next() {
            return Ok(());
        }
        fsutil::write_atomic(&new.join(name), bytes)?;
    }
    steps.install(&new, &current, &old)?;
    Ok(())
}

/// Loads the newest complete checkpoint of `out` ([`newest`]), wherever a crash mid-swap
/// left it.
pub fn load(out: &Path) -> Result<Checkpoint, TrainError> {
    let Some(path) = newest(out) else {
        let partial: Vec<String> = candidates(out)
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        let detail = if partial.is_empty() {
            String::new()
        } else {
            format!(" ({} incomplete)", partial.join(", "))
        };
        return Err(TrainError::Checkpoint(format!(
            "{}: no checkpoint to resume from{detail}",
            dir(out).display()
        )));
    };
    let model = Model::load(&path)?;
    let state = read_state(&path)?;
    let optimizer = fsutil::read(&path.join(&state.optimizer_file))?;
    Ok(Checkpoint {
        model,
        optimizer,
        state,
        path,
    })
}

/// Only the engine that wrote a checkpoint can resume it (optimiser states are not
/// interchangeable).
pub fn check_engine(ck: &Checkpoint, engine: &str) -> Result<(), TrainError> {
    if ck.state.engine == engine {
        return Ok(());
    }
    Err(TrainError::Checkpoint(format!(
        "{}: the checkpoint was written by the {} engine; resume with --engine {}",
        ck.path.display(),
        ck.state.engine,
        ck.state.engine
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::Config;

    fn spec() -> Spec {
        let mut c = Config::new(2, 1, 2);
        c.input_size = [1, 16, 16];
        Spec::new(&c)
    }

    fn state(iteration: usize) -> CheckpointState {
        CheckpointState {
            iteration,
            ..CheckpointState::fresh("test", "optimizer.bin")
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("msnet-ck-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes checkpoint `iteration` (weights from seed `iteration`), crashing after `steps`
    /// file-system steps (`None`: no crash). Returns whether it crashed.
    fn save_at(out: &Path, iteration: usize, steps: Option<usize>) -> bool {
        let spec = spec();
        let w = msnet::weights::init(&spec, iteration as u64, Default::default());
        let opt = format!("adam {iteration}");
        let mut s = Steps {
            left: steps,
            crashed: false,
        };
        save_steps(out, &spec, &w, opt.as_bytes(), &state(iteration), &mut s).unwrap();
        s.crashed
    }

    fn siblings(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn check_loaded(out: &Path, iteration: usize) {
        let ck = load(out).unwrap();
        assert_eq!(ck.state.iteration, iteration, "{:?}", siblings(out));
        assert_eq!(ck.optimizer, format!("adam {iteration}").as_bytes());
        let w = msnet::weights::init(&spec(), iteration as u64, Default::default());
        assert_eq!(ck.model.weights, w);
    }

    /// Reproduces the crash between the renames (`checkpoint.old/` + `checkpoint.new/`, no
    /// `checkpoint/`), and every other crash point of the swap: loading finds the newest
    /// complete checkpoint, recovery (itself crashed at any step) keeps finding it, and the
    /// next save leaves one `checkpoint/`.
    #[test]
    fn a_crash_at_any_step_of_the_swap_keeps_the_newest_complete_checkpoint() {
        let mut saw_old_and_new = false;
        for k in 0.. {
            let out = scratch("crash");
            save_at(&out, 1, None);
            save_at(&out, 2, None);
            let crashed = save_at(&out, 3, Some(k));
            let names = siblings(&out);
            // The newest complete checkpoint on disk, whatever its directory's name.
            let expected = candidates(&out)
                .iter()
                .filter(|p| is_complete(p))
                .map(|p| read_state(p).unwrap().iteration)
                .max()
                .unwrap();
            if names == ["checkpoint.new", "checkpoint.old"] {
                saw_old_and_new = true;
                assert_eq!(expected, 3, "a complete .new is newer than .old");
            }
            check_loaded(&out, expected);
            for r in 0..5 {
                let copy = scratch("crash-copy");
                for name in &names {
                    copy_dir(&out.join(name), &copy.join(name));
                }
                let mut steps = Steps {
                    left: Some(r),
                    crashed: false,
                };
                recover_steps(&copy, &mut steps).unwrap();
                check_loaded(&copy, expected);
                fs::remove_dir_all(&copy).unwrap();
            }
            assert_eq!(recover(&out).unwrap(), Some(dir(&out)));
            assert_eq!(siblings(&out), ["checkpoint"]);
            check_loaded(&out, expected);
            save_at(&out, 4, None);
            assert_eq!(siblings(&out), ["checkpoint"]);
            check_loaded(&out, 4);
            fs::remove_dir_all(&out).unwrap();
            if !crashed {
                assert!(k >= 8, "every step was crashed at: {k}");
                break;
            }
        }
        assert!(
            saw_old_and_new,
            "the test reaches the state between the renames"
        );
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    #[test]
    fn only_old_or_incomplete_new_and_missing_checkpoints() {
        let out = scratch("old-only");
        assert!(
            load(&out)
                .err()
                .unwrap()
                .to_string()
                .contains("no checkpoint")
        );
        save_at(&out, 1, None);
        fs::rename(dir(&out), sibling(&out, "old")).unwrap();
        fs::create_dir_all(sibling(&out, "new")).unwrap();
        fs::write(sibling(&out, "new").join(STATE_FILE), b"{ trunc").unwrap();
        check_loaded(&out, 1);
        recover(&out).unwrap();
        assert_eq!(siblings(&out), ["checkpoint"]);
        // A state.json naming a file that is missing is not complete.
        fs::remove_file(dir(&out).join("optimizer.bin")).unwrap();
        let e = load(&out).err().unwrap().to_string();
        assert!(e.contains("incomplete"), "{e}");
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn old_state_files_are_burns_and_bad_optimizer_names_are_refused() {
        let s: CheckpointState =
            serde_json::from_str(r#"{"iteration": 3, "seconds": 1.5, "recent_losses": [0.5]}"#)
                .unwrap();
        assert_eq!(
            (s.engine.as_str(), s.optimizer_file.as_str()),
            ("burn", "optimizer.bpk")
        );
        for bad in ["../x", "", "state.json", "a/b", ".hidden"] {
            assert!(check_optimizer_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn in_use_and_discard() {
        let out = scratch("in-use");
        assert_eq!(in_use(&out), None);
        save_at(&out, 1, None);
        assert_eq!(in_use(&out), Some(dir(&out)));
        Model {
            spec: spec(),
            weights: msnet::weights::init(&spec(), 0, Default::default()),
        }
        .save(&out)
        .unwrap();
        assert_eq!(in_use(&out), Some(out.join(CONFIG_FILE)));
        fs::write(out.join("test-metrics.json"), b"{}").unwrap();
        discard(&out).unwrap();
        assert_eq!(in_use(&out), None);
        assert_eq!(siblings(&out), ["test-metrics.json"]);
        fs::remove_dir_all(&out).unwrap();
    }
}

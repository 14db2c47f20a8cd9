//! Training checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `OUT/checkpoint/` holds `config.json` + `model.safetensors` (a loadable model),
//! `optimizer.bpk` (Adam's moments, burnpack) and `state.json` ([`CheckpointState`]). A new
//! checkpoint is written to `checkpoint.new/` and swapped in with renames, so a crash at any
//! moment leaves a complete checkpoint on disk (`checkpoint/`, or `checkpoint.old/` during
//! the swap, which [`load`] also accepts).

use std::fs;
use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use msnet::fsutil;
use msnet::{Model, Spec, Weights};
use serde::{Deserialize, Serialize};

use crate::TrainError;

const STATE_FILE: &str = "state.json";
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Progress of a run, saved with each checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointState {
    /// Iterations completed.
    pub iteration: usize,
    /// Training seconds so far, over all sessions.
    pub seconds: f64,
    /// Recent losses (for the final-loss figure after a resume).
    pub recent_losses: Vec<f64>,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub model: Model,
    pub optimizer: Vec<u8>,
    pub state: CheckpointState,
}

/// `OUT/checkpoint`.
pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    out.join(format!("checkpoint.{suffix}"))
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

/// Writes a checkpoint for `spec`/`weights` with the optimizer state, replacing the previous
/// one only once the new one is complete.
pub fn save(
    out: &Path,
    spec: &Spec,
    weights: &Weights,
    optimizer: &ModuleOptimizer,
    state: &CheckpointState,
) -> Result<(), TrainError> {
    let new = sibling(out, "new");
    let old = sibling(out, "old");
    let current = dir(out);
    if new.exists() {
        fs::remove_dir_all(&new).map_err(io_err(&new, "cannot remove stale"))?;
    }
    Model {
        spec: spec.clone(),
        weights: weights.clone(),
    }
    .save(&new)?;
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| TrainError::Checkpoint(format!("cannot serialise optimizer state: {e:?}")))?;
    fsutil::write_atomic(&new.join(OPTIMIZER_FILE), &bytes)?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::Checkpoint(format!("cannot serialise state: {e}")))?;
    fsutil::write_atomic(&new.join(STATE_FILE), &json)?;
    if current.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_err(&old, "cannot remove"))?;
        }
        fs::rename(&current, &old).map_err(io_err(&current, "cannot move aside"))?;
    }
    fs::rename(&new, &current).map_err(io_err(&current, "cannot install"))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io_err(&old, "cannot remove"))?;
    }
    Ok(())
}

/// Loads the checkpoint of `out`, or the previous one if a crash interrupted a swap.
pub fn load(out: &Path) -> Result<Checkpoint, TrainError> {
    let current = dir(out);
    let path = if current.is_dir() {
        current
    } else if sibling(out, "old").is_dir() {
        sibling(out, "old")
    } else {
        return Err(TrainError::Checkpoint(format!(
            "{}: no checkpoint to resume from",
            current.display()
        )));
    };
    let model = Model::load(&path)?;
    let optimizer = fsutil::read(&path.join(OPTIMIZER_FILE))?;
    let text = fsutil::read_to_string(&path.join(STATE_FILE))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.join(STATE_FILE).display())))?;
    Ok(Checkpoint {
        model,
        optimizer,
        state,
    })
}

/// Restores Adam's state saved by [`save`].
pub fn restore_optimizer(
    optimizer: ModuleOptimizer,
    bytes: Vec<u8>,
) -> Result<ModuleOptimizer, TrainError> {
    optimizer
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::Checkpoint(format!("corrupt optimizer state: {e:?}")))
}

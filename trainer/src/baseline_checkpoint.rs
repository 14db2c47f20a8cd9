//! Checkpoints of the U-Net baseline, so that a run of an hour or two on burn survives a kill
//! and can be continued (`msnet train --arch unet --resume`).
//!
//! One file, `OUT/baseline-checkpoint.bin`, replaced atomically ([`msnet::fsutil::write_atomic`]):
//! a kill at any moment leaves either the previous complete checkpoint or the new one, so the
//! swap of MSNet's checkpoint folder (`msnet_training::checkpoint`) is not needed. Layout: the
//! magic line, three little-endian `u64` lengths, then the state (JSON), the module's burnpack
//! record and the optimiser's burnpack record.
//!
//! It owns the file format and the check that a resumed run is the run that wrote it; the loop
//! that uses it is [`crate::train_baseline`].

use std::path::{Path, PathBuf};

use msnet::config::Augmentation;
use msnet::fsutil;
use msnet_training::{TrainError, TrainOptions};
use serde::{Deserialize, Serialize};

/// The checkpoint's file name in the run's folder.
pub const FILE: &str = "baseline-checkpoint.bin";

const MAGIC: &[u8; 16] = b"msnet-unet-ck 1\n";

/// What a run must share with the run whose checkpoint it resumes (the iteration count may
/// grow, as for MSNet).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineSetup {
    /// Base channel width of the U-Net.
    pub width: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub lr_decay: f64,
    pub lr_step: usize,
    pub adam_epsilon: f32,
    pub augmentation: Augmentation,
    /// The training images, in the loader's order.
    pub train: Vec<String>,
}

impl BaselineSetup {
    pub fn new(width: usize, train: &[String], opts: &TrainOptions) -> Self {
        Self {
            width,
            seed: opts.seed,
            batch_size: opts.batch_size,
            learning_rate: opts.learning_rate,
            lr_decay: opts.lr_decay,
            lr_step: opts.lr_step,
            adam_epsilon: opts.adam_epsilon,
            augmentation: opts.augmentation,
            train: train.to_vec(),
        }
    }
}

/// Progress of a baseline run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineState {
    pub setup: BaselineSetup,
    /// Iterations completed.
    pub iteration: usize,
    /// Training seconds so far, over all sessions.
    pub seconds: f64,
    /// The last losses (for the final-loss figure after a resume).
    pub recent_losses: Vec<f64>,
}

/// A checkpoint as bytes: the state and burn's records of the module and the optimiser.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineCheckpoint {
    pub state: BaselineState,
    pub module: Vec<u8>,
    pub optimizer: Vec<u8>,
}

/// `OUT/baseline-checkpoint.bin`.
pub fn path(out: &Path) -> PathBuf {
    out.join(FILE)
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {what}", path.display()))
}

/// Writes `ck` to `OUT/baseline-checkpoint.bin`, replacing the previous one atomically.
pub fn save(out: &Path, ck: &BaselineCheckpoint) -> Result<(), TrainError> {
    let state = serde_json::to_vec(&ck.state)
        .map_err(|e| TrainError::Checkpoint(format!("cannot serialise state: {e}")))?;
    let sections = [state.as_slice(), &ck.module, &ck.optimizer];
    let mut bytes = Vec::with_capacity(64 + sections.iter().map(|s| s.len()).sum::<usize>());
    bytes.extend_from_slice(MAGIC);
    for s in sections {
        bytes.extend_from_slice(&(s.len() as u64).to_le_bytes());
    }
    for s in sections {
        bytes.extend_from_slice(s);
    }
    fsutil::create_dir_all(out)?;
    fsutil::write_atomic(&path(out), &bytes)?;
    Ok(())
}

/// Reads the checkpoint of `out`; a missing, truncated or foreign file is an error naming it.
pub fn load(out: &Path) -> Result<BaselineCheckpoint, TrainError> {
    let path = path(out);
    if !path.is_file() {
        return Err(corrupt(&path, "no baseline checkpoint to resume from"));
    }
    let bytes = fsutil::read(&path)?;
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt(&path, "not a U-Net baseline checkpoint"))?;
    let mut lengths = [0usize; 3];
    for (i, len) in lengths.iter_mut().enumerate() {
        let field: [u8; 8] = rest
            .get(8 * i..8 * i + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt(&path, "truncated header"))?;
        *len = usize::try_from(u64::from_le_bytes(field))
            .map_err(|_| corrupt(&path, "section length out of range"))?;
    }
    let body = &rest[24..];
    lengths
        .iter()
        .try_fold(0usize, |a, &l| a.checked_add(l))
        .filter(|&t| t == body.len())
        .ok_or_else(|| {
            corrupt(
                &path,
                format!(
                    "sections of {lengths:?} bytes do not fill the {} bytes after the header",
                    body.len()
                ),
            )
        })?;
    let (state, body) = body.split_at(lengths[0]);
    let (module, optimizer) = body.split_at(lengths[1]);
    let state: BaselineState =
        serde_json::from_slice(state).map_err(|e| corrupt(&path, format!("state: {e}")))?;
    Ok(BaselineCheckpoint {
        state,
        module: module.to_vec(),
        optimizer: optimizer.to_vec(),
    })
}

/// Refuses a resume whose setup differs from the checkpoint's, naming the first difference.
pub fn check_setup(
    out: &Path,
    saved: &BaselineSetup,
    wanted: &BaselineSetup,
) -> Result<(), TrainError> {
    if saved == wanted {
        return Ok(());
    }
    let (a, b) = (
        serde_json::to_value(saved).unwrap_or_default(),
        serde_json::to_value(wanted).unwrap_or_default(),
    );
    let field = a
        .as_object()
        .and_then(|a| a.iter().find(|(k, v)| b.get(k.as_str()) != Some(v)))
        .map_or("the setup", |(k, _)| k.as_str());
    Err(corrupt(
        &path(out),
        format!(
            "the checkpoint was made with a different {field}; resume with the command that started the run, or start afresh with --force"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> BaselineCheckpoint {
        BaselineCheckpoint {
            state: BaselineState {
                setup: BaselineSetup::new(4, &["a".into(), "b".into()], &TrainOptions::default()),
                iteration: 7,
                seconds: 1.5,
                recent_losses: vec![0.5, 0.25],
            },
            module: vec![1, 2, 3],
            optimizer: vec![4, 5],
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("msnet-unet-ck-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_every_truncation_is_refused() {
        let out = scratch("trip");
        let ck = checkpoint();
        save(&out, &ck).unwrap();
        assert_eq!(load(&out).unwrap(), ck);
        let bytes = std::fs::read(path(&out)).unwrap();
        for cut in 0..bytes.len() {
            std::fs::write(path(&out), &bytes[..cut]).unwrap();
            let err = load(&out).unwrap_err().to_string();
            assert!(err.contains(FILE), "cut at {cut}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        std::fs::write(path(&out), &longer).unwrap();
        assert!(load(&out).unwrap_err().to_string().contains("do not fill"));
        std::fs::remove_dir_all(&out).unwrap();
        assert!(
            load(&out)
                .unwrap_err()
                .to_string()
                .contains("no baseline checkpoint")
        );
    }

    #[test]
    fn a_different_setup_is_named() {
        let out = scratch("setup");
        let saved = checkpoint().state.setup;
        assert!(check_setup(&out, &saved, &saved).is_ok());
        let mut wanted = saved.clone();
        wanted.batch_size = 8;
        let err = check_setup(&out, &saved, &wanted).unwrap_err().to_string();
        assert!(err.contains("different batch_size"), "{err}");
    }
}

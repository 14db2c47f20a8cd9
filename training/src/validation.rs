//! Validation during training: the paper's metrics on images held out of the training set,
//! logged to `validation.csv` in the run's directory, so iterations and other settings can be
//! chosen without looking at the test set.

use std::io::Write;
use std::path::{Path, PathBuf};

use msnet::data::Sample;
use msnet::metrics::{self, ClassMetrics};

use crate::TrainError;

/// Held-out images and how often to score them.
#[derive(Clone, Copy)]
pub struct Validation<'a> {
    pub samples: &'a [Sample],
    /// Score every this many iterations (and after the last).
    pub every: usize,
}

impl Validation<'_> {
    /// Whether iteration `done` (1-based) of `total` is scored.
    pub fn due(&self, done: usize, total: usize) -> bool {
        done.is_multiple_of(self.every.max(1)) || done == total
    }
}

/// Mean over all classes (background included) of the metrics of `predict`'s labels.
pub fn score(
    predict: &mut dyn FnMut(&[&Sample]) -> Vec<Vec<u8>>,
    samples: &[Sample],
    class_names: &[String],
) -> Result<ClassMetrics, TrainError> {
    let mut images = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(4) {
        let refs: Vec<&Sample> = chunk.iter().collect();
        for (s, pred) in chunk.iter().zip(predict(&refs)) {
            images.push(metrics::image_metrics(
                &s.name,
                &pred,
                &s.labels,
                s.shape,
                class_names.len(),
            )?);
        }
    }
    Ok(metrics::summarize(class_names, images).mean_all)
}

/// The log's path in a run directory.
pub fn log_path(out: &Path) -> PathBuf {
    out.join("validation.csv")
}

const HEADER: &str = "iteration,train_loss,val_acc,val_miou,val_dsc,val_asd\n";

/// Starts a fresh log (a new run) or keeps the existing one (a resumed run). Only runs that
/// validate call it, so a run without held-out images leaves no empty log behind.
pub fn start_log(out: &Path, resume: bool) -> Result<(), TrainError> {
    let path = log_path(out);
    if resume && path.exists() {
        return Ok(());
    }
    msnet::fsutil::create_dir_all(out)?;
    msnet::fsutil::write_atomic(&path, HEADER.as_bytes())?;
    Ok(())
}

/// Appends one scored iteration.
pub fn append(out: &Path, iteration: usize, loss: f64, m: &ClassMetrics) -> Result<(), TrainError> {
    let path = log_path(out);
    let line = format!(
        "{iteration},{loss:.6},{:.6},{:.6},{:.6},{:.4}\n",
        m.acc, m.iou, m.dsc, m.asd
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|source| {
            TrainError::Fs(msnet::fsutil::FsError {
                path,
                action: "appending a validation line",
                source,
            })
        })
}

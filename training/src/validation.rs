//! Validation during training: the paper's metrics on images held out of the training set,
//! logged to `validation.csv` in the run's directory, so iterations and other settings can be
//! chosen without looking at the test set.

use std::io::Write;
use std::path::{Path, PathBuf};

use msnet::sample::Sample;
use msnet_eval::metrics::{self, Summary};

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

/// The paper's metrics of `predict`'s labels on `samples`: per class, and their means.
pub fn score(
    predict: &mut dyn FnMut(&[&Sample]) -> Vec<Vec<u8>>,
    samples: &[Sample],
    class_names: &[String],
) -> Result<Summary, TrainError> {
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
    Ok(metrics::summarize(class_names, images))
}

/// The log's path in a run directory.
pub fn log_path(out: &Path) -> PathBuf {
    out.join("validation.csv")
}

/// The means over all classes, then each class's DSC (`dsc_NAME`, spaces as `_`), so a class
/// that stays empty shows while the mean still moves.
const MEAN_COLUMNS: &str = "iteration,train_loss,val_acc,val_miou,val_dsc,val_asd";

fn header(class_names: &[String]) -> String {
    let mut h = MEAN_COLUMNS.to_string();
    for name in class_names {
        h.push_str(",dsc_");
        h.extend(
            name.chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' }),
        );
    }
    h
}

/// Starts a fresh log (a new run) or keeps the existing one (a resumed run); a resumed log
/// from before the per-class columns gets them, empty on its earlier rows. Only runs that
/// validate call it, so a run without held-out images leaves no empty log behind.
pub fn start_log(out: &Path, resume: bool, class_names: &[String]) -> Result<(), TrainError> {
    let path = log_path(out);
    let header = header(class_names);
    if resume && path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|source| {
            TrainError::Fs(msnet::fsutil::FsError {
                path: path.clone(),
                action: "reading the validation log",
                source,
            })
        })?;
        let mut lines = text.lines();
        if lines.next() == Some(header.as_str()) {
            return Ok(());
        }
        let mut upgraded = header + "\n";
        for line in lines.filter(|l| !l.trim().is_empty()) {
            upgraded.push_str(line);
            upgraded.push_str(&",".repeat(class_names.len()));
            upgraded.push('\n');
        }
        msnet::fsutil::write_atomic(&path, upgraded.as_bytes())?;
        return Ok(());
    }
    msnet::fsutil::create_dir_all(out)?;
    msnet::fsutil::write_atomic(&path, format!("{header}\n").as_bytes())?;
    Ok(())
}

/// Drops the rows after `iteration`, where a resumed run starts: after a crash the log can
/// hold rows scored after the checkpoint it resumes from, and the run scores those iterations
/// again, so the log keeps one row per iteration.
pub fn forget_after(out: &Path, iteration: usize) -> Result<(), TrainError> {
    let path = log_path(out);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TrainError::Fs(msnet::fsutil::FsError {
                path,
                action: "reading the validation log",
                source,
            }));
        }
    };
    let mut lines = text.lines();
    let mut kept: String = lines.next().map(|h| format!("{h}\n")).unwrap_or_default();
    let mut dropped = false;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let at = line.split(',').next().and_then(|f| f.parse::<usize>().ok());
        if at.is_some_and(|at| at > iteration) {
            dropped = true;
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if dropped {
        msnet::fsutil::write_atomic(&path, kept.as_bytes())?;
    }
    Ok(())
}

/// Appends one scored iteration and syncs it, so a row that was reported survives a crash.
pub fn append(out: &Path, iteration: usize, loss: f64, s: &Summary) -> Result<(), TrainError> {
    let path = log_path(out);
    let m = &s.mean_all;
    let mut line = format!(
        "{iteration},{loss:.6},{:.6},{:.6},{:.6},{:.4}",
        m.acc, m.iou, m.dsc, m.asd
    );
    for c in &s.classes {
        line.push_str(&format!(",{:.6}", c.dsc));
    }
    line.push('\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(line.as_bytes())?;
            f.sync_data()
        })
        .map_err(|source| {
            TrainError::Fs(msnet::fsutil::FsError {
                path,
                action: "appending a validation line",
                source,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet_eval::metrics::ClassMetrics;

    fn summary(dsc: [f64; 2]) -> Summary {
        let class = |d: f64| ClassMetrics {
            acc: 1.0,
            iou: d,
            dsc: d,
            asd: 0.0,
        };
        Summary {
            class_names: vec!["background".into(), "disc rim".into()],
            classes: dsc.map(class).to_vec(),
            mean_all: class((dsc[0] + dsc[1]) / 2.0),
            mean_foreground: class(dsc[1]),
            images: Vec::new(),
        }
    }

    #[test]
    fn rows_carry_each_class_and_an_older_log_is_upgraded_on_resume() {
        let out = std::env::temp_dir().join(format!("msnet-validation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let names = summary([0.0; 2]).class_names;
        start_log(&out, false, &names).unwrap();
        append(&out, 10, 0.5, &summary([0.9, 0.0])).unwrap();
        let text = std::fs::read_to_string(log_path(&out)).unwrap();
        assert_eq!(
            text,
            "iteration,train_loss,val_acc,val_miou,val_dsc,val_asd,dsc_background,dsc_disc_rim\n\
             10,0.500000,1.000000,0.450000,0.450000,0.0000,0.900000,0.000000\n"
        );
        // Resuming keeps a current log as it is ...
        start_log(&out, true, &names).unwrap();
        assert_eq!(std::fs::read_to_string(log_path(&out)).unwrap(), text);
        // ... and gives an older one the class columns, empty on its rows.
        std::fs::write(
            log_path(&out),
            "iteration,train_loss,val_acc,val_miou,val_dsc,val_asd\n5,0.7,0.9,0.4,0.5,3.0\n",
        )
        .unwrap();
        start_log(&out, true, &names).unwrap();
        let upgraded = std::fs::read_to_string(log_path(&out)).unwrap();
        assert_eq!(
            upgraded.lines().nth(1),
            Some("5,0.7,0.9,0.4,0.5,3.0,,"),
            "{upgraded}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn forgetting_keeps_the_rows_up_to_the_iteration_the_run_went_back_to() {
        let out = std::env::temp_dir().join(format!("msnet-forget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let names = summary([0.0; 2]).class_names;
        forget_after(&out, 3).unwrap();
        start_log(&out, false, &names).unwrap();
        for it in [50, 100, 150] {
            append(&out, it, 0.5, &summary([0.9, 0.1])).unwrap();
        }
        let before = std::fs::read_to_string(log_path(&out)).unwrap();
        forget_after(&out, 150).unwrap();
        assert_eq!(std::fs::read_to_string(log_path(&out)).unwrap(), before);
        forget_after(&out, 120).unwrap();
        let after = std::fs::read_to_string(log_path(&out)).unwrap();
        let rows: Vec<&str> = after
            .lines()
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(rows, ["iteration", "50", "100"]);
        append(&out, 150, 0.4, &summary([0.8, 0.2])).unwrap();
        assert_eq!(
            std::fs::read_to_string(log_path(&out))
                .unwrap()
                .lines()
                .count(),
            4
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

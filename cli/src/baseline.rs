//! `msnet train --arch unet`: the U-Net baseline, trained as MSNet is (same split, batches,
//! augmentation, loss and schedule), then scored on the test set exactly as `msnet eval`
//! scores MSNet. It writes `OUT/baseline.json` (setup, parameter count, training time, test
//! metrics) and no model: the baseline exists to be compared against, never to be exported.
//! Its checkpoint (`OUT/baseline-checkpoint.bin`) lets a stopped run continue with `--resume`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use msnet::config::Arch;
use msnet_datasets::{Dataset, DatasetKind};
use msnet_trainer::baseline::UNet;
use msnet_trainer::baseline_checkpoint::{self, BaselineSetup};
use msnet_trainer::{BaselineRun, baseline_labels, device};
use msnet_training::{Outcome, TrainError, TrainOptions, Validation};
use serde_json::json;

use crate::eval::{self, TestSetup};
use crate::train::{Progress, stop_on_ctrl_c};

/// Where the baseline goes and what it is trained on.
pub struct Target<'a> {
    pub out: &'a Path,
    /// Base channel width.
    pub width: usize,
    pub kind: DatasetKind,
    pub root: &'a Path,
    /// Continue from the checkpoint in `out`.
    pub resume: bool,
    /// Delete a checkpoint in `out` and start afresh.
    pub force: bool,
}

pub fn run(
    t: &Target<'_>,
    ds: &Dataset,
    options: &TrainOptions,
    validation: Option<Validation<'_>>,
) -> Result<ExitCode> {
    if ds.shape[0] != 1 {
        anyhow::bail!("--arch unet is 2D only; {} is a 3D dataset", t.kind);
    }
    if t.width == 0 {
        anyhow::bail!("--unet-width must be at least 1");
    }
    let checkpoint = baseline_checkpoint::path(t.out);
    if checkpoint.exists() && !t.resume {
        if !t.force {
            return Err(TrainError::OutputInUse {
                out: t.out.to_path_buf(),
                found: checkpoint,
            }
            .into());
        }
        std::fs::remove_file(&checkpoint)
            .with_context(|| format!("cannot remove {}", checkpoint.display()))?;
        eprintln!("--force: deleted {}", checkpoint.display());
    }
    // Created before training, so a folder that cannot be made fails now, not after the run.
    msnet::fsutil::create_dir_all(t.out)?;
    let classes = ds.class_names.len();
    let device = device::device().autodiff();
    let net = UNet::new(ds.channels, classes, t.width, options.seed, &device);
    let parameters = net.parameter_count();
    eprintln!(
        "U-Net baseline (width {}), {parameters} parameters, {}; {} iterations of {} images",
        t.width,
        device::describe(),
        options.iterations,
        options.batch_size
    );
    let stop = stop_on_ctrl_c("finishing this iteration and writing a checkpoint")?;
    let mut progress = Progress::new(options.iterations);
    let report = msnet_trainer::train_baseline(
        net,
        &ds.train,
        options,
        BaselineRun {
            out: t.out,
            class_names: &ds.class_names,
            validation,
            setup: BaselineSetup::new(t.width, &ds.split.train, options),
            resume: t.resume,
        },
        &mut |s| progress.step(s),
        &stop,
    );
    progress.finish();
    let report = report?;
    if let Outcome::Interrupted { iteration } = report.outcome {
        eprintln!(
            "stopped at iteration {iteration}; checkpoint in {}. Continue with the same command and --resume",
            checkpoint.display()
        );
        return Ok(ExitCode::from(130));
    }
    let evaluation = eval::evaluate(
        &ds.test,
        &TestSetup {
            kind: t.kind,
            root: t.root,
            class_names: &ds.class_names,
            batch_size: 4,
            overlays: None,
        },
        &|batch| Ok(baseline_labels(&report.net, batch, classes)),
    )?;
    let mut out = eval::report_json(t.out, t.kind, &evaluation);
    out["network"] = json!({
        "arch": Arch::UNet.name(),
        "width": t.width,
        "levels": msnet_trainer::baseline::LEVELS,
        "parameters": parameters,
    });
    out["training"] = json!({
        "seed": options.seed,
        "train": ds.split.train,
        "test": ds.split.test,
        "iterations": options.iterations,
        "augmentation": options.augmentation,
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "lr_decay": options.lr_decay,
        "lr_step": options.lr_step,
        "final_loss": report.final_loss,
        "seconds": report.seconds,
        "hardware": device::describe(),
    });
    let path = t.out.join("baseline.json");
    msnet::fsutil::write_atomic(&path, serde_json::to_string_pretty(&out)?.as_bytes())?;
    let m = &evaluation.summary.mean_all;
    eprintln!(
        "done: {} iterations in {:.0} s; test DSC_avg {:.4} mIoU {:.4} ASD {:.3}; report in {}",
        options.iterations,
        report.seconds,
        m.dsc,
        m.iou,
        m.asd,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

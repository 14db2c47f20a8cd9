//! `msnet-run watch`: a watch-folder service for a device (a Raspberry Pi next to a camera, a
//! Jetson behind a scanner). Images dropped into the inbox are segmented, logged as one CSV
//! row each, and moved to `OUT/done/` (or `OUT/failed/` with the reason on stderr), so a
//! restart never processes an image twice and never loses one. Polling, not inotify: it works
//! on every filesystem, network mounts included, and costs nothing measurable at 2 Hz.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::csv::CsvLog;
use crate::model::{Model, Threads};
use crate::segment::Segmenter;

#[derive(Args)]
pub struct WatchArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    /// Folder to watch for images (.png, .jpg, .jpeg, .bmp, .tif, .tiff). Writers should copy
    /// under a hidden name (starting with a dot) and rename when complete; hidden files and
    /// other extensions are ignored.
    #[arg(long)]
    inbox: PathBuf,
    /// Output folder: NAME.mask.png and NAME.overlay.png, results.csv, done/ and failed/.
    #[arg(long)]
    out: PathBuf,
    /// CSV file to append one row per image to [default: OUT/results.csv].
    #[arg(long)]
    csv: Option<PathBuf>,
    /// How often to look at the inbox, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Process the images in the inbox now, then exit (batch mode); the exit status is 1 if
    /// any failed.
    #[arg(long)]
    once: bool,
}

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// The complete images in `inbox`, by name.
fn pending(inbox: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(inbox).with_context(|| format!("cannot list {}", inbox.display()))?;
    let mut images = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", inbox.display()))?
            .path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let is_image = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()));
        if is_image && !name.starts_with('.') && path.is_file() {
            images.push(path);
        }
    }
    images.sort();
    Ok(images)
}

/// Moves `path` into `folder`, keeping its name.
fn move_into(path: &Path, folder: &Path) -> Result<()> {
    let target = folder.join(path.file_name().unwrap_or_default());
    if std::fs::rename(path, &target).is_err() {
        // Another filesystem: copy, then remove.
        std::fs::copy(path, &target)
            .and_then(|_| std::fs::remove_file(path))
            .with_context(|| format!("cannot move {} to {}", path.display(), folder.display()))?;
    }
    Ok(())
}

pub fn run(a: &WatchArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let mut segmenter = Segmenter::new(&model, &a.threads)?;
    let (done, failed_dir) = (a.out.join("done"), a.out.join("failed"));
    for dir in [&a.out, &done, &failed_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !a.inbox.is_dir() {
        anyhow::bail!("the inbox {} is not a folder", a.inbox.display());
    }
    let csv_path = a.csv.clone().unwrap_or_else(|| a.out.join("results.csv"));
    let mut csv = CsvLog::open(&csv_path, segmenter.class_names())?;
    eprintln!(
        "watching {} with {} ({} thread(s)); rows to {}",
        a.inbox.display(),
        a.model.display(),
        a.threads.count(),
        csv_path.display()
    );
    let mut failures = 0usize;
    loop {
        for path in pending(&a.inbox)? {
            match segmenter.segment(&path, &a.out) {
                Ok(s) => {
                    println!("{}", s.json(&path, segmenter.class_names()));
                    csv.append(&path, &s)?;
                    move_into(&path, &done)?;
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("error: {}: {e:#}", path.display());
                    move_into(&path, &failed_dir)?;
                }
            }
        }
        if a.once {
            break;
        }
        std::thread::sleep(Duration::from_millis(a.poll_ms));
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `msnet-run watch`: a watch-folder service for a device (a Raspberry Pi next to a camera, a
//! Jetson behind a scanner). Images dropped into the inbox are segmented, logged as one CSV
//! row each, and moved to `OUT/done/` (or `OUT/failed/` with the reason on stderr), so a
//! restart never processes an image twice and never loses one. Polling, not inotify: it works
//! on every filesystem, network mounts included, and costs nothing measurable at 2 Hz.
//!
//! An image is first claimed: moved into `INBOX/.processing/`. What a watcher finds there when
//! it starts was being processed when the last one stopped, perhaps because that image crashed
//! it, so it goes to `failed/` rather than being tried again. The inbox is locked
//! (`INBOX/.msnet-watch.lock`), so a second watcher on it refuses to start. Nothing filed is
//! ever replaced: a second `scan.png` becomes `scan-1` (masks, overlay and filed image alike).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet_run::outputs::Outputs;

use crate::csv::CsvLog;
use crate::model::{Model, Threads};
use crate::paths::{self, Output, model_files};
use crate::segment::{self, LocatorArgs, Segmenter};

#[derive(Args)]
pub struct WatchArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    #[command(flatten)]
    image_budget: msnet_run::preprocess::ImageBudget,
    #[command(flatten)]
    locator: LocatorArgs,
    /// Folder to watch for images (.png, .jpg, .jpeg, .bmp, .tif, .tiff). Writers should copy
    /// under a hidden name (starting with a dot) and rename when complete; hidden files and
    /// other extensions are ignored.
    #[arg(long)]
    inbox: PathBuf,
    /// Output folder: NAME.mask.png and NAME.overlay.png, results.csv, done/ and failed/. It
    /// may not be the inbox, nor inside it, nor hold it.
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

/// Where a watcher files things. `claimed` is inside the inbox, so a claim never crosses
/// filesystems; whatever is in it at start was being processed when a watcher stopped.
struct Folders {
    inbox: PathBuf,
    claimed: PathBuf,
    out: PathBuf,
    done: PathBuf,
    failed: PathBuf,
}

impl Folders {
    /// Checks the inbox and output folders and creates what is missing.
    fn new(inbox: &Path, out: &Path) -> Result<Self> {
        if !inbox.is_dir() {
            bail!("the inbox {} is not a folder", inbox.display());
        }
        refuse_overlap(inbox, out)?;
        let f = Self {
            inbox: inbox.to_path_buf(),
            claimed: inbox.join(CLAIMED),
            out: out.to_path_buf(),
            done: out.join("done"),
            failed: out.join("failed"),
        };
        for dir in [&f.claimed, &f.out, &f.done, &f.failed] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(f)
    }

    /// The first of `STEM`, `STEM-1`, `STEM-2`, … with no mask, overlay or filed image of
    /// that name yet, so a second `scan.png` never replaces the first one's results.
    fn free_stem(&self, image: &Path) -> String {
        let (stem, ext) = stem_and_extension(image);
        let mut n = 0;
        while !self.is_free(&numbered(&stem, n), &ext) {
            n += 1;
        }
        numbered(&stem, n)
    }

    fn is_free(&self, stem: &str, ext: &str) -> bool {
        let to = Outputs::named(&self.out, stem);
        let filed = format!("{stem}{ext}");
        [
            to.mask,
            to.overlay,
            self.done.join(&filed),
            self.failed.join(&filed),
        ]
        .iter()
        .all(|p| p.symlink_metadata().is_err())
    }
}

/// The name of the folder (inside the inbox) that claimed images wait in while processed.
const CLAIMED: &str = ".processing";
/// The file a watcher locks so that a second one on the same inbox refuses to start.
const LOCK: &str = ".msnet-watch.lock";

/// Refuses an output folder inside the inbox (or the inbox inside it, or both the same): the
/// watcher would take its own masks, or its filed images, for new images, forever.
fn refuse_overlap(inbox: &Path, out: &Path) -> Result<()> {
    let (i, o) = (paths::resolved(inbox)?, paths::resolved(out)?);
    let how = if i == o {
        "are the same folder"
    } else if o.starts_with(&i) {
        "overlap: --out is inside --inbox"
    } else if i.starts_with(&o) {
        "overlap: --inbox is inside --out"
    } else {
        return Ok(());
    };
    bail!(
        "--inbox {} and --out {} {how}; the watcher would read its own outputs as new images: \
         use separate folders",
        inbox.display(),
        out.display()
    )
}

/// Locks the inbox for this watcher: a second one on the same inbox would race it for every
/// image. The lock goes with the process, so a crash never leaves the inbox locked.
fn lock_inbox(inbox: &Path) -> Result<File> {
    let path = inbox.join(LOCK);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another watcher is already watching {} (it holds {}): stop it first, or give \
             this one its own --inbox",
            inbox.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// `scan.png` → (`scan`, `.png`).
fn stem_and_extension(image: &Path) -> (String, String) {
    let ext = image
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (segment::stem(image), ext)
}

/// `stem` for 0, else `stem-n`.
fn numbered(stem: &str, n: usize) -> String {
    if n == 0 {
        stem.to_string()
    } else {
        format!("{stem}-{n}")
    }
}

/// Moves `path` to `to` unless something is there already (then `AlreadyExists`). A hard
/// link is the no-replace rename std offers; where links fail (another filesystem, FAT), a
/// copy into a newly created file does the same.
fn move_no_replace(path: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(path, to) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(e),
        Err(_) => copy_no_replace(path, to)?,
    }
    // Undone if the source stays, so a file that cannot be moved is not copied at every poll.
    std::fs::remove_file(path).inspect_err(|_| {
        let _ = std::fs::remove_file(to);
    })
}

fn copy_no_replace(path: &Path, to: &Path) -> std::io::Result<()> {
    let mut source = File::open(path)?;
    let mut target = OpenOptions::new().write(true).create_new(true).open(to)?;
    let copied = std::io::copy(&mut source, &mut target).and_then(|_| target.sync_all());
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied
}

/// Moves `path` into `folder` as `STEM.EXT`, or `STEM-1.EXT`, … if that name is taken;
/// returns where it went.
fn file_into(path: &Path, folder: &Path, stem: &str) -> Result<PathBuf> {
    let (_, ext) = stem_and_extension(path);
    let mut n = 0;
    loop {
        let to = folder.join(format!("{}{ext}", numbered(stem, n)));
        match move_no_replace(path, &to) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            moved => {
                return moved.map(|()| to).with_context(|| {
                    format!("cannot move {} to {}", path.display(), folder.display())
                });
            }
        }
    }
}

/// Files a claimed image into `folder` as `STEM.EXT` (or a numbered name, said on stderr);
/// one that cannot be moved is left where it is, with a line on stderr.
fn file_away(image: &Path, claimed: &Path, folder: &Path, stem: &str) {
    match file_into(claimed, folder, stem) {
        Ok(to) if to.file_name() != image.file_name() => {
            eprintln!("{}: filed as {}", image.display(), to.display());
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: {}: {e:#}", image.display()),
    }
}

/// A watcher's state between polls.
struct Watcher<'m> {
    segmenter: Segmenter<'m>,
    csv: CsvLog,
    folders: Folders,
    failures: usize,
}

impl Watcher<'_> {
    /// Sets aside, in failed/, every image a stopped watcher left claimed: it may be the
    /// image that crashed it, and a service restarted on it would crash again.
    fn recover(&mut self) -> Result<()> {
        let f = &self.folders;
        let left = std::fs::read_dir(&f.claimed)
            .with_context(|| format!("cannot list {}", f.claimed.display()))?;
        for entry in left {
            let path = entry
                .with_context(|| format!("cannot list {}", f.claimed.display()))?
                .path();
            self.failures += 1;
            eprintln!(
                "error: {}: was being processed when a watcher stopped (a crash?); it goes to \
                 {} so it is not tried again (put it back into the inbox to retry)",
                path.display(),
                f.failed.display()
            );
            file_away(&path, &path, &f.failed, &segment::stem(&path));
        }
        Ok(())
    }

    /// Processes `images` from one look at the inbox. An image that cannot be claimed
    /// (deleted meanwhile, taken by another process) or filed away is skipped with a line on
    /// stderr; only a CSV that cannot be written stops the watcher.
    fn sweep(&mut self, images: &[PathBuf]) -> Result<()> {
        for image in images {
            let stem = self.folders.free_stem(image);
            match file_into(image, &self.folders.claimed, &stem) {
                Ok(claimed) => self.process(image, &claimed, &stem)?,
                Err(e) => eprintln!("warning: skipped {}: {e:#}", image.display()),
            }
        }
        Ok(())
    }

    /// Segments a claimed image, logs it and files it under done/, or on failure files it
    /// under failed/ before anything else is done with it.
    fn process(&mut self, image: &Path, claimed: &Path, stem: &str) -> Result<()> {
        let f = &self.folders;
        let segmented = match self
            .segmenter
            .segment(claimed, &Outputs::named(&f.out, stem))
        {
            Ok(s) => s,
            Err(e) => {
                self.failures += 1;
                file_away(image, claimed, &f.failed, stem);
                eprintln!("error: {}: {e:#}", image.display());
                return Ok(());
            }
        };
        println!("{}", segmented.json(image, self.segmenter.class_names()));
        self.csv.append(image, &segmented).with_context(|| {
            format!(
                "{} stays in {} and goes to failed/ at the next start",
                image.display(),
                f.claimed.display()
            )
        })?;
        file_away(image, claimed, &f.done, stem);
        Ok(())
    }
}

pub fn run(a: &WatchArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let locator = a.locator.load()?;
    let segmenter = Segmenter::new(&model, &a.threads)?.with_image_budget(a.image_budget);
    let segmenter = a.locator.apply(segmenter, locator.as_ref(), &a.threads)?;
    let folders = Folders::new(&a.inbox, &a.out)?;
    let _lock = lock_inbox(&a.inbox)?;
    let csv_path = a.csv.clone().unwrap_or_else(|| a.out.join("results.csv"));
    let csv_output = Output {
        path: csv_path.clone(),
        by: "--csv".into(),
        replace: true,
    };
    let mut inputs = model_files(&a.model).to_vec();
    inputs.extend(a.locator.files());
    paths::check(&inputs, &[csv_output])?;
    let csv = CsvLog::open(&csv_path, segmenter.class_names())?;
    eprintln!(
        "watching {} with {} ({} thread(s)); rows to {}",
        a.inbox.display(),
        a.model.display(),
        a.threads.count(),
        csv_path.display()
    );
    let mut w = Watcher {
        segmenter,
        csv,
        folders,
        failures: 0,
    };
    w.recover()?;
    loop {
        w.sweep(&pending(&w.folders.inbox)?)?;
        if a.once {
            break;
        }
        std::thread::sleep(Duration::from_millis(a.poll_ms));
    }
    Ok(if w.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, FromArgMatches};

    fn one_thread() -> Threads {
        let cli = Threads::augment_args(clap::Command::new("t"));
        Threads::from_arg_matches(&cli.get_matches_from(["t"])).unwrap()
    }

    #[test]
    fn an_image_gone_before_it_is_claimed_is_skipped_and_the_rest_go_on() {
        let dir = std::env::temp_dir().join(format!("msnet-watch-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (inbox, out) = (dir.join("inbox"), dir.join("out"));
        std::fs::create_dir_all(&inbox).unwrap();
        let image = inbox.join("a.png");
        msnet_io::write_image_png(&image, 1, [8, 8], &[0.5; 64]).unwrap();
        let model =
            Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/wbc")).unwrap();
        let segmenter = Segmenter::new(&model, &one_thread()).unwrap();
        let folders = Folders::new(&inbox, &out).unwrap();
        let csv = CsvLog::open(&out.join("r.csv"), segmenter.class_names()).unwrap();
        let mut w = Watcher {
            folders,
            csv,
            segmenter,
            failures: 0,
        };
        // Listed, then deleted (or taken) before this watcher got to it.
        w.sweep(&[inbox.join("gone.png"), image]).unwrap();
        assert_eq!(w.failures, 0);
        assert!(out.join("done/a.png").is_file());
        assert!(out.join("a.mask.png").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

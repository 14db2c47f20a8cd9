//! All-or-nothing writes of several artifacts into a model directory.
//!
//! Artifacts are written into a hidden staging folder inside the target directory (the same
//! file system, so renames are atomic), checked there, then moved into place one by one. A
//! replaced artifact is first moved aside into the staging folder; if any move fails, every
//! move already made is undone. So an export that fails at any point — a failed self-check, a
//! full disk, a name taken by a directory — leaves the model directory as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use msnet::fsutil::FsError;

fn fs_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |source| FsError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// A staging folder inside `dir`; removed (with anything left in it) when dropped.
pub struct Staging {
    dir: PathBuf,
    stage: PathBuf,
}

impl Staging {
    /// Creates `dir/.export-PID-N/`. Fails (naming `dir`) if `dir` is not a writable directory.
    pub fn new(dir: &Path) -> Result<Self, FsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let stage = dir.join(format!(
            ".export-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&stage).map_err(fs_err(dir, "cannot write into the model directory"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            stage,
        })
    }

    /// Where a staged artifact named `name` (a file or a folder) is written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.stage.join(name)
    }

    /// Moves the staged artifacts `names` into the model directory, replacing what is there.
    /// On failure, restores the directory as it was and returns the error.
    pub fn commit(self, names: &[&str]) -> Result<(), FsError> {
        let mut done: Vec<(&str, bool)> = Vec::new();
        for &name in names {
            match self.replace(name) {
                Ok(had_previous) => done.push((name, had_previous)),
                Err(e) => {
                    for &(name, had_previous) in done.iter().rev() {
                        self.undo(name, had_previous);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn previous(&self, name: &str) -> PathBuf {
        self.stage.join(format!("{name}.previous"))
    }

    /// Moves `dir/name` aside (if present) and the staged `name` into its place; returns
    /// whether there was a previous artifact.
    fn replace(&self, name: &str) -> Result<bool, FsError> {
        let target = self.dir.join(name);
        let had_previous = fs::symlink_metadata(&target).is_ok();
        if had_previous {
            fs::rename(&target, self.previous(name))
                .map_err(fs_err(&target, "cannot move the previous version aside"))?;
        }
        if let Err(e) = fs::rename(self.path(name), &target) {
            if had_previous {
                let _ = fs::rename(self.previous(name), &target);
            }
            return Err(fs_err(&target, "cannot move the new version into place")(e));
        }
        Ok(had_previous)
    }

    /// Best effort: puts the staged artifact back and the previous one into place.
    fn undo(&self, name: &str, had_previous: bool) {
        let target = self.dir.join(name);
        let _ = fs::rename(&target, self.path(name));
        if had_previous {
            let _ = fs::rename(self.previous(name), &target);
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msnet-stage-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn commit_replaces_files_and_folders() {
        let dir = scratch("ok");
        fs::write(dir.join("a.bin"), "old").unwrap();
        let stage = Staging::new(&dir).unwrap();
        fs::write(stage.path("a.bin"), "new").unwrap();
        fs::create_dir(stage.path("golden")).unwrap();
        fs::write(stage.path("golden").join("x"), "x").unwrap();
        stage.commit(&["a.bin", "golden"]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("a.bin")).unwrap(), "new");
        assert_eq!(fs::read_to_string(dir.join("golden/x")).unwrap(), "x");
        assert_eq!(listing(&dir), ["a.bin", "golden"]);
    }

    #[test]
    fn failed_commit_restores_everything() {
        let dir = scratch("undo");
        fs::write(dir.join("a.bin"), "old").unwrap();
        // The second artifact was never staged: its move fails after the first one succeeded.
        let stage = Staging::new(&dir).unwrap();
        fs::write(stage.path("a.bin"), "new").unwrap();
        let err = stage.commit(&["a.bin", "missing.bin"]).unwrap_err();
        assert!(err.to_string().contains("missing.bin"), "{err}");
        assert_eq!(fs::read_to_string(dir.join("a.bin")).unwrap(), "old");
        assert_eq!(listing(&dir), ["a.bin"], "staging folder removed");
    }

    #[test]
    fn dropped_stage_leaves_nothing() {
        let dir = scratch("drop");
        {
            let stage = Staging::new(&dir).unwrap();
            fs::write(stage.path("a.bin"), "new").unwrap();
        }
        assert!(listing(&dir).is_empty());
        let err = Staging::new(&dir.join("nope")).err().unwrap().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}

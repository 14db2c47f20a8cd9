//! All-or-nothing writes of several artifacts into a model directory, even under kill -9.
//!
//! Artifacts are written into a hidden staging folder inside the target directory (the same
//! file system, so renames are atomic), checked there, then moved into place one by one. A
//! replaced artifact is first moved aside into the staging folder; if any move fails, every
//! move already made is undone. So an export that fails at any point — a failed self-check, a
//! full disk, a name taken by a directory — leaves the model directory as it was.
//!
//! A killed process undoes nothing, so the moves are journalled: before the first one, a
//! journal naming the staging folder and the artifacts is renamed into the directory
//! ([`JOURNAL_FILE`]), and it is removed after the last. [`recover`] (run by the next export)
//! finds a journal left by a dead export and completes its moves: the staged set was complete
//! and self-checked before the journal was written, and each artifact is, at any instant,
//! either still staged or already in place, so completing takes only renames and never
//! mixes two exports. Readers that must not write (`msnet-run`) refuse a directory holding a
//! journal instead.
//!
//! Each staging folder holds a lock file, locked while its export runs. The operating system
//! releases the lock when the process dies, however it dies, so [`recover`] tells a dead
//! export's folder from a running one's without trusting process ids, which are reused.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use msnet::fsutil::FsError;

/// The swap's journal in the model directory: the staging folder's name on the first line,
/// then one artifact per line, in the order they are moved.
pub const JOURNAL_FILE: &str = ".export-journal";
const STAGING_PREFIX: &str = ".export-";
const LOCK_FILE: &str = ".lock";
/// A staging folder without a lock file was made by an export that died before creating it
/// (or by a version of this code that had no lock files). One that is still running creates
/// its lock file immediately after the folder, so this age is ample.
const UNLOCKED_STAGING_AGE: Duration = Duration::from_secs(60);

fn fs_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn invalid(path: &Path, action: &'static str, why: String) -> FsError {
    fs_err(path, action)(io::Error::new(io::ErrorKind::InvalidData, why))
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Makes the renames so far durable before the next step depends on them: a power cut, unlike
/// a kill, loses what is only in the page cache. Best effort: not every platform can sync a
/// directory, and a kill (the common case) needs no sync.
fn sync_dir(dir: &Path) {
    let _ = File::open(dir).and_then(|f| f.sync_all());
}

/// Fault injection: the swap stopped here, as if its process had been killed.
struct Killed;

/// A change to the model directory: its outcome, or [`Killed`] before it was made.
type Change = Result<Result<(), FsError>, Killed>;

/// One artifact's moves so far, for undoing them.
struct Moved<'a> {
    name: &'a str,
    had_previous: bool,
    moved_in: bool,
}

/// A staging folder inside `dir`; removed (with anything left in it) when dropped, unless a
/// swap that could not be finished or undone needs it.
pub struct Staging {
    dir: PathBuf,
    stage: PathBuf,
    /// Locked while this export runs (see the module documentation).
    lock: Option<File>,
    /// Fault injection: how many more changes the swap may make.
    changes_left: Option<usize>,
    /// Keeps the folder when dropped: set while the journal is in the model directory
    /// (`recover` needs the folder to complete the swap), and by a fault-injected kill.
    journalled: bool,
}

impl Staging {
    /// Creates `dir/.export-PID-N/`. Fails (naming `dir`) if `dir` is not a writable directory.
    pub fn new(dir: &Path) -> Result<Self, FsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let stage = dir.join(format!(
            "{STAGING_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&stage).map_err(fs_err(dir, "cannot write into the model directory"))?;
        let mut staging = Self {
            dir: dir.to_path_buf(),
            stage,
            lock: None,
            changes_left: None,
            journalled: false,
        };
        let lock_path = staging.stage.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(fs_err(&lock_path, "cannot create"))?;
        // Blocking: a concurrent `recover` may hold it for a moment, having found the file
        // before it was locked; it then removes the folder, and this export fails on its first
        // write instead of mixing its files with another's.
        lock.lock().map_err(fs_err(&lock_path, "cannot lock"))?;
        staging.lock = Some(lock);
        Ok(staging)
    }

    /// The staging folder, laid out as the model directory will be.
    pub fn root(&self) -> &Path {
        &self.stage
    }

    /// Where a staged artifact named `name` (a file or a folder) is written.
    pub fn path(&self, name: &str) -> PathBuf {
        self.stage.join(name)
    }

    /// Moves the staged artifacts `names` into the model directory, replacing what is there.
    /// On failure, restores the directory as it was and returns the error.
    pub fn commit(self, names: &[&str]) -> Result<(), FsError> {
        // Only fault injection stops a swap midway.
        self.swap(names).unwrap_or(Ok(()))
    }

    /// Fault injection for the crash tests: [`Staging::commit`], stopped after `changes`
    /// changes to the model directory as if the process had been killed there: nothing is
    /// undone or cleaned up, and the lock is released as the operating system would. Returns
    /// whether the swap was stopped before its end.
    #[doc(hidden)]
    pub fn commit_killed_after(mut self, names: &[&str], changes: usize) -> bool {
        self.changes_left = Some(changes);
        self.swap(names).is_err()
    }

    /// Makes one change, counted for fault injection.
    fn change(&mut self, op: impl FnOnce() -> Result<(), FsError>) -> Change {
        match &mut self.changes_left {
            Some(0) => return Err(Killed),
            Some(n) => *n -= 1,
            None => {}
        }
        Ok(op())
    }

    fn rename(&mut self, from: &Path, to: &Path, action: &'static str, named: &Path) -> Change {
        self.change(|| fs::rename(from, to).map_err(fs_err(named, action)))
    }

    fn swap(mut self, names: &[&str]) -> Change {
        let result = self.swap_steps(names);
        if result.is_err() {
            // A dead process leaves its folder behind whether journalled or not.
            self.journalled = true;
        }
        result
    }

    fn swap_steps(&mut self, names: &[&str]) -> Change {
        let journal = self.dir.join(JOURNAL_FILE);
        let staged_journal = self.stage.join(JOURNAL_FILE);
        let stage_name = self.stage.file_name().unwrap_or_default().to_string_lossy();
        let text = format!("{stage_name}\n{}\n", names.join("\n"));
        // Written in the staging folder, so a kill mid-write leaves nothing in the directory.
        if let Err(e) = msnet::fsutil::write_atomic(&staged_journal, text.as_bytes()) {
            return Ok(Err(e));
        }
        let started = self.rename(
            &staged_journal,
            &journal,
            "cannot start the swap (journal)",
            &journal,
        )?;
        if let Err(e) = started {
            return Ok(Err(e));
        }
        self.journalled = true;
        sync_dir(&self.dir);
        let mut moved: Vec<Moved> = Vec::new();
        let mut failure = None;
        for &name in names {
            let (target, staged, previous) =
                (self.dir.join(name), self.path(name), self.previous(name));
            let had_previous = exists(&target);
            if had_previous {
                let aside = self.rename(
                    &target,
                    &previous,
                    "cannot move the previous version aside",
                    &target,
                )?;
                if let Err(e) = aside {
                    failure = Some(e);
                    break;
                }
            }
            let moved_in = self.rename(
                &staged,
                &target,
                "cannot move the new version into place",
                &target,
            )?;
            moved.push(Moved {
                name,
                had_previous,
                moved_in: moved_in.is_ok(),
            });
            if let Err(e) = moved_in {
                failure = Some(e);
                break;
            }
        }
        if let Some(e) = failure {
            // Where an undo fails, the journal stays, and `recover` completes the swap instead.
            if self.undo(&moved)? {
                sync_dir(&self.dir);
                let removed = self.change(|| {
                    fs::remove_file(&journal).map_err(fs_err(&journal, "cannot remove"))
                })?;
                self.journalled = removed.is_err();
            }
            return Ok(Err(e));
        }
        sync_dir(&self.dir);
        let ended = self.change(|| {
            fs::remove_file(&journal).map_err(fs_err(&journal, "cannot end the swap (journal)"))
        })?;
        if let Err(e) = ended {
            return Ok(Err(e));
        }
        self.journalled = false;
        // The export has succeeded: a folder that cannot be removed now is removed as stale
        // by the next export.
        self.lock = None;
        let stage = self.stage.clone();
        let _ =
            self.change(|| fs::remove_dir_all(&stage).map_err(fs_err(&stage, "cannot remove")))?;
        Ok(Ok(()))
    }

    fn previous(&self, name: &str) -> PathBuf {
        self.stage.join(format!("{name}.previous"))
    }

    /// Puts the staged artifacts back and the previous ones into place, last first; returns
    /// whether every move succeeded (it stops at the first that fails).
    fn undo(&mut self, moved: &[Moved]) -> Result<bool, Killed> {
        for m in moved.iter().rev() {
            let (target, staged, previous) = (
                self.dir.join(m.name),
                self.path(m.name),
                self.previous(m.name),
            );
            if m.moved_in
                && self
                    .rename(&target, &staged, "cannot undo", &target)?
                    .is_err()
            {
                return Ok(false);
            }
            if m.had_previous
                && self
                    .rename(&previous, &target, "cannot undo", &target)?
                    .is_err()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.lock = None;
        if !self.journalled {
            let _ = fs::remove_dir_all(&self.stage);
        }
    }
}

/// Whether `name` is a staging folder's: `.export-PID-N`.
fn is_staging_name(name: &str) -> bool {
    name.strip_prefix(STAGING_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, n)| {
            [pid, n]
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether a staging folder's export still runs.
enum Owner {
    Running,
    /// Its lock, held while the folder is removed (absent for a folder without a lock file).
    Dead(Option<File>),
}

/// A folder without a lock file counts as dead once it is [`UNLOCKED_STAGING_AGE`] old.
fn owner(stage: &Path) -> Result<Owner, FsError> {
    let lock_path = stage.join(LOCK_FILE);
    match File::open(&lock_path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => Ok(Owner::Dead(Some(file))),
            Err(TryLockError::WouldBlock) => Ok(Owner::Running),
            Err(TryLockError::Error(e)) => Err(fs_err(&lock_path, "cannot lock")(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let age = fs::symlink_metadata(stage)
                .and_then(|m| m.modified())
                .map_err(fs_err(stage, "cannot read"))?
                .elapsed()
                .unwrap_or_default();
            Ok(match age >= UNLOCKED_STAGING_AGE {
                true => Owner::Dead(None),
                false => Owner::Running,
            })
        }
        Err(e) => Err(fs_err(&lock_path, "cannot open")(e)),
    }
}

/// Reads a journal: the staging folder and the artifacts. Every name must be a plain name in
/// the model directory, so a damaged or forged journal cannot move files elsewhere.
fn read_journal(journal: &Path) -> Result<Option<(String, Vec<String>)>, FsError> {
    let text = match fs::read_to_string(journal) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fs_err(journal, "cannot read")(e)),
    };
    let mut lines = text.lines();
    let stage = lines.next().unwrap_or_default().to_string();
    let names: Vec<String> = lines.map(str::to_string).collect();
    let plain = |n: &String| {
        let mut parts = Path::new(n).components();
        matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none()
    };
    if !is_staging_name(&stage) || names.is_empty() || !names.iter().all(plain) {
        return Err(invalid(
            journal,
            "not an export journal",
            "expected a staging folder `.export-PID-N` and the artifacts it moves, one per line \
             (remove the file if no export was interrupted)"
                .into(),
        ));
    }
    Ok(Some((stage, names)))
}

/// Completes the move of one artifact of an interrupted swap: it is either still staged (then
/// whatever is in place is the previous version, moved aside first) or already in place.
fn finish_move(dir: &Path, stage: &Path, name: &str) -> Result<(), FsError> {
    let (staged, target) = (stage.join(name), dir.join(name));
    let previous = stage.join(format!("{name}.previous"));
    if !exists(&staged) {
        if exists(&target) {
            return Ok(());
        }
        return Err(invalid(
            &target,
            "cannot complete an interrupted export",
            format!("missing, and not staged in {}", stage.display()),
        ));
    }
    if exists(&target) {
        if exists(&previous) {
            return Err(invalid(
                &target,
                "cannot complete an interrupted export",
                format!(
                    "both {} and {} exist: remove the one that is not wanted",
                    staged.display(),
                    previous.display()
                ),
            ));
        }
        fs::rename(&target, &previous)
            .map_err(fs_err(&target, "cannot move the previous version aside"))?;
    }
    fs::rename(&staged, &target).map_err(fs_err(&target, "cannot move the new version into place"))
}

/// Cleans up after exports into `dir` that died: completes a swap whose journal they left
/// (see the module documentation), then removes their staging folders. Leaves running
/// exports alone; fails if one of them is in the middle of its swap. Returns one line per
/// thing done, for the log.
pub fn recover(dir: &Path) -> Result<Vec<String>, FsError> {
    let mut done = Vec::new();
    let journal = dir.join(JOURNAL_FILE);
    if let Some((stage_name, names)) = read_journal(&journal)? {
        let stage = dir.join(&stage_name);
        // An absent folder has no lock to hold: its export is gone too.
        let guard = match exists(&stage).then(|| owner(&stage)).transpose()? {
            Some(Owner::Running) => {
                return Err(invalid(
                    &journal,
                    "cannot recover",
                    "another export is moving its files into this directory now; try again \
                     when it has finished"
                        .into(),
                ));
            }
            Some(Owner::Dead(lock)) => lock,
            None => None,
        };
        for name in &names {
            finish_move(dir, &stage, name)?;
        }
        sync_dir(dir);
        fs::remove_file(&journal).map_err(fs_err(&journal, "cannot remove"))?;
        drop(guard);
        done.push(format!(
            "completed the swap of an interrupted export: {}",
            names.join(", ")
        ));
    }
    let entries = fs::read_dir(dir).map_err(fs_err(dir, "cannot list"))?;
    for entry in entries {
        let entry = entry.map_err(fs_err(dir, "cannot list"))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !entry.file_name().to_str().is_some_and(is_staging_name) {
            continue;
        }
        let stage = entry.path();
        if let Owner::Dead(guard) = owner(&stage)? {
            fs::remove_dir_all(&stage).map_err(fs_err(&stage, "cannot remove"))?;
            drop(guard);
            done.push(format!(
                "removed {}, left by an export that did not finish",
                stage.display()
            ));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    /// Every file under `dir` with its bytes (folders as empty entries).
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel.clone(), Vec::new());
                out.extend(snapshot(&path).into_iter().map(|(p, b)| (rel.join(p), b)));
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
        out
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
        assert_eq!(
            listing(&dir),
            ["a.bin"],
            "staging folder and journal removed"
        );
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

    /// Stages a new set over an old one: a replaced file, a replaced folder and a new file.
    fn stage_new_set(dir: &Path) -> Staging {
        let stage = Staging::new(dir).unwrap();
        fs::write(stage.path("a.bin"), "new a").unwrap();
        fs::create_dir(stage.path("golden")).unwrap();
        fs::write(stage.path("golden").join("x"), "new x").unwrap();
        fs::write(stage.path("c.bin"), "new c").unwrap();
        stage
    }

    const NAMES: [&str; 3] = ["a.bin", "golden", "c.bin"];

    fn old_set(dir: &Path) {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir.join("golden")).unwrap();
        fs::write(dir.join("a.bin"), "old a").unwrap();
        fs::write(dir.join("golden").join("x"), "old x").unwrap();
        fs::write(dir.join("golden").join("y"), "old y").unwrap();
    }

    #[test]
    fn a_kill_at_every_step_of_the_swap_recovers_one_complete_set() {
        let dir = scratch("kill");
        old_set(&dir);
        let old = snapshot(&dir);
        stage_new_set(&dir).commit(&NAMES).unwrap();
        let new = snapshot(&dir);
        let mut stopped = 0;
        for changes in 0.. {
            old_set(&dir);
            if !stage_new_set(&dir).commit_killed_after(&NAMES, changes) {
                break;
            }
            stopped += 1;
            let notes = recover(&dir).unwrap();
            let after = snapshot(&dir);
            assert!(
                after == old || after == new,
                "killed after {changes} changes, recovered to {:?} ({notes:?})",
                after.keys().collect::<Vec<_>>()
            );
            // Once the journal is in place, the new set wins.
            assert_eq!(after == new, changes >= 1, "killed after {changes} changes");
            assert!(recover(&dir).unwrap().is_empty(), "recovery is complete");
        }
        // Journal in, two moves per replaced artifact and one for the new, journal out, staging
        // folder removed.
        assert_eq!(stopped, 1 + 2 + 2 + 1 + 1 + 1);
    }

    #[test]
    fn a_kill_while_undoing_a_failed_swap_never_leaves_a_silent_mix() {
        let dir = scratch("kill-undo");
        old_set(&dir);
        let old = snapshot(&dir);
        // The swap fails at the never-staged `missing.bin` and undoes its moves. Killed before
        // the undo is complete, the journal stays; `recover` then completes the moves, and
        // here says why it cannot, leaving the journal for readers to refuse the directory.
        let names = ["a.bin", "golden", "missing.bin"];
        for changes in 0.. {
            old_set(&dir);
            if !stage_new_set(&dir).commit_killed_after(&names, changes) {
                break;
            }
            match recover(&dir) {
                Ok(_) => assert_eq!(snapshot(&dir), old, "killed after {changes} changes"),
                Err(e) => {
                    assert!(e.to_string().contains("missing.bin"), "{e}");
                    assert!(dir.join(JOURNAL_FILE).exists());
                }
            }
        }
        assert_eq!(snapshot(&dir), old, "the complete failed swap");
    }

    #[test]
    fn recover_removes_only_the_staging_folders_of_dead_exports() {
        let dir = scratch("stale");
        let running = Staging::new(&dir).unwrap();
        let dead = Staging::new(&dir).unwrap();
        let dead_path = dead.stage.clone();
        fs::write(dead.path("model.onnx"), "x").unwrap();
        assert!(dead.commit_killed_after(&["model.onnx"], 0));
        // An old-style folder without a lock file, made long ago, and a fresh one.
        let old_style = dir.join(".export-4000000-7");
        fs::create_dir(&old_style).unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * UNLOCKED_STAGING_AGE;
        File::open(&old_style)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let fresh = dir.join(".export-4000000-8");
        fs::create_dir(&fresh).unwrap();
        fs::create_dir(dir.join(".export-other")).unwrap();
        let notes = recover(&dir).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(!dead_path.exists() && !old_style.exists());
        assert!(running.stage.exists() && fresh.exists());
        assert!(dir.join(".export-other").exists(), "not a staging folder");
    }

    #[test]
    fn recover_refuses_a_running_swap_and_a_forged_journal() {
        let dir = scratch("journal");
        let running = Staging::new(&dir).unwrap();
        let name = running.stage.file_name().unwrap().to_string_lossy();
        fs::write(dir.join(JOURNAL_FILE), format!("{name}\na.bin\n")).unwrap();
        let e = recover(&dir).unwrap_err().to_string();
        assert!(e.contains("another export"), "{e}");
        drop(running);
        fs::write(dir.join(JOURNAL_FILE), ".export-1-1\n../outside\n").unwrap();
        let e = recover(&dir).unwrap_err().to_string();
        assert!(
            e.contains(JOURNAL_FILE) && e.contains("not an export journal"),
            "{e}"
        );
    }
}

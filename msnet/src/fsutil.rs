//! File helpers shared by every writer: atomic writes (temporary file, fsync, rename) and reads
//! whose errors name the file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file-system failure, with the path it concerns.
///
/// Its message holds the OS error, so the error does not also report it as its `source()`: a
/// printed chain of causes (anyhow's `{:#}`) would show it twice. The same rule holds for
/// every error of the workspace that wraps another: it is `transparent`, or it shows its cause
/// in its message and has no source.
#[derive(Debug)]
pub struct FsError {
    pub path: PathBuf,
    pub action: &'static str,
    pub source: std::io::Error,
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path.display(),
            self.action,
            self.source
        )
    }
}

impl std::error::Error for FsError {}

fn fs_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FsError + 'a {
    move |source| FsError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// A unique, empty folder under the system temp dir for a test or an example: named by `tag`,
/// the process and a per-process counter, so tests running in parallel never share one.
/// Panics if the temp dir cannot be written: it serves test fixtures only, where that is the
/// failure to report.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "msnet-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot make the scratch folder {}: {e}", dir.display()));
    dir
}

/// A fresh temporary sibling for a write: same folder, so the rename is atomic; hidden, and
/// unique per process and call, so concurrent writers of one target never share it.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one,
/// never a half-written file, even if the process dies mid-write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes into the file, for a writer that streams a large
/// file rather than building it in memory first.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<(), FsError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(fs_err(&tmp, "cannot create"))?;
        write(&mut file).map_err(fs_err(&tmp, "cannot write"))?;
        file.sync_all().map_err(fs_err(&tmp, "cannot sync"))?;
        fs::rename(&tmp, path).map_err(fs_err(path, "cannot replace"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, FsError> {
    fs::read(path).map_err(fs_err(path, "cannot read"))
}

/// Reads a whole UTF-8 file, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String, FsError> {
    fs::read_to_string(path).map_err(fs_err(path, "cannot read"))
}

/// Creates a directory and its parents, naming it in the error.
pub fn create_dir_all(path: &Path) -> Result<(), FsError> {
    fs::create_dir_all(path).map_err(fs_err(path, "cannot create directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("msnet-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("a.json")],
            "no temporary file left"
        );
        let missing = dir.join("no/such/dir/x");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("no/such/dir"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! The rules every `msnet-run` command follows for the files it writes, checked before any
//! work starts: no output lands on one of the command's inputs, no two outputs share a file,
//! and no existing file is replaced unless the user asked for it.
//!
//! Paths are compared where they really lead (symlinks and `..` resolved), because the same
//! file spelt two ways is the usual way an input gets overwritten. Hard links are not
//! compared: every writer replaces its target by a rename, so the other name keeps the data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use msnet::model::CONFIG_FILE;
use msnet_runtime::format::PLAN_FILE;

/// Where `path` really leads: its deepest existing ancestor canonicalised (symlinks and `..`
/// resolved), then the part that does not exist yet, so an output can be compared with the
/// inputs before its folder is created.
pub fn resolved(path: &Path) -> Result<PathBuf> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    for ancestor in absolute.ancestors() {
        if let Ok(real) = ancestor.canonicalize() {
            let rest = absolute.strip_prefix(ancestor).unwrap_or(Path::new(""));
            return Ok(if rest.as_os_str().is_empty() {
                real
            } else {
                real.join(rest)
            });
        }
    }
    Ok(absolute)
}

/// The files a model directory is read from: inputs of every command that loads it.
pub fn model_files(dir: &Path) -> [PathBuf; 2] {
    [dir.join(CONFIG_FILE), dir.join(PLAN_FILE)]
}

/// A file a command is about to write.
pub struct Output {
    pub path: PathBuf,
    /// Who writes it (an input's name or a flag), to name both sides of a collision.
    pub by: String,
    /// Whether an existing file there may be replaced: the user named this very file, or
    /// passed `--force`.
    pub replace: bool,
}

/// Refuses, before anything is written, an output that is one of `inputs`, two outputs that
/// are one file, and an existing file that may not be replaced.
pub fn check(inputs: &[PathBuf], outputs: &[Output]) -> Result<()> {
    let mut read = HashMap::new();
    for input in inputs {
        read.insert(resolved(input)?, input);
    }
    let mut written: HashMap<PathBuf, &Output> = HashMap::new();
    for output in outputs {
        let real = resolved(&output.path)?;
        if let Some(input) = read.get(&real) {
            bail!(
                "{} would overwrite the input {}: nothing was written; choose another output",
                output.path.display(),
                input.display()
            );
        }
        if let Some(first) = written.get(&real) {
            bail!(
                "{} and {} would both write {}: nothing was written; rename one, or write them \
                 to separate folders",
                first.by,
                output.by,
                output.path.display()
            );
        }
        if !output.replace && output.path.symlink_metadata().is_ok() {
            bail!(
                "{} already exists: pass --force to replace it, or choose another output folder",
                output.path.display()
            );
        }
        written.insert(real, output);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msnet-paths-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn output(path: &Path, by: &str, replace: bool) -> Output {
        Output {
            path: path.to_path_buf(),
            by: by.into(),
            replace,
        }
    }

    #[test]
    fn an_input_reached_through_a_symlink_or_dots_is_refused() {
        let dir = scratch("input");
        let scan = dir.join("scan.nii.gz");
        std::fs::write(&scan, b"scan").unwrap();
        let link = dir.join("link.nii.gz");
        std::os::unix::fs::symlink(&scan, &link).unwrap();
        let dotted = dir.join("sub/../scan.nii.gz");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (input, out) in [
            (&scan, &scan),
            (&link, &scan),
            (&scan, &link),
            (&scan, &dotted),
        ] {
            let e = check(
                std::slice::from_ref(input),
                &[output(out, "scan.nii.gz", true)],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("would overwrite the input"), "{e}");
        }
        check(&[scan], &[output(&dir.join("labels.nii.gz"), "scan", true)]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn two_outputs_on_one_file_name_both_writers() {
        let dir = scratch("collide");
        let mask = dir.join("out/x.mask.png");
        let e = check(
            &[],
            &[
                output(&mask, "a/x.png", false),
                output(&mask, "b/x.jpg", false),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a/x.png and b/x.jpg"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_file_is_replaced_only_when_allowed() {
        let dir = scratch("exists");
        let old = dir.join("x.mask.png");
        std::fs::write(&old, b"earlier run").unwrap();
        let e = check(&[], &[output(&old, "x.png", false)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists") && e.contains("--force"), "{e}");
        check(&[], &[output(&old, "x.png", true)]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

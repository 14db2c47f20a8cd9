//! Turning command-line data options into loader options.

use anyhow::{Context, Result, bail};
use msnet_datasets::{DatasetKind, FolderSpec, LoadOptions};

use crate::DataArgs;

/// Parses "16x128x128" (3D) or "112x112" (2D, D = 1) given to option `flag` into `[D, H, W]`.
pub fn parse_size(flag: &str, text: &str) -> Result<[usize; 3]> {
    let parts: Vec<usize> = text
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{flag} {text:?}: expected HxW or DxHxW, e.g. 112x112"))?;
    match parts[..] {
        [h, w] => Ok([1, h, w]),
        [d, h, w] => Ok([d, h, w]),
        _ => bail!("{flag} {text:?}: expected HxW or DxHxW, e.g. 112x112"),
    }
}

/// `--size`, if given.
pub fn size(a: &DataArgs) -> Result<Option<[usize; 3]>> {
    a.size
        .as_deref()
        .map(|s| parse_size("--size", s))
        .transpose()
}

/// `--classes` and `--test-count` as a folder dataset's spec; `None` for other datasets and
/// when `--classes` is absent.
pub fn folder_spec(a: &DataArgs, kind: DatasetKind) -> Result<Option<FolderSpec>> {
    match (kind, &a.classes) {
        (DatasetKind::Folder, Some(c)) => Ok(Some(FolderSpec::parse(c, a.test_count)?)),
        _ => Ok(None),
    }
}

/// The loader options of `msnet train`.
pub fn load_options(
    a: &DataArgs,
    kind: DatasetKind,
    train_size: usize,
    seed: u64,
) -> Result<LoadOptions> {
    let folder = folder_spec(a, kind)?;
    if kind == DatasetKind::Folder && folder.is_none() {
        bail!("--dataset folder needs --classes, e.g. --classes 0=background,255=cell");
    }
    Ok(LoadOptions {
        kind,
        root: msnet_datasets::resolve_root(a.data.as_deref(), kind)?,
        train_size,
        seed,
        size: size(a)?,
        folder,
        test_names: None,
    })
}

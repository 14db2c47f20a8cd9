//! Turning command-line data options into a loaded dataset and a network config.

use anyhow::{Context, Result, bail};
use msnet::Config;
use msnet::config::Normalization;
use msnet_datasets::{Dataset, DatasetKind, FolderSpec, LoadOptions, Sample};

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

/// Builds the loader options shared by `train` and `eval`.
pub fn load_options(
    a: &DataArgs,
    kind: DatasetKind,
    train_size: usize,
    seed: u64,
    test_names: Option<Vec<String>>,
) -> Result<LoadOptions> {
    let folder = match (kind, &a.classes) {
        (DatasetKind::Folder, Some(c)) => Some(FolderSpec::parse(c, a.test_count)?),
        (DatasetKind::Folder, None) => {
            bail!("--dataset folder needs --classes, e.g. --classes 0=background,255=cell")
        }
        _ => None,
    };
    Ok(LoadOptions {
        kind,
        root: msnet_datasets::resolve_root(a.data.as_deref(), kind)?,
        train_size,
        seed,
        size: a
            .size
            .as_deref()
            .map(|s| parse_size("--size", s))
            .transpose()?,
        folder,
        test_names,
    })
}

/// Parses `--dataset`.
pub fn dataset_kind(name: &str) -> Result<DatasetKind> {
    name.parse::<DatasetKind>().map_err(|_| {
        anyhow::anyhow!(
            "unknown --dataset {name:?}: use wbc, drishti, drishti-full, acdc or folder"
        )
    })
}

/// Per-channel mean and standard deviation over the training images: the input
/// normalisation stored in the config.
pub fn normalization(samples: &[Sample], channels: usize) -> Normalization {
    let mut sum = vec![0f64; channels];
    let mut sq = vec![0f64; channels];
    let mut count = 0usize;
    for s in samples {
        let per = s.image.len() / channels;
        for (c, plane) in s.image.chunks(per).enumerate() {
            for &v in plane {
                sum[c] += v as f64;
                sq[c] += (v as f64) * (v as f64);
            }
        }
        count += per;
    }
    let n = count.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, &m)| ((q / n - (m as f64).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
        .collect();
    Normalization { mean, std }
}

/// The network config for a dataset.
pub fn config_for(ds: &Dataset) -> Config {
    let dims = if ds.kind == DatasetKind::Acdc || ds.shape[0] > 1 {
        3
    } else {
        2
    };
    let mut c = Config::new(dims, ds.channels, ds.class_names.len());
    c.input_size = ds.shape;
    c.class_names = ds.class_names.clone();
    c.normalization = normalization(&ds.train, ds.channels);
    c
}

//! `msnet-run segment-volume`: a NIfTI volume in, a NIfTI label volume out, on a 3D plan,
//! within a stated memory budget.
//!
//! Preprocessing: intensities min-max normalised to [0, 1] (how the training volumes were
//! prepared), then resampled linearly to the plan's `[D, H, W]` (half-voxel centres, separable:
//! in-plane bilinear, then along depth). The labels come back to the volume's own grid by
//! nearest neighbour. The volume should already be cropped to the region the model was trained
//! on (for the ACDC model: the heart, as the scanner's localiser or a bounding box gives it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use msnet_io::{
    read_volume_f32, read_volume_shape, resize_bilinear, resize_nearest, write_volume_u8,
};

use crate::model::{Model, Threads};
use crate::paths::{self, Output, model_files};

#[derive(Args)]
pub struct VolumeArgs {
    /// Model directory holding a 3D model's config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    /// The label volume to write (.nii or .nii.gz; uint8 class indices, same grid as the input);
    /// replaced if it exists, but never when it is the input volume or a model file.
    #[arg(long)]
    out: PathBuf,
    /// Refuse to start if the memory this needs (engine and volume buffers) exceeds this many
    /// MiB: the check a board with a fixed budget wants before it commits.
    #[arg(long)]
    max_memory_mib: Option<f64>,
    /// The volume to segment (NIfTI-1, .nii or .nii.gz, 3D).
    volume: PathBuf,
}

/// Linear resampling of a `[D, H, W]` volume to `to` (see the module docs).
fn resample_linear(volume: &[f32], from: [usize; 3], to: [usize; 3]) -> Vec<f32> {
    let [d, h, w] = from;
    let [td, th, tw] = to;
    // In-plane: the D slices as D channels of an H×W image.
    let planes = resize_bilinear(volume, d, [h, w], [th, tw]);
    // Along depth: a 1-channel image of D rows × (th·tw) columns, whose columns stay put.
    resize_bilinear(&planes, 1, [d, th * tw], [td, th * tw])
}

/// The `[D, H, W]` of the volume at `path`, from its header alone, refusing a single slice
/// (a 2D image, or a 3D header with one slice): resampled to the model's depth, every slice
/// the model sees would be that one, a volume no 3D model was trained on.
pub fn volume_shape(path: &Path) -> Result<[usize; 3]> {
    let shape = read_volume_shape(path)?;
    refuse_one_slice(path, shape)?;
    Ok(shape)
}

/// [`volume_shape`]'s rule on a shape already read.
fn refuse_one_slice(path: &Path, shape: [usize; 3]) -> Result<()> {
    if shape[0] == 1 {
        bail!(
            "{}: a single {}×{} slice, not a volume: a 3D model needs several slices (segment \
             a 2D slice with a 2D model, `msnet-run segment`)",
            path.display(),
            shape[2],
            shape[1]
        );
    }
    Ok(())
}

/// The volume at `path` as a 3D model's input at `size` (min-max normalised, resampled
/// linearly: the module docs), with the volume's own `[D, H, W]`.
pub fn volume_input(path: &Path, size: [usize; 3]) -> Result<([usize; 3], Vec<f32>)> {
    let (shape, mut voxels) = read_volume_f32(path)?;
    refuse_one_slice(path, shape)?;
    if let Some(i) = voxels.iter().position(|v| !v.is_finite()) {
        bail!("{}: voxel {i} is NaN or infinite", path.display());
    }
    let (lo, hi) = voxels
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    voxels.iter_mut().for_each(|v| *v = (*v - lo) / span);
    Ok((shape, resample_linear(&voxels, shape, size)))
}

/// Nearest-neighbour resampling of a `[D, H, W]` label volume to `to`.
pub fn resample_nearest(labels: &[u8], from: [usize; 3], to: [usize; 3]) -> Vec<u8> {
    let [d, h, w] = from;
    let [td, th, tw] = to;
    let planes: Vec<u8> = labels
        .chunks_exact(h * w)
        .flat_map(|slice| resize_nearest(slice, [h, w], [th, tw]))
        .collect();
    resize_nearest(&planes, [d, th * tw], [td, th * tw])
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Refuses an --out that is the input volume or a model file. Any other file there is
/// replaced: naming --out asks for that very file.
fn check_paths(a: &VolumeArgs) -> Result<()> {
    let mut inputs = vec![a.volume.clone()];
    inputs.extend(model_files(&a.model));
    let out = Output {
        path: a.out.clone(),
        by: a.volume.display().to_string(),
        replace: true,
    };
    paths::check(&inputs, &[out])
}

pub fn run(a: &VolumeArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let plan = model.plan();
    if plan.header().dims != 3 {
        bail!(
            "segment-volume takes a 3D model; {} is 2D (use `segment`)",
            a.model.display()
        );
    }
    if plan.header().in_channels != 1 {
        bail!(
            "{}: the model takes {} channels; a NIfTI volume gives 1",
            a.model.display(),
            plan.header().in_channels
        );
    }
    check_paths(a)?;
    // The header alone: the budget is judged before the data is decompressed.
    let shape = volume_shape(&a.volume)?;
    let size = plan.size();
    let voxels_len = shape.iter().product::<usize>();
    // What this run holds at once: the engine (arena, plan, input, output) and the volume
    // (intensities and labels at the volume's own size).
    let engine = plan.arena_len() * 4
        + plan.header().file_len as usize
        + (plan.input_len() + plan.output_len()) * 4;
    let volume_bytes = voxels_len * 5;
    let total = engine + volume_bytes;
    if let Some(budget) = a.max_memory_mib
        && mib(total) > budget
    {
        bail!(
            "{}: needs {:.2} MiB (engine {:.2}, volume {:.2}), over the budget of {budget} MiB",
            a.volume.display(),
            mib(total),
            mib(engine),
            mib(volume_bytes)
        );
    }
    let (read_shape, input) = volume_input(&a.volume, size)?;
    if read_shape != shape {
        bail!("{}: changed while it was being read", a.volume.display());
    }

    let mut session = model.session(&a.threads)?;
    let mut probs = vec![0.0; plan.output_len()];
    let t = Instant::now();
    session.run(&input, &mut probs)?;
    let runtime_ms = t.elapsed().as_secs_f64() * 1e3;
    let classes = model.config.classes;
    let labels = resample_nearest(&msnet_labels::argmax(&probs, classes), size, shape);
    write_volume_u8(&a.out, shape, &labels)?;

    let mut counts = serde_json::Map::new();
    for (c, name) in model.config.class_names.iter().enumerate() {
        let n = labels.iter().filter(|&&l| l as usize == c).count();
        counts.insert(name.clone(), n.into());
    }
    let line = serde_json::json!({
        "volume": a.volume.display().to_string(),
        "shape_dhw": shape,
        "model_input_dhw": size,
        "labels": a.out.display().to_string(),
        "voxels": counts,
        "runtime_ms": runtime_ms,
        "threads": session.threads(),
        "arena_bytes": plan.arena_len() * 4,
        "plan_bytes": plan.header().file_len,
        "engine_bytes": engine,
        "volume_bytes": volume_bytes,
        "total_bytes": total,
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_constants_and_round_trips_labels() {
        let ones = vec![1.0f32; 3 * 5 * 7];
        let up = resample_linear(&ones, [3, 5, 7], [4, 8, 8]);
        assert_eq!(up.len(), 4 * 8 * 8);
        assert!(up.iter().all(|&v| (v - 1.0).abs() < 1e-6));
        // A depth ramp stays monotone along depth.
        let ramp: Vec<f32> = (0..4).flat_map(|z| vec![z as f32; 4]).collect();
        let r = resample_linear(&ramp, [4, 2, 2], [8, 2, 2]);
        assert!(
            r.chunks(4)
                .zip(r.chunks(4).skip(1))
                .all(|(a, b)| a[0] <= b[0])
        );
        // Labels doubled then halved come back exactly.
        let labels: Vec<u8> = (0..2 * 3 * 4).map(|i| (i % 4) as u8).collect();
        let big = resample_nearest(&labels, [2, 3, 4], [4, 6, 8]);
        assert_eq!(resample_nearest(&big, [4, 6, 8], [2, 3, 4]), labels);
    }
}

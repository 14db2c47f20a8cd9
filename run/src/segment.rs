//! `msnet-run segment`: images in, masks, overlays and one JSON line per image out.
//!
//! Preprocessing: decode (PNG, JPEG, BMP, TIFF; 8/16-bit; gray, RGB, RGBA: alpha dropped),
//! match the model's channels (gray replicated to RGB, RGB averaged to gray), bilinear resize
//! to the model's input size; the normalisation is inside the plan. Postprocessing: argmax,
//! the mask brought back to the image's own size (nearest), per-class areas.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet::io::{read_image, resize_bilinear, resize_nearest, write_gray_png};
use msnet::overlay::write_overlay;
use msnet_runtime::host::Session;

use crate::model::Model;

#[derive(Args)]
pub struct SegmentArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    /// Output folder for NAME.mask.png (class index × 255/(classes−1)) and NAME.overlay.png.
    #[arg(long)]
    out: PathBuf,
    /// Images to segment.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// The image as the model's input: `[in, H, W]` at the model's size, values in [0, 1].
fn preprocess(
    path: &Path,
    channels: usize,
    hw: [usize; 2],
    planar: &[f32],
    want: usize,
    size: [usize; 2],
) -> Result<Vec<f32>> {
    let pixels = hw[0] * hw[1];
    let matched: Vec<f32> = match (channels, want) {
        (c, w) if c == w => planar.to_vec(),
        (1, 3) => planar.repeat(3),
        (3, 1) => (0..pixels)
            .map(|p| (planar[p] + planar[pixels + p] + planar[2 * pixels + p]) / 3.0)
            .collect(),
        (c, w) => bail!("{}: {c} channels, the model takes {w}", path.display()),
    };
    if let Some(i) = matched.iter().position(|v| !v.is_finite()) {
        bail!("{}: pixel value {i} is NaN or infinite", path.display());
    }
    Ok(resize_bilinear(&matched, want, hw, size))
}

/// Vertical extent (rows) of the pixels where `inside` holds, or 0.
fn vertical_extent(labels: &[u8], width: usize, inside: impl Fn(u8) -> bool) -> usize {
    let rows: Vec<usize> = labels
        .chunks(width)
        .enumerate()
        .filter(|(_, row)| row.iter().any(|&l| inside(l)))
        .map(|(y, _)| y)
        .collect();
    match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    }
}

pub fn run(a: &SegmentArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let plan = model.plan()?;
    if plan.header().dims != 2 {
        bail!(
            "segment takes 2D images; {} is a 3D model",
            a.model.display()
        );
    }
    let [_, h, w] = plan.size();
    let cfg = &model.config;
    let classes = cfg.classes;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut session = Session::new(plan);
    let mut probs = vec![0.0; plan.output_len()];
    let cup = cfg.class_names.iter().position(|n| n == "cup");
    let mut failed = 0;
    for path in &a.images {
        let result = (|| -> Result<serde_json::Value> {
            let (channels, hw, planar) = read_image(path)?;
            let input = preprocess(path, channels, hw, &planar, cfg.in_channels, [h, w])?;
            let t = Instant::now();
            session.run(&input, &mut probs)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let labels = argmax(&probs, classes);
            let mask = resize_nearest(&labels, [h, w], hw);
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let mask_path = a.out.join(format!("{stem}.mask.png"));
            let step = (255 / (classes - 1).max(1)) as u8;
            let shown: Vec<u8> = mask.iter().map(|&l| l * step).collect();
            write_gray_png(&mask_path, hw, &shown)?;
            let overlay_path = a.out.join(format!("{stem}.overlay.png"));
            let rgb_channels = if channels == 1 { 1 } else { 3 };
            let shown_image = &planar[..rgb_channels * hw[0] * hw[1]];
            let no_truth = vec![0u8; mask.len()];
            write_overlay(
                &overlay_path,
                shown_image,
                rgb_channels,
                hw,
                &mask,
                &no_truth,
                classes,
            )?;
            let mut areas = serde_json::Map::new();
            for (c, name) in cfg.class_names.iter().enumerate() {
                let n = mask.iter().filter(|&&l| l as usize == c).count();
                areas.insert(name.clone(), n.into());
            }
            let mut line = serde_json::json!({
                "image": path.display().to_string(),
                "width": hw[1],
                "height": hw[0],
                "mask": mask_path.display().to_string(),
                "overlay": overlay_path.display().to_string(),
                "areas_px": areas,
                "runtime_ms": ms,
            });
            if let Some(cup) = cup {
                // The disc is every foreground class (rim ∪ cup); vertical cup-to-disc ratio.
                let disc = vertical_extent(&mask, hw[1], |l| l > 0);
                let cup_h = vertical_extent(&mask, hw[1], |l| l as usize == cup);
                line["vertical_cdr"] = if disc > 0 {
                    (cup_h as f64 / disc as f64).into()
                } else {
                    serde_json::Value::Null
                };
            }
            Ok(line)
        })();
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", path.display());
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Per-pixel class of channels-first probabilities `[classes][pixels]` (ties to the lower
/// class).
fn argmax(probs: &[f32], classes: usize) -> Vec<u8> {
    msnet::golden::argmax(probs, classes)
        .into_iter()
        .map(|c| c as u8)
        .collect()
}

//! `msnet eval`: the paper's metrics on a trained model's held-out test split.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet::Model;
use msnet::data::{DatasetKind, Sample};
use msnet::metrics::{self, ClassMetrics, ImageMetrics, Summary};
use msnet_trainer::{Predictor, device};
use serde_json::json;

use crate::{DataArgs, setup};

#[derive(Args)]
pub struct EvalArgs {
    /// Trained model directory (config.json + model.safetensors).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write a PNG per test image with predicted and true contours (3D: the middle slice).
    #[arg(long)]
    overlays: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
}

pub fn run(a: &EvalArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let config = model.config();
    let Some(training) = &config.training else {
        bail!(
            "{}: the model records no training split, so its test images are unknown; evaluate a model written by `msnet train`",
            a.model.display()
        );
    };
    let dataset = a.data.dataset.as_deref().unwrap_or(&training.dataset);
    let kind = setup::dataset_kind(dataset)?;
    if kind.to_string() != training.dataset {
        bail!(
            "the model was trained on {}, not {kind}: evaluating on another dataset's split is not supported",
            training.dataset
        );
    }
    let mut data = a.data.clone();
    if let (None, Some(classes)) = (&data.classes, &training.folder_classes) {
        let mapping: Vec<String> = classes.iter().map(|(v, n)| format!("{v}={n}")).collect();
        data.classes = Some(mapping.join(","));
    }
    if data.size.is_none() {
        let [d, h, w] = config.input_size;
        data.size = Some(format!("{d}x{h}x{w}"));
    }
    let opts = setup::load_options(&data, kind, 0, training.seed, Some(training.test.clone()))?;
    let ds = msnet::data::load(&opts)?;
    let predictor = Predictor::new(&model, device::device());
    let classes = config.classes;

    let mut images = Vec::with_capacity(ds.test.len());
    let mut regions = Vec::new();
    for chunk in ds.test.chunks(a.batch_size.max(1)) {
        let refs: Vec<&Sample> = chunk.iter().collect();
        for (s, pred) in chunk.iter().zip(predictor.labels(&refs)) {
            images.push(metrics::image_metrics(
                &s.name, &pred, &s.labels, s.shape, classes,
            )?);
            if kind == DatasetKind::Drishti {
                regions.push(metrics::union_metrics(
                    &s.name,
                    &pred,
                    &s.labels,
                    s.shape,
                    &[1, 2],
                )?);
            }
            if let Some(dir) = &a.overlays {
                write_overlay(dir, s, &pred, classes)?;
            }
        }
    }
    let summary = metrics::summarize(&config.class_names, images);
    let disc = (!regions.is_empty()).then(|| ClassMetrics::mean(regions.iter()));
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report_json(&a.model, kind, &summary, disc))?
        );
    } else {
        print_table(&summary, disc);
    }
    Ok(ExitCode::SUCCESS)
}

fn metric_json(m: &ClassMetrics) -> serde_json::Value {
    json!({"acc": m.acc, "iou": m.iou, "dsc": m.dsc, "asd": m.asd})
}

fn report_json(
    model: &std::path::Path,
    kind: DatasetKind,
    s: &Summary,
    disc: Option<ClassMetrics>,
) -> serde_json::Value {
    let classes: serde_json::Map<String, serde_json::Value> = s
        .class_names
        .iter()
        .zip(&s.classes)
        .map(|(n, m)| (n.clone(), metric_json(m)))
        .collect();
    let per_image: Vec<serde_json::Value> =
        s.images.iter().map(image_json(&s.class_names)).collect();
    let mut out = json!({
        "model": model.display().to_string(),
        "dataset": kind.to_string(),
        "split": "test",
        "images": s.images.len(),
        "asd_definition": "pooled symmetric mean over both boundaries, pixels (voxels); an empty prediction of a present class scores the volume diagonal",
        "classes": classes,
        "mean_all": metric_json(&s.mean_all),
        "mean_foreground": metric_json(&s.mean_foreground),
        "per_image": per_image,
    });
    if let Some(d) = disc {
        out["regions"] = json!({"disc (rim + cup)": metric_json(&d)});
    }
    out
}

fn image_json(names: &[String]) -> impl Fn(&ImageMetrics) -> serde_json::Value + '_ {
    move |im| {
        let classes: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&im.classes)
            .map(|(n, m)| (n.clone(), metric_json(m)))
            .collect();
        json!({"name": im.name, "classes": classes})
    }
}

fn print_table(s: &Summary, disc: Option<ClassMetrics>) {
    println!("{} test images", s.images.len());
    println!(
        "{:<24} {:>7} {:>7} {:>7} {:>8}",
        "class", "Acc", "IoU", "DSC", "ASD(px)"
    );
    let row = |name: &str, m: &ClassMetrics| {
        println!(
            "{:<24} {:>7.4} {:>7.4} {:>7.4} {:>8.3}",
            name, m.acc, m.iou, m.dsc, m.asd
        )
    };
    for (n, m) in s.class_names.iter().zip(&s.classes) {
        row(n, m);
    }
    row("mean (all classes)", &s.mean_all);
    row("mean (foreground)", &s.mean_foreground);
    if let Some(d) = disc {
        row("disc (rim + cup)", &d);
    }
}

/// Overlay of one sample (the middle slice of a volume).
fn write_overlay(dir: &std::path::Path, s: &Sample, pred: &[u8], classes: usize) -> Result<()> {
    msnet::fsutil::create_dir_all(dir)?;
    let [d, h, w] = s.shape;
    let z = d / 2;
    let plane = h * w;
    let image: Vec<f32> = (0..s.channels)
        .flat_map(|c| {
            s.image[(c * d + z) * plane..(c * d + z + 1) * plane]
                .iter()
                .copied()
        })
        .collect();
    let slice = |labels: &[u8]| labels[z * plane..(z + 1) * plane].to_vec();
    let path = dir.join(format!("{}.png", s.name));
    msnet::overlay::write_overlay(
        &path,
        &image,
        s.channels,
        [h, w],
        &slice(pred),
        &slice(&s.labels),
        classes,
    )
    .with_context(|| format!("writing overlay {}", path.display()))?;
    Ok(())
}

//! `msnet eval`: the paper's metrics on a trained model's held-out test split.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet::Model;
use msnet::config::TrainingRecord;
use msnet_datasets::{DatasetKind, LoadOptions, Sample};
use msnet_eval::metrics::{self, ClassMetrics, ImageMetrics, Summary};
use msnet_labels::DiscCup;
use msnet_trainer::{Predictor, device};
use serde_json::json;

use crate::choices::DatasetArg;
use crate::vcdr::VcdrReport;
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
    /// Score these images of the dataset instead of the test split: names separated by commas,
    /// such as the validation images a training run printed. None may be an image the model
    /// trained on.
    #[arg(long, value_delimiter = ',')]
    images: Vec<String>,
    /// Optic disc/cup models: keep one disc and one cup, the largest connected regions, before
    /// scoring (`msnet_labels::DiscCup::keep_largest_regions`).
    #[arg(long)]
    keep_largest_regions: bool,
}

/// The record holding a model's test split: its own, or for a model fine-tuned with
/// `msnet-run finetune` its base model's, which that model's images must stay out of.
fn split_record<'r>(own: &'r TrainingRecord, dir: &Path) -> Result<&'r TrainingRecord> {
    let Some(base) = &own.base else {
        return Ok(own);
    };
    let Some(parent) = &base.training else {
        bail!(
            "{}: fine-tuned from {}, which records no training split, so no test images are known",
            dir.display(),
            base.path
        );
    };
    let split = split_record(parent, dir)?;
    if let Some(seen) = own.train.iter().find(|n| split.test.contains(n)) {
        bail!(
            "{}: fine-tuned on `{seen}`, a test image of its base model's split: scores on that \
             split would not measure unseen images",
            dir.display()
        );
    }
    Ok(split)
}

pub fn run(a: &EvalArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let config = model.config();
    let Some(own) = &config.training else {
        bail!(
            "{}: the model records no training split, so its test images are unknown; evaluate a model written by `msnet train`",
            a.model.display()
        );
    };
    let training = split_record(own, &a.model)?;
    if let Some(DatasetArg(asked)) = a.data.dataset
        && training.dataset.kind() != Some(asked)
    {
        bail!(
            "the model was trained on {}, not {asked}: evaluating on another dataset's split is not supported",
            training.dataset
        );
    }
    let mut opts = LoadOptions::replay_test_split(
        training,
        a.data.data.as_deref(),
        setup::size(&a.data)?.unwrap_or(config.input_size),
    )?;
    if !a.images.is_empty() {
        if let Some(seen) = a
            .images
            .iter()
            .find(|n| own.train.contains(n) || training.train.contains(n))
        {
            bail!(
                "--images: `{seen}` is one of {}'s training images: its score would not measure an unseen image",
                a.model.display()
            );
        }
        opts.test_names = Some(a.images.clone());
    }
    let cleanup = match (
        a.keep_largest_regions,
        DiscCup::for_class_names(&config.class_names),
    ) {
        (false, _) => None,
        (true, Some(disc_cup)) => Some(disc_cup),
        (true, None) => bail!(
            "--keep-largest-regions is for optic disc/cup models (the cup the last class); {}'s classes are {:?}",
            a.model.display(),
            config.class_names
        ),
    };
    if let Some(folder) = setup::folder_spec(&a.data, opts.kind)? {
        opts.folder = Some(folder);
    }
    let kind = opts.kind;
    let ds = msnet_datasets::load_test(&opts)?;
    let predictor = Predictor::new(&model, device::device());
    let evaluation = evaluate(
        &ds.test,
        &TestSetup {
            kind,
            root: &opts.root,
            class_names: &config.class_names,
            batch_size: a.batch_size,
            overlays: a.overlays.as_deref(),
        },
        &|batch| {
            let mut labels = predictor.labels(batch);
            if let Some(disc_cup) = cleanup {
                for (map, sample) in labels.iter_mut().zip(batch) {
                    let mut scratch = vec![0; map.len()];
                    disc_cup
                        .keep_largest_regions(map, sample.shape[2], &mut scratch)
                        .with_context(|| format!("{}: --keep-largest-regions", sample.name))?;
                }
            }
            Ok(labels)
        },
    )?;
    if a.json {
        let mut report = report_json(&a.model, kind, &evaluation);
        if !a.images.is_empty() {
            report["split"] = json!("named images (--images)");
        }
        report["keep_largest_regions"] = json!(a.keep_largest_regions);
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&evaluation);
    }
    Ok(ExitCode::SUCCESS)
}

/// What test-set scoring needs besides the predictor.
pub struct TestSetup<'a> {
    pub kind: DatasetKind,
    /// The dataset's folder (Drishti-GS1's `roi_index.csv` holds the experts' vCDR).
    pub root: &'a Path,
    pub class_names: &'a [String],
    pub batch_size: usize,
    /// Write contour overlays here.
    pub overlays: Option<&'a Path>,
}

/// The paper's metrics on a test set, plus the disc (rim ∪ cup) and the vertical cup-to-disc
/// ratio for Drishti-GS1.
pub struct Evaluation {
    pub summary: Summary,
    pub disc: Option<ClassMetrics>,
    pub vcdr: Option<VcdrReport>,
}

/// A model's class labels for a batch of samples, one `[D][H][W]` map per sample.
pub type Predict<'a> = dyn Fn(&[&Sample]) -> Result<Vec<Vec<u8>>> + 'a;

/// Scores `predict` (class labels per sample) on `test` (the shared core of `msnet eval` and the
/// baseline's report, so both are measured the same way).
pub fn evaluate(
    test: &[Sample],
    setup: &TestSetup<'_>,
    predict: &Predict<'_>,
) -> Result<Evaluation> {
    let classes = setup.class_names.len();
    let experts = match msnet_datasets::disc_cup(setup.kind) {
        Some(disc_cup) if DiscCup::for_class_names(setup.class_names) == Some(disc_cup) => {
            Some((msnet_datasets::drishti_expert_cdr(setup.root)?, disc_cup))
        }
        Some(_) => bail!(
            "a {} model's classes are {:?}, the cup last; this model's are {:?}",
            setup.kind,
            msnet_datasets::class_names(setup.kind, None),
            setup.class_names
        ),
        None => None,
    };
    let mut images = Vec::with_capacity(test.len());
    let mut regions = Vec::new();
    let mut vcdr = VcdrReport::default();
    for chunk in test.chunks(setup.batch_size.max(1)) {
        let refs: Vec<&Sample> = chunk.iter().collect();
        for (s, pred) in chunk.iter().zip(predict(&refs)?) {
            images.push(metrics::image_metrics(
                &s.name, &pred, &s.labels, s.shape, classes,
            )?);
            if let Some((experts, disc_cup)) = &experts {
                let disc_labels: Vec<u8> = disc_cup.disc_labels().collect();
                regions.push(metrics::union_metrics(
                    &s.name,
                    &pred,
                    &s.labels,
                    s.shape,
                    &disc_labels,
                )?);
                let expert = *experts.get(&s.name).with_context(|| {
                    format!(
                        "{}: no expert vCDR for {}",
                        setup.root.join("roi_index.csv").display(),
                        s.name
                    )
                })?;
                vcdr.add(*disc_cup, &s.name, [&pred, &s.labels], s.shape[2], expert);
            }
            if let Some(dir) = setup.overlays {
                write_overlay(dir, s, &pred, classes)?;
            }
        }
    }
    Ok(Evaluation {
        summary: metrics::summarize(setup.class_names, images),
        disc: (!regions.is_empty()).then(|| ClassMetrics::mean(regions.iter())),
        vcdr: experts.is_some().then_some(vcdr),
    })
}

pub fn metric_json(m: &ClassMetrics) -> serde_json::Value {
    json!({"acc": m.acc, "iou": m.iou, "dsc": m.dsc, "asd": m.asd})
}

pub fn report_json(model: &Path, kind: DatasetKind, e: &Evaluation) -> serde_json::Value {
    let s = &e.summary;
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
    if let Some(d) = &e.disc {
        out["regions"] = json!({"disc (rim + cup)": metric_json(d)});
    }
    if let Some(v) = &e.vcdr {
        out["vcdr"] = v.json();
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

fn print_table(e: &Evaluation) {
    let s = &e.summary;
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
    if let Some(d) = &e.disc {
        row("disc (rim + cup)", d);
    }
    if let Some(v) = &e.vcdr {
        println!("{}", v.line());
    }
}

/// Overlay of one sample (the middle slice of a volume).
fn write_overlay(dir: &Path, s: &Sample, pred: &[u8], classes: usize) -> Result<()> {
    msnet::fsutil::create_dir_all(dir)?;
    let [d, h, w] = s.shape;
    let z = d / 2;
    let plane = h * w;
    let image: Vec<u8> = (0..s.channels)
        .flat_map(|c| {
            s.image[(c * d + z) * plane..(c * d + z + 1) * plane]
                .iter()
                .map(|&v| msnet_eval::overlay::to_8bit(v))
        })
        .collect();
    let slice = |labels: &[u8]| labels[z * plane..(z + 1) * plane].to_vec();
    let path = dir.join(format!("{}.png", s.name));
    msnet_eval::overlay::write_overlay(
        &path,
        &image,
        s.channels,
        [h, w],
        &slice(pred),
        Some(&slice(&s.labels)[..]),
        classes,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::config::BaseModel;

    fn record(dataset: &str, train: &[&str], test: &[&str]) -> TrainingRecord {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
        let mut r = TrainingRecord::new(dataset, names(train), names(test));
        r.final_loss = 0.0; // NaN would make records compare unequal
        r
    }

    fn tuned(from: TrainingRecord, train: &[&str]) -> TrainingRecord {
        let mut r = record("finetune", train, &[]);
        r.base = Some(BaseModel {
            path: "models/base".into(),
            weights_sha256: "0".repeat(64),
            training: Some(Box::new(from)),
        });
        r
    }

    #[test]
    fn a_fine_tuned_model_is_scored_on_its_first_base_models_split_if_it_never_saw_it() {
        let dir = Path::new("m");
        let base = record("wbc", &["1", "2"], &["8", "9"]);
        assert_eq!(split_record(&base, dir).unwrap(), &base);
        // Two rounds of fine-tuning: the split is the first model's.
        let twice = tuned(tuned(base.clone(), &["3"]), &["4"]);
        assert_eq!(split_record(&twice, dir).unwrap(), &base);
        // Fine-tuned on a test image, in either round: refused, naming it.
        for leaked in [
            tuned(base.clone(), &["9"]),
            tuned(tuned(base.clone(), &["8"]), &["4"]),
        ] {
            let e = split_record(&leaked, dir).unwrap_err().to_string();
            assert!(e.contains("a test image"), "{e}");
        }
        let mut orphan = tuned(base, &["3"]);
        orphan.base.as_mut().unwrap().training = None;
        let e = split_record(&orphan, dir).unwrap_err().to_string();
        assert!(e.contains("records no training split"), "{e}");
    }
}

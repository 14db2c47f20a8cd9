//! `msnet score-photos`: the whole-photograph disc/cup pipeline (`msnet-run segment
//! --locator`) scored on Drishti-GS1's test photographs, in the photographs' own coordinates.
//!
//! It reads what the device wrote, not a model: the mask PNGs (`msnet_labels::mask_png`) and,
//! for the locator, the JSON lines `msnet-run` printed. The truth is `full/test/labels/` (rim 1,
//! cup 2), the disc centres of `full/full_index.csv` and the experts' ratios of
//! `roi_index.csv`. A photograph without a mask (the locator found no disc) scores as an empty
//! prediction and has no ratio; it is listed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet_datasets::{DatasetKind, drishti};
use msnet_eval::metrics::{self, ClassMetrics};
use msnet_io::read_mask;
use msnet_labels::mask_png;
use serde_json::json;

use crate::eval::metric_json;
use crate::vcdr::VcdrReport;

/// The crops' classes (background, rim, cup), which the photographs' labels keep apart.
const CLASSES: usize = drishti::CLASS_NAMES.len();

#[derive(Args)]
pub struct ScorePhotosArgs {
    /// Folder of `msnet-run segment --locator`'s outputs: NAME.mask.png per test photograph.
    #[arg(long)]
    masks: PathBuf,
    /// `msnet-run`'s JSON lines (its standard output): the disc centres its locator found,
    /// scored against the true centres.
    #[arg(long)]
    located: Option<PathBuf>,
    /// Data root holding drishti_gs1 (or that folder itself). Default: $MSNET_DATA, else
    /// ../shared/data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Locator error in the downsampled photograph's pixels, per image.
struct Localisation {
    errors: Vec<(String, f64)>,
}

impl Localisation {
    fn summary(&self) -> serde_json::Value {
        let mut e: Vec<f64> = self.errors.iter().map(|(_, e)| *e).collect();
        e.sort_by(f64::total_cmp);
        let n = e.len().max(1) as f64;
        json!({
            "units": "pixels of the ×4-downsampled photograph (×4 for the original)",
            "images": e.len(),
            "mean": e.iter().sum::<f64>() / n,
            "median": e.get(e.len() / 2),
            "max": e.last(),
        })
    }
}

pub fn run(a: &ScorePhotosArgs) -> Result<ExitCode> {
    let root = msnet_datasets::resolve_root(a.data.as_deref(), DatasetKind::Drishti)?;
    let photographs = drishti::photograph_test_labels(&root)?;
    let names: Vec<String> = photographs.iter().map(|(name, _)| name.clone()).collect();
    let experts = msnet_datasets::drishti_expert_cdr(&root)?;
    let disc_cup = drishti::disc_cup();
    let disc_labels: Vec<u8> = disc_cup.disc_labels().collect();
    let mut regions: Vec<(ClassMetrics, ClassMetrics)> = Vec::new();
    let mut vcdr = VcdrReport::default();
    let mut missing = Vec::new();
    // Pixels by (true class, predicted class), over every photograph.
    let mut confusion = [[0u64; CLASSES]; CLASSES];
    for (name, truth_path) in &photographs {
        let (hw, truth) = drishti::read_photograph_labels(truth_path)?;
        let shape = [1, hw[0], hw[1]];
        let mask_path = a.masks.join(format!("{name}.mask.png"));
        let pred = if mask_path.exists() {
            read_prediction(&mask_path, hw)?
        } else {
            missing.push(name.clone());
            vec![0; truth.len()]
        };
        let per_class = metrics::image_metrics(name, &pred, &truth, shape, CLASSES)?;
        for (&t, &p) in truth.iter().zip(&pred) {
            confusion[usize::from(t)][usize::from(p)] += 1;
        }
        let disc = metrics::union_metrics(name, &pred, &truth, shape, &disc_labels)?;
        regions.push((disc, per_class.classes[usize::from(disc_cup.cup())]));
        let expert = *experts.get(name).with_context(|| {
            format!(
                "{}: no expert ratio for {name}",
                root.join("roi_index.csv").display()
            )
        })?;
        vcdr.add(disc_cup, name, [&pred, &truth], hw[1], expert);
    }
    let localisation = a
        .located
        .as_deref()
        .map(|path| localisation(path, &msnet_datasets::drishti_disc_centres(&root)?, &names))
        .transpose()?;
    let disc = ClassMetrics::mean(regions.iter().map(|(d, _)| d));
    let cup = ClassMetrics::mean(regions.iter().map(|(_, c)| c));
    if a.json {
        let mut out = json!({
            "masks": a.masks.display().to_string(),
            "photographs": names.len(),
            "without_mask": missing,
            "disc (rim + cup)": metric_json(&disc),
            "cup": metric_json(&cup),
            "vcdr": vcdr.json(),
            "confusion": confusion_json(&confusion),
        });
        if let Some(l) = &localisation {
            out["localisation_px"] = l.summary();
        }
        println!("{out}");
    } else {
        println!(
            "{} test photographs ({} without a mask)",
            names.len(),
            missing.len()
        );
        println!(
            "disc (rim + cup) DSC {:.4}, cup DSC {:.4}",
            disc.dsc, cup.dsc
        );
        println!("{}", vcdr.line());
        println!("where each true class went: {}", confusion_json(&confusion));
        if let Some(l) = &localisation {
            println!("disc centre error: {}", l.summary());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Per true class, the fraction of its pixels predicted as each class: where the rim's errors
/// go (to the background, or to the cup).
fn confusion_json(confusion: &[[u64; CLASSES]; CLASSES]) -> serde_json::Value {
    let names = drishti::CLASS_NAMES;
    let rows: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(confusion)
        .map(|(truth, row)| {
            let total = row.iter().sum::<u64>().max(1) as f64;
            let shares: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(row)
                .map(|(pred, &n)| (pred.to_string(), (n as f64 / total).into()))
                .collect();
            (truth.to_string(), shares.into())
        })
        .collect();
    rows.into()
}

/// The labels of the mask PNG at `path`, which must be `hw` (the photograph's size).
fn read_prediction(path: &Path, hw: [usize; 2]) -> Result<Vec<u8>> {
    let (mask_hw, gray) = read_mask(path)?;
    if mask_hw != hw {
        bail!(
            "{}: {}×{}, the photograph is {}×{} (was it segmented with --locator?)",
            path.display(),
            mask_hw[1],
            mask_hw[0],
            hw[1],
            hw[0]
        );
    }
    gray.iter()
        .map(|&g| mask_png::label_of_gray(g, CLASSES))
        .collect::<Option<Vec<u8>>>()
        .with_context(|| {
            format!(
                "{}: holds gray values that are not the {CLASSES} classes of a disc/cup mask",
                path.display()
            )
        })
}

/// The locator's error per photograph: the `disc_centre_yx` of each JSON line of `path` (matched
/// by the image's file stem) against `truth`.
fn localisation(
    path: &Path,
    truth: &HashMap<String, [f64; 2]>,
    names: &[String],
) -> Result<Localisation> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: &str| format!("{} line {}: {why}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| bad("not JSON"))?;
        let image = v["image"].as_str().with_context(|| bad("no \"image\""))?;
        let centre = v["disc_centre_yx"]
            .as_array()
            .and_then(|c| Some([c.first()?.as_f64()?, c.get(1)?.as_f64()?]))
            .with_context(|| bad("no \"disc_centre_yx\" (run msnet-run segment with --locator)"))?;
        let stem = Path::new(image)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        found.insert(stem, centre);
    }
    let errors = names
        .iter()
        .filter_map(|name| {
            let [py, px] = found.get(name)?;
            let [ty, tx] = truth.get(name)?;
            Some((name.clone(), (py - ty).hypot(px - tx)))
        })
        .collect();
    Ok(Localisation { errors })
}

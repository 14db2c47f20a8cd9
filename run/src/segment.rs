//! `msnet-run segment`: images in, masks, overlays and one JSON line per image out (and,
//! with `--csv`, one CSV row per image).
//!
//! Preprocessing is [`msnet_run::preprocess`]; the normalisation is inside the plan.
//! Postprocessing: argmax, the mask brought back to the image's own size (nearest), per-class
//! areas, and for a disc/cup model (its last class named `cup`; the convention is
//! `msnet_labels::DiscCup`) the disc (rim ∪ cup), the cup and the vertical cup-to-disc ratio.
//!
//! With `--locator`, each image is a whole fundus photograph: the locator model finds the disc,
//! the disc/cup model sees the window [`msnet_run::locate`] cuts around it, and its mask is
//! pasted back, so every output is in the photograph's coordinates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet_io::fit::InputFit;
use msnet_run::locate::{self, Window};
use msnet_run::outputs::Outputs;
use msnet_run::preprocess::{ImageBudget, model_input, read_model_image};
use msnet_runtime::host::Session;

use crate::csv::CsvLog;
use crate::model::{Model, Threads};
use crate::paths::{self, Output, model_files};

#[derive(Args)]
pub struct SegmentArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    #[command(flatten)]
    image_budget: ImageBudget,
    /// Output folder for NAME.mask.png (class index × 255/(classes−1)) and NAME.overlay.png.
    #[arg(long)]
    out: PathBuf,
    /// Also append one CSV row per image to this file (header written when it is new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Replace masks and overlays already in --out (without it, an existing one is an error).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    locator: LocatorArgs,
    /// Images to segment: PNG, JPEG, BMP or TIFF. 8- and 16-bit samples are scaled to [0, 1];
    /// float TIFF samples are taken as they are and must be finite and within [0, 1].
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// `--locator` and `--window-fraction`, shared by the commands that segment images.
#[derive(Args)]
pub struct LocatorArgs {
    /// Whole fundus photographs: this model (background / disc) finds the optic disc in each
    /// image, and --model, a disc/cup model, segments a square window around it; masks and the
    /// cup-to-disc ratio come back in the photograph's coordinates, and the JSON line adds the
    /// disc centre and the window.
    #[arg(long, value_name = "DIR")]
    locator: Option<PathBuf>,
    /// With --locator: the window's side as a fraction of the photograph's height (the
    /// default, 800/1760, is the field of view of the Drishti-GS1 crops the shipped disc/cup
    /// model was trained on).
    #[arg(long, default_value_t = msnet_run::locate::DEFAULT_WINDOW_FRACTION, requires = "locator")]
    window_fraction: f64,
}

impl LocatorArgs {
    /// The locator model, loaded, if one was asked for.
    pub fn load(&self) -> Result<Option<Model>> {
        self.locator.as_deref().map(Model::load).transpose()
    }

    /// `segmenter` with `locator` (from [`LocatorArgs::load`]) in front of it.
    pub fn apply<'m>(
        &self,
        segmenter: Segmenter<'m>,
        locator: Option<&'m Model>,
        threads: &Threads,
    ) -> Result<Segmenter<'m>> {
        match locator {
            Some(l) => segmenter.with_locator(l, threads, self.window_fraction),
            None => Ok(segmenter),
        }
    }

    /// The locator's files: inputs no output may land on.
    pub fn files(&self) -> Vec<PathBuf> {
        self.locator.iter().flat_map(|d| model_files(d)).collect()
    }
}

/// What one image gave.
pub struct Segmented {
    pub hw: [usize; 2],
    /// The engine's time on this image (with a locator: both models).
    pub runtime_ms: f64,
    /// Pixels per class at the image's own size.
    pub areas: Vec<usize>,
    /// For a disc/cup model: disc (rim ∪ cup) and cup pixels, vertical CDR (None when no disc
    /// was found).
    pub disc_cup: Option<DiscCup>,
    /// For a whole-photograph run (`--locator`): where the disc was found.
    pub located: Option<Located>,
    pub mask: PathBuf,
    pub overlay: PathBuf,
}

/// An image's file name without its extension (a volume's without `.nii` or `.nii.gz`): the
/// name its outputs, or a training sample made of it, are given.
pub fn stem(image: &Path) -> String {
    let name = image.file_name().unwrap_or_default().to_string_lossy();
    match msnet_io::nifti::volume_name(&name) {
        Some(volume) => volume.to_string(),
        None => image
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    }
}

pub struct DiscCup {
    pub disc_px: usize,
    pub cup_px: usize,
    pub vertical_cdr: Option<f64>,
}

/// One model's session and buffers: a model input in, its label map out.
struct Inference<'m> {
    model: &'m Model,
    session: Session<'m>,
    probs: Vec<f32>,
    size: [usize; 2],
    /// How an image is brought to `size` and the label map back.
    fit: InputFit,
}

impl<'m> Inference<'m> {
    fn new(model: &'m Model, threads: &Threads) -> Result<Self> {
        let plan = model.plan();
        if plan.header().dims != 2 {
            bail!(
                "segment takes 2D images; {} is a 3D model",
                model.dir.display()
            );
        }
        let [_, h, w] = plan.size();
        Ok(Self {
            session: model.session(threads)?,
            probs: vec![0.0; plan.output_len()],
            size: [h, w],
            fit: InputFit::of(&model.config),
            model,
        })
    }

    /// The label map of `input` (the model's `[channels, h, w]`) at the model's size, and the
    /// engine's milliseconds.
    fn run(&mut self, input: &[f32]) -> Result<(Vec<u8>, f64)> {
        let t = Instant::now();
        self.session.run(input, &mut self.probs)?;
        let runtime_ms = t.elapsed().as_secs_f64() * 1e3;
        let labels = msnet_labels::argmax(&self.probs, self.model.config.classes);
        Ok((labels, runtime_ms))
    }

    /// A label map of [`Inference::run`] brought back to an image's `hw` (the model's
    /// [`InputFit`]).
    fn back(&self, labels: &[u8], hw: [usize; 2]) -> Vec<u8> {
        self.fit.back(labels, self.size, hw)
    }

    /// [`Inference::run`] on an image's pixels (`[channels, hw]`); `path` labels errors.
    fn run_on(
        &mut self,
        path: &Path,
        channels: usize,
        hw: [usize; 2],
        planar: &[f32],
    ) -> Result<(Vec<u8>, f64)> {
        let want = self.model.config.in_channels;
        let input = model_input(path, channels, hw, planar, want, self.size, self.fit)?;
        self.run(&input)
    }
}

/// The first stage of a whole-photograph run: a model whose non-background classes are the
/// optic disc, and the window the disc/cup model is shown around the disc it finds.
struct Locator<'m> {
    inference: Inference<'m>,
    window_fraction: f64,
}

/// Where the locator put the disc, and the window the disc/cup model saw.
pub struct Located {
    /// `(row, column)` in the photograph.
    pub centre: [f64; 2],
    pub window: Window,
    pub locator_ms: f64,
}

/// A model, its session and buffers, ready to segment any number of images.
pub struct Segmenter<'m> {
    inference: Inference<'m>,
    /// For a disc/cup model, which labels are the disc and the cup.
    disc_cup: Option<msnet_labels::DiscCup>,
    budget: ImageBudget,
    locator: Option<Locator<'m>>,
}

impl<'m> Segmenter<'m> {
    pub fn new(model: &'m Model, threads: &Threads) -> Result<Self> {
        Ok(Self {
            inference: Inference::new(model, threads)?,
            disc_cup: msnet_labels::DiscCup::for_class_names(&model.config.class_names),
            budget: ImageBudget {
                max_image_mib: msnet_run::preprocess::DEFAULT_MAX_IMAGE_MIB,
            },
            locator: None,
        })
    }

    /// The memory one image may take (`--max-image-mib`); the default is the flag's.
    pub fn with_image_budget(self, budget: ImageBudget) -> Self {
        Self { budget, ..self }
    }

    /// Segments whole photographs: `locator` finds the disc, and this (disc/cup) model sees a
    /// square window around it whose side is `window_fraction` of the photograph's height.
    pub fn with_locator(
        self,
        locator: &'m Model,
        threads: &Threads,
        window_fraction: f64,
    ) -> Result<Self> {
        let model = self.inference.model;
        if self.disc_cup.is_none() {
            bail!(
                "--locator needs a disc/cup model (its last class named `{}`); {} has classes {:?}",
                msnet_labels::CUP_CLASS_NAME,
                model.dir.display(),
                model.config.class_names
            );
        }
        if locator.config.classes < 2 {
            bail!(
                "{}: a locator needs a background and a disc class",
                locator.dir.display()
            );
        }
        if !(window_fraction > 0.0 && window_fraction <= 4.0) {
            bail!("--window-fraction {window_fraction} is not in (0, 4]");
        }
        Ok(Self {
            locator: Some(Locator {
                inference: Inference::new(locator, threads)?,
                window_fraction,
            }),
            ..self
        })
    }

    pub fn class_names(&self) -> &[String] {
        &self.inference.model.config.class_names
    }

    /// Segments the image at `path`, writing its mask and overlay to `to`.
    pub fn segment(&mut self, path: &Path, to: &Outputs) -> Result<Segmented> {
        let first = match &self.locator {
            Some(l) => &l.inference,
            None => &self.inference,
        };
        let image = read_model_image(
            path,
            &self.budget,
            first.model.config.in_channels,
            first.size,
            first.fit,
        )?;
        let hw = image.hw;
        // Everything that needs the image's floats is done before they are traded for its
        // 8-bit copy, and no full-size label map exists until then: so the peak of an image
        // stays that of decoding it (`ImageBudget::need`).
        let (labels, runtime_ms, located) = match &mut self.locator {
            None => {
                let (labels, ms) = self.inference.run(&image.input)?;
                (labels, ms, None)
            }
            Some(locator) => {
                let (disc, locator_ms) = locator.inference.run(&image.input)?;
                let disc = locator.inference.back(&disc, hw);
                let centre = locate::disc_centre(&disc, hw, |l| l > 0).with_context(|| {
                    format!(
                        "{}: the locator ({}) found no optic disc",
                        path.display(),
                        locator.inference.model.dir.display()
                    )
                })?;
                drop(disc);
                let side = Window::side_for(hw[0], locator.window_fraction);
                let window = Window::around(centre, side);
                let crop = window.crop(&image.planar, image.channels, hw);
                let (labels, ms) =
                    self.inference
                        .run_on(path, image.channels, [side, side], &crop)?;
                let located = Located {
                    centre,
                    window,
                    locator_ms,
                };
                // The image's latency is both models'.
                (labels, ms + locator_ms, Some(located))
            }
        };
        let shown = image.into_shown();
        let mask = match &located {
            None => self.inference.back(&labels, hw),
            Some(l) => {
                let side = l.window.side;
                l.window
                    .paste(&self.inference.back(&labels, [side, side]), hw)
            }
        };
        let classes = self.inference.model.config.classes;
        to.write(&shown, &mask, classes)?;
        let mut areas = vec![0usize; classes];
        for &l in &mask {
            areas[l as usize] += 1;
        }
        let disc_cup = self.disc_cup.map(|convention| {
            let m = convention.measure(&mask, hw[1]);
            DiscCup {
                disc_px: m.disc_px,
                cup_px: m.cup_px,
                vertical_cdr: m.vertical_cdr(),
            }
        });
        Ok(Segmented {
            hw,
            runtime_ms,
            areas,
            disc_cup,
            located,
            mask: to.mask.clone(),
            overlay: to.overlay.clone(),
        })
    }
}

impl Segmented {
    /// The JSON line `segment` prints.
    pub fn json(&self, image: &Path, class_names: &[String]) -> serde_json::Value {
        let areas: serde_json::Map<String, serde_json::Value> = class_names
            .iter()
            .zip(&self.areas)
            .map(|(name, &n)| (name.clone(), n.into()))
            .collect();
        let mut line = serde_json::json!({
            "image": image.display().to_string(),
            "width": self.hw[1],
            "height": self.hw[0],
            "mask": self.mask.display().to_string(),
            "overlay": self.overlay.display().to_string(),
            "areas_px": areas,
            "runtime_ms": self.runtime_ms,
        });
        if let Some(dc) = &self.disc_cup {
            line["disc_px"] = dc.disc_px.into();
            line["cup_px"] = dc.cup_px.into();
            line["vertical_cdr"] = dc.vertical_cdr.into();
        }
        if let Some(l) = &self.located {
            line["disc_centre_yx"] = serde_json::json!(l.centre);
            line["window"] = serde_json::json!({
                "top": l.window.top,
                "left": l.window.left,
                "side": l.window.side,
            });
            line["locator_ms"] = l.locator_ms.into();
        }
        line
    }
}

pub fn run(a: &SegmentArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let locator = a.locator.load()?;
    let segmenter = Segmenter::new(&model, &a.threads)?.with_image_budget(a.image_budget);
    let mut segmenter = a.locator.apply(segmenter, locator.as_ref(), &a.threads)?;
    let targets: Vec<Outputs> = a
        .images
        .iter()
        .map(|image| Outputs::named(&a.out, &stem(image)))
        .collect();
    check_paths(a, &targets)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut csv = a
        .csv
        .as_deref()
        .map(|p| CsvLog::open(p, segmenter.class_names()))
        .transpose()?;
    let mut failed = 0;
    for (path, to) in a.images.iter().zip(&targets) {
        match segmenter.segment(path, to) {
            Ok(s) => {
                println!("{}", s.json(path, segmenter.class_names()));
                if let Some(csv) = &mut csv {
                    csv.append(path, &s)?;
                }
            }
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

/// Refuses, before any image is read, outputs that would land on an input (an image or a model
/// file), on each other (two images with one stem) or on an earlier run's files without
/// `--force`.
fn check_paths(a: &SegmentArgs, targets: &[Outputs]) -> Result<()> {
    let mut inputs = a.images.clone();
    inputs.extend(model_files(&a.model));
    inputs.extend(a.locator.files());
    let mut outputs: Vec<Output> = a
        .images
        .iter()
        .zip(targets)
        .flat_map(|(image, to)| {
            [&to.mask, &to.overlay].map(|path| Output {
                path: path.clone(),
                by: image.display().to_string(),
                replace: a.force,
            })
        })
        .collect();
    outputs.extend(a.csv.iter().map(|csv| Output {
        path: csv.clone(),
        by: "--csv".into(),
        replace: true,
    }));
    paths::check(&inputs, &outputs)
}

//! # msnet-datasets: the datasets, loaded for training and evaluation
//!
//! WBC (white blood cells), Drishti-GS1 (optic disc / cup), ACDC (cardiac MRI) and
//! user folders, loaded into [`Sample`]s with a reproducible train / test [`Split`].
//!
//! Conventions shared by every dataset:
//! - an image is channel-first `[C, D, H, W]` `f32` in `[0, 1]`, **not** normalised (the network
//!   normalises); labels are `[D, H, W]` class indices; `D = 1` for 2D data;
//! - every sample of a dataset has the same spatial shape ([`Dataset::shape`]) and channel count;
//! - the split is drawn with `rand_chacha::ChaCha8Rng::seed_from_u64(seed)` from the sorted
//!   names (see [`split`] for the exact procedures), so the same seed gives the same split on
//!   every machine, and the test set never depends on `train_size`;
//! - when [`LoadOptions::test_names`] is given, exactly those samples form the test set (the
//!   split recorded at training time is replayed for evaluation);
//! - the library prints nothing; errors name the file and the problem.
//!
//! It owns reading the research datasets and drawing their splits. The device command must not
//! link it: `msnet-run` reads single images and volumes with `msnet-io`.

pub mod acdc;
pub mod drishti;
pub mod folder;
pub mod split;
pub mod wbc;

pub use drishti::{drishti_disc_centres, drishti_expert_cdr};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use msnet::Config;
use msnet::config::{Normalization, TrainingRecord};
pub use msnet::sample::{DatasetKind, Sample, UnknownDataset};
use msnet_io::{IoError, MAX_IMAGE_SIDE, read_image, read_mask, resize_bilinear, resize_nearest};
use msnet_labels::DiscCup;

/// Options for the `folder` dataset: `images/` + `masks/` with the same file stems, and a mapping
/// from mask pixel value to class index, e.g. "0=background,128=cytoplasm,255=nucleus".
///
/// Class index `i` is the `i`-th entry of `classes` (so list the background first).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FolderSpec {
    /// `(mask value, class name)` in class-index order.
    pub classes: Vec<(u8, String)>,
    /// How many images the seeded test set holds.
    pub test_count: usize,
}

impl FolderSpec {
    /// Parses a mapping such as `"0=background,128=cytoplasm,255=nucleus"`.
    ///
    /// Needs at least two classes, distinct values and distinct, non-empty names.
    pub fn parse(mapping: &str, test_count: usize) -> Result<FolderSpec, DataError> {
        let bad = |reason: String| DataError::BadFolderSpec { reason };
        let mut classes: Vec<(u8, String)> = Vec::new();
        for item in mapping.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (value, name) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("'{item}' is not VALUE=NAME")))?;
            let value: u8 = value.trim().parse().map_err(|_| {
                bad(format!(
                    "'{}' in '{item}' is not a pixel value 0..=255",
                    value.trim()
                ))
            })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad(format!("'{item}' has an empty class name")));
            }
            if classes.iter().any(|(v, n)| *v == value || n == name) {
                return Err(bad(format!("'{item}' repeats a value or a name")));
            }
            classes.push((value, name.to_string()));
        }
        if classes.len() < 2 {
            return Err(bad(format!(
                "'{mapping}' names {} class(es); at least two are needed, e.g. \"0=background,255=cell\"",
                classes.len()
            )));
        }
        Ok(FolderSpec {
            classes,
            test_count,
        })
    }

    /// The class names in class-index order.
    pub fn class_names(&self) -> Vec<String> {
        self.classes.iter().map(|(_, n)| n.clone()).collect()
    }
}

/// What to load and how to split it.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Which dataset.
    pub kind: DatasetKind,
    /// The dataset's own folder (see [`resolve_root`]).
    pub root: PathBuf,
    /// How many training samples to draw (ignored by [`load_test`]).
    pub train_size: usize,
    /// Seed of the split.
    pub seed: u64,
    /// spatial size [D, H, W] the samples are brought to; None = the dataset's default
    pub size: Option<[usize; 3]>,
    /// Required for [`DatasetKind::Folder`], ignored otherwise.
    pub folder: Option<FolderSpec>,
    /// When Some, use exactly these test names (evaluation of a trained model uses the split recorded at training time).
    pub test_names: Option<Vec<String>>,
}

impl LoadOptions {
    /// The record of a training run on `split`, loaded with these options: the dataset, the
    /// seed, the names of each part and, for a folder dataset, the mask value of each class,
    /// which is what [`LoadOptions::replay_test_split`] needs to load the test set again.
    /// The training loop fills in the rest.
    pub fn training_record(&self, split: &Split) -> TrainingRecord {
        let mut record = TrainingRecord::new(self.kind, split.train.clone(), split.test.clone());
        record.seed = self.seed;
        record.folder_classes = self.folder.as_ref().map(|f| f.classes.clone());
        record
    }

    /// The options that load the test set `record` names, at `size` (a model's input size),
    /// from the data root `data` as [`resolve_root`] takes it: how a model is scored on
    /// exactly the images its training held out. A record of data that is not a dataset
    /// (`finetune`, `phantom`) has no split to load.
    pub fn replay_test_split(
        record: &TrainingRecord,
        data: Option<&Path>,
        size: [usize; 3],
    ) -> Result<LoadOptions, DataError> {
        let kind = record.dataset.kind().ok_or_else(|| UnknownDataset {
            name: record.dataset.to_string(),
        })?;
        Ok(LoadOptions {
            kind,
            root: resolve_root(data, kind)?,
            train_size: 0,
            seed: record.seed,
            size: Some(size),
            folder: record.folder_classes.as_ref().map(|classes| FolderSpec {
                classes: classes.clone(),
                test_count: record.test.len(),
            }),
            test_names: Some(record.test.clone()),
        })
    }
}

/// The names of the samples in each part of a split.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Training samples, in selection order.
    pub train: Vec<String>,
    /// Test samples.
    pub test: Vec<String>,
}

/// A loaded dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which dataset.
    pub kind: DatasetKind,
    /// Class names in class-index order.
    pub class_names: Vec<String>,
    /// Image channels of every sample.
    pub channels: usize,
    /// `[D, H, W]` of every sample.
    pub shape: [usize; 3],
    /// The names in each part.
    pub split: Split,
    /// Training samples, in `split.train` order (empty from [`load_test`]).
    pub train: Vec<Sample>,
    /// Test samples, in `split.test` order.
    pub test: Vec<Sample>,
}

impl Dataset {
    /// Takes the last `count` training samples out as a validation set (`split.train` loses
    /// their names too), so settings can be chosen without looking at the test set; at least
    /// one training sample must stay.
    pub fn hold_out(&mut self, count: usize) -> Result<Vec<Sample>, DataError> {
        let total = self.train.len();
        if count >= total && count > 0 {
            return Err(DataError::BadSplit {
                reason: format!(
                    "holding out {count} of the {total} training samples for validation leaves none to train on"
                ),
            });
        }
        let held_out = self.train.split_off(total - count);
        self.split.train.truncate(self.train.len());
        Ok(held_out)
    }

    /// The network config for this dataset: 3D for volumes (ACDC at any depth), its channels,
    /// classes and sample size, and the input normalisation of its training samples.
    pub fn network_config(&self) -> Config {
        let dims = if self.kind == DatasetKind::Acdc || self.shape[0] > 1 {
            3
        } else {
            2
        };
        let mut c = Config::new(dims, self.channels, self.class_names.len());
        c.input_size = self.shape;
        c.class_names = self.class_names.clone();
        c.normalization = Normalization::of_samples(&self.train, self.channels);
        c
    }
}

/// A dataset loading failure. Every variant names the file (or the setting) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The dataset folder does not exist.
    #[error(
        "no dataset at {path}: pass --data <DIR> or set MSNET_DATA to the folder holding \
         wbc_dataset1/, drishti_gs1/ and acdc_subset/ (for `folder`, the folder holding images/ and masks/)"
    )]
    MissingData { path: PathBuf },
    /// An image without a mask (or a volume without a label volume).
    #[error("{image} has no mask: expected {expected}")]
    MissingMask { image: PathBuf, expected: PathBuf },
    /// A file that cannot be read or decoded.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// A mask value outside the dataset's class mapping.
    #[error("{path}: mask value {value} is not one of the known values {allowed}")]
    UnknownMaskValue {
        path: PathBuf,
        value: u8,
        allowed: String,
    },
    /// An image and its mask differ in size.
    #[error("{image} is {image_size} but its mask {mask} is {mask_size} (width×height×depth)")]
    SizeMismatch {
        image: PathBuf,
        mask: PathBuf,
        image_size: String,
        mask_size: String,
    },
    /// An image whose channel count differs from the dataset's.
    #[error("{path} has {got} channel(s) but the dataset's images have {expected}")]
    ChannelMismatch {
        path: PathBuf,
        expected: usize,
        got: usize,
    },
    /// A NIfTI file whose voxel data ends early.
    #[error(
        "{path}: truncated NIfTI volume: {expected_bytes} bytes of voxel data expected, {got} found"
    )]
    TruncatedNifti {
        path: PathBuf,
        expected_bytes: u64,
        got: u64,
    },
    /// A NIfTI file that is not usable (header, type, shape or values).
    #[error("{path}: unusable NIfTI volume: {reason}")]
    BadNifti { path: PathBuf, reason: String },
    /// A volume whose labelled structure cannot fit the canvas.
    #[error("{path}: {reason}")]
    DoesNotFit { path: PathBuf, reason: String },
    /// The split cannot be made as asked.
    #[error("cannot split the dataset: {reason}")]
    BadSplit { reason: String },
    /// An unsupported target size.
    #[error("size {size:?} is not supported for {kind}: {reason}")]
    BadSize {
        kind: DatasetKind,
        size: [usize; 3],
        reason: String,
    },
    /// A missing or malformed [`FolderSpec`].
    #[error("bad folder dataset classes: {reason}")]
    BadFolderSpec { reason: String },
    /// A folder without any image.
    #[error("no images in {path} (expected .png, .bmp, .jpg, .jpeg, .tif or .tiff files)")]
    NoImages { path: PathBuf },
    /// A malformed CSV index.
    #[error("{path}, line {line}: {reason}")]
    BadCsv {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A dataset name that is not one of [`DatasetKind::ALL`].
    #[error(transparent)]
    UnknownKind(#[from] msnet::sample::UnknownDataset),
}

impl From<IoError> for DataError {
    fn from(e: IoError) -> Self {
        let path = e.path().to_path_buf();
        match e {
            IoError::Unreadable { reason, .. } => DataError::Unreadable { path, reason },
            IoError::TruncatedNifti {
                expected_bytes,
                got,
                ..
            } => DataError::TruncatedNifti {
                path,
                expected_bytes,
                got,
            },
            IoError::BadNifti { reason, .. } => DataError::BadNifti { path, reason },
            IoError::TooLarge { width, height, .. } => DataError::Unreadable {
                path,
                reason: format!(
                    "image is {width}×{height}, over the limit of {MAX_IMAGE_SIDE} px per side / 2^28 pixels"
                ),
            },
            IoError::BadMask { reason, .. } => DataError::Unreadable {
                path,
                reason: format!(
                    "not a label mask: {reason} (masks must be 8-bit gray, or RGB with equal channels)"
                ),
            },
            // Loading never writes, but keep the mapping total rather than panic.
            IoError::BadBuffer { reason, .. } | IoError::Write { reason, .. } => {
                DataError::Unreadable { path, reason }
            }
        }
    }
}

/// Resolves the data root: the explicit `--data` path, else env `MSNET_DATA`, else `../shared/data`;
/// then appends the dataset's folder name (wbc_dataset1, drishti_gs1, acdc_subset; folder: the path itself).
/// Missing → DataError::MissingData naming the path tried AND mentioning MSNET_DATA and --data.
///
/// A base that already *is* the dataset folder (its last component is the folder name) is
/// accepted as is, so `--data shared/data/wbc_dataset1` works too.
pub fn resolve_root(explicit: Option<&Path>, kind: DatasetKind) -> Result<PathBuf, DataError> {
    let base = explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("MSNET_DATA")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let path = match kind.folder_name() {
        Some(folder) => {
            let joined = base.join(folder);
            let base_is_dataset = base.file_name().is_some_and(|n| n == folder);
            if !joined.is_dir() && base_is_dataset && base.is_dir() {
                base
            } else {
                joined
            }
        }
        None => base,
    };
    if path.is_dir() {
        Ok(path)
    } else {
        Err(DataError::MissingData { path })
    }
}

/// Loads a dataset: the split, then the train and test samples (images decoded on 2 threads).
///
/// `train_size` must be at least 1, unless `test_names` is given (then 0 means "no training set").
pub fn load(opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_with(opts, true)
}

/// Loads only the test split (for eval): `train_size` is ignored and `train` is empty.
pub fn load_test(opts: &LoadOptions) -> Result<Dataset, DataError> {
    load_with(opts, false)
}

fn load_with(opts: &LoadOptions, with_train: bool) -> Result<Dataset, DataError> {
    if !opts.root.is_dir() {
        return Err(DataError::MissingData {
            path: opts.root.clone(),
        });
    }
    match opts.kind {
        DatasetKind::Wbc => wbc::load(opts, with_train),
        DatasetKind::Drishti | DatasetKind::DrishtiFull => drishti::load(opts, with_train),
        DatasetKind::Acdc => acdc::load(opts, with_train),
        DatasetKind::Folder => folder::load(opts, with_train),
    }
}

/// The spatial size `[D, H, W]` samples are brought to when [`LoadOptions::size`] is `None`.
pub fn default_size(kind: DatasetKind) -> [usize; 3] {
    match kind {
        DatasetKind::Wbc => [1, 112, 112],
        DatasetKind::Drishti | DatasetKind::Folder => [1, 128, 128],
        // The photographs are about 512×440: ×4 smaller keeps their aspect and a disc of
        // about 24 px.
        DatasetKind::DrishtiFull => [1, 112, 128],
        DatasetKind::Acdc => [16, 128, 128],
    }
}

/// Class names in class-index order (`folder` takes them from its spec; empty without one).
pub fn class_names(kind: DatasetKind, folder: Option<&FolderSpec>) -> Vec<String> {
    let names: &[&str] = match kind {
        DatasetKind::Wbc => &["background", "cytoplasm", "nucleus"],
        DatasetKind::Drishti => &drishti::CLASS_NAMES,
        DatasetKind::DrishtiFull => &["background", "disc"],
        DatasetKind::Acdc => &[
            "background",
            "right ventricle",
            "myocardium",
            "left ventricle",
        ],
        DatasetKind::Folder => return folder.map(FolderSpec::class_names).unwrap_or_default(),
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// Which classes of a dataset are the optic disc and cup, for a dataset whose classes are a
/// disc and a cup (Drishti-GS1's crops; its whole photographs are background / disc, with no
/// cup to measure).
pub fn disc_cup(kind: DatasetKind) -> Option<DiscCup> {
    (kind == DatasetKind::Drishti).then(drishti::disc_cup)
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the loaders.

/// The split request derived from [`LoadOptions`]: [`load_test`] asks for no training samples.
pub(crate) fn split_request(opts: &LoadOptions, with_train: bool) -> split::SplitRequest<'_> {
    let test_names = opts.test_names.as_deref();
    split::SplitRequest {
        train_size: if with_train { opts.train_size } else { 0 },
        seed: opts.seed,
        test_names,
        allow_empty_train: !with_train || test_names.is_some(),
    }
}

/// Checks a 2D target size `[1, H, W]`; returns `[H, W]`.
pub(crate) fn check_2d_size(kind: DatasetKind, size: [usize; 3]) -> Result<[usize; 2], DataError> {
    let [d, h, w] = size;
    let reason = if d != 1 {
        "2D data needs D = 1"
    } else if h == 0 || w == 0 || h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE {
        "H and W must be between 1 and 16384"
    } else {
        return Ok([h, w]);
    };
    Err(DataError::BadSize {
        kind,
        size,
        reason: reason.into(),
    })
}

/// An image file and its mask, matched by file stem.
#[derive(Clone, Debug)]
pub(crate) struct Pair {
    pub name: String,
    pub image: PathBuf,
    pub mask: PathBuf,
}

/// The image extensions the 2D loaders look for (lowercase).
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "bmp", "jpg", "jpeg", "tif", "tiff"];

/// Image files of a folder by stem (hidden files and other extensions are skipped).
pub(crate) fn images_by_stem(dir: &Path) -> Result<HashMap<String, PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|_| DataError::NoImages {
        path: dir.to_path_buf(),
    })?;
    let mut out: HashMap<String, PathBuf> = HashMap::new();
    for entry in entries {
        let path = entry
            .map_err(|e| DataError::Unreadable {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?
            .path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let (stem, ext) = (
            stem.to_string_lossy(),
            ext.to_string_lossy().to_ascii_lowercase(),
        );
        if stem.starts_with('.') || !IMAGE_EXTENSIONS.contains(&ext.as_str()) || !path.is_file() {
            continue;
        }
        if let Some(other) = out.insert(stem.to_string(), path.clone()) {
            return Err(DataError::Unreadable {
                path: dir.to_path_buf(),
                reason: format!(
                    "two files share the name '{stem}': {} and {}",
                    other.display(),
                    path.display()
                ),
            });
        }
    }
    Ok(out)
}

/// Pairs every image of `images_dir` with the mask of the same stem in `masks_dir`, sorted by name.
pub(crate) fn list_pairs(images_dir: &Path, masks_dir: &Path) -> Result<Vec<Pair>, DataError> {
    let images = images_by_stem(images_dir)?;
    if images.is_empty() {
        return Err(DataError::NoImages {
            path: images_dir.to_path_buf(),
        });
    }
    let masks = images_by_stem(masks_dir).unwrap_or_default();
    let mut pairs = images
        .into_iter()
        .map(|(name, image)| match masks.get(&name) {
            Some(mask) => Ok(Pair {
                mask: mask.clone(),
                name,
                image,
            }),
            None => Err(DataError::MissingMask {
                expected: masks_dir.join(format!("{name}.png")),
                image,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pairs)
}

/// Maps raw mask values to class indices.
pub(crate) struct ValueMap {
    table: [Option<u8>; 256],
    allowed: String,
}

impl ValueMap {
    /// A map from `(mask value, class index)` pairs.
    pub fn new(pairs: &[(u8, u8)]) -> ValueMap {
        let mut table = [None; 256];
        for &(value, class) in pairs {
            table[usize::from(value)] = Some(class);
        }
        let allowed = pairs
            .iter()
            .map(|(v, _)| v.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        ValueMap {
            table,
            allowed: format!("{{{allowed}}}"),
        }
    }

    /// Maps every value, or names the file and the first unknown value.
    pub fn apply(&self, path: &Path, values: &[u8]) -> Result<Vec<u8>, DataError> {
        values
            .iter()
            .map(|&v| {
                self.table[usize::from(v)].ok_or_else(|| DataError::UnknownMaskValue {
                    path: path.to_path_buf(),
                    value: v,
                    allowed: self.allowed.clone(),
                })
            })
            .collect()
    }
}

/// Errors unless an image and its mask have the same `[H, W]`.
pub(crate) fn check_same_size(
    pair: &Pair,
    image_hw: [usize; 2],
    mask_hw: [usize; 2],
) -> Result<(), DataError> {
    if image_hw == mask_hw {
        return Ok(());
    }
    Err(DataError::SizeMismatch {
        image: pair.image.clone(),
        mask: pair.mask.clone(),
        image_size: format!("{}×{}", image_hw[1], image_hw[0]),
        mask_size: format!("{}×{}", mask_hw[1], mask_hw[0]),
    })
}

/// Maps `f` over `items` on two threads (the machines this runs on have few cores), keeping
/// the order. On failure the error of the earliest failing half is returned.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, DataError> + Sync,
) -> Result<Vec<R>, DataError> {
    if items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    let (first, second) = items.split_at(items.len().div_ceil(2));
    std::thread::scope(|s| {
        let handle = s.spawn(|| second.iter().map(&f).collect::<Result<Vec<R>, _>>());
        let head = first.iter().map(&f).collect::<Result<Vec<R>, _>>();
        let tail = handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut head = head?;
        head.extend(tail?);
        Ok(head)
    })
}

/// Loads the named samples (in order) with `load_one`, looking each name up in `pairs`.
pub(crate) fn load_named<P: Sync>(
    names: &[String],
    items: &HashMap<String, P>,
    load_one: impl Fn(&P) -> Result<Sample, DataError> + Sync,
) -> Result<Vec<Sample>, DataError> {
    let chosen = names
        .iter()
        .map(|n| {
            items.get(n).ok_or_else(|| DataError::BadSplit {
                reason: format!("sample '{n}' is not in the dataset"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    par_map(&chosen, |p| load_one(p))
}

/// Loads the split's samples from `items` and assembles a [`Dataset`], checking that every
/// sample has the channels of the first one (`path_of` names the file to blame).
pub(crate) fn assemble<P: Sync>(
    kind: DatasetKind,
    class_names: Vec<String>,
    shape: [usize; 3],
    split: Split,
    items: &HashMap<String, P>,
    path_of: impl Fn(&P) -> PathBuf,
    load_one: impl Fn(&P) -> Result<Sample, DataError> + Sync,
) -> Result<Dataset, DataError> {
    let test = load_named(&split.test, items, &load_one)?;
    let train = load_named(&split.train, items, &load_one)?;
    let channels = test.first().or(train.first()).map_or(1, |s| s.channels);
    if let Some(odd) = test.iter().chain(&train).find(|s| s.channels != channels) {
        return Err(DataError::ChannelMismatch {
            path: items.get(&odd.name).map(&path_of).unwrap_or_default(),
            expected: channels,
            got: odd.channels,
        });
    }
    Ok(Dataset {
        kind,
        class_names,
        channels,
        shape,
        split,
        train,
        test,
    })
}

/// An image with its mask mapped to classes: `(channels, [h, w], image, labels)`.
pub(crate) type LabelledImage = (usize, [usize; 2], Vec<f32>, Vec<u8>);

/// Reads an image and its mask, checks they have the same size and maps the mask values to
/// class indices.
pub(crate) fn read_pair(pair: &Pair, map: &ValueMap) -> Result<LabelledImage, DataError> {
    let (channels, hw, image) = read_image(&pair.image)?;
    let (mask_hw, mask) = read_mask(&pair.mask)?;
    check_same_size(pair, hw, mask_hw)?;
    let labels = map.apply(&pair.mask, &mask)?;
    Ok((channels, hw, image, labels))
}

/// Reads a pair and resizes it to `to_hw` (bilinear image, nearest labels).
pub(crate) fn load_resized(
    pair: &Pair,
    to_hw: [usize; 2],
    map: &ValueMap,
) -> Result<Sample, DataError> {
    let (channels, hw, image, labels) = read_pair(pair, map)?;
    Ok(Sample {
        name: pair.name.clone(),
        channels,
        shape: [1, to_hw[0], to_hw[1]],
        image: resize_bilinear(&image, channels, hw, to_hw),
        labels: resize_nearest(&labels, hw, to_hw),
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Tiny synthetic datasets written into unique temp folders (tests never need /work/shared).

    use ::image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
    use std::path::Path;

    /// An RGB image whose pixels encode their position (so crops can be checked).
    pub fn rgb(w: u32, h: u32, seed: u8) -> RgbImage {
        ImageBuffer::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, seed]))
    }

    /// A mask: a centred disc of `inner` inside a square of `outer`, on `bg`.
    pub fn mask(w: u32, h: u32, bg: u8, outer: u8, inner: u8) -> GrayImage {
        ImageBuffer::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as i64 - w as i64 / 2, y as i64 - h as i64 / 2);
            let v = if dx * dx + dy * dy < 100 {
                inner
            } else if dx.abs() < 20 && dy.abs() < 20 {
                outer
            } else {
                bg
            };
            Luma([v])
        })
    }

    /// Writes `images/NNN.<ext>` and `masks/NNN.png` pairs of the given sizes.
    pub fn write_pairs(root: &Path, sizes: &[(u32, u32)], ext: &str, values: [u8; 3]) {
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::create_dir_all(root.join("masks")).unwrap();
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let name = format!("{:03}", i + 1);
            rgb(w, h, i as u8)
                .save(root.join("images").join(format!("{name}.{ext}")))
                .unwrap();
            mask(w, h, values[0], values[1], values[2])
                .save(root.join("masks").join(format!("{name}.png")))
                .unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::fsutil::scratch_dir as test_dir;

    #[test]
    fn kind_names_roundtrip() {
        for k in DatasetKind::ALL {
            assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        let e = "mnist".parse::<DatasetKind>().unwrap_err().to_string();
        assert!(e.contains("mnist") && e.contains("acdc"), "{e}");
    }

    #[test]
    fn missing_root_mentions_msnet_data_and_flag() {
        let dir = test_dir("root");
        let e = resolve_root(Some(&dir.join("nowhere")), DatasetKind::Wbc).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataError::MissingData { .. }));
        assert!(msg.contains("nowhere/wbc_dataset1"), "{msg}");
        assert!(
            msg.contains("MSNET_DATA") && msg.contains("--data"),
            "{msg}"
        );

        std::fs::create_dir_all(dir.join("acdc_subset")).unwrap();
        assert_eq!(
            resolve_root(Some(&dir), DatasetKind::Acdc).unwrap(),
            dir.join("acdc_subset")
        );
        // The dataset folder itself is accepted as the base.
        let own = dir.join("acdc_subset");
        assert_eq!(resolve_root(Some(&own), DatasetKind::Acdc).unwrap(), own);
        assert_eq!(resolve_root(Some(&dir), DatasetKind::Folder).unwrap(), dir);

        let opts = LoadOptions {
            kind: DatasetKind::Wbc,
            root: dir.join("missing"),
            train_size: 1,
            seed: 0,
            size: None,
            folder: None,
            test_names: None,
        };
        let e = load(&opts).unwrap_err().to_string();
        assert!(e.contains("MSNET_DATA") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn folder_spec_parsing() {
        let s = FolderSpec::parse("0=background, 128=cytoplasm,255=nucleus", 5).unwrap();
        assert_eq!(s.class_names(), ["background", "cytoplasm", "nucleus"]);
        assert_eq!(s.classes[1], (128, "cytoplasm".to_string()));
        assert_eq!(class_names(DatasetKind::Folder, Some(&s)).len(), 3);
        for bad in [
            "0=a",
            "0=a,0=b",
            "0=a,1=a",
            "0=a,x=b",
            "0=a,300=b",
            "0=a,1=",
            "0=a;1=b",
        ] {
            let e = FolderSpec::parse(bad, 1).unwrap_err();
            assert!(matches!(e, DataError::BadFolderSpec { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn defaults_and_class_names() {
        assert_eq!(default_size(DatasetKind::Wbc), [1, 112, 112]);
        assert_eq!(default_size(DatasetKind::Drishti), [1, 128, 128]);
        assert_eq!(default_size(DatasetKind::Acdc), [16, 128, 128]);
        assert_eq!(class_names(DatasetKind::Acdc, None).len(), 4);
        assert_eq!(class_names(DatasetKind::Drishti, None)[1], "disc rim");
        assert!(class_names(DatasetKind::Folder, None).is_empty());
    }

    /// A folder dataset of six 40×40 RGB pairs with 2 test images, loaded at 16×16.
    fn folder_options(dir: &Path, train_size: usize) -> LoadOptions {
        fixtures::write_pairs(dir, &[(40, 40); 6], "png", [0, 128, 255]);
        LoadOptions {
            kind: DatasetKind::Folder,
            root: dir.to_path_buf(),
            train_size,
            seed: 5,
            size: Some([1, 16, 16]),
            folder: Some(FolderSpec::parse("0=background,128=ring,255=core", 2).unwrap()),
            test_names: None,
        }
    }

    #[test]
    fn a_training_record_replays_the_test_split_it_was_trained_with() {
        let dir = test_dir("replay");
        let opts = folder_options(&dir, 3);
        let ds = load(&opts).unwrap();
        let record = opts.training_record(&ds.split);
        assert_eq!(record.dataset.kind(), Some(DatasetKind::Folder));
        assert_eq!((record.seed, &record.train), (5, &ds.split.train));
        assert_eq!(
            record.folder_classes.as_deref(),
            Some(&opts.folder.as_ref().unwrap().classes[..])
        );
        // Through config.json (after training, which sets the loss) and back, then loaded at
        // another size.
        let mut record = record;
        record.final_loss = 0.0;
        let json = serde_json::to_string(&record).unwrap();
        let record: TrainingRecord = serde_json::from_str(&json).unwrap();
        let replay = LoadOptions::replay_test_split(&record, Some(&dir), [1, 32, 32]).unwrap();
        let test = load_test(&replay).unwrap();
        assert_eq!(test.split.test, ds.split.test);
        assert!(test.train.is_empty());
        assert_eq!(
            (test.shape, &test.class_names),
            ([1, 32, 32], &ds.class_names)
        );
        // The test set follows the record, not the seed's draw.
        let mut moved = record.clone();
        moved.test = vec![ds.split.train[0].clone()];
        let replay = LoadOptions::replay_test_split(&moved, Some(&dir), [1, 16, 16]).unwrap();
        assert_eq!(load_test(&replay).unwrap().split.test, moved.test);

        let tuned = TrainingRecord::new("finetune", vec![], vec![]);
        let e = LoadOptions::replay_test_split(&tuned, Some(&dir), [1, 16, 16]).unwrap_err();
        assert!(e.to_string().contains("'finetune'"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validation_is_the_last_of_the_seeded_training_samples() {
        let dir = test_dir("hold-out");
        let mut ds = load(&folder_options(&dir, 4)).unwrap();
        let drawn = ds.split.train.clone();
        assert!(ds.hold_out(0).unwrap().is_empty());
        assert_eq!(ds.split.train, drawn);
        let held: Vec<String> = ds
            .hold_out(1)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(held, drawn[3..]);
        assert_eq!(ds.split.train, drawn[..3]);
        let kept: Vec<&str> = ds.train.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(kept, ds.split.train);
        let e = ds.hold_out(3).unwrap_err();
        assert!(matches!(e, DataError::BadSplit { .. }), "{e:?}");
        assert!(e.to_string().contains("3 of the 3"), "{e}");
        assert_eq!(ds.train.len(), 3, "a refused hold-out takes nothing");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_network_config_follows_the_dataset() {
        let dir = test_dir("config");
        let ds = load(&folder_options(&dir, 3)).unwrap();
        let c = ds.network_config();
        c.validate().unwrap();
        assert_eq!((c.dims, c.in_channels, c.classes), (2, 3, 3));
        assert_eq!(
            (c.input_size, &c.class_names),
            ([1, 16, 16], &ds.class_names)
        );
        assert_eq!(c.normalization, Normalization::of_samples(&ds.train, 3));
        assert!(c.normalization.mean.iter().any(|&m| m > 0.0));
        // ACDC is volumetric at any depth; other data is 3D only when it has depth.
        let volumes = |kind, depth| {
            Dataset {
                kind,
                shape: [depth, 16, 16],
                ..ds.clone()
            }
            .network_config()
            .dims
        };
        assert_eq!(volumes(DatasetKind::Acdc, 1), 3);
        assert_eq!(volumes(DatasetKind::Folder, 16), 3);
        assert_eq!(volumes(DatasetKind::Folder, 1), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn par_map_keeps_order_and_first_error() {
        let items: Vec<usize> = (0..9).collect();
        let out = par_map(&items, |&i| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..9).map(|i| i * 2).collect::<Vec<_>>());
        let e = par_map(&items, |&i| {
            if i % 4 == 3 {
                Err(DataError::BadSplit {
                    reason: format!("item {i}"),
                })
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("item 3"), "{e}");
    }
}

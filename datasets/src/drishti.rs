//! Drishti-GS1 optic-disc crops: `{train,test}/images/drishtiGS_NNN.png` (RGB 400×400) and
//! `{train,test}/labels/drishtiGS_NNN.png` (gray: 0 background, 1 disc rim, 2 cup).
//!
//! - Split: the official one. The test set is all of `test/` (51 images); the training set is
//!   `train_size` (≤ 50) images of `train/`: shuffle the sorted names with
//!   `ChaCha8Rng::seed_from_u64(seed)` and take the first `train_size`
//!   ([`split::fixed_test_split`]).
//! - Size: resized to 128×128 (or the requested `[1, H, W]`): bilinear with half-pixel centres
//!   for the image, nearest for the labels.
//! - `drishti-full` ([`DatasetKind::DrishtiFull`]): the same split and layout under `full/`,
//!   the whole photographs downsampled ×4 (about 512×440), labels merged to background / disc
//!   (rim and cup are the disc), resized to 128×112 by default: a disc locator's data.
//! - [`photograph_test_labels`] and [`read_photograph_labels`] give the whole test
//!   photographs' labels at their own size, with rim and cup apart: what the
//!   whole-photograph pipeline is scored against.
//! - [`drishti_expert_cdr`] gives the experts' mean vertical cup-to-disc ratio per image, the
//!   reference for the clinical CDR computed from predicted masks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use msnet_io::read_mask;
use msnet_labels::{CUP_CLASS_NAME, DiscCup};

use super::{
    DataError, Dataset, DatasetKind, LoadOptions, Pair, ValueMap, assemble, check_2d_size,
    class_names, default_size, images_by_stem, list_pairs, load_resized, split, split_request,
};

/// The crops' classes in class-index order, which their label files hold as they are. The cup
/// is the last class, as the disc/cup convention ([`DiscCup`]) has it.
pub const CLASS_NAMES: [&str; 3] = ["background", "disc rim", CUP_CLASS_NAME];

/// Which of [`CLASS_NAMES`] make up the disc and which is the cup.
pub fn disc_cup() -> DiscCup {
    DiscCup::for_class_names(&CLASS_NAMES).expect("CLASS_NAMES end with the cup")
}

/// `(mask value, class index)`: the label files already hold class indices.
pub const MASK_VALUES: [(u8, u8); 3] = [(0, 0), (1, 1), (2, 2)];

/// `(mask value, class index)` of the locator's data: rim and cup are both the disc.
pub const DISC_MASK_VALUES: [(u8, u8); 3] = [(0, 0), (1, 1), (2, 1)];

/// Loads Drishti-GS1's crops or, for [`DatasetKind::DrishtiFull`] (root `drishti_gs1/full`),
/// its whole photographs (see the module docs).
pub(crate) fn load(opts: &LoadOptions, with_train: bool) -> Result<Dataset, DataError> {
    let kind = opts.kind;
    let size = opts.size.unwrap_or(default_size(kind));
    let to_hw = check_2d_size(kind, size)?;
    let part = |p: &str| {
        list_pairs(
            &opts.root.join(p).join("images"),
            &opts.root.join(p).join("labels"),
        )
    };
    let (train_pairs, test_pairs) = (part("train")?, part("test")?);
    let names = |pairs: &[Pair]| pairs.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let split = split::fixed_test_split(
        &names(&train_pairs),
        &names(&test_pairs),
        &split_request(opts, with_train),
    )?;
    // Test pairs first so that a name present in both folders resolves to the test file.
    let mut by_name: HashMap<String, Pair> = HashMap::new();
    for p in test_pairs.into_iter().chain(train_pairs) {
        by_name.entry(p.name.clone()).or_insert(p);
    }
    let map = ValueMap::new(if kind == DatasetKind::DrishtiFull {
        &DISC_MASK_VALUES
    } else {
        &MASK_VALUES
    });
    assemble(
        kind,
        class_names(kind, None),
        size,
        split,
        &by_name,
        |p| p.image.clone(),
        |p: &Pair| load_resized(p, to_hw, &map),
    )
}

/// The whole test photographs under the crops' folder `root` (`full/test/labels/`), as (name,
/// label file), sorted by name.
pub fn photograph_test_labels(root: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let dir = root.join("full").join("test").join("labels");
    let mut files: Vec<(String, PathBuf)> = images_by_stem(&dir)?.into_iter().collect();
    if files.is_empty() {
        return Err(DataError::NoImages { path: dir });
    }
    files.sort();
    Ok(files)
}

/// A whole photograph's true labels, `[H, W]` at the photograph's size, in the crops' classes
/// ([`CLASS_NAMES`]: the files keep rim and cup apart, only the locator's data merges them).
pub fn read_photograph_labels(path: &Path) -> Result<([usize; 2], Vec<u8>), DataError> {
    let (hw, values) = read_mask(path)?;
    Ok((hw, ValueMap::new(&MASK_VALUES).apply(path, &values)?))
}

/// The experts' mean vertical cup-to-disc ratio per image name, from `root/roi_index.csv`
/// (columns `name` and `cdr_values_4_experts`, the latter space-separated).
pub fn drishti_expert_cdr(root: &Path) -> Result<HashMap<String, f64>, DataError> {
    index_columns(
        &root.join("roi_index.csv"),
        &["name", "cdr_values"],
        |cells| {
            let values = cells[1]
                .split_whitespace()
                .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("'{}' is not a list of ratios", cells[1]))?;
            Ok(values.iter().sum::<f64>() / values.len() as f64)
        },
    )
}

/// The true disc centre `(row, column)` of each whole photograph, in the downsampled
/// photograph's pixels, from `root/full/full_index.csv` (columns `disc_cy`, `disc_cx`): what a
/// disc locator is scored against, never one of its inputs.
pub fn drishti_disc_centres(root: &Path) -> Result<HashMap<String, [f64; 2]>, DataError> {
    let path = root.join("full").join("full_index.csv");
    index_columns(&path, &["name", "disc_cy", "disc_cx"], |cells| {
        let number = |text: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("'{text}' is not a coordinate"))
        };
        Ok([number(cells[1])?, number(cells[2])?])
    })
}

/// One value per image of an index CSV: `parse` gets the cells of `columns` (the first is the
/// image name; a column matches the header cell it starts) and returns the value or why not.
fn index_columns<T>(
    path: &Path,
    columns: &[&str],
    parse: impl Fn(&[&str]) -> Result<T, String>,
) -> Result<HashMap<String, T>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let bad = |line: usize, reason: String| DataError::BadCsv {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad(1, "the file is empty".into()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let at = columns
        .iter()
        .map(|want| {
            names
                .iter()
                .position(|c| c.starts_with(want))
                .ok_or_else(|| bad(1, format!("no column '{want}' in the header '{header}'")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let mut out = HashMap::new();
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let cells = at
            .iter()
            .map(|&i| fields.get(i).copied())
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| {
                bad(
                    n,
                    format!("{} fields, the header has {}", fields.len(), names.len()),
                )
            })?;
        let value = parse(&cells).map_err(|reason| bad(n, reason))?;
        out.insert(cells[0].to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::rgb;
    use ::image::{GrayImage, ImageBuffer, Luma};
    use msnet::fsutil::scratch_dir as test_dir;
    use std::path::PathBuf;

    /// `train/` with 6 and `test/` with 3 pairs of 40×40, labels {0, 1, 2}.
    fn fixture() -> PathBuf {
        let root = test_dir("drishti");
        for (part, range) in [("train", 1..7), ("test", 7..10)] {
            std::fs::create_dir_all(root.join(part).join("images")).unwrap();
            std::fs::create_dir_all(root.join(part).join("labels")).unwrap();
            for i in range {
                let name = format!("drishtiGS_{i:03}.png");
                rgb(40, 40, i as u8)
                    .save(root.join(part).join("images").join(&name))
                    .unwrap();
                let lab: GrayImage = ImageBuffer::from_fn(40, 40, |x, _| Luma([(x / 14) as u8]));
                lab.save(root.join(part).join("labels").join(&name))
                    .unwrap();
            }
        }
        root
    }

    fn opts(root: &Path, train_size: usize) -> LoadOptions {
        LoadOptions {
            kind: DatasetKind::Drishti,
            root: root.to_path_buf(),
            train_size,
            seed: 3,
            size: Some([1, 16, 16]),
            folder: None,
            test_names: None,
        }
    }

    #[test]
    fn drishti_official_split_and_resize() {
        let root = fixture();
        let d = load(&opts(&root, 4), true).unwrap();
        assert_eq!(
            d.split.test,
            ["drishtiGS_007", "drishtiGS_008", "drishtiGS_009"]
        );
        assert_eq!(d.train.len(), 4);
        assert!(d.split.train.iter().all(|n| n.as_str() < "drishtiGS_007"));
        let s = &d.train[0];
        assert_eq!(
            (s.channels, s.shape, s.image.len()),
            (3, [1, 16, 16], 3 * 256)
        );
        assert!(s.labels.iter().all(|&l| l <= 2));
        assert_eq!((s.labels[0], s.labels[15]), (0, 2));
        let e = load(&opts(&root, 7), true).unwrap_err().to_string();
        assert!(e.contains("6 training images"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_photographs_merge_rim_and_cup_into_the_disc() {
        let root = fixture();
        let o = LoadOptions {
            kind: DatasetKind::DrishtiFull,
            ..opts(&root, 2)
        };
        let d = load(&o, true).unwrap();
        assert_eq!(d.class_names, ["background", "disc"]);
        let s = &d.train[0];
        assert_eq!((s.labels[0], s.labels[8], s.labels[15]), (0, 1, 1));
        assert!(s.labels.iter().all(|&l| l <= 1));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn drishti_rejects_unknown_label_values() {
        let root = fixture();
        let lab: GrayImage = ImageBuffer::from_pixel(40, 40, Luma([255]));
        lab.save(root.join("test/labels/drishtiGS_008.png"))
            .unwrap();
        let e = load(&opts(&root, 1), true).unwrap_err();
        assert!(
            matches!(e, DataError::UnknownMaskValue { value: 255, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("drishtiGS_008.png"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_cup_is_the_last_of_the_crops_classes() {
        let dc = disc_cup();
        assert_eq!(dc.cup(), 2);
        assert_eq!(dc.disc_labels(), 1..=2);
        assert_eq!(
            class_names(DatasetKind::Drishti, None),
            ["background", "disc rim", "cup"]
        );
        assert_eq!(crate::disc_cup(DatasetKind::Drishti), Some(dc));
        for other in [
            DatasetKind::DrishtiFull,
            DatasetKind::Wbc,
            DatasetKind::Acdc,
        ] {
            assert_eq!(crate::disc_cup(other), None, "{other}");
        }
    }

    #[test]
    fn the_photographs_truth_keeps_rim_and_cup_apart_at_full_size() {
        let root = fixture();
        let dir = root.join("full/test/labels");
        std::fs::create_dir_all(&dir).unwrap();
        let e = photograph_test_labels(&root).unwrap_err();
        assert!(matches!(e, DataError::NoImages { .. }), "{e:?}");
        for name in ["drishtiGS_010", "drishtiGS_009"] {
            let lab: GrayImage = ImageBuffer::from_fn(44, 30, |x, _| Luma([(x / 15) as u8]));
            lab.save(dir.join(format!("{name}.png"))).unwrap();
        }
        let files = photograph_test_labels(&root).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["drishtiGS_009", "drishtiGS_010"]);
        let (hw, labels) = read_photograph_labels(&files[0].1).unwrap();
        assert_eq!(hw, [30, 44]);
        assert_eq!((labels[0], labels[15], labels[43]), (0, 1, 2));
        let bad: GrayImage = ImageBuffer::from_pixel(4, 4, Luma([3]));
        bad.save(&files[1].1).unwrap();
        let e = read_photograph_labels(&files[1].1).unwrap_err();
        assert!(
            matches!(e, DataError::UnknownMaskValue { value: 3, .. }),
            "{e:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn expert_cdr_is_the_mean_of_the_four_values() {
        let root = test_dir("cdr");
        std::fs::write(
            root.join("roi_index.csv"),
            "split,name,crop_size,cdr_values_4_experts\n\
             train,drishtiGS_002,800,0.76 0.77 0.79 0.75\n\
             test,drishtiGS_003,800,0.5 0.6 0.7 0.8\n",
        )
        .unwrap();
        let cdr = drishti_expert_cdr(&root).unwrap();
        assert_eq!(cdr.len(), 2);
        assert!((cdr["drishtiGS_002"] - 0.7675).abs() < 1e-12);
        assert!((cdr["drishtiGS_003"] - 0.65).abs() < 1e-12);
        std::fs::write(
            root.join("roi_index.csv"),
            "split,name,cdr_values\ntrain,x,0.5 abc\n",
        )
        .unwrap();
        let e = drishti_expert_cdr(&root).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("abc"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn disc_centres_come_from_the_full_index() {
        let root = test_dir("centres");
        std::fs::create_dir_all(root.join("full")).unwrap();
        let index = root.join("full").join("full_index.csv");
        std::fs::write(
            &index,
            "split,name,orig_h,orig_w,h,w,disc_cy,disc_cx,disc_h,disc_w\n\
             test,drishtiGS_001,1759,2049,439,512,213.2,325.8,92,87\n",
        )
        .unwrap();
        let centres = drishti_disc_centres(&root).unwrap();
        assert_eq!(centres["drishtiGS_001"], [213.2, 325.8]);
        std::fs::write(&index, "split,name,disc_cy\ntest,x,1\n").unwrap();
        let e = drishti_disc_centres(&root).unwrap_err().to_string();
        assert!(e.contains("disc_cx") && e.contains("full_index.csv"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

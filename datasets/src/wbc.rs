//! WBC Dataset 1 (Zheng et al., Micron 2018): `images/NNN.bmp` (RGB) + `masks/NNN.png` (gray).
//!
//! - Classes: mask value 0 → background (0, red cells included), 128 → cytoplasm (1),
//!   255 → nucleus (2); any other value is [`DataError::UnknownMaskValue`].
//! - Size: as in the paper, every pair is brought to 112×112 (or the requested `[1, H, W]`)
//!   without resampling: centre-cropped or padded ([`InputFit::CropOrPad`], the rule a WBC
//!   model's images follow on the device too).
//! - Split: [`split::seeded_split`] with a test set of [`TEST_COUNT`] images: shuffle the sorted
//!   names with `ChaCha8Rng::seed_from_u64(seed)`, the first 20 are the test set, the next
//!   `train_size` the training set. The test set depends only on the seed.

use std::collections::HashMap;

use msnet_io::fit::InputFit;

use super::{
    DataError, Dataset, DatasetKind, LoadOptions, Pair, Sample, ValueMap, assemble, check_2d_size,
    class_names, default_size, list_pairs, read_pair, split, split_request,
};

/// Size of the seeded test set.
pub const TEST_COUNT: usize = 20;

/// `(mask value, class index)`.
pub const MASK_VALUES: [(u8, u8); 3] = [(0, 0), (128, 1), (255, 2)];

/// Loads the WBC dataset (see the module docs).
pub(crate) fn load(opts: &LoadOptions, with_train: bool) -> Result<Dataset, DataError> {
    let kind = DatasetKind::Wbc;
    let size = opts.size.unwrap_or(default_size(kind));
    let to_hw = check_2d_size(kind, size)?;
    let pairs = list_pairs(&opts.root.join("images"), &opts.root.join("masks"))?;
    let names: Vec<String> = pairs.iter().map(|p| p.name.clone()).collect();
    let split = split::seeded_split(&names, TEST_COUNT, &split_request(opts, with_train))?;
    let by_name: HashMap<String, Pair> = pairs.into_iter().map(|p| (p.name.clone(), p)).collect();
    let map = ValueMap::new(&MASK_VALUES);
    assemble(
        kind,
        class_names(kind, None),
        size,
        split,
        &by_name,
        |p| p.image.clone(),
        |p: &Pair| load_sample(p, to_hw, &map),
    )
}

/// Reads one pair, maps its labels and crops / pads it to `to_hw`.
fn load_sample(pair: &Pair, to_hw: [usize; 2], map: &ValueMap) -> Result<Sample, DataError> {
    let (channels, hw, image, labels) = read_pair(pair, map)?;
    let fit = InputFit::CropOrPad;
    let (image, labels) = (
        fit.image(&image, channels, hw, to_hw),
        fit.labels(&labels, hw, to_hw),
    );
    Ok(Sample {
        name: pair.name.clone(),
        channels,
        shape: [1, to_hw[0], to_hw[1]],
        image,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{mask, write_pairs};
    use crate::load_test;
    use msnet::fsutil::scratch_dir as test_dir;
    use std::path::Path;

    fn opts(root: &Path, train_size: usize, seed: u64) -> LoadOptions {
        LoadOptions {
            kind: DatasetKind::Wbc,
            root: root.to_path_buf(),
            train_size,
            seed,
            size: None,
            folder: None,
            test_names: None,
        }
    }

    /// 25 pairs: 15 of 120×120, 10 of 100×100 (BMP images, PNG masks 0/128/255).
    fn fixture() -> std::path::PathBuf {
        let root = test_dir("wbc");
        let sizes: Vec<(u32, u32)> = (0..25)
            .map(|i| if i < 15 { (120, 120) } else { (100, 100) })
            .collect();
        write_pairs(&root, &sizes, "bmp", [0, 128, 255]);
        root
    }

    #[test]
    fn wbc_split_sizes_seed_and_independence_from_train_size() {
        let root = fixture();
        let a = load(&opts(&root, 2, 5), true).unwrap();
        let b = load(&opts(&root, 5, 5), true).unwrap();
        assert_eq!((a.test.len(), a.train.len(), b.train.len()), (20, 2, 5));
        assert_eq!(
            a.split.test, b.split.test,
            "test set must not depend on train_size"
        );
        assert_eq!(a.split.train[..], b.split.train[..2]);
        assert_eq!(
            load(&opts(&root, 2, 5), true).unwrap().split,
            a.split,
            "deterministic"
        );
        assert_ne!(load(&opts(&root, 2, 6), true).unwrap().split, a.split);
        assert_eq!((a.channels, a.shape), (3, [1, 112, 112]));
        assert_eq!(a.class_names, ["background", "cytoplasm", "nucleus"]);
        let e = load(&opts(&root, 6, 5), true).unwrap_err().to_string();
        assert!(e.contains("train_size 6") && e.contains("5 images"), "{e}");
        let e = load(&opts(&root, 0, 5), true).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        // Evaluation: only the test set, train_size ignored.
        let t = load_test(&opts(&root, 0, 5)).unwrap();
        assert_eq!(
            (t.split.test.clone(), t.train.len()),
            (a.split.test.clone(), 0)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wbc_crop_pad_to_112_and_labels_mapped() {
        let root = fixture();
        let d = load(&opts(&root, 5, 1), true).unwrap();
        for s in d.test.iter().chain(&d.train) {
            assert_eq!(s.shape, [1, 112, 112]);
            assert_eq!((s.image.len(), s.labels.len()), (3 * 112 * 112, 112 * 112));
            let mut count = [0usize; 3];
            for &l in &s.labels {
                count[usize::from(l)] += 1; // panics if a label is not 0..=2
            }
            assert!(count.iter().all(|&c| c > 0), "{}: {count:?}", s.name);
            let idx: usize = s.name.parse().unwrap();
            let plane = 112 * 112;
            if idx <= 15 {
                // 120 → 112: crop 4 on each side; the red channel encodes x, so pixel (0,0) is x=4.
                assert_eq!(s.image[0], 4.0 / 255.0, "{}", s.name);
                assert_eq!(s.image[plane], 4.0 / 255.0, "green encodes y");
            } else {
                // 100 → 112: pad 6 by edge replication; labels are background in the border.
                assert_eq!(s.image[0], 0.0);
                assert_eq!(s.image[6], 0.0);
                assert_eq!(s.image[7], 1.0 / 255.0);
                assert_eq!(s.image[111], 99.0 / 255.0, "right edge replicated");
                assert!(s.labels[..6 * 112].iter().all(|&l| l == 0));
            }
            // The nucleus disc sits at the centre of the 112×112 result.
            assert_eq!(s.labels[56 * 112 + 56], 2);
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wbc_unknown_mask_value_names_file_and_value() {
        let root = fixture();
        mask(120, 120, 0, 7, 255)
            .save(root.join("masks/004.png"))
            .unwrap();
        let mut o = opts(&root, 5, 0);
        o.test_names = Some(vec!["004".into()]);
        let e = load(&o, true).unwrap_err();
        assert!(
            matches!(e, DataError::UnknownMaskValue { value: 7, .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("004.png") && msg.contains(" 7 "), "{msg}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wbc_size_mismatch_and_truncated_png_name_the_files() {
        let root = fixture();
        mask(100, 90, 0, 128, 255)
            .save(root.join("masks/002.png"))
            .unwrap();
        let mut o = opts(&root, 0, 0);
        o.test_names = Some(vec!["002".into()]);
        let e = load(&o, true).unwrap_err();
        assert!(matches!(e, DataError::SizeMismatch { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("images/002.bmp") && msg.contains("masks/002.png"),
            "{msg}"
        );
        assert!(msg.contains("120×120") && msg.contains("100×90"), "{msg}");

        let png = root.join("masks/003.png");
        let bytes = std::fs::read(&png).unwrap();
        std::fs::write(&png, &bytes[..bytes.len() / 2]).unwrap();
        o.test_names = Some(vec!["003".into()]);
        let e = load(&o, true).unwrap_err();
        assert!(matches!(e, DataError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("masks/003.png"), "{e}");

        std::fs::remove_file(root.join("masks/005.png")).unwrap();
        let e = load(&o, true).unwrap_err();
        assert!(matches!(e, DataError::MissingMask { .. }), "{e:?}");
        assert!(e.to_string().contains("005"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

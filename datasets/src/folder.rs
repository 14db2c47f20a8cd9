//! A user dataset: `root/images/*` and `root/masks/*` (PNG, BMP, JPEG or TIFF) matched by file
//! stem, with a [`FolderSpec`] mapping mask values to classes.
//!
//! - Classes: mask value `classes[i].0` → class `i`; any other value is
//!   [`DataError::UnknownMaskValue`].
//! - Size: every pair is resized to `size` (default `[1, 128, 128]`): bilinear with half-pixel
//!   centres for the image, nearest for the mask. Aspect ratio is not preserved.
//! - Channels: those of the first loaded image (test set first); any image that differs is
//!   [`DataError::ChannelMismatch`] naming the file.
//! - Split: [`split::seeded_split`] with `test_count` test images: shuffle the sorted names with
//!   `ChaCha8Rng::seed_from_u64(seed)`, the first `test_count` are the test set, the next
//!   `train_size` the training set.

use std::collections::HashMap;

use super::{
    DataError, Dataset, DatasetKind, FolderSpec, LoadOptions, Pair, ValueMap, assemble,
    check_2d_size, default_size, list_pairs, load_resized, split, split_request,
};

/// Loads a user folder (see the module docs).
pub(crate) fn load(opts: &LoadOptions, with_train: bool) -> Result<Dataset, DataError> {
    let kind = DatasetKind::Folder;
    let spec = opts
        .folder
        .as_ref()
        .ok_or_else(|| DataError::BadFolderSpec {
            reason: "the folder dataset needs a class mapping such as \"0=background,255=cell\""
                .into(),
        })?;
    let size = opts.size.unwrap_or(default_size(kind));
    let to_hw = check_2d_size(kind, size)?;
    let pairs = list_pairs(&opts.root.join("images"), &opts.root.join("masks"))?;
    let names: Vec<String> = pairs.iter().map(|p| p.name.clone()).collect();
    let split = split::seeded_split(&names, spec.test_count, &split_request(opts, with_train))?;
    let by_name: HashMap<String, Pair> = pairs.into_iter().map(|p| (p.name.clone(), p)).collect();
    let map = value_map(spec)?;
    assemble(
        kind,
        spec.class_names(),
        size,
        split,
        &by_name,
        |p| p.image.clone(),
        |p: &Pair| load_resized(p, to_hw, &map),
    )
}

/// The value map of a spec (class index = position in the list).
fn value_map(spec: &FolderSpec) -> Result<ValueMap, DataError> {
    let pairs = spec
        .classes
        .iter()
        .enumerate()
        .map(|(i, (v, _))| u8::try_from(i).map(|i| (*v, i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| DataError::BadFolderSpec {
            reason: format!("{} classes; at most 256 fit a u8 label", spec.classes.len()),
        })?;
    if pairs.len() < 2 {
        return Err(DataError::BadFolderSpec {
            reason: "at least two classes are needed".into(),
        });
    }
    // The spec may be built directly (not through `FolderSpec::parse`): a repeated value would
    // silently map to the later class.
    if let Some((i, (v, _))) = spec
        .classes
        .iter()
        .enumerate()
        .find(|(i, (v, _))| spec.classes[..*i].iter().any(|(w, _)| w == v))
    {
        return Err(DataError::BadFolderSpec {
            reason: format!("mask value {v} is given twice (class {i} repeats it)"),
        });
    }
    Ok(ValueMap::new(&pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::write_pairs;
    use ::image::{GrayImage, ImageBuffer, Luma};
    use msnet::fsutil::scratch_dir as test_dir;
    use std::path::Path;

    fn opts(root: &Path, spec: &str, test_count: usize) -> LoadOptions {
        LoadOptions {
            kind: DatasetKind::Folder,
            root: root.to_path_buf(),
            train_size: 3,
            seed: 9,
            size: Some([1, 32, 24]),
            folder: Some(FolderSpec::parse(spec, test_count).unwrap()),
            test_names: None,
        }
    }

    #[test]
    fn folder_maps_values_resizes_and_splits() {
        let root = test_dir("folder");
        write_pairs(&root, &[(50, 60); 8], "png", [10, 20, 30]);
        let d = crate::load(&opts(&root, "10=bg,20=ring,30=core", 4)).unwrap();
        assert_eq!((d.test.len(), d.train.len()), (4, 3));
        assert_eq!((d.channels, d.shape), (3, [1, 32, 24]));
        assert_eq!(d.class_names, ["bg", "ring", "core"]);
        for s in d.test.iter().chain(&d.train) {
            assert_eq!((s.image.len(), s.labels.len()), (3 * 32 * 24, 32 * 24));
            assert!(s.labels.contains(&2) && s.labels.iter().all(|&l| l <= 2));
        }
        // A value outside the mapping is refused, naming the file and the value.
        let e = crate::load(&opts(&root, "10=bg,20=ring", 4)).unwrap_err();
        assert!(
            matches!(e, DataError::UnknownMaskValue { value: 30, .. }),
            "{e:?}"
        );
        // A spec built by hand with a repeated value is refused.
        let mut o = opts(&root, "10=bg,20=ring,30=core", 4);
        o.folder.as_mut().unwrap().classes[2].0 = 10;
        let e = crate::load(&o).unwrap_err().to_string();
        assert!(e.contains("mask value 10 is given twice"), "{e}");
        // No spec → a clear error.
        let mut o = opts(&root, "10=bg,20=ring", 4);
        o.folder = None;
        let e = crate::load(&o).unwrap_err().to_string();
        assert!(e.contains("class mapping"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn folder_channel_mismatch_names_the_file() {
        let root = test_dir("folder-ch");
        write_pairs(&root, &[(20, 20); 6], "png", [0, 1, 2]);
        let gray: GrayImage = ImageBuffer::from_pixel(20, 20, Luma([9]));
        let names = crate::load(&opts(&root, "0=a,1=b,2=c", 3)).unwrap().split;
        // Replace one training image with a gray one.
        let odd = &names.train[0];
        gray.save(root.join("images").join(format!("{odd}.png")))
            .unwrap();
        let e = crate::load(&opts(&root, "0=a,1=b,2=c", 3)).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::ChannelMismatch {
                    expected: 3,
                    got: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(&format!("{odd}.png")), "{e}");
        let e = crate::load(&opts(&root.join("nope"), "0=a,1=b", 3)).unwrap_err();
        assert!(matches!(e, DataError::MissingData { .. }), "{e:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

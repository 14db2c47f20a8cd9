//! ACDC cardiac cine-MRI subset: `images/patientNNN_frameMM.nii.gz` (float32 in [0, 1]) and
//! `labels/patientNNN_frameMM.nii.gz` (uint8: 0 background, 1 right ventricle, 2 myocardium,
//! 3 left ventricle), read as `[D, H, W]`.
//!
//! Geometry (sizes `[16, 256, 256]`, `[16, 128, 128]` or `[16, 64, 64]`):
//! 1. Each volume is placed in a 16×256×256 canvas ([`CANVAS`]) **centred on the heart**: the
//!    centre of the labels' foreground bounding box (in depth and in-plane) goes to the canvas
//!    centre. That shift is then limited, per axis, so that a volume smaller than the canvas is
//!    never cropped and a larger one leaves no padding: cropping happens only along axes where
//!    the volume is larger than the canvas, and never cuts the heart when its bounding box fits
//!    the canvas. Image padding is 0, label padding is background 0. A volume without
//!    foreground is centred as a whole.
//!    - A heart **deeper** than the canvas (patient081 of acdc_subset has labels on all of its
//!      17 slices) keeps the 16 consecutive slices holding the most foreground voxels (ties: the
//!      most central window); the dropped end slice is an apex or base slice with few voxels.
//!      Refusing such volumes would make whole seeds unusable.
//!    - A heart **wider or taller** than the canvas (over 256 voxels in-plane) means the data
//!      is not what this loader expects; it is refused with [`DataError::DoesNotFit`].
//! 2. For 128: in-plane halving, 2×2 averaging for the image and the top-left voxel of each
//!    2×2 block for the labels (no new label values, no blurring of boundaries). For 64: the
//!    same halving twice (a 4×4 mean and the top-left label), about 6 mm per voxel in-plane:
//!    coarse, but a quarter of the 128 cost, which is what lets 3D training fit 2 CPU cores.
//!
//! Split: by patient ([`split::patient_split`]): 10 test patients (20 volumes) by seed; the
//! training volumes come from the other patients, one frame per patient before any second one.

use msnet_io::nifti::volume_name;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{
    DataError, Dataset, DatasetKind, LoadOptions, Sample, ValueMap, assemble, class_names,
    default_size, split, split_request,
};
use msnet_io::{read_volume_f32, read_volume_u8};

/// Patients in the seeded test set.
pub const TEST_PATIENTS: usize = 10;

/// The canvas `[D, H, W]` every volume is placed in before any downsampling.
pub const CANVAS: [usize; 3] = [16, 256, 256];

/// How far an intensity may stray outside [0, 1] (float rounding in the source) before the
/// volume is refused; values within it are clamped.
const RANGE_SLACK: f32 = 1e-4;

/// An image volume and its label volume.
#[derive(Clone, Debug)]
struct VolumePair {
    name: String,
    image: PathBuf,
    labels: PathBuf,
}

/// Loads the ACDC subset (see the module docs).
pub(crate) fn load(opts: &LoadOptions, with_train: bool) -> Result<Dataset, DataError> {
    let kind = DatasetKind::Acdc;
    let size = opts.size.unwrap_or(default_size(kind));
    let halvings = check_size(size)?;
    let pairs = list_volumes(&opts.root)?;
    let names: Vec<String> = pairs.iter().map(|p| p.name.clone()).collect();
    let split = split::patient_split(&names, TEST_PATIENTS, &split_request(opts, with_train))?;
    let by_name: HashMap<String, VolumePair> =
        pairs.into_iter().map(|p| (p.name.clone(), p)).collect();
    assemble(
        kind,
        class_names(kind, None),
        size,
        split,
        &by_name,
        |p| p.image.clone(),
        |p: &VolumePair| load_sample(p, halvings),
    )
}

/// Accepts `[16, 256/k, 256/k]` for k in {1, 2, 4}; returns how many in-plane halvings.
fn check_size(size: [usize; 3]) -> Result<usize, DataError> {
    match size {
        [16, 256, 256] => Ok(0),
        [16, 128, 128] => Ok(1),
        [16, 64, 64] => Ok(2),
        _ => Err(DataError::BadSize {
            kind: DatasetKind::Acdc,
            size,
            reason: "use [16, 256, 256], [16, 128, 128] or [16, 64, 64] (a 16×256×256 canvas, optionally halved in-plane once or twice)"
                .into(),
        }),
    }
}

/// Lists `images/*.nii[.gz]` with their `labels/` counterparts, sorted by name.
fn list_volumes(root: &Path) -> Result<Vec<VolumePair>, DataError> {
    let (images, labels) = (root.join("images"), root.join("labels"));
    let entries = std::fs::read_dir(&images).map_err(|_| DataError::NoImages {
        path: images.clone(),
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::Unreadable {
            path: images.clone(),
            reason: e.to_string(),
        })?;
        let file = entry.file_name().to_string_lossy().to_string();
        let Some(name) = volume_name(&file).filter(|n| !n.starts_with('.')) else {
            continue;
        };
        let label = ["nii.gz", "nii"]
            .iter()
            .map(|ext| labels.join(format!("{name}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::MissingMask {
                image: entry.path(),
                expected: labels.join(format!("{name}.nii.gz")),
            })?;
        out.push(VolumePair {
            name: name.to_string(),
            image: entry.path(),
            labels: label,
        });
    }
    if out.is_empty() {
        return Err(DataError::NoImages { path: images });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads one volume pair and brings it to the canvas, then halves it in-plane `halvings` times.
fn load_sample(pair: &VolumePair, halvings: usize) -> Result<Sample, DataError> {
    let (shape, mut image) = read_volume_f32(&pair.image)?;
    let (label_shape, raw_labels) = read_volume_u8(&pair.labels)?;
    if shape != label_shape {
        let fmt = |[d, h, w]: [usize; 3]| format!("{w}×{h}×{d}");
        return Err(DataError::SizeMismatch {
            image: pair.image.clone(),
            mask: pair.labels.clone(),
            image_size: fmt(shape),
            mask_size: fmt(label_shape),
        });
    }
    check_intensities(&pair.image, &mut image)?;
    let labels =
        ValueMap::new(&[(0, 0), (1, 1), (2, 2), (3, 3)]).apply(&pair.labels, &raw_labels)?;
    let (image, labels) = place_in_canvas(&pair.labels, shape, &image, &labels, CANVAS)?;
    let (mut shape, mut image, mut labels) = (CANVAS, image, labels);
    for _ in 0..halvings {
        (shape, image, labels) = halve_in_plane(shape, &image, &labels);
    }
    Ok(Sample {
        name: pair.name.clone(),
        channels: 1,
        shape,
        image,
        labels,
    })
}

/// Refuses non-finite or out-of-range intensities (the data is min-max normalised to [0, 1]);
/// clamps values within [`RANGE_SLACK`] of the range.
fn check_intensities(path: &Path, image: &mut [f32]) -> Result<(), DataError> {
    let range = -RANGE_SLACK..=1.0 + RANGE_SLACK;
    if let Some((i, v)) = image.iter().enumerate().find(|(_, v)| !range.contains(*v)) {
        return Err(DataError::BadNifti {
            path: path.to_path_buf(),
            reason: format!("voxel {i} has intensity {v}; expected values in [0, 1]"),
        });
    }
    image.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    Ok(())
}

/// Inclusive `(lo, hi)` of the foreground (`label > 0`) along each axis of `[D, H, W]`.
fn foreground_box(shape: [usize; 3], labels: &[u8]) -> Option<[(usize, usize); 3]> {
    let [_, h, w] = shape;
    let mut bbox: Option<[(usize, usize); 3]> = None;
    for (i, _) in labels.iter().enumerate().filter(|(_, l)| **l > 0) {
        let at = [i / (h * w), i / w % h, i % w];
        let b = bbox.get_or_insert([(at[0], at[0]), (at[1], at[1]), (at[2], at[2])]);
        for (axis, &x) in at.iter().enumerate() {
            b[axis].0 = b[axis].0.min(x);
            b[axis].1 = b[axis].1.max(x);
        }
    }
    bbox
}

/// The shift `canvas index − volume index` along one axis: puts the centre of `[lo, hi]` at the
/// canvas centre, limited so that a volume that fits is not cropped, one that does not fit
/// leaves no padding, and `[lo, hi]` stays inside. `None` if `[lo, hi]` is longer than the canvas.
fn axis_offset(n: usize, canvas: usize, lo: usize, hi: usize) -> Option<isize> {
    let (n, c, lo, hi) = (n as isize, canvas as isize, lo as isize, hi as isize);
    // Rounding the centre up makes an extent of exactly `canvas` land on [0, canvas).
    let ideal = c / 2 - (lo + hi + 1) / 2;
    let (mut min, mut max) = if n <= c { (0, c - n) } else { (c - n, 0) };
    min = min.max(-lo);
    max = max.min(c - 1 - hi);
    (min <= max).then(|| ideal.clamp(min, max))
}

/// Places a `[D, H, W]` volume and its labels in a `canvas` (see the module docs).
/// `path` names the file in errors.
pub(crate) fn place_in_canvas(
    path: &Path,
    shape: [usize; 3],
    image: &[f32],
    labels: &[u8],
    canvas: [usize; 3],
) -> Result<(Vec<f32>, Vec<u8>), DataError> {
    let mut bbox = foreground_box(shape, labels).unwrap_or([
        (0, shape[0] - 1),
        (0, shape[1] - 1),
        (0, shape[2] - 1),
    ]);
    if bbox[0].1 - bbox[0].0 + 1 > canvas[0] {
        bbox[0] = best_depth_window(shape, labels, bbox[0], canvas[0]);
    }
    let mut offsets = [0isize; 3];
    for axis in 0..3 {
        let (lo, hi) = bbox[axis];
        offsets[axis] = axis_offset(shape[axis], canvas[axis], lo, hi).ok_or_else(|| {
            DataError::DoesNotFit {
                path: path.to_path_buf(),
                reason: format!(
                    "the labelled heart spans {} voxels along {} but the canvas has {}",
                    hi - lo + 1,
                    ["depth", "height", "width"][axis],
                    canvas[axis]
                ),
            }
        })?;
    }
    let [cd, ch, cw] = canvas;
    let mut out_image = vec![0.0f32; cd * ch * cw];
    let mut out_labels = vec![0u8; cd * ch * cw];
    // Copy row by row: for each canvas (z, y) inside the volume, the overlapping x range.
    let x0 = offsets[2].max(0) as usize;
    let x1 = (shape[2] as isize + offsets[2]).min(cw as isize).max(0) as usize;
    for z in 0..cd {
        let Some(sz) = source_index(z, offsets[0], shape[0]) else {
            continue;
        };
        for y in 0..ch {
            let Some(sy) = source_index(y, offsets[1], shape[1]) else {
                continue;
            };
            let src = (sz * shape[1] + sy) * shape[2];
            let sx0 = (x0 as isize - offsets[2]) as usize;
            let dst = (z * ch + y) * cw;
            if x1 > x0 {
                out_image[dst + x0..dst + x1].copy_from_slice(&image[src + sx0..][..x1 - x0]);
                out_labels[dst + x0..dst + x1].copy_from_slice(&labels[src + sx0..][..x1 - x0]);
            }
        }
    }
    Ok((out_image, out_labels))
}

/// The `depth` consecutive slices of `[lo, hi]` holding the most foreground voxels (ties: the
/// window whose centre is closest to the centre of `[lo, hi]`), as an inclusive range.
fn best_depth_window(
    shape: [usize; 3],
    labels: &[u8],
    (lo, hi): (usize, usize),
    depth: usize,
) -> (usize, usize) {
    let plane = shape[1] * shape[2];
    let counts: Vec<usize> = (lo..=hi)
        .map(|z| {
            labels[z * plane..][..plane]
                .iter()
                .filter(|&&l| l > 0)
                .count()
        })
        .collect();
    let centre = (lo + hi) as isize;
    let key = |start: usize| {
        let kept: usize = counts[start - lo..][..depth].iter().sum();
        let off_centre = (2 * start as isize + depth as isize - 1 - centre).abs();
        (kept, std::cmp::Reverse(off_centre))
    };
    let start = (lo..=hi + 1 - depth).max_by_key(|&s| key(s)).unwrap_or(lo);
    (start, start + depth - 1)
}

/// The volume index shown at canvas index `i`, if any.
fn source_index(i: usize, offset: isize, n: usize) -> Option<usize> {
    let s = i as isize - offset;
    (s >= 0 && s < n as isize).then_some(s as usize)
}

/// Halves H and W: 2×2 mean for the image, top-left voxel of each block for the labels.
pub(crate) fn halve_in_plane(
    shape: [usize; 3],
    image: &[f32],
    labels: &[u8],
) -> ([usize; 3], Vec<f32>, Vec<u8>) {
    let [d, h, w] = shape;
    let (oh, ow) = (h / 2, w / 2);
    let mut out_image = Vec::with_capacity(d * oh * ow);
    let mut out_labels = Vec::with_capacity(d * oh * ow);
    for z in 0..d {
        for y in 0..oh {
            let r0 = (z * h + 2 * y) * w;
            let r1 = r0 + w;
            for x in 0..ow {
                let sum = image[r0 + 2 * x]
                    + image[r0 + 2 * x + 1]
                    + image[r1 + 2 * x]
                    + image[r1 + 2 * x + 1];
                out_image.push(sum * 0.25);
                out_labels.push(labels[r0 + 2 * x]);
            }
        }
    }
    ([d, oh, ow], out_image, out_labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::fsutil::scratch_dir as test_dir;
    use msnet_io::{write_volume_f32, write_volume_u8};

    /// A `[d, h, w]` volume with a box "heart" of label 1..=3 over `[lo, hi]` per axis;
    /// the image is 0.5 inside the heart, 0.25 outside.
    fn synthetic(shape: [usize; 3], lo: [usize; 3], hi: [usize; 3]) -> (Vec<f32>, Vec<u8>) {
        let [d, h, w] = shape;
        let mut image = vec![0.25f32; d * h * w];
        let mut labels = vec![0u8; d * h * w];
        for z in lo[0]..=hi[0] {
            for y in lo[1]..=hi[1] {
                for x in lo[2]..=hi[2] {
                    let i = (z * h + y) * w + x;
                    labels[i] = 1 + ((x + y + z) % 3) as u8;
                    image[i] = 0.5;
                }
            }
        }
        (image, labels)
    }

    fn histogram(labels: &[u8]) -> [usize; 4] {
        let mut c = [0; 4];
        labels.iter().for_each(|&l| c[usize::from(l)] += 1);
        c
    }

    #[test]
    fn canvas_keeps_every_foreground_voxel_of_an_off_centre_heart() {
        // Taller than the canvas (300 rows) with the heart near the bottom edge, narrower
        // (200 cols) with the heart at the left, and 17 slices with the heart in the first ones.
        let shape = [17, 300, 200];
        let (image, labels) = synthetic(shape, [0, 240, 2], [11, 295, 60]);
        let (ci, cl) = place_in_canvas(Path::new("x"), shape, &image, &labels, CANVAS).unwrap();
        assert_eq!(cl.len(), 16 * 256 * 256);
        assert_eq!(
            histogram(&cl)[1..],
            histogram(&labels)[1..],
            "foreground voxels lost"
        );
        // Image voxels travel with their labels.
        assert!(cl.iter().zip(&ci).all(|(&l, &v)| (l > 0) == (v == 0.5)));
        // The 200-wide volume is not cropped in width: 200 columns of image are present.
        let row: Vec<f32> = ci[(8 * 256 + 128) * 256..][..256].to_vec();
        assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 200);
    }

    #[test]
    fn canvas_centres_the_heart_when_it_can() {
        let shape = [8, 256, 216];
        let (image, labels) = synthetic(shape, [2, 100, 90], [5, 140, 130]);
        let (_, cl) = place_in_canvas(Path::new("x"), shape, &image, &labels, CANVAS).unwrap();
        let b = foreground_box(CANVAS, &cl).unwrap();
        // Depth: 8 slices fit in 16 (offset range [0, 8]); centre 3.5 → 8 wants offset 4.
        assert_eq!(b[0], (6, 9));
        // Width: heart centre 110 → 128 wants offset 18, allowed range [0, 40].
        assert_eq!(b[2], (108, 148));
        // Height equals the canvas: offset 0 whatever the heart does.
        assert_eq!(b[1], (100, 140));
    }

    #[test]
    fn heart_larger_than_canvas_is_refused() {
        let shape = [4, 300, 20];
        let (image, labels) = synthetic(shape, [0, 10, 0], [3, 280, 5]);
        let e =
            place_in_canvas(Path::new("big.nii.gz"), shape, &image, &labels, CANVAS).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("big.nii.gz") && msg.contains("271") && msg.contains("height"),
            "{msg}"
        );
    }

    #[test]
    fn deep_heart_keeps_the_densest_slices() {
        // 18 slices, heart on all of them; the first two slices hold only one voxel each.
        let shape = [18, 20, 20];
        let (image, mut labels) = synthetic(shape, [0, 5, 5], [17, 14, 14]);
        for z in 0..2 {
            labels[z * 400..][..400].iter_mut().for_each(|l| *l = 0);
            labels[z * 400 + 105] = 1;
        }
        let (_, cl) = place_in_canvas(Path::new("x"), shape, &image, &labels, CANVAS).unwrap();
        let kept = cl.iter().filter(|&&l| l > 0).count();
        assert_eq!(kept, 16 * 100, "slices 2..=17 are kept whole");
        // Ties pick the central window: 18 equal slices keep slices 1..=16.
        let (_, labels) = synthetic(shape, [0, 5, 5], [17, 14, 14]);
        assert_eq!(best_depth_window(shape, &labels, (0, 17), 16), (1, 16));
    }

    #[test]
    fn axis_offset_edge_cases() {
        assert_eq!(axis_offset(256, 256, 0, 255), Some(0));
        assert_eq!(
            axis_offset(300, 256, 10, 265),
            Some(-10),
            "extent = canvas fits exactly"
        );
        assert_eq!(axis_offset(300, 256, 10, 266), None);
        assert_eq!(axis_offset(6, 16, 0, 5), Some(5));
    }

    #[test]
    fn halving_averages_image_and_keeps_top_left_label() {
        let image: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let labels: Vec<u8> = (0..16).map(|v| (v % 4) as u8).collect();
        let (shape, i, l) = halve_in_plane([1, 4, 4], &image, &labels);
        assert_eq!(shape, [1, 2, 2]);
        assert_eq!(i, vec![2.5, 4.5, 10.5, 12.5]);
        assert_eq!(l, vec![0, 2, 0, 2]);
    }

    /// 12 patients × 2 frames of small volumes with the heart in the middle.
    fn fixture() -> PathBuf {
        let root = test_dir("acdc");
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::create_dir_all(root.join("labels")).unwrap();
        for p in 1..=12 {
            for f in 1..=2 {
                let name = format!("patient{p:03}_frame{f:02}.nii.gz");
                let shape = [6 + p % 3, 40 + p, 36];
                let (image, labels) = synthetic(shape, [1, 10, 8], [4, 25, 20]);
                write_volume_f32(&root.join("images").join(&name), shape, &image).unwrap();
                write_volume_u8(&root.join("labels").join(&name), shape, &labels).unwrap();
            }
        }
        root
    }

    fn opts(root: &Path, train_size: usize, size: [usize; 3]) -> LoadOptions {
        LoadOptions {
            kind: DatasetKind::Acdc,
            root: root.to_path_buf(),
            train_size,
            seed: 0,
            size: Some(size),
            folder: None,
            test_names: None,
        }
    }

    #[test]
    fn acdc_loads_by_patient_at_every_size() {
        let root = fixture();
        let d = load(&opts(&root, 3, [16, 128, 128]), true).unwrap();
        assert_eq!((d.test.len(), d.train.len(), d.channels), (20, 3, 1));
        assert_eq!(d.class_names.len(), 4);
        let s = &d.train[0];
        assert_eq!(
            (s.shape, s.image.len(), s.labels.len()),
            ([16, 128, 128], 16 * 128 * 128, 16 * 128 * 128)
        );
        // 4 slices × 16 rows × 13 cols of heart → halved in-plane: 8 × 7 blocks per slice.
        assert_eq!(s.labels.iter().filter(|&&l| l > 0).count(), 4 * 8 * 7);
        let full = load(&opts(&root, 3, [16, 256, 256]), true).unwrap();
        assert_eq!(full.split, d.split);
        assert_eq!(
            full.train[0].labels.iter().filter(|&&l| l > 0).count(),
            4 * 16 * 13
        );
        let e = load(&opts(&root, 5, [16, 128, 128]), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train_size 5") && e.contains("4 volumes"), "{e}");
        // 64 is the 128 volume halved once more.
        let quarter = load(&opts(&root, 3, [16, 64, 64]), true).unwrap();
        let (shape, image, labels) = halve_in_plane([16, 128, 128], &s.image, &s.labels);
        let q = &quarter.train[0];
        assert_eq!(
            (q.shape, &q.image, &q.labels),
            ([16, 64, 64], &image, &labels)
        );
        assert_eq!(shape, [16, 64, 64]);
        let e = load(&opts(&root, 1, [16, 96, 96]), true).unwrap_err();
        assert!(matches!(e, DataError::BadSize { .. }), "{e:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn acdc_truncated_volume_is_an_error_naming_it() {
        let root = fixture();
        let p = root.join("images/patient003_frame01.nii.gz");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let mut o = opts(&root, 0, [16, 128, 128]);
        o.test_names = Some(vec!["patient003_frame01".into()]);
        let e = load(&o, true).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TruncatedNifti { .. } | DataError::BadNifti { .. }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("patient003_frame01.nii.gz"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

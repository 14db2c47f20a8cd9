//! Segmentation metrics: accuracy, IoU, Dice (DSC) and average surface distance (ASD).
//!
//! Volumes are label maps `&[u8]` of shape `[D, H, W]` (row-major, `D = 1` for 2D images) holding
//! class values `0..classes`. Every metric is computed per class, "class n against the rest", per
//! image; [`summarize`] then averages over a test set.
//!
//! Conventions (see the individual items for details):
//!
//! * A class absent from both prediction and truth scores IoU = DSC = 1 and ASD = 0 (perfect
//!   agreement).
//! * ASD is the *pooled* symmetric mean over both boundaries,
//!   `(Σ_{x∈∂X} d(x,∂Y) + Σ_{y∈∂Y} d(y,∂X)) / (|∂X| + |∂Y|)`, in voxel units (isotropic,
//!   Euclidean). This is **not** MedPy's `assd`, which is the mean of the two directed means; the
//!   two agree only when both boundaries have the same number of voxels.
//! * When exactly one of the two masks is empty (e.g. an empty prediction of a present class) ASD
//!   is undefined; we report the length of the volume's diagonal
//!   `sqrt((D-1)² + (H-1)² + (W-1)²)`, the largest distance possible in the volume.
//! * Boundaries use face connectivity (4 in 2D, 6 in 3D); outside the image counts as *not* part
//!   of the mask, so mask voxels on the image edge are boundary voxels.
//! * Distances come from an exact separable squared Euclidean distance transform
//!   (Felzenszwalb–Huttenlocher), not brute force.
//! * [`Summary`] reports the mean over all classes (background included) and over the
//!   foreground classes (index ≥ 1), since papers quote both.

use serde::{Deserialize, Serialize};

/// Per-class metrics of one image, or their average over several images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Pixel accuracy of the class against the rest: `(TP + TN) / (TP + TN + FP + FN)`.
    pub acc: f64,
    /// Intersection over union: `TP / (TP + FP + FN)`; 1 when the class is absent in both.
    pub iou: f64,
    /// Dice similarity coefficient: `2TP / (2TP + FP + FN)`; 1 when the class is absent in both.
    pub dsc: f64,
    /// Pooled symmetric average surface distance in voxels; see [`asd`].
    pub asd: f64,
}

impl ClassMetrics {
    /// All four numbers zero; the mean of an empty list.
    pub const ZERO: ClassMetrics = ClassMetrics {
        acc: 0.0,
        iou: 0.0,
        dsc: 0.0,
        asd: 0.0,
    };

    /// Field-wise arithmetic mean; [`ClassMetrics::ZERO`] for an empty iterator.
    pub fn mean<'a, I>(items: I) -> ClassMetrics
    where
        I: IntoIterator<Item = &'a ClassMetrics>,
    {
        let mut sum = ClassMetrics::ZERO;
        let mut count = 0usize;
        for m in items {
            sum.acc += m.acc;
            sum.iou += m.iou;
            sum.dsc += m.dsc;
            sum.asd += m.asd;
            count += 1;
        }
        if count == 0 {
            return ClassMetrics::ZERO;
        }
        let n = count as f64;
        ClassMetrics {
            acc: sum.acc / n,
            iou: sum.iou / n,
            dsc: sum.dsc / n,
            asd: sum.asd / n,
        }
    }
}

/// Metrics of one image: one entry per class, indexed by class value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageMetrics {
    /// Name of the image (usually its file stem).
    pub name: String,
    /// `classes[n]` holds the metrics of class `n` against the rest.
    pub classes: Vec<ClassMetrics>,
}

/// Invalid input to the metric functions.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A shape with a zero extent, or whose voxel count overflows `usize`.
    #[error("shape {shape:?} has no voxels or too many to count")]
    BadShape {
        /// The offending `[D, H, W]` shape.
        shape: [usize; 3],
    },
    /// A label map or mask whose length does not match the shape.
    #[error("{what} has {actual} voxels but shape {shape:?} needs {expected}")]
    Length {
        /// Which input: `"prediction"` or `"truth"`.
        what: &'static str,
        /// Its length.
        actual: usize,
        /// `D * H * W`.
        expected: usize,
        /// The `[D, H, W]` shape.
        shape: [usize; 3],
    },
    /// A label value `>= classes`.
    #[error(
        "{what} voxel {index} has class {value} but only {classes} classes (0..{classes}) exist"
    )]
    ClassOutOfRange {
        /// Which input: `"prediction"` or `"truth"`.
        what: &'static str,
        /// Flat index of the first offending voxel.
        index: usize,
        /// Its value.
        value: u8,
        /// The number of classes.
        classes: usize,
    },
    /// `classes == 0`.
    #[error("the number of classes must be at least 1, got 0")]
    NoClasses,
    /// One of the errors above, for a named image.
    #[error("image '{name}': {inner}")]
    InImage {
        /// Name of the image.
        name: String,
        /// What was wrong with it.
        inner: Box<MetricsError>,
    },
}

impl MetricsError {
    fn in_image(self, name: &str) -> MetricsError {
        MetricsError::InImage {
            name: name.to_owned(),
            inner: Box::new(self),
        }
    }
}

/// Number of voxels of a shape, or `None` when it overflows `usize`.
fn volume_len(shape: [usize; 3]) -> Option<usize> {
    shape[0].checked_mul(shape[1])?.checked_mul(shape[2])
}

/// Voxel count of a non-empty shape, or [`MetricsError::BadShape`].
fn checked_len(shape: [usize; 3]) -> Result<usize, MetricsError> {
    match volume_len(shape) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(MetricsError::BadShape { shape }),
    }
}

fn check_length(what: &'static str, actual: usize, shape: [usize; 3]) -> Result<(), MetricsError> {
    let expected = checked_len(shape)?;
    if actual == expected {
        Ok(())
    } else {
        Err(MetricsError::Length {
            what,
            actual,
            expected,
            shape,
        })
    }
}

fn check_classes(what: &'static str, labels: &[u8], classes: usize) -> Result<(), MetricsError> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &v)| usize::from(v) >= classes)
    {
        Some((index, &value)) => Err(MetricsError::ClassOutOfRange {
            what,
            index,
            value,
            classes,
        }),
        None => Ok(()),
    }
}

/// Length of the volume's diagonal, `sqrt((D-1)² + (H-1)² + (W-1)²)`: the largest distance
/// between two voxels, and the ASD reported when exactly one of the two masks is empty.
pub fn diagonal(shape: [usize; 3]) -> f64 {
    shape
        .iter()
        .map(|&n| {
            let e = n.saturating_sub(1) as f64;
            e * e
        })
        .sum::<f64>()
        .sqrt()
}

/// Computes the per-class metrics of one image.
///
/// `pred` and `truth` are label maps of shape `shape = [D, H, W]` with values in `0..classes`.
/// Entry `n` of the result compares class `n` against the rest. A class absent from both maps
/// gets IoU = DSC = 1 and ASD = 0; a class present in exactly one of them gets DSC = IoU = 0 and
/// ASD = [`diagonal`]`(shape)` (see [`asd`]).
///
/// # Errors
/// [`MetricsError::InImage`] naming the image, wrapping a bad shape, a length mismatch, a label
/// `>= classes`, or `classes == 0`.
pub fn image_metrics(
    name: &str,
    pred: &[u8],
    truth: &[u8],
    shape: [usize; 3],
    classes: usize,
) -> Result<ImageMetrics, MetricsError> {
    let check = || -> Result<(), MetricsError> {
        if classes == 0 {
            return Err(MetricsError::NoClasses);
        }
        check_length("prediction", pred.len(), shape)?;
        check_length("truth", truth.len(), shape)?;
        check_classes("prediction", pred, classes)?;
        check_classes("truth", truth, classes)
    };
    check().map_err(|e| e.in_image(name))?;
    let per_class = (0..classes)
        .map(|c| {
            // Classes beyond u8 cannot occur in the maps: absent in both.
            let c = u8::try_from(c).ok();
            let p: Vec<bool> = pred.iter().map(|&v| Some(v) == c).collect();
            let t: Vec<bool> = truth.iter().map(|&v| Some(v) == c).collect();
            mask_metrics(&p, &t, shape)
        })
        .collect();
    Ok(ImageMetrics {
        name: name.to_owned(),
        classes: per_class,
    })
}

/// The four metrics for a derived region: the union of the classes in `class_set` (e.g. the
/// optic disc = rim ∪ cup on fundus images), against the same union in the truth.
///
/// Label values are not checked against a class count; an empty `class_set` (or one whose
/// classes appear in neither map) scores as "absent in both": Acc = IoU = DSC = 1, ASD = 0.
///
/// # Errors
/// [`MetricsError::InImage`] naming the image, for a bad shape or a length mismatch.
pub fn union_metrics(
    name: &str,
    pred: &[u8],
    truth: &[u8],
    shape: [usize; 3],
    class_set: &[u8],
) -> Result<ClassMetrics, MetricsError> {
    let check = || -> Result<(), MetricsError> {
        check_length("prediction", pred.len(), shape)?;
        check_length("truth", truth.len(), shape)
    };
    check().map_err(|e| e.in_image(name))?;
    let p: Vec<bool> = pred.iter().map(|v| class_set.contains(v)).collect();
    let t: Vec<bool> = truth.iter().map(|v| class_set.contains(v)).collect();
    Ok(mask_metrics(&p, &t, shape))
}

/// Metrics of two binary masks of equal, checked length.
fn mask_metrics(pred: &[bool], truth: &[bool], shape: [usize; 3]) -> ClassMetrics {
    let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
    for (&p, &t) in pred.iter().zip(truth) {
        match (p, t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let (tp, fp, fn_, tn) = (tp as f64, fp as f64, fn_ as f64, tn as f64);
    let total = tp + fp + fn_ + tn;
    let ratio = |num: f64, den: f64| if den == 0.0 { 1.0 } else { num / den };
    ClassMetrics {
        acc: ratio(tp + tn, total),
        iou: ratio(tp, tp + fp + fn_),
        dsc: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
        asd: asd_unchecked(pred, truth, shape),
    }
}

/// Boundary of a binary mask of shape `[D, H, W]`, with face connectivity.
///
/// A mask voxel is a boundary voxel when one of its face neighbours (4 in 2D, 6 in 3D) is not in
/// the mask. Outside the image counts as *not* in the mask, so mask voxels on the image edge are
/// boundary voxels. Axes of extent 1 (the depth axis of a 2D image, `D = 1`) are not spatial
/// axes and are ignored, so a 2D image uses 4-connectivity.
///
/// Never panics: entries missing from a too-short `mask` read as outside, extra entries are
/// ignored, and the result always has `D * H * W` entries (none if that overflows).
pub fn boundary(mask: &[bool], shape: [usize; 3]) -> Vec<bool> {
    let Some(n) = volume_len(shape) else {
        return Vec::new();
    };
    let [d, h, w] = shape;
    let at = |i: usize| mask.get(i).copied().unwrap_or(false);
    // Does voxel `i` (coordinate `coord` on an axis of length `len`, index stride `stride`) have
    // a face neighbour outside the mask along that axis?
    let open = |i: usize, coord: usize, len: usize, stride: usize| {
        len > 1 && (coord == 0 || coord + 1 == len || !at(i - stride) || !at(i + stride))
    };
    let mut out = vec![false; n];
    let mut i = 0;
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                out[i] = at(i) && (open(i, x, w, 1) || open(i, y, h, w) || open(i, z, d, h * w));
                i += 1;
            }
        }
    }
    out
}

/// Squared Euclidean distance transform: for each voxel of the `[D, H, W]` volume, the squared
/// distance (in voxels) to the nearest voxel with `sites[i] == true`; `f64::INFINITY` everywhere
/// when there is no site.
///
/// Exact and separable (Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions"):
/// the 1D lower envelope of parabolas is applied along W, then H, then D, in `O(D·H·W)`.
/// Entries missing from a too-short `sites` count as non-sites.
pub fn squared_distance_transform(sites: &[bool], shape: [usize; 3]) -> Vec<f64> {
    let Some(n) = volume_len(shape) else {
        return Vec::new();
    };
    let mut g: Vec<f64> = (0..n)
        .map(|i| {
            if sites.get(i).copied().unwrap_or(false) {
                0.0
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let [d, h, w] = shape;
    let mut work = EdtWork::default();
    // Along W: starts of the D*H rows.
    work.transform_axis(&mut g, (0..d * h).map(|r| r * w), w, 1);
    // Along H: for each slice z and column x.
    work.transform_axis(
        &mut g,
        (0..d).flat_map(|z| (0..w).map(move |x| z * h * w + x)),
        h,
        w,
    );
    // Along D: for each (y, x).
    work.transform_axis(&mut g, 0..h * w, d, h * w);
    g
}

/// Scratch buffers of the 1D transform, reused across lines.
#[derive(Default)]
struct EdtWork {
    line: Vec<f64>,
    out: Vec<f64>,
    /// Sites (indices) of the parabolas in the lower envelope.
    v: Vec<usize>,
    /// Left end of each envelope parabola's interval.
    z: Vec<f64>,
}

impl EdtWork {
    /// Applies the 1D transform to every line of `len` entries `stride` apart starting at `starts`.
    fn transform_axis(
        &mut self,
        g: &mut [f64],
        starts: impl Iterator<Item = usize>,
        len: usize,
        stride: usize,
    ) {
        if len <= 1 {
            return; // the 1D transform of a single entry is the identity
        }
        for start in starts {
            self.line.clear();
            self.line.extend((0..len).map(|k| g[start + k * stride]));
            self.out.resize(len, 0.0);
            edt_1d(&self.line, &mut self.out, &mut self.v, &mut self.z);
            for (k, &value) in self.out.iter().enumerate() {
                g[start + k * stride] = value;
            }
        }
    }
}

/// 1D squared distance transform of the sampled function `f` (`INFINITY` = no site):
/// `out[q] = min_p ((q - p)² + f[p])`, via the lower envelope of parabolas rooted at the finite
/// entries of `f`.
fn edt_1d(f: &[f64], out: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    v.clear();
    z.clear();
    for (q, &fq) in f.iter().enumerate() {
        if !fq.is_finite() {
            continue;
        }
        let qf = q as f64;
        loop {
            let (Some(&p), Some(&zp)) = (v.last(), z.last()) else {
                v.push(q);
                z.push(f64::NEG_INFINITY);
                break;
            };
            let pf = p as f64;
            // Abscissa where the parabola of q starts to lie below that of p.
            let s = ((fq + qf * qf) - (f[p] + pf * pf)) / (2.0 * (qf - pf));
            if s <= zp {
                // The parabola of p is hidden: drop it and compare with the previous one.
                v.pop();
                z.pop();
            } else {
                v.push(q);
                z.push(s);
                break;
            }
        }
    }
    if v.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        let qf = q as f64;
        while k + 1 < v.len() && z[k + 1] < qf {
            k += 1;
        }
        let p = v[k];
        let dq = qf - p as f64;
        *o = dq * dq + f[p];
    }
}

/// Pooled symmetric average surface distance between two binary masks of shape `[D, H, W]`.
///
/// `ASD = (Σ_{x∈∂X} d(x, ∂Y) + Σ_{y∈∂Y} d(y, ∂X)) / (|∂X| + |∂Y|)` with `X = pred`, `Y = truth`,
/// `∂` the [`boundary`] (face connectivity, image edge counts as outside) and `d(x, ∂Y)` the
/// Euclidean distance in voxels from `x` to the nearest voxel of `∂Y` (0 on it). This pooled mean
/// is not MedPy's `assd` (the mean of the two directed means).
///
/// * Both masks empty: 0 (perfect agreement).
/// * Exactly one mask empty (e.g. an empty prediction of a present class): the distance is
///   undefined, and we return [`diagonal`]`(shape) = sqrt((D-1)² + (H-1)² + (W-1)²)`, the
///   largest distance possible in the volume. An empty prediction therefore costs the worst
///   possible ASD rather than being skipped.
///
/// Returns `f64::NAN` when the shape is empty or a mask's length differs from `D * H * W`; use
/// [`try_asd`] to get an error instead.
pub fn asd(pred: &[bool], truth: &[bool], shape: [usize; 3]) -> f64 {
    try_asd(pred, truth, shape).unwrap_or(f64::NAN)
}

/// [`asd`] with the lengths and shape checked.
///
/// # Errors
/// [`MetricsError::BadShape`] or [`MetricsError::Length`].
pub fn try_asd(pred: &[bool], truth: &[bool], shape: [usize; 3]) -> Result<f64, MetricsError> {
    check_length("prediction", pred.len(), shape)?;
    check_length("truth", truth.len(), shape)?;
    Ok(asd_unchecked(pred, truth, shape))
}

fn asd_unchecked(pred: &[bool], truth: &[bool], shape: [usize; 3]) -> f64 {
    let bx = boundary(pred, shape);
    let by = boundary(truth, shape);
    let nx = bx.iter().filter(|&&b| b).count();
    let ny = by.iter().filter(|&&b| b).count();
    match (nx, ny) {
        (0, 0) => 0.0,
        (0, _) | (_, 0) => diagonal(shape),
        _ => {
            let directed_sum = |from: &[bool], to: &[bool]| -> f64 {
                let dt = squared_distance_transform(to, shape);
                from.iter()
                    .zip(&dt)
                    .filter(|&(&b, _)| b)
                    .map(|(_, d2)| d2.sqrt())
                    .sum()
            };
            (directed_sum(&bx, &by) + directed_sum(&by, &bx)) / (nx + ny) as f64
        }
    }
}

/// Summary of a test set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Name of each class, index = class value.
    pub class_names: Vec<String>,
    /// Per-class mean over the images.
    pub classes: Vec<ClassMetrics>,
    /// Mean of `classes` over all classes, background included.
    pub mean_all: ClassMetrics,
    /// Mean of `classes` over the foreground classes (index >= 1).
    pub mean_foreground: ClassMetrics,
    /// The per-image metrics the summary was made from.
    pub images: Vec<ImageMetrics>,
}

/// Summarises a test set: per-class means over images, then the averages of those means over all
/// classes and over the foreground classes (index >= 1).
///
/// The number of classes is the larger of `class_names.len()` and the longest
/// [`ImageMetrics::classes`]; missing names become `"class N"`. A class mean is taken over the
/// images that have an entry for that class. Means over nothing (no images, or no foreground
/// class when there is a single class) are [`ClassMetrics::ZERO`].
pub fn summarize(class_names: &[String], images: Vec<ImageMetrics>) -> Summary {
    let k = images
        .iter()
        .map(|m| m.classes.len())
        .max()
        .unwrap_or(0)
        .max(class_names.len());
    let names: Vec<String> = (0..k)
        .map(|c| {
            class_names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"))
        })
        .collect();
    let classes: Vec<ClassMetrics> = (0..k)
        .map(|c| ClassMetrics::mean(images.iter().filter_map(|m| m.classes.get(c))))
        .collect();
    let mean_all = ClassMetrics::mean(&classes);
    let mean_foreground = ClassMetrics::mean(classes.iter().skip(1));
    Summary {
        class_names: names,
        classes,
        mean_all,
        mean_foreground,
        images,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_metrics(got: ClassMetrics, acc: f64, iou: f64, dsc: f64) {
        assert!(close(got.acc, acc), "acc {} != {acc}", got.acc);
        assert!(close(got.iou, iou), "iou {} != {iou}", got.iou);
        assert!(close(got.dsc, dsc), "dsc {} != {dsc}", got.dsc);
    }

    /// Deterministic linear congruential generator (Knuth's MMIX constants).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// A filled axis-aligned box in a 2D image of shape [1, h, w].
    fn rect(
        h: usize,
        w: usize,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
    ) -> Vec<bool> {
        (0..h * w)
            .map(|i| rows.contains(&(i / w)) && cols.contains(&(i % w)))
            .collect()
    }

    #[test]
    fn acc_iou_dsc_hand_computed_4x4_three_classes() {
        #[rustfmt::skip]
        let truth = [
            0, 0, 1, 1,
            0, 0, 1, 1,
            2, 2, 0, 0,
            2, 2, 0, 0,
        ];
        #[rustfmt::skip]
        let pred = [
            0, 0, 1, 1,
            0, 1, 1, 1,
            2, 2, 2, 0,
            0, 2, 0, 0,
        ];
        let m = image_metrics("tiny", &pred, &truth, [1, 4, 4], 3).expect("valid input");
        assert_eq!(m.name, "tiny");
        assert_eq!(m.classes.len(), 3);
        // Class 0: truth 8 px, pred 7 px; TP 6, FP 1 (3,0), FN 2 (1,1),(2,2), TN 7.
        assert_metrics(m.classes[0], 13.0 / 16.0, 6.0 / 9.0, 12.0 / 15.0);
        // Class 1: truth 4 px, pred 5 px; TP 4, FP 1 (1,1), FN 0, TN 11.
        assert_metrics(m.classes[1], 15.0 / 16.0, 4.0 / 5.0, 8.0 / 9.0);
        // Class 2: truth 4 px, pred 4 px; TP 3, FP 1 (2,2), FN 1 (3,0), TN 11.
        assert_metrics(m.classes[2], 14.0 / 16.0, 3.0 / 5.0, 6.0 / 8.0);
    }

    #[test]
    fn asd_identical_squares_is_zero() {
        let a = rect(12, 12, 3..8, 2..7);
        assert_eq!(asd(&a, &a, [1, 12, 12]), 0.0);
    }

    #[test]
    fn asd_of_squares_shifted_by_one_pixel_is_one_half() {
        // X = rows 2..=6, cols 2..=6; Y = rows 2..=6, cols 3..=7 (X shifted right by one).
        // Each 5x5 square has 16 boundary pixels (25 minus the 3x3 interior).
        // dX -> dY: left column of X (col 2, 5 px) is 1 from col 3 of dY        -> 5 * 1
        //           top/bottom rows of X at cols 3..=6 (8 px) lie on dY           -> 8 * 0
        //           right column of X at rows 3..=5 (3 px, col 6) is 1 from col 7 -> 3 * 1
        //           (the corners (2,6),(6,6) are counted in the top/bottom rows)  sum = 8
        // dY -> dX: by mirror symmetry also 8 (right column col 7: 5 px at 1; left column
        //           col 3, rows 3..=5: 3 px at 1 from col 2).
        // Pooled mean: (8 + 8) / (16 + 16) = 0.5 exactly.
        let shape = [1, 12, 12];
        let x = rect(12, 12, 2..7, 2..7);
        let y = rect(12, 12, 2..7, 3..8);
        assert_eq!(boundary(&x, shape).iter().filter(|&&b| b).count(), 16);
        assert_eq!(asd(&x, &y, shape), 0.5);
        assert_eq!(asd(&y, &x, shape), 0.5);
    }

    fn brute_force_edt(sites: &[bool], shape: [usize; 3]) -> Vec<f64> {
        let [d, h, w] = shape;
        let coords = |i: usize| ((i / (h * w)) as f64, ((i / w) % h) as f64, (i % w) as f64);
        (0..d * h * w)
            .map(|i| {
                let (z, y, x) = coords(i);
                sites
                    .iter()
                    .enumerate()
                    .filter(|&(_, &s)| s)
                    .map(|(j, _)| {
                        let (zj, yj, xj) = coords(j);
                        (z - zj).powi(2) + (y - yj).powi(2) + (x - xj).powi(2)
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn edt_matches_brute_force_on_random_3d_masks() {
        let mut rng = Lcg(0x5eed);
        for (shape, per_mille) in [
            ([5, 7, 9], 30),
            ([4, 11, 6], 5),
            ([1, 13, 17], 80),
            ([9, 1, 8], 200),
            ([6, 6, 6], 1),
        ] {
            let n = shape.iter().product();
            let sites: Vec<bool> = (0..n).map(|_| rng.next() % 1000 < per_mille).collect();
            let fast = squared_distance_transform(&sites, shape);
            let slow = brute_force_edt(&sites, shape);
            assert_eq!(fast, slow, "shape {shape:?}");
        }
        // Make sure at least one sparse case really had distant sites.
        let mut sites = vec![false; 5 * 7 * 9];
        sites[0] = true;
        let fast = squared_distance_transform(&sites, [5, 7, 9]);
        assert_eq!(fast[5 * 7 * 9 - 1], 16.0 + 36.0 + 64.0);
        // No sites at all: infinite everywhere.
        assert!(
            squared_distance_transform(&[false; 8], [2, 2, 2])
                .iter()
                .all(|d| d.is_infinite())
        );
    }

    #[test]
    fn asd_matches_brute_force_definition_on_random_masks() {
        let mut rng = Lcg(42);
        let shape = [4, 9, 10];
        let n = 4 * 9 * 10;
        let x: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(3)).collect();
        let y: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(4)).collect();
        let (bx, by) = (boundary(&x, shape), boundary(&y, shape));
        let (dx, dy) = (brute_force_edt(&bx, shape), brute_force_edt(&by, shape));
        let mut sum = 0.0;
        let mut count = 0;
        for i in 0..n {
            if bx[i] {
                sum += dy[i].sqrt();
                count += 1;
            }
            if by[i] {
                sum += dx[i].sqrt();
                count += 1;
            }
        }
        assert!(count > 0);
        assert!(close(asd(&x, &y, shape), sum / count as f64));
    }

    #[test]
    fn empty_prediction_gives_dsc_zero_and_diagonal_asd_absent_class_gives_perfect_scores() {
        let shape = [1, 8, 8];
        let mut truth = vec![0u8; 64];
        for (i, t) in truth.iter_mut().enumerate() {
            if (2..5).contains(&(i / 8)) && (3..6).contains(&(i % 8)) {
                *t = 1;
            }
        }
        let pred = vec![0u8; 64];
        let m = image_metrics("empty", &pred, &truth, shape, 3).expect("valid input");
        // Class 1: present in truth only.
        assert_eq!(m.classes[1].dsc, 0.0);
        assert_eq!(m.classes[1].iou, 0.0);
        assert!(close(m.classes[1].asd, (49.0f64 + 49.0).sqrt()));
        assert!(close(m.classes[1].asd, diagonal(shape)));
        assert!(close(m.classes[1].acc, 55.0 / 64.0));
        // Class 2: absent in both.
        assert_eq!(m.classes[2].dsc, 1.0);
        assert_eq!(m.classes[2].iou, 1.0);
        assert_eq!(m.classes[2].asd, 0.0);
        assert_eq!(m.classes[2].acc, 1.0);
        // 3D diagonal.
        assert!(close(
            diagonal([16, 256, 256]),
            (225.0f64 + 2.0 * 255.0 * 255.0).sqrt()
        ));
    }

    #[test]
    fn boundary_of_3x3x3_cube_in_5x5x5_has_26_voxels() {
        let shape = [5, 5, 5];
        let cube: Vec<bool> = (0..125)
            .map(|i| {
                let (z, y, x) = (i / 25, (i / 5) % 5, i % 5);
                (1..4).contains(&z) && (1..4).contains(&y) && (1..4).contains(&x)
            })
            .collect();
        let b = boundary(&cube, shape);
        assert_eq!(b.iter().filter(|&&v| v).count(), 26);
        assert!(!b[2 * 25 + 2 * 5 + 2], "the centre is interior");
    }

    #[test]
    fn boundary_counts_the_image_edge_as_outside_and_ignores_unit_axes() {
        // 2D (D = 1): the depth axis is ignored, so a 3x3 square has 8 boundary pixels.
        let sq = rect(5, 5, 1..4, 1..4);
        assert_eq!(boundary(&sq, [1, 5, 5]).iter().filter(|&&b| b).count(), 8);
        // A full image: only the edge ring is boundary (25 - 9 = 16).
        let full = vec![true; 25];
        assert_eq!(
            boundary(&full, [1, 5, 5]).iter().filter(|&&b| b).count(),
            16
        );
        // Too-short input does not panic and reads as outside.
        assert_eq!(
            boundary(&[true], [1, 2, 2]),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn summarize_mean_foreground_excludes_background() {
        let cm = |v: f64| ClassMetrics {
            acc: v,
            iou: v,
            dsc: v,
            asd: 10.0 * v,
        };
        let images = vec![
            ImageMetrics {
                name: "a".into(),
                classes: vec![cm(1.0), cm(0.5), cm(0.25)],
            },
            ImageMetrics {
                name: "b".into(),
                classes: vec![cm(1.0), cm(0.7), cm(0.75)],
            },
        ];
        let names = vec!["background".to_owned(), "rim".to_owned()];
        let s = summarize(&names, images);
        assert_eq!(s.class_names, ["background", "rim", "class 2"]);
        assert!(close(s.classes[1].dsc, 0.6));
        assert!(close(s.classes[2].dsc, 0.5));
        assert!(close(s.mean_foreground.dsc, 0.55));
        assert!(close(s.mean_foreground.asd, 5.5));
        assert!(close(s.mean_all.dsc, 2.1 / 3.0));
        assert_eq!(s.images.len(), 2);
        // Nothing to average: zeros, not NaN.
        let empty = summarize(&[], Vec::new());
        assert_eq!(empty.mean_all, ClassMetrics::ZERO);
        assert!(empty.classes.is_empty());
    }

    #[test]
    fn union_metrics_of_rim_and_cup_is_the_disc() {
        // Truth: disc = rows 1..=3, cols 1..=3 with cup at the centre (2).
        #[rustfmt::skip]
        let truth = [
            0, 0, 0, 0, 0,
            0, 1, 1, 1, 0,
            0, 1, 2, 1, 0,
            0, 1, 1, 1, 0,
            0, 0, 0, 0, 0,
        ];
        // Prediction: the same disc, with rim and cup confused.
        #[rustfmt::skip]
        let pred = [
            0, 0, 0, 0, 0,
            0, 2, 2, 2, 0,
            0, 2, 1, 2, 0,
            0, 2, 2, 2, 0,
            0, 0, 0, 0, 0,
        ];
        let disc = union_metrics("f", &pred, &truth, [1, 5, 5], &[1, 2]).expect("valid");
        assert_eq!(
            disc,
            ClassMetrics {
                acc: 1.0,
                iou: 1.0,
                dsc: 1.0,
                asd: 0.0
            }
        );
        let per_class = image_metrics("f", &pred, &truth, [1, 5, 5], 3).expect("valid");
        assert_eq!(per_class.classes[1].dsc, 0.0);
        assert!(union_metrics("f", &pred, &truth[..24], [1, 5, 5], &[1]).is_err());
    }

    #[test]
    fn invalid_input_is_an_error_naming_the_image_and_sizes() {
        let err = image_metrics("img7", &[0; 15], &[0; 16], [1, 4, 4], 2).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("img7") && msg.contains("15") && msg.contains("16"),
            "{msg}"
        );
        let err = image_metrics("img8", &[0; 4], &[0, 3, 0, 0], [1, 2, 2], 3).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("img8") && msg.contains("class 3") && msg.contains("truth"),
            "{msg}"
        );
        assert!(image_metrics("x", &[], &[], [0, 4, 4], 2).is_err());
        assert!(image_metrics("x", &[0], &[0], [1, 1, 1], 0).is_err());
        assert!(asd(&[true; 3], &[true; 4], [1, 2, 2]).is_nan());
        assert!(try_asd(&[true; 3], &[true; 4], [1, 2, 2]).is_err());
        assert!(boundary(&[true; 4], [usize::MAX, 2, 2]).is_empty());
    }

    #[test]
    fn metrics_on_16x256x256_volume_are_quick_and_sane() {
        let shape = [16, 256, 256];
        let n = 16 * 256 * 256;
        let ball = |cx: f64, r: f64| -> Vec<u8> {
            (0..n)
                .map(|i| {
                    let (z, y, x) = (
                        (i / 65536) as f64,
                        ((i / 256) % 256) as f64,
                        (i % 256) as f64,
                    );
                    u8::from((z - 8.0).powi(2) + (y - 128.0).powi(2) + (x - cx).powi(2) < r * r)
                })
                .collect()
        };
        let truth = ball(128.0, 60.0);
        let pred = ball(130.0, 60.0);
        let m = image_metrics("big", &pred, &truth, shape, 2).expect("valid");
        assert!(m.classes[1].dsc > 0.9 && m.classes[1].dsc < 1.0);
        assert!(
            m.classes[1].asd > 0.0 && m.classes[1].asd < 3.0,
            "{}",
            m.classes[1].asd
        );
    }
}

//! The optic disc and cup: which labels they are and what is measured on them.
//!
//! A disc/cup model's classes are the background (0), the neuroretinal rim, and the cup as
//! the last class (Drishti-GS1: background, rim, cup); the disc is every class above the
//! background (rim ∪ cup). Extents are bounding-box heights (topmost to bottommost row,
//! inclusive), as clinicians read the ratio along the vertical meridian; the vertical
//! cup-to-disc ratio (vCDR) is the cup's extent over the disc's. It is unchanged by any resize
//! that scales both alike, so it compares with the experts' values on the full photographs.

use crate::regions::{RegionsError, keep_largest};

/// The name of a disc/cup model's last class.
pub const CUP_CLASS_NAME: &str = "cup";

/// Which labels of a disc/cup label map are the disc and the cup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscCup {
    cup: u8,
}

impl DiscCup {
    /// The convention for a map of `classes` classes; `None` below 3 (background, rim, cup)
    /// or above 256.
    pub fn new(classes: usize) -> Option<Self> {
        (3..=256).contains(&classes).then(|| Self {
            cup: (classes - 1) as u8,
        })
    }

    /// The convention for a model with these class names: a disc/cup model is one whose last
    /// class is [`CUP_CLASS_NAME`]; `None` for any other model.
    pub fn for_class_names<S: AsRef<str>>(names: &[S]) -> Option<Self> {
        match names.last() {
            Some(last) if last.as_ref() == CUP_CLASS_NAME => Self::new(names.len()),
            _ => None,
        }
    }

    /// The cup's label.
    pub fn cup(&self) -> u8 {
        self.cup
    }

    pub fn is_disc(&self, label: u8) -> bool {
        label > 0
    }

    /// The labels that make up the disc (rim and cup): every class above the background.
    pub fn disc_labels(&self) -> core::ops::RangeInclusive<u8> {
        1..=self.cup
    }

    pub fn is_cup(&self, label: u8) -> bool {
        label == self.cup
    }

    /// Keeps one disc and one cup: the disc's largest 8-connected region (its other pixels
    /// become background) and, inside it, the cup's largest region (its other pixels become
    /// the class below the cup, the rim). A stray blob would otherwise stretch a vertical
    /// extent and so the ratio. `labels` is `[H][width]`; `scratch` needs one entry per pixel.
    pub fn keep_largest_regions(
        &self,
        labels: &mut [u8],
        width: usize,
        scratch: &mut [i32],
    ) -> Result<(), RegionsError> {
        keep_largest(labels, width, scratch, |l| self.is_disc(l), 0)?;
        keep_largest(labels, width, scratch, |l| self.is_cup(l), self.cup - 1)
    }

    /// Areas and extents of the disc and cup of a label map `[H][W]` (row-major).
    pub fn measure(&self, labels: &[u8], width: usize) -> Measurements {
        let mut m = Measurements::default();
        for (row, line) in labels.chunks(width.max(1)).enumerate() {
            for &label in line {
                m.add(row, self.is_disc(label), self.is_cup(label));
            }
        }
        m
    }
}

/// The rows a mask covers, first and last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowSpan(Option<(usize, usize)>);

impl RowSpan {
    /// Adds a pixel on `row`; rows arrive in increasing order (a raster scan).
    pub fn add(&mut self, row: usize) {
        let first = self.0.map_or(row, |(first, _)| first);
        self.0 = Some((first, row));
    }

    /// Rows from the first to the last, inclusive; 0 for an empty mask.
    pub fn rows(&self) -> usize {
        self.0.map_or(0, |(first, last)| last - first + 1)
    }
}

/// What is measured on a disc/cup label map, accumulated pixel by pixel in raster order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measurements {
    pub disc_px: usize,
    pub cup_px: usize,
    pub disc_span: RowSpan,
    pub cup_span: RowSpan,
}

impl Measurements {
    /// Adds one pixel on `row`.
    pub fn add(&mut self, row: usize, in_disc: bool, in_cup: bool) {
        if in_disc {
            self.disc_px += 1;
            self.disc_span.add(row);
        }
        if in_cup {
            self.cup_px += 1;
            self.cup_span.add(row);
        }
    }

    /// The vertical cup-to-disc ratio: `None` without a disc (no ratio can be read), 0 with a
    /// disc but no cup.
    pub fn vertical_cdr(&self) -> Option<f64> {
        let disc = self.disc_span.rows();
        (disc > 0).then(|| self.cup_span.rows() as f64 / disc as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_of_vertical_extents() {
        // 8×5: disc (1 = rim, 2 = cup) on rows 1..=6, cup on rows 3..=4.
        let dc = DiscCup::new(3).unwrap();
        let mut l = [0u8; 8 * 5];
        for y in 1..=6 {
            l[y * 5 + 2] = 1;
        }
        l[3 * 5 + 1] = 2;
        l[4 * 5 + 3] = 2;
        let m = dc.measure(&l, 5);
        assert_eq!((m.disc_px, m.cup_px), (8, 2));
        assert_eq!(m.vertical_cdr(), Some(2.0 / 6.0));
        // Widening the cup does not change a vertical ratio.
        l[3 * 5 + 4] = 2;
        assert_eq!(dc.measure(&l, 5).vertical_cdr(), Some(2.0 / 6.0));
        // No cup: 0. No disc: no ratio.
        let rim_only = l.map(|v| v.min(1));
        assert_eq!(dc.measure(&rim_only, 5).vertical_cdr(), Some(0.0));
        assert_eq!(dc.measure(&[0; 40], 5).vertical_cdr(), None);
    }

    #[test]
    fn one_disc_and_one_cup_inside_it_are_kept() {
        let dc = DiscCup::new(3).unwrap();
        // 6×7: the main disc (rim 1, cup 2) with a second cup blob; a stray disc blob below.
        #[rustfmt::skip]
        let mut l = [
            0, 1, 1, 1, 1, 0, 0,
            0, 1, 2, 1, 2, 0, 0,
            0, 1, 2, 1, 1, 0, 0,
            0, 1, 2, 1, 1, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
            2, 1, 0, 0, 0, 0, 0,
        ];
        let stretched = dc.measure(&l, 7).vertical_cdr();
        let mut scratch = [0; 42];
        dc.keep_largest_regions(&mut l, 7, &mut scratch).unwrap();
        #[rustfmt::skip]
        let want = [
            0, 1, 1, 1, 1, 0, 0,
            0, 1, 2, 1, 1, 0, 0,
            0, 1, 2, 1, 1, 0, 0,
            0, 1, 2, 1, 1, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(l, want);
        assert_eq!(stretched, Some(5.0 / 6.0));
        assert_eq!(dc.measure(&l, 7).vertical_cdr(), Some(3.0 / 4.0));
    }

    #[test]
    fn the_cup_is_the_last_class_of_a_model_that_names_it() {
        assert_eq!(DiscCup::new(4).unwrap().cup(), 3);
        let dc = DiscCup::new(3).unwrap();
        assert_eq!(dc.disc_labels(), 1..=2);
        assert!(dc.disc_labels().all(|l| dc.is_disc(l)) && !dc.is_disc(0));
        assert_eq!(DiscCup::new(2), None);
        let names = ["background", "rim", "cup"];
        assert_eq!(DiscCup::for_class_names(&names), DiscCup::new(3));
        assert_eq!(
            DiscCup::for_class_names(&["background", "cytoplasm", "nucleus"]),
            None
        );
        assert_eq!(DiscCup::for_class_names(&["cup", "rim"]), None);
    }
}

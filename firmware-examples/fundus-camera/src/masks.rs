//! From class probabilities to the disc and cup masks, their run lists and measurements.
//!
//! A pixel's class, the disc, the cup and the ratio follow `msnet-labels` (the argmax; the
//! disc is every class above 0, the cup the last class), the rules `msnet eval` and
//! `msnet-run segment` use.

use heapless::Vec;
use msnet_labels::{DiscCup, Measurements, class_at};

use crate::protocol::{MaskKind, VCDR_NO_DISC};
use crate::rle::RunEncoder;

/// The shape of a probability map: `classes` channels-first planes of `width × height`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassMapShape {
    pub classes: usize,
    pub width: usize,
    pub height: usize,
}

/// What the masks measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskSummary {
    pub disc_area: u32,
    pub cup_area: u32,
    /// Rows from the top-most to the bottom-most pixel of the mask, 0 when it is empty.
    pub disc_rows: u16,
    pub cup_rows: u16,
    /// `cup_rows / disc_rows`, or [`VCDR_NO_DISC`] without a disc.
    pub vertical_cdr: f32,
}

/// Why the masks could not be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskError {
    /// The probabilities do not hold `classes · width · height` values, or `width` or
    /// `height` is over `u16::MAX` (their measurements are u16).
    Shape,
    /// This mask needs more runs than its run list holds.
    TooManyRuns(MaskKind),
}

/// Classifies every pixel of `probabilities`, run-length encodes the disc and cup masks into
/// `disc_runs` and `cup_runs` (see [`crate::rle`]) and measures them.
pub fn measure<const N: usize>(
    probabilities: &[f32],
    shape: ClassMapShape,
    disc_runs: &mut Vec<u16, N>,
    cup_runs: &mut Vec<u16, N>,
) -> Result<MaskSummary, MaskError> {
    let ClassMapShape {
        classes,
        width,
        height,
    } = shape;
    let plane = width.checked_mul(height).ok_or(MaskError::Shape)?;
    if classes == 0
        || plane.checked_mul(classes) != Some(probabilities.len())
        || width > usize::from(u16::MAX)
        || height > usize::from(u16::MAX)
    {
        return Err(MaskError::Shape);
    }
    let disc_cup = DiscCup::new(classes).ok_or(MaskError::Shape)?;
    let mut disc = RunEncoder::new(disc_runs);
    let mut cup = RunEncoder::new(cup_runs);
    let mut m = Measurements::default();
    // The length check above keeps every `c · plane + p` inside `probabilities`; the areas
    // count at most 65535² pixels, which fits a u32.
    for p in 0..plane {
        let class = class_at(probabilities, classes, p) as u8;
        let (in_disc, in_cup) = (disc_cup.is_disc(class), disc_cup.is_cup(class));
        disc.push(in_disc);
        cup.push(in_cup);
        m.add(p / width, in_disc, in_cup);
    }
    disc.finish()
        .map_err(|_| MaskError::TooManyRuns(MaskKind::Disc))?;
    cup.finish()
        .map_err(|_| MaskError::TooManyRuns(MaskKind::Cup))?;
    // Bounded by `width`, `height` ≤ u16::MAX (checked above).
    let rows = |span: msnet_labels::RowSpan| span.rows() as u16;
    Ok(MaskSummary {
        disc_area: m.disc_px as u32,
        cup_area: m.cup_px as u32,
        disc_rows: rows(m.disc_span),
        cup_rows: rows(m.cup_span),
        vertical_cdr: m.vertical_cdr().map_or(VCDR_NO_DISC, |r| r as f32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3-class map of 4×4 from a label image (probability 0.8 for the label).
    fn one_hot(labels: &[usize; 16]) -> [f32; 48] {
        let mut p = [0.1f32; 48];
        for (i, &l) in labels.iter().enumerate() {
            p[l * 16 + i] = 0.8;
        }
        p
    }

    const SHAPE: ClassMapShape = ClassMapShape {
        classes: 3,
        width: 4,
        height: 4,
    };

    #[test]
    fn disc_is_every_foreground_class_and_cup_the_last() {
        #[rustfmt::skip]
        let labels = [
            0, 0, 0, 0,
            0, 1, 1, 0,
            0, 1, 2, 0,
            0, 1, 0, 0,
        ];
        let (mut disc, mut cup) = (Vec::<u16, 16>::new(), Vec::<u16, 16>::new());
        let summary = measure(&one_hot(&labels), SHAPE, &mut disc, &mut cup).unwrap();
        assert_eq!(disc, [5, 2, 2, 2, 2, 1, 2]);
        assert_eq!(cup, [10, 1, 5]);
        assert_eq!(
            summary,
            MaskSummary {
                disc_area: 5,
                cup_area: 1,
                disc_rows: 3,
                cup_rows: 1,
                vertical_cdr: 1.0 / 3.0,
            }
        );
    }

    #[test]
    fn no_disc_reports_the_sentinel_and_ties_go_to_the_lower_class() {
        let mut p = [0.5f32; 48];
        p[32..].fill(0.0);
        let (mut disc, mut cup) = (Vec::<u16, 4>::new(), Vec::<u16, 4>::new());
        let summary = measure(&p, SHAPE, &mut disc, &mut cup).unwrap();
        assert_eq!((disc.as_slice(), cup.as_slice()), (&[16][..], &[16][..]));
        assert_eq!(summary.disc_area, 0);
        assert_eq!(summary.vertical_cdr, VCDR_NO_DISC);
    }

    #[test]
    fn bad_shapes_and_full_run_lists_are_errors() {
        let (mut disc, mut cup) = (Vec::<u16, 2>::new(), Vec::<u16, 2>::new());
        assert_eq!(
            measure(&[0.0; 47], SHAPE, &mut disc, &mut cup),
            Err(MaskError::Shape)
        );
        let labels = [0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            measure(&one_hot(&labels), SHAPE, &mut disc, &mut cup),
            Err(MaskError::TooManyRuns(MaskKind::Disc))
        );
    }
}

//! The vertical cup-to-disc ratio (vCDR), the glaucoma screening number read off a disc/cup
//! segmentation: the cup's vertical extent over the disc's, in rows of the image.
//!
//! Extents are bounding-box heights (topmost to bottommost labelled row, inclusive), as
//! clinicians measure the ratio along the vertical meridian. The ratio is unchanged by any
//! resize that scales both by the same factor, so it can be compared with the experts' values
//! measured on the original photographs.

/// vCDR of a 2D label map `[H, W]` (row-major): rows holding `cup` labels over rows holding any
/// of `disc` labels. `None` when no disc pixel is present (no ratio can be read); 0 when the disc
/// is present but the cup is not.
pub fn vertical_cdr(labels: &[u8], width: usize, cup: &[u8], disc: &[u8]) -> Option<f64> {
    let extent = |classes: &[u8]| {
        let mut rows = labels
            .chunks(width.max(1))
            .enumerate()
            .filter(|(_, row)| row.iter().any(|l| classes.contains(l)))
            .map(|(y, _)| y);
        let first = rows.next()?;
        Some(rows.next_back().unwrap_or(first) - first + 1)
    };
    let disc_rows = extent(disc)?;
    Some(extent(cup).unwrap_or(0) as f64 / disc_rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_of_vertical_extents() {
        // 8×5: disc (1 = rim, 2 = cup) on rows 1..=6, cup on rows 3..=4.
        let mut l = vec![0u8; 8 * 5];
        for y in 1..=6 {
            l[y * 5 + 2] = 1;
        }
        l[3 * 5 + 1] = 2;
        l[4 * 5 + 3] = 2;
        assert_eq!(vertical_cdr(&l, 5, &[2], &[1, 2]), Some(2.0 / 6.0));
        // Widening the cup does not change a vertical ratio.
        l[3 * 5 + 4] = 2;
        assert_eq!(vertical_cdr(&l, 5, &[2], &[1, 2]), Some(2.0 / 6.0));
        // No cup: 0. No disc: no ratio.
        let rim_only: Vec<u8> = l.iter().map(|&v| v.min(1)).collect();
        assert_eq!(vertical_cdr(&rim_only, 5, &[2], &[1, 2]), Some(0.0));
        assert_eq!(vertical_cdr(&[0; 40], 5, &[2], &[1, 2]), None);
    }
}

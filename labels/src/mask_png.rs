//! How a label map is written as a viewable 8-bit gray mask (`msnet-run segment`'s
//! `NAME.mask.png`) and read back: class `c` of `n` is gray `c × ⌊255 / (n − 1)⌋`, so the
//! background is black and the last class is (nearly) white.

/// The gray step between two classes of an `n`-class mask (255 for one or two classes).
pub fn gray_step(classes: usize) -> u8 {
    // At least 1, so that a (malformed) map of over 256 classes cannot divide by zero.
    (255 / classes.saturating_sub(1).clamp(1, 255)) as u8
}

/// The gray value that shows `label` in an `n`-class mask.
pub fn gray_of(label: u8, classes: usize) -> u8 {
    label.saturating_mul(gray_step(classes))
}

/// The label a gray value of an `n`-class mask shows; `None` for a value no class is written
/// as (the file is not such a mask, or was resampled or re-encoded lossily).
pub fn label_of_gray(gray: u8, classes: usize) -> Option<u8> {
    let step = gray_step(classes);
    let label = gray / step;
    (gray.is_multiple_of(step) && usize::from(label) < classes.max(1)).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_round_trips_and_other_grays_are_refused() {
        for classes in [2, 3, 4, 7] {
            for label in 0..classes as u8 {
                assert_eq!(label_of_gray(gray_of(label, classes), classes), Some(label));
            }
        }
        assert_eq!(gray_of(2, 3), 254);
        assert_eq!(gray_of(1, 2), 255);
        assert_eq!(label_of_gray(128, 3), None);
        assert_eq!(label_of_gray(255, 3), None);
    }
}

//! Class labels from per-class scores: the one argmax every engine, metric and tool uses.

/// The class of every voxel of channels-first scores `[classes][voxels]` (probabilities or
/// logits). Ties go to the lower class, as ONNX ArgMax; NaN never wins. Labels are `u8`, the
/// type of every mask in the project (a config has at most 255 classes).
pub fn argmax(scores: &[f32], classes: usize) -> Vec<u8> {
    let voxels = scores.len() / classes.max(1);
    (0..voxels)
        .map(|j| {
            (1..classes).fold(0, |best, c| {
                if scores[c * voxels + j] > scores[best * voxels + j] {
                    c
                } else {
                    best
                }
            }) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_class_wins_and_ties_go_to_the_lower() {
        // Three classes, four voxels: [class][voxel].
        let scores = [
            0.2,
            0.5,
            0.1,
            f32::NAN, //
            0.7,
            0.5,
            0.1,
            0.3, //
            0.1,
            0.0,
            0.8,
            0.3,
        ];
        assert_eq!(argmax(&scores, 3), [1, 0, 2, 0]);
    }
}

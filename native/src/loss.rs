//! The losses and their gradients with respect to the class probabilities: the soft
//! multi-class Dice exactly as the burn trainer defines it (paper, section 6.1):
//! `1 − (1/N) Σ_n (2 Σ_j p_jn t_jn + e) / (Σ_j p_jn + Σ_j t_jn + e)`, sums over every voxel `j`
//! of the whole batch, smoothing `e = 1`; and the mean voxel cross-entropy that
//! `msnet::config::Loss::DiceCe` adds to it.

/// Smoothing `e`: keeps the ratio defined for a class absent from a batch.
pub const DICE_SMOOTH: f64 = 1.0;

/// The loss of the class probabilities `probs` (per sample `[classes][voxels]`, channels
/// first) against the samples' `labels` (class per voxel), and its gradient with respect to
/// `probs` written into `grad` (same layout). Sums are in f64, so the loss does not depend on
/// the batch's size through round-off.
///
/// Panics if a label is not below `classes` (callers check their samples first).
pub fn soft_dice(probs: &[f32], labels: &[&[u8]], classes: usize, grad: &mut [f32]) -> f64 {
    let voxels = labels.first().map_or(0, |l| l.len());
    assert_eq!(
        probs.len(),
        labels.len() * classes * voxels,
        "soft_dice: probabilities"
    );
    assert_eq!(grad.len(), probs.len(), "soft_dice: gradient");
    let mut overlap = vec![0f64; classes];
    let mut predicted = vec![0f64; classes];
    let mut truth = vec![0f64; classes];
    for (p, l) in probs.chunks_exact(classes * voxels).zip(labels) {
        for (c, plane) in p.chunks_exact(voxels).enumerate() {
            predicted[c] += plane.iter().map(|&v| v as f64).sum::<f64>();
        }
        for (j, &c) in l.iter().enumerate() {
            let c = c as usize;
            assert!(c < classes, "soft_dice: label {c} with {classes} classes");
            overlap[c] += p[c * voxels + j] as f64;
            truth[c] += 1.0;
        }
    }
    let n = classes as f64;
    let mut dice_sum = 0.0;
    // d loss / d p_jn = (1/N) (2 I_n + e) / D_n² − (1/N) 2 t_jn / D_n, with D_n the denominator.
    let mut base = vec![0f32; classes];
    let mut on_truth = vec![0f32; classes];
    for c in 0..classes {
        let num = 2.0 * overlap[c] + DICE_SMOOTH;
        let den = predicted[c] + truth[c] + DICE_SMOOTH;
        dice_sum += num / den;
        base[c] = (num / (den * den) / n) as f32;
        on_truth[c] = (-2.0 / den / n) as f32;
    }
    for (g, l) in grad.chunks_exact_mut(classes * voxels).zip(labels) {
        for (c, plane) in g.chunks_exact_mut(voxels).enumerate() {
            plane.fill(base[c]);
        }
        for (j, &c) in l.iter().enumerate() {
            g[c as usize * voxels + j] += on_truth[c as usize];
        }
    }
    1.0 - dice_sum / n
}

/// The smallest probability the cross-entropy takes the logarithm of: a voxel whose true
/// class has less contributes `−ln(PROB_FLOOR)` (16.1) and no gradient, instead of infinity.
pub const PROB_FLOOR: f32 = 1e-7;

/// The mean cross-entropy `−(1/J) Σ_j ln p_{j,t_j}` over the `J` voxels of the batch (layout as
/// [`soft_dice`]), its gradient with respect to `probs` added into `grad`.
pub fn add_cross_entropy(probs: &[f32], labels: &[&[u8]], classes: usize, grad: &mut [f32]) -> f64 {
    let voxels = labels.first().map_or(0, |l| l.len());
    assert_eq!(grad.len(), probs.len(), "cross_entropy: gradient");
    let total = (labels.len() * voxels).max(1) as f64;
    let mut sum = 0.0;
    for ((p, g), l) in probs
        .chunks_exact(classes * voxels)
        .zip(grad.chunks_exact_mut(classes * voxels))
        .zip(labels)
    {
        for (j, &c) in l.iter().enumerate() {
            let at = c as usize * voxels + j;
            let prob = p[at];
            sum -= f64::from(prob.max(PROB_FLOOR)).ln();
            if prob > PROB_FLOOR {
                g[at] -= (1.0 / (total * f64::from(prob))) as f32;
            }
        }
    }
    sum / total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vjp::tests::values;

    #[test]
    fn perfect_prediction_has_zero_loss_and_the_gradient_matches_differences() {
        let labels = [vec![0u8, 1, 2, 1], vec![2u8, 2, 0, 0]];
        let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
        let mut one_hot = vec![0f32; 2 * 3 * 4];
        for (b, l) in labels.iter().enumerate() {
            for (j, &c) in l.iter().enumerate() {
                one_hot[(b * 3 + c as usize) * 4 + j] = 1.0;
            }
        }
        let mut grad = vec![0f32; one_hot.len()];
        assert!(soft_dice(&one_hot, &refs, 3, &mut grad).abs() < 1e-12);

        let probs: Vec<f32> = values(24, 9).iter().map(|v| 0.5 + 0.4 * v).collect();
        soft_dice(&probs, &refs, 3, &mut grad);
        let h = 1e-3f32;
        for i in [0, 5, 13, 23] {
            let mut up = probs.clone();
            up[i] += h;
            let mut down = probs.clone();
            down[i] -= h;
            let mut scratch = vec![0f32; 24];
            let fd = (soft_dice(&up, &refs, 3, &mut scratch)
                - soft_dice(&down, &refs, 3, &mut scratch))
                / (2.0 * h as f64);
            assert!(
                (fd - grad[i] as f64).abs() < 1e-4,
                "{i}: {fd} vs {}",
                grad[i]
            );
        }
    }

    #[test]
    fn cross_entropy_is_the_mean_negative_log_and_its_gradient_matches_differences() {
        let labels = [vec![0u8, 1, 2, 1], vec![2u8, 2, 0, 0]];
        let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
        let probs: Vec<f32> = values(24, 4).iter().map(|v| 0.5 + 0.4 * v).collect();
        let mut grad = vec![0.25f32; 24];
        let loss = add_cross_entropy(&probs, &refs, 3, &mut grad);
        let mut want = 0.0;
        for (b, l) in labels.iter().enumerate() {
            for (j, &c) in l.iter().enumerate() {
                want -= f64::from(probs[(b * 3 + c as usize) * 4 + j]).ln() / 8.0;
            }
        }
        assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
        let h = 1e-3f32;
        for i in [0, 5, 9, 13, 23] {
            let at = |delta: f32| {
                let mut p = probs.clone();
                p[i] += delta;
                add_cross_entropy(&p, &refs, 3, &mut [0f32; 24])
            };
            let fd = (at(h) - at(-h)) / (2.0 * h as f64);
            // The gradient was added to 0.25.
            let got = grad[i] as f64 - 0.25;
            assert!((fd - got).abs() < 1e-4, "{i}: {fd} vs {got}");
        }
        // A true class below the floor costs -ln(floor) and no gradient.
        let mut p = vec![0.5f32; 6];
        p[3] = 0.0; // sample 0, class 1, voxel 0 (3 voxels, 2 classes)
        let mut g = vec![0f32; 6];
        let l = add_cross_entropy(&p, &[&[1, 0, 0]], 2, &mut g);
        assert!((l - (-(PROB_FLOOR as f64).ln() + 2.0 * 2f64.ln()) / 3.0).abs() < 1e-6);
        assert_eq!(g[3], 0.0);
    }
}

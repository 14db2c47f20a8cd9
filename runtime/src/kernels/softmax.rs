//! Softmaxes: the threshold-dynamics phase softmax (groups of a pixel's channels) and the
//! final class softmax, both over channels of one pixel — contiguous in the channels-last
//! arena, which is why the runtime keeps that layout (general engines lose their time on
//! this non-innermost-axis softmax in channels-first layout).

/// `e^x` for `f32` without `std`: range reduction to `x = n·ln2 + r`, `|r| ≤ ln2/2`, a degree-6
/// polynomial for `e^r`, and `2^n` built in the exponent bits. Relative error below 3e-7 over
/// the range where `e^x` is a normal float; inputs are clamped to it (softmax inputs are
/// shifted by their maximum, so only the lower clamp is ever met).
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest without `f32::round` (std-only): add and subtract 1.5·2^23.
    const SHIFTER: f32 = 12_582_912.0;
    let n = (x * LOG2E + SHIFTER) - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.666_666_7e-1
                    + r * (4.166_664_6e-2 + r * (8.333_494e-3 + r * 1.388_839_6e-3)))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// Phase softmax of `pixels` pixels of `channels = phases · I` channels each (`x`, `out`:
/// `[pixels][channels]`): for each pixel and each `i`, softmax over `n` of channel `n·I + i`.
pub fn phase_softmax(x: &[f32], channels: usize, phases: usize, out: &mut [f32]) {
    let per_phase = channels / phases;
    for (px, po) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
        for i in 0..per_phase {
            let mut max = f32::NEG_INFINITY;
            for n in 0..phases {
                max = max.max(px[n * per_phase + i]);
            }
            let mut sum = 0.0;
            for n in 0..phases {
                let e = exp(px[n * per_phase + i] - max);
                po[n * per_phase + i] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for n in 0..phases {
                po[n * per_phase + i] *= inv;
            }
        }
    }
}

/// Class softmax from channels-last logits `x` (`[pixels][classes]`) to channels-first
/// probabilities `out` (`[classes][pixels]`), the model's output layout.
pub fn class_softmax(x: &[f32], classes: usize, out: &mut [f32]) {
    let pixels = x.len() / classes;
    for (p, logits) in x.chunks_exact(classes).enumerate() {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0;
        for (c, &v) in logits.iter().enumerate() {
            let e = exp(v - max);
            out[c * pixels + p] = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        for c in 0..classes {
            out[c * pixels + p] *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
    }

    #[test]
    fn phase_softmax_normalises_each_group() {
        // 2 pixels, 4 phases × 2 features.
        let x: std::vec::Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let mut out = [0.0; 16];
        phase_softmax(&x, 8, 4, &mut out);
        for p in 0..2 {
            for i in 0..2 {
                let idx = |n: usize| p * 8 + n * 2 + i;
                let sum: f64 = (0..4).map(|n| (x[idx(n)] as f64).exp()).sum();
                for n in 0..4 {
                    let want = (x[idx(n)] as f64).exp() / sum;
                    assert!((out[idx(n)] as f64 - want).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn class_softmax_transposes_to_channels_first() {
        let x = [0.0, 1.0, 2.0, 5.0, 5.0, 5.0]; // 2 pixels × 3 classes
        let mut out = [0.0; 6];
        class_softmax(&x, 3, &mut out);
        let s = 1.0 + 1f64.exp() + 2f64.exp();
        assert!((out[0] as f64 - 1.0 / s).abs() < 1e-6);
        assert!((out[2] as f64 - 1f64.exp() / s).abs() < 1e-6);
        assert!((out[4] as f64 - 2f64.exp() / s).abs() < 1e-6);
        for c in 0..3 {
            assert!((out[c * 2 + 1] - 1.0 / 3.0).abs() < 1e-6);
        }
    }
}

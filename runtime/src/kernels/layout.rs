//! The model's first op: the caller's channels-first image to the channels-last arena, with
//! the input normalisation of `config.json` applied on the way.

/// `out[p][c] = (x[c][p] − mean[c]) · inv_std[c]` for `p` over the pixels.
pub fn normalize(x: &[f32], mean: &[f32], inv_std: &[f32], out: &mut [f32]) {
    let channels = mean.len();
    let pixels = x.len() / channels;
    for (c, (&m, &s)) in mean.iter().zip(inv_std).enumerate() {
        let plane = &x[c * pixels..(c + 1) * pixels];
        for (p, &v) in plane.iter().enumerate() {
            out[p * channels + c] = (v - m) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_interleaves() {
        let x = [0.0, 1.0, 0.5, 0.25]; // 2 channels × 2 pixels
        let mut out = [0.0; 4];
        normalize(&x, &[0.5, 0.0], &[2.0, 4.0], &mut out);
        assert_eq!(out, [-1.0, 2.0, 1.0, 1.0]);
    }
}

//! From a whole fundus photograph to the disc/cup model's view and back: where a disc
//! locator's mask says the optic disc is ([`disc_centre`]), the square window around it that the
//! disc/cup model sees ([`Window`]), and that model's mask pasted back into the photograph.
//!
//! The window reproduces the field of view the disc/cup models were trained on: Drishti-GS1's
//! crops are 800 px squares of photographs about 1,760 px high ([`DEFAULT_WINDOW_FRACTION`] of
//! the height; the width varies with the camera's sensor, the disc's size does not). Parts of
//! the window outside the photograph are black, as in the training crops.

/// The window's side as a fraction of the photograph's height: 800 / 1,760 (Drishti-GS1).
pub const DEFAULT_WINDOW_FRACTION: f64 = 800.0 / 1760.0;

/// `(row, column)` of the centroid of the largest 4-connected region of `labels` (`[h][w]`,
/// row-major) where `inside` holds: the disc, with any stray false positive elsewhere ignored.
/// `None` when no pixel is inside.
pub fn disc_centre(labels: &[u8], hw: [usize; 2], inside: impl Fn(u8) -> bool) -> Option<[f64; 2]> {
    let [h, w] = hw;
    debug_assert_eq!(labels.len(), h * w);
    let mut seen = vec![false; labels.len()];
    let mut stack = Vec::new();
    // (pixels, row sum, column sum) of the largest region so far.
    let mut best = (0usize, 0usize, 0usize);
    for start in 0..labels.len() {
        if seen[start] || !inside(labels[start]) {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut region = (0usize, 0usize, 0usize);
        while let Some(p) = stack.pop() {
            let (y, x) = (p / w, p % w);
            region = (region.0 + 1, region.1 + y, region.2 + x);
            let neighbours = [
                (y > 0).then(|| p - w),
                (y + 1 < h).then(|| p + w),
                (x > 0).then(|| p - 1),
                (x + 1 < w).then(|| p + 1),
            ];
            for q in neighbours.into_iter().flatten() {
                if !seen[q] && inside(labels[q]) {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
        if region.0 > best.0 {
            best = region;
        }
    }
    let (n, rows, cols) = best;
    (n > 0).then(|| [rows as f64 / n as f64, cols as f64 / n as f64])
}

/// A square of the photograph, `side` pixels, its top-left corner at `(top, left)` (which may
/// lie outside the photograph).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub top: i64,
    pub left: i64,
    pub side: usize,
}

impl Window {
    /// The `side`-pixel square whose centre is nearest `centre` (`(row, column)`).
    pub fn around(centre: [f64; 2], side: usize) -> Self {
        let corner = |c: f64| (c - (side as f64 - 1.0) / 2.0).round() as i64;
        Self {
            top: corner(centre[0]),
            left: corner(centre[1]),
            side,
        }
    }

    /// The window's side for a photograph `height` pixels high: `fraction` of it, at least 16.
    pub fn side_for(height: usize, fraction: f64) -> usize {
        ((height as f64 * fraction).round() as usize).max(16)
    }

    /// The window's pixels of `planar` (`[channels][h][w]` at `hw`) as `[channels][side][side]`;
    /// zero outside the photograph.
    pub fn crop(&self, planar: &[f32], channels: usize, hw: [usize; 2]) -> Vec<f32> {
        let s = self.side;
        let mut out = vec![0.0; channels * s * s];
        for (c, plane) in out.chunks_exact_mut(s * s).enumerate() {
            let source = &planar[c * hw[0] * hw[1]..(c + 1) * hw[0] * hw[1]];
            self.for_each_inside(hw, |window, photo| plane[window] = source[photo]);
        }
        out
    }

    /// A photograph-size label map (`[h][w]` at `hw`) holding `labels` (`[side][side]`) where
    /// the window covers the photograph and `0` (the background) elsewhere.
    pub fn paste(&self, labels: &[u8], hw: [usize; 2]) -> Vec<u8> {
        debug_assert_eq!(labels.len(), self.side * self.side);
        let mut out = vec![0; hw[0] * hw[1]];
        self.for_each_inside(hw, |window, photo| out[photo] = labels[window]);
        out
    }

    /// Calls `f(window index, photograph index)` for every window pixel inside the photograph.
    fn for_each_inside(&self, hw: [usize; 2], mut f: impl FnMut(usize, usize)) {
        let [h, w] = hw.map(|n| n as i64);
        for wy in 0..self.side {
            let y = self.top + wy as i64;
            if !(0..h).contains(&y) {
                continue;
            }
            for wx in 0..self.side {
                let x = self.left + wx as i64;
                if (0..w).contains(&x) {
                    f(wy * self.side + wx, (y * w + x) as usize);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_region_gives_the_centre() {
        // 6×8: a 1-pixel false positive at (0, 0) and a 2×3 disc at rows 3..5, columns 4..7.
        let mut labels = vec![0u8; 48];
        labels[0] = 1;
        for y in 3..5 {
            for x in 4..7 {
                labels[y * 8 + x] = 1;
            }
        }
        assert_eq!(disc_centre(&labels, [6, 8], |l| l > 0), Some([3.5, 5.0]));
        assert_eq!(disc_centre(&[0; 48], [6, 8], |l| l > 0), None);
    }

    #[test]
    fn regions_touching_only_at_a_corner_are_two() {
        // 3×3: (0, 0) and (1, 1) touch diagonally; (1, 1)-(2, 1) is the larger region.
        let labels = [1, 0, 0, 0, 1, 0, 0, 1, 0];
        assert_eq!(disc_centre(&labels, [3, 3], |l| l == 1), Some([1.5, 1.0]));
    }

    #[test]
    fn the_window_is_centred_and_clipped_at_the_border() {
        let w = Window::around([1.0, 5.5], 4);
        assert_eq!((w.top, w.left), (-1, 4));
        // A 1-channel 3×6 photograph whose pixel (y, x) is 10y + x.
        let photo: Vec<f32> = (0..18).map(|i| (i / 6 * 10 + i % 6) as f32).collect();
        let crop = w.crop(&photo, 1, [3, 6]);
        #[rustfmt::skip]
        let want = [
            0.0, 0.0, 0.0, 0.0,
            4.0, 5.0, 0.0, 0.0,
            14.0, 15.0, 0.0, 0.0,
            24.0, 25.0, 0.0, 0.0,
        ];
        assert_eq!(crop, want);
        let labels: Vec<u8> = (1..=16).collect();
        let pasted = w.paste(&labels, [3, 6]);
        #[rustfmt::skip]
        let want = [
            0, 0, 0, 0, 5, 6,
            0, 0, 0, 0, 9, 10,
            0, 0, 0, 0, 13, 14,
        ];
        assert_eq!(pasted, want);
    }

    #[test]
    fn crop_keeps_channels_apart_and_the_side_follows_the_height() {
        let photo: Vec<f32> = (0..8).map(|i| i as f32).collect(); // 2 channels of 2×2
        let w = Window::around([0.5, 0.5], 2);
        assert_eq!(w.crop(&photo, 2, [2, 2]), photo);
        assert_eq!(Window::side_for(440, DEFAULT_WINDOW_FRACTION), 200);
        assert_eq!(Window::side_for(10, 0.1), 16);
    }
}

//! What the kernels' tests share: seeded data, shapes and the rounding-aware comparison.

extern crate std;
use std::vec::Vec;

use super::conv::ConvShape;

/// Seeded xorshift64: the same test data on every machine, without a dependency.
pub struct XorShift(pub u64);

impl XorShift {
    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    pub fn fill(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

pub fn shape(dims: usize, input: [usize; 3], cin: usize, cout: usize, stride: usize) -> ConvShape {
    ConvShape {
        dims,
        input,
        cin,
        cout,
        stride,
    }
}

/// Elementwise error bound: 1e-5 of the sum of |terms| (what rounding can move a sum by).
pub fn assert_close(got: &[f32], want: &[f32], scale: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = 1e-5 * s.max(1e-20);
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}

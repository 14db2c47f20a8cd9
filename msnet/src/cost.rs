//! The cost of a forward pass, found by lowering the MSNet program onto shapes alone.

use crate::Spec;
use crate::graph::{self, Lowering};
use crate::spec::ConvSpec;

/// Convolutions and multiply-adds of one forward pass (batch 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub convs: usize,
    pub macs: u64,
    /// Output shape `[classes, D, H, W]`.
    pub output: [usize; 4],
}

impl Cost {
    /// Floating-point operations (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        2.0 * self.macs as f64
    }
}

/// Counts what [`graph::forward`] executes for `spec` at its configured input size.
pub fn forward_cost(spec: &Spec) -> Cost {
    let cfg = &spec.config;
    let mut counter = ShapeCounter {
        dims: cfg.dims,
        convs: 0,
        macs: 0,
    };
    let [d, h, w] = cfg.input_size;
    let output = graph::forward(&mut counter, spec, &[cfg.in_channels, d, h, w]);
    Cost {
        convs: counter.convs,
        macs: counter.macs,
        output,
    }
}

/// A lowering whose values are shapes `[channels, D, H, W]`; it checks that shapes agree.
struct ShapeCounter {
    dims: usize,
    convs: usize,
    macs: u64,
}

impl ShapeCounter {
    fn same(a: &[usize; 4], b: &[usize; 4]) -> [usize; 4] {
        assert_eq!(a, b, "MSNet program combines tensors of different shapes");
        *a
    }

    fn spatial(&self, x: &[usize; 4], f: impl Fn(usize) -> usize) -> [usize; 4] {
        let d = if self.dims == 3 { f(x[1]) } else { 1 };
        [x[0], d, f(x[2]), f(x[3])]
    }
}

impl Lowering for ShapeCounter {
    type Value = [usize; 4];
    fn normalize(&mut self, x: &[usize; 4], _: &[f32], _: &[f32]) -> [usize; 4] {
        *x
    }
    fn conv(&mut self, l: &ConvSpec, x: &[usize; 4]) -> [usize; 4] {
        assert_eq!(x[0], l.in_channels, "{}", l.name);
        let s = l.stride;
        let mut out = self.spatial(x, |n| n.div_ceil(s));
        out[0] = l.out_channels;
        self.convs += 1;
        self.macs += (out.iter().product::<usize>() * l.fan_in()) as u64;
        out
    }
    fn relu(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
    fn add(&mut self, a: &[usize; 4], b: &[usize; 4]) -> [usize; 4] {
        Self::same(a, b)
    }
    fn sub(&mut self, a: &[usize; 4], b: &[usize; 4]) -> [usize; 4] {
        Self::same(a, b)
    }
    fn mul(&mut self, a: &[usize; 4], b: &[usize; 4]) -> [usize; 4] {
        Self::same(a, b)
    }
    fn affine(&mut self, x: &[usize; 4], _: f32, _: f32) -> [usize; 4] {
        *x
    }
    fn square(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
    fn phase_softmax(&mut self, x: &[usize; 4], phases: usize) -> [usize; 4] {
        assert_eq!(x[0] % phases, 0);
        *x
    }
    fn avg_pool(&mut self, x: &[usize; 4]) -> [usize; 4] {
        self.spatial(x, |n| n / 2)
    }
    fn prolong(&mut self, x: &[usize; 4]) -> [usize; 4] {
        self.spatial(x, |n| n * 2)
    }
    fn class_softmax(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn deduplicated_2d_pass_runs_86_convolutions() {
        let c = forward_cost(&Spec::new(&Config::new(2, 3, 3)));
        assert_eq!(c.convs, 86);
        assert_eq!(c.output, [3, 1, 128, 128]);
        // MSNET.md: 1.785 GFLOP at 128x128 deduplicated.
        assert!((c.flops() / 1e9 - 1.785).abs() < 0.005, "{}", c.flops());
    }

    #[test]
    fn three_d_pass_returns_to_input_shape() {
        let c = forward_cost(&Spec::new(&Config::new(3, 1, 4)));
        assert_eq!(c.convs, 86);
        assert_eq!(c.output, [4, 16, 128, 128]);
    }
}

//! The cost of a forward pass: a pass over the recorded [`Graph`], summing [`Op::cost`].

use crate::Spec;
use crate::ir::{Graph, Op};

/// Convolutions and multiply-adds of one forward pass (batch 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub convs: usize,
    pub macs: u64,
    /// Output shape `[classes, D, H, W]`.
    pub output: [usize; 4],
}

impl Cost {
    /// Floating-point operations of the convolutions (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        2.0 * self.macs as f64
    }
}

/// Counts what [`crate::graph::forward`] executes for `spec` at its configured input size.
pub fn forward_cost(spec: &Spec) -> Cost {
    graph_cost(&Graph::record(spec))
}

/// Counts what one pass over `graph` executes.
pub fn graph_cost(graph: &Graph) -> Cost {
    let out = graph.nodes[graph.output].shape;
    let [d, h, w] = out.spatial;
    Cost {
        convs: graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv(_)))
            .count(),
        macs: graph.cost().macs,
        output: [out.channels, d, h, w],
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

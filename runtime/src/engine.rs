//! Running a validated plan in a caller-provided arena: no allocation, no panics on any
//! input (lengths are checked up front, ranges were checked by [`Plan::parse`]).

use core::fmt;
use core::ops::Range;

use crate::kernels::{conv, elementwise, layout, resample, softmax};
use crate::plan::{Op, Plan, PlanError};

/// Why a run could not start.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// A buffer has the wrong length for this plan.
    Buffer {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// The input holds a NaN or infinite value.
    NonFiniteInput { index: usize },
    /// The plan failed to decode (only possible if it was not built by [`Plan::parse`]).
    Plan(PlanError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Buffer {
                what,
                expected,
                found,
            } => write!(f, "{what} holds {found} values; this plan needs {expected}"),
            Self::NonFiniteInput { index } => {
                write!(f, "input value {index} is NaN or infinite")
            }
            Self::Plan(e) => write!(f, "{e}"),
        }
    }
}

/// The arena around one op's output: what lies before it, the output, and what lies after.
/// Inputs never overlap the output (validated), so each lies wholly in one of the two sides.
struct Split<'b> {
    before: &'b [f32],
    out: &'b mut [f32],
    after: &'b [f32],
    out_range: Range<usize>,
}

impl<'b> Split<'b> {
    fn new(arena: &'b mut [f32], out: Range<usize>) -> Self {
        let (before, rest) = arena.split_at_mut(out.start);
        let (out_slice, after) = rest.split_at_mut(out.len());
        Self {
            before,
            out: out_slice,
            after,
            out_range: out,
        }
    }

    fn read(&self, r: &Range<usize>) -> &'b [f32] {
        let (before, after): (&'b [f32], &'b [f32]) = (self.before, self.after);
        if r.end <= self.out_range.start {
            &before[r.clone()]
        } else {
            &after[r.start - self.out_range.end..r.end - self.out_range.end]
        }
    }
}

/// Runs `plan` on `input` (channels-first `[in][D][H][W]`, values in `[0, 1]`), writing class
/// probabilities (channels-first `[classes][D][H][W]`) to `output`. `arena` must hold at
/// least [`Plan::arena_len`] values; its contents on entry do not matter.
pub fn run(
    plan: &Plan<'_>,
    input: &[f32],
    arena: &mut [f32],
    output: &mut [f32],
) -> Result<(), RunError> {
    let check = |what, expected, found| {
        if expected == found {
            Ok(())
        } else {
            Err(RunError::Buffer {
                what,
                expected,
                found,
            })
        }
    };
    check("the input", plan.input_len(), input.len())?;
    check("the output", plan.output_len(), output.len())?;
    if arena.len() < plan.arena_len() {
        return Err(RunError::Buffer {
            what: "the arena",
            expected: plan.arena_len(),
            found: arena.len(),
        });
    }
    if let Some(index) = input.iter().position(|v| !v.is_finite()) {
        return Err(RunError::NonFiniteInput { index });
    }
    for index in 0..plan.len() {
        let op = plan.op(index).map_err(RunError::Plan)?;
        execute(plan, &op, input, arena, output);
    }
    Ok(())
}

fn execute(plan: &Plan<'_>, op: &Op, input: &[f32], arena: &mut [f32], output: &mut [f32]) {
    match op {
        Op::Normalize { out, mean, inv_std } => layout::normalize(
            input,
            plan.weights(mean.clone()),
            plan.weights(inv_std.clone()),
            &mut arena[out.clone()],
        ),
        Op::ClassSoftmax { x, classes } => {
            softmax::class_softmax(&arena[x.clone()], *classes, output)
        }
        Op::Conv {
            shape,
            relu,
            x,
            w,
            out,
        } => {
            let s = Split::new(arena, out.clone());
            conv::conv(
                shape,
                s.read(x),
                plan.weights(w.clone()),
                *relu,
                0..shape.rows(),
                s.out,
            );
        }
        Op::AddScaled { a, b, scale, out } => {
            let s = Split::new(arena, out.clone());
            elementwise::add_scaled(s.read(a), s.read(b), *scale, s.out);
        }
        Op::Mul { a, b, out } => {
            let s = Split::new(arena, out.clone());
            elementwise::mul(s.read(a), s.read(b), s.out);
        }
        Op::Affine {
            x,
            scale,
            shift,
            out,
        } => {
            let s = Split::new(arena, out.clone());
            elementwise::affine(s.read(x), *scale, *shift, s.out);
        }
        Op::ScaledSquare { x, scale, out } => {
            let s = Split::new(arena, out.clone());
            elementwise::scaled_square(s.read(x), *scale, s.out);
        }
        Op::Relu { x, out } => {
            let s = Split::new(arena, out.clone());
            elementwise::relu(s.read(x), s.out);
        }
        Op::PhaseSoftmax {
            x,
            channels,
            phases,
            out,
        } => {
            let s = Split::new(arena, out.clone());
            softmax::phase_softmax(s.read(x), *channels, *phases, s.out);
        }
        Op::AvgPool {
            x,
            size,
            channels,
            out,
        }
        | Op::Prolong {
            x,
            size,
            channels,
            out,
        } => {
            let s = Split::new(arena, out.clone());
            let dims = plan.header().dims as usize;
            let kernel = if matches!(op, Op::AvgPool { .. }) {
                resample::avg_pool
            } else {
                resample::prolong
            };
            kernel(s.read(x), dims, *size, *channels, s.out);
        }
    }
}

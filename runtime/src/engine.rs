//! Running a validated plan in a caller-provided arena: no allocation, no panics on any
//! input (lengths are checked up front, ranges were checked by [`Plan::prepare`]). A run
//! flushes subnormal floats to zero on every thread that computes part of it, so that its
//! speed does not depend on the input (see [`crate::denormals`]).

use core::fmt;
use core::ops::Range;

use crate::denormals::FlushDenormals;
use crate::format::Opcode;
use crate::kernels::{elementwise, layout, resample, softmax};
use crate::parallel::{Parallel, Sequential, split};
use crate::plan::{Program, Step};

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
    /// The output holds a NaN: some value overflowed on the way (finite weights can still be
    /// large enough for that). Reported rather than returned as probabilities.
    NonFiniteOutput { index: usize },
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
            Self::NonFiniteOutput { index } => write!(
                f,
                "output value {index} is NaN: a value overflowed inside the network (are the \
                 weights sane?)"
            ),
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

/// Runs `program` on `input` (channels-first `[in][D][H][W]`, values in `[0, 1]`), writing class
/// probabilities (channels-first `[classes][D][H][W]`) to `output`. `arena` must hold at
/// least [`crate::Plan::arena_len`] values; its contents on entry do not matter.
pub fn run(
    program: &Program<'_>,
    input: &[f32],
    arena: &mut [f32],
    output: &mut [f32],
) -> Result<(), RunError> {
    run_with(program, input, arena, output, &Sequential)
}

/// [`run`], with each large op split across the tasks of `par`. The output is bit-for-bit the
/// same as [`run`]'s at any width (see [`crate::parallel`]).
///
/// For the duration of the run, subnormal floats are flushed to zero on the caller's thread
/// and on every thread that runs a task of it ([`FlushDenormals`]); each thread's previous
/// mode is restored afterwards.
pub fn run_with(
    program: &Program<'_>,
    input: &[f32],
    arena: &mut [f32],
    output: &mut [f32],
    par: &dyn Parallel,
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
    let plan = program.plan();
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
    // Before the first op, so every task sees it: `split` hands this thread's mode to the
    // tasks it runs elsewhere. Dropped (the mode restored) on every return path.
    let _flush = FlushDenormals::enable();
    for step in program.steps() {
        execute(program, step, input, arena, output, par);
    }
    if let Some(index) = output.iter().position(|v| !v.is_finite()) {
        return Err(RunError::NonFiniteOutput { index });
    }
    Ok(())
}

/// Smallest share of one op worth a task of its own: below it, handing work to a worker costs
/// about what the work does. Chosen with `msnet-run bench --threads 2` on the shipped 112×112
/// model (median ms for MACs/values thresholds): 2^12/2^10 13.4, 2^14/2^11 12.9,
/// 2^16/2^13 13.1, 2^18/2^15 14.0, 2^20/2^17 17.7.
const MIN_TASK_MACS: usize = 1 << 14;
const MIN_TASK_VALUES: usize = 1 << 11;

/// Units per task so that a task holds at least `min` of something a unit has `per_unit` of.
fn min_units(min: usize, per_unit: usize) -> usize {
    min.div_ceil(per_unit.max(1))
}

/// [`resample::avg_pool`] or [`resample::prolong`].
type ResampleKernel = fn(&[f32], &resample::Grid, Range<usize>, &mut [f32]);

fn execute(
    program: &Program<'_>,
    step: &Step,
    input: &[f32],
    arena: &mut [f32],
    output: &mut [f32],
    par: &dyn Parallel,
) {
    let plan = program.plan();
    let weights = || plan.weights(step.weights.clone());
    // The caller's buffers: the first op reads the input, the last writes the output.
    match step.opcode {
        Opcode::Normalize => {
            let (mean, inv_std) = weights().split_at(step.channels);
            return layout::normalize(input, mean, inv_std, &mut arena[step.out.clone()]);
        }
        Opcode::ClassSoftmax => {
            return softmax::class_softmax(&arena[step.a.clone()], step.channels, output);
        }
        _ => {}
    }
    // Arena to arena: inputs never overlap the output (checked at prepare).
    let s = Split::new(arena, step.out.clone());
    let a = s.read(&step.a);
    // Elementwise ops: one value is one unit.
    let values = |out: &mut [f32], work: &(dyn Fn(Range<usize>, &mut [f32]) + Sync)| {
        let len = out.len();
        split(par, len, 1, MIN_TASK_VALUES, out, work)
    };
    let (scale, shift) = (step.scale, step.shift);
    match step.opcode {
        Opcode::Conv => {
            let shape = step.conv_shape(plan.header().dims as usize);
            let w = weights();
            let kernel = program.conv_kernel();
            let row_len = shape.output_len() / shape.rows().max(1);
            let row_macs = row_len * shape.weights_len() / shape.cout.max(1);
            split(
                par,
                shape.rows(),
                row_len,
                min_units(MIN_TASK_MACS, row_macs),
                s.out,
                |rows, out| kernel.conv(&shape, a, w, step.relu, rows, out),
            );
        }
        Opcode::AddScaled => {
            let b = s.read(&step.b);
            values(s.out, &|r, o| {
                elementwise::add_scaled(&a[r.clone()], &b[r], scale, o)
            });
        }
        Opcode::Mul => {
            let b = s.read(&step.b);
            values(s.out, &|r, o| elementwise::mul(&a[r.clone()], &b[r], o));
        }
        Opcode::Affine => values(s.out, &|r, o| elementwise::affine(&a[r], scale, shift, o)),
        Opcode::ScaledSquare => values(s.out, &|r, o| elementwise::scaled_square(&a[r], scale, o)),
        Opcode::Relu => values(s.out, &|r, o| elementwise::relu(&a[r], o)),
        Opcode::PhaseSoftmax => {
            let (c, phases) = (step.channels, step.param);
            let pixels = s.out.len() / c;
            split(
                par,
                pixels,
                c,
                min_units(MIN_TASK_VALUES, c),
                s.out,
                |px, o| softmax::phase_softmax(&a[px.start * c..px.end * c], c, phases, o),
            );
        }
        Opcode::AvgPool | Opcode::Prolong => {
            let grid = resample::Grid {
                dims: plan.header().dims as usize,
                size: step.size,
                channels: step.channels,
            };
            let (kernel, rows): (ResampleKernel, _) = if step.opcode == Opcode::AvgPool {
                (resample::avg_pool, grid.pooled_rows())
            } else {
                (resample::prolong, grid.prolonged_rows())
            };
            let row_len = s.out.len() / rows.max(1);
            split(
                par,
                rows,
                row_len,
                min_units(MIN_TASK_VALUES, row_len),
                s.out,
                |r, o| kernel(a, &grid, r, o),
            );
        }
        // Run above, on the caller's buffers.
        Opcode::Normalize | Opcode::ClassSoftmax => {}
    }
}

//! Reading a plan: every offset, shape and length is checked before anything runs, so a
//! truncated, corrupted or hostile plan is a [`PlanError`], never a panic or an access outside
//! the arena, the weights or the caller's buffers.

use core::fmt;
use core::ops::Range;

use crate::format::{
    FLAG_RELU, HEADER_WORDS, Header, MAGIC, OP_WORDS, OpRecord, Opcode, not_a_plan, plan_checksum,
};
use crate::kernels::conv::ConvShape;

/// Why a plan was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Fewer bytes than a header, or not a whole number of words.
    Truncated { len: usize },
    /// The bytes do not start on a 4-byte boundary (load plans into a `u32` buffer).
    Misaligned,
    /// This runtime reads little-endian plans on little-endian targets only.
    BigEndian,
    /// The header is not an MSNet plan of this version.
    Header(&'static str),
    /// The header's file length is not the length given.
    Length { declared: usize, actual: usize },
    /// The content does not match the header's CRC-32.
    Checksum { stored: u32, computed: u32 },
    /// A weight is NaN or infinite.
    NonFiniteWeight { index: usize },
    /// Op `index` is malformed.
    Op { index: usize, reason: &'static str },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { len } => write!(
                f,
                "truncated plan: {len} bytes (a plan is whole 32-bit words, header included)"
            ),
            Self::Misaligned => write!(f, "plan bytes are not 4-byte aligned"),
            Self::BigEndian => write!(f, "plans are little-endian; this target is big-endian"),
            Self::Header(why) => write!(f, "bad plan header: {why}"),
            Self::Length { declared, actual } => write!(
                f,
                "plan is {actual} bytes but its header says {declared} (truncated or padded)"
            ),
            Self::Checksum { stored, computed } => write!(
                f,
                "plan checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the \
                 file is corrupted"
            ),
            Self::NonFiniteWeight { index } => {
                write!(f, "plan weight {index} is NaN or infinite")
            }
            Self::Op { index, reason } => write!(f, "plan op {index}: {reason}"),
        }
    }
}

/// One op, decoded and checked: arena ranges in f32 elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Normalize {
        out: Range<usize>,
        mean: Range<usize>,
        inv_std: Range<usize>,
    },
    Conv {
        shape: ConvShape,
        relu: bool,
        x: Range<usize>,
        w: Range<usize>,
        out: Range<usize>,
    },
    AddScaled {
        a: Range<usize>,
        b: Range<usize>,
        scale: f32,
        out: Range<usize>,
    },
    Mul {
        a: Range<usize>,
        b: Range<usize>,
        out: Range<usize>,
    },
    Affine {
        x: Range<usize>,
        scale: f32,
        shift: f32,
        out: Range<usize>,
    },
    ScaledSquare {
        x: Range<usize>,
        scale: f32,
        out: Range<usize>,
    },
    Relu {
        x: Range<usize>,
        out: Range<usize>,
    },
    PhaseSoftmax {
        x: Range<usize>,
        channels: usize,
        phases: usize,
        out: Range<usize>,
    },
    AvgPool {
        x: Range<usize>,
        size: [usize; 3],
        channels: usize,
        out: Range<usize>,
    },
    Prolong {
        x: Range<usize>,
        size: [usize; 3],
        channels: usize,
        out: Range<usize>,
    },
    ClassSoftmax {
        x: Range<usize>,
        classes: usize,
    },
}

impl Op {
    /// The arena ranges this op reads.
    pub fn inputs(&self) -> [Option<&Range<usize>>; 2] {
        match self {
            Self::Normalize { .. } => [None, None],
            Self::AddScaled { a, b, .. } | Self::Mul { a, b, .. } => [Some(a), Some(b)],
            Self::Conv { x, .. }
            | Self::Affine { x, .. }
            | Self::ScaledSquare { x, .. }
            | Self::Relu { x, .. }
            | Self::PhaseSoftmax { x, .. }
            | Self::AvgPool { x, .. }
            | Self::Prolong { x, .. }
            | Self::ClassSoftmax { x, .. } => [Some(x), None],
        }
    }

    /// The arena range this op writes (the class softmax writes the caller's output instead).
    pub fn output(&self) -> Option<&Range<usize>> {
        match self {
            Self::ClassSoftmax { .. } => None,
            Self::Normalize { out, .. }
            | Self::Conv { out, .. }
            | Self::AddScaled { out, .. }
            | Self::Mul { out, .. }
            | Self::Affine { out, .. }
            | Self::ScaledSquare { out, .. }
            | Self::Relu { out, .. }
            | Self::PhaseSoftmax { out, .. }
            | Self::AvgPool { out, .. }
            | Self::Prolong { out, .. } => Some(out),
        }
    }
}

/// A validated plan borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    header: Header,
    ops: &'a [u32],
    weights: &'a [f32],
}

fn product(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

impl<'a> Plan<'a> {
    /// Parses and validates `bytes` (4-byte aligned). Checks the header, the length, the
    /// checksum, every weight, and every op's shapes and ranges.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PlanError> {
        if cfg!(target_endian = "big") {
            return Err(PlanError::BigEndian);
        }
        // A foreign file is named before its length is judged: an ONNX file is rarely a whole
        // number of words, and "truncated plan" would send the user looking for the wrong fault.
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(PlanError::Header(not_a_plan(bytes)));
        }
        if bytes.len() < HEADER_WORDS * 4 || !bytes.len().is_multiple_of(4) {
            return Err(PlanError::Truncated { len: bytes.len() });
        }
        // SAFETY: every bit pattern is a valid u32; `align_to` only yields the aligned middle.
        let (prefix, words, _) = unsafe { bytes.align_to::<u32>() };
        if !prefix.is_empty() {
            return Err(PlanError::Misaligned);
        }
        let mut head = [0u32; HEADER_WORDS];
        head.copy_from_slice(&words[..HEADER_WORDS]);
        let header = Header::from_words(&head).map_err(PlanError::Header)?;
        if header.file_len as usize != bytes.len() {
            return Err(PlanError::Length {
                declared: header.file_len as usize,
                actual: bytes.len(),
            });
        }
        let computed = plan_checksum(bytes);
        if computed != header.checksum {
            return Err(PlanError::Checksum {
                stored: header.checksum,
                computed,
            });
        }
        let ops_len = (header.op_count as usize)
            .checked_mul(OP_WORDS)
            .ok_or(PlanError::Header("op count overflows"))?;
        let weights_start = HEADER_WORDS + ops_len;
        let expected = weights_start.checked_add(header.weights_len as usize);
        if expected != Some(words.len()) {
            return Err(PlanError::Header(
                "op count and weight count do not add up to the file length",
            ));
        }
        if !(header.dims == 2 || header.dims == 3) {
            return Err(PlanError::Header("dims must be 2 or 3"));
        }
        if header.dims == 2 && header.size[0] != 1 {
            return Err(PlanError::Header("a 2D plan has depth 1"));
        }
        if header.in_channels == 0 || header.classes < 2 || header.size.contains(&0) {
            return Err(PlanError::Header("empty input or fewer than 2 classes"));
        }
        product(&header.size.map(|v| v as usize))
            .and_then(|s| s.checked_mul(header.in_channels.max(header.classes) as usize))
            .ok_or(PlanError::Header("input size overflows"))?;
        let ops = &words[HEADER_WORDS..weights_start];
        // SAFETY: every bit pattern is a valid f32; the slice is u32-aligned, hence f32-aligned.
        let weights: &[f32] = unsafe {
            core::slice::from_raw_parts(
                words[weights_start..].as_ptr().cast::<f32>(),
                header.weights_len as usize,
            )
        };
        if let Some(index) = weights.iter().position(|w| !w.is_finite()) {
            return Err(PlanError::NonFiniteWeight { index });
        }
        let plan = Self {
            header,
            ops,
            weights,
        };
        let count = header.op_count as usize;
        if count < 2 {
            return Err(PlanError::Header(
                "a plan has at least a first and a last op",
            ));
        }
        for index in 0..count {
            let op = plan.op(index)?;
            let first = matches!(op, Op::Normalize { .. });
            let last = matches!(op, Op::ClassSoftmax { .. });
            if first != (index == 0) || last != (index == count - 1) {
                return Err(PlanError::Op {
                    index,
                    reason: "the first op must be Normalize and the last ClassSoftmax, once each",
                });
            }
            plan.check_reads(index, &op)?;
        }
        Ok(plan)
    }

    /// Every range op `index` reads must have been written, whole, by the latest earlier op
    /// that wrote any part of it: otherwise it would read stale arena contents (or, where a
    /// later op overwrote part of it, a mix), a silently wrong answer rather than a crash.
    /// Quadratic in the op count, with no allocation; a few hundred ops take well under a
    /// millisecond, once per load.
    fn check_reads(&self, index: usize, op: &Op) -> Result<(), PlanError> {
        for read in op.inputs().into_iter().flatten() {
            let mut writer = None;
            for earlier in (0..index).rev() {
                let e = self.op(earlier)?;
                if let Some(out) = e.output().filter(|out| overlaps(out, read)) {
                    writer = Some(out.start <= read.start && read.end <= out.end);
                    break;
                }
            }
            if writer != Some(true) {
                return Err(PlanError::Op {
                    index,
                    reason: "reads arena values that no earlier op wrote (or that were since \
                             overwritten)",
                });
            }
        }
        Ok(())
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.header.op_count as usize
    }

    /// Never true for a parsed plan (it has at least two ops).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The arena length (f32 elements) [`crate::run`] needs.
    pub fn arena_len(&self) -> usize {
        self.header.arena_len as usize
    }

    /// `[D, H, W]` of the input.
    pub fn size(&self) -> [usize; 3] {
        self.header.size.map(|v| v as usize)
    }

    fn pixels(&self) -> usize {
        self.size().iter().product()
    }

    /// Length of the caller's input, `in_channels · D · H · W` (channels-first).
    pub fn input_len(&self) -> usize {
        self.header.in_channels as usize * self.pixels()
    }

    /// Length of the caller's output, `classes · D · H · W` (channels-first).
    pub fn output_len(&self) -> usize {
        self.header.classes as usize * self.pixels()
    }

    pub(crate) fn weights(&self, r: Range<usize>) -> &'a [f32] {
        &self.weights[r]
    }

    /// Decodes and checks op `index` against the header, the arena and the weights.
    pub fn op(&self, index: usize) -> Result<Op, PlanError> {
        let bad = |reason| PlanError::Op { index, reason };
        let words = self
            .ops
            .get(index * OP_WORDS..(index + 1) * OP_WORDS)
            .ok_or(bad("no such op"))?;
        let r = OpRecord::from_words(words).map_err(bad)?;
        let arena = |off: u32, len: Option<usize>| -> Result<Range<usize>, PlanError> {
            let len = len.ok_or(bad("tensor size overflows"))?;
            let start = off as usize;
            match start.checked_add(len) {
                Some(end) if end <= self.arena_len() && len > 0 => Ok(start..end),
                _ => Err(bad("tensor outside the arena")),
            }
        };
        let weights = |len: Option<usize>| -> Result<Range<usize>, PlanError> {
            let len = len.ok_or(bad("weight size overflows"))?;
            let start = r.weights as usize;
            match start.checked_add(len) {
                Some(end) if end <= self.weights.len() => Ok(start..end),
                _ => Err(bad("weights outside the weight section")),
            }
        };
        let disjoint = |out: &Range<usize>, ins: &[&Range<usize>]| {
            if ins.iter().any(|i| overlaps(out, i)) {
                Err(bad("output overlaps an input"))
            } else {
                Ok(())
            }
        };
        let finite = |v: f32| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad("non-finite scalar"))
            }
        };
        let dims = self.header.dims as usize;
        let size = r.size.map(|v| v as usize);
        if size.contains(&0) || (dims == 2 && size[0] != 1) {
            return Err(bad("bad spatial size"));
        }
        let pixels = product(&size);
        let channels = r.channels as usize;
        let len = pixels.and_then(|p| p.checked_mul(channels));
        if r.flags & !FLAG_RELU != 0 || (r.flags != 0 && r.opcode != Opcode::Conv) {
            return Err(bad("unknown flags"));
        }
        Ok(match r.opcode {
            Opcode::Normalize => {
                if r.channels != self.header.in_channels || r.size != self.header.size {
                    return Err(bad("Normalize does not match the plan's input"));
                }
                let out = arena(r.out, len)?;
                let mean = weights(Some(2 * channels))?;
                let inv_std = mean.start + channels..mean.end;
                Op::Normalize {
                    out,
                    mean: mean.start..mean.start + channels,
                    inv_std,
                }
            }
            Opcode::Conv => {
                let shape = ConvShape {
                    dims,
                    input: size,
                    cin: channels,
                    cout: r.out_channels as usize,
                    stride: r.param as usize,
                };
                if shape.cout == 0 || channels == 0 || !(shape.stride == 1 || shape.stride == 2) {
                    return Err(bad("bad convolution channels or stride"));
                }
                let taps = if dims == 3 { 27 } else { 9 };
                let w = weights(
                    channels
                        .checked_mul(shape.cout)
                        .and_then(|n| n.checked_mul(taps)),
                )?;
                let x = arena(r.a, len)?;
                let out_len = product(&shape.output()).and_then(|p| p.checked_mul(shape.cout));
                let out = arena(r.out, out_len)?;
                disjoint(&out, &[&x])?;
                Op::Conv {
                    shape,
                    relu: r.flags & FLAG_RELU != 0,
                    x,
                    w,
                    out,
                }
            }
            Opcode::AddScaled | Opcode::Mul => {
                let (a, b, out) = (arena(r.a, len)?, arena(r.b, len)?, arena(r.out, len)?);
                disjoint(&out, &[&a, &b])?;
                if r.opcode == Opcode::Mul {
                    Op::Mul { a, b, out }
                } else {
                    Op::AddScaled {
                        a,
                        b,
                        scale: finite(r.scale)?,
                        out,
                    }
                }
            }
            Opcode::Affine | Opcode::ScaledSquare | Opcode::Relu => {
                let (x, out) = (arena(r.a, len)?, arena(r.out, len)?);
                disjoint(&out, &[&x])?;
                match r.opcode {
                    Opcode::Affine => Op::Affine {
                        x,
                        scale: finite(r.scale)?,
                        shift: finite(r.shift)?,
                        out,
                    },
                    Opcode::ScaledSquare => Op::ScaledSquare {
                        x,
                        scale: finite(r.scale)?,
                        out,
                    },
                    _ => Op::Relu { x, out },
                }
            }
            Opcode::PhaseSoftmax => {
                let phases = r.param as usize;
                if phases == 0 || !channels.is_multiple_of(phases) {
                    return Err(bad("channels are not a whole number of phases"));
                }
                let (x, out) = (arena(r.a, len)?, arena(r.out, len)?);
                disjoint(&out, &[&x])?;
                Op::PhaseSoftmax {
                    x,
                    channels,
                    phases,
                    out,
                }
            }
            Opcode::AvgPool | Opcode::Prolong => {
                let x = arena(r.a, len)?;
                let depth = if dims == 3 { 2 } else { 1 };
                let out_size = if r.opcode == Opcode::AvgPool {
                    if !size[0].is_multiple_of(depth)
                        || !size[1].is_multiple_of(2)
                        || !size[2].is_multiple_of(2)
                    {
                        return Err(bad("pooling an odd size"));
                    }
                    Some([size[0] / depth, size[1] / 2, size[2] / 2])
                } else {
                    match (
                        size[0].checked_mul(depth),
                        size[1].checked_mul(2),
                        size[2].checked_mul(2),
                    ) {
                        (Some(d), Some(h), Some(w)) => Some([d, h, w]),
                        _ => None,
                    }
                };
                let out_len = out_size
                    .and_then(|s| product(&s))
                    .and_then(|p| p.checked_mul(channels));
                let out = arena(r.out, out_len)?;
                disjoint(&out, &[&x])?;
                if r.opcode == Opcode::AvgPool {
                    Op::AvgPool {
                        x,
                        size,
                        channels,
                        out,
                    }
                } else {
                    Op::Prolong {
                        x,
                        size,
                        channels,
                        out,
                    }
                }
            }
            Opcode::ClassSoftmax => {
                if r.channels != self.header.classes || r.size != self.header.size {
                    return Err(bad("ClassSoftmax does not match the plan's output"));
                }
                Op::ClassSoftmax {
                    x: arena(r.a, len)?,
                    classes: channels,
                }
            }
        })
    }
}

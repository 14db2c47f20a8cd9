//! Reading a plan in two steps, both before any frame: [`Plan::parse`] checks the file (header,
//! length, checksum, weights), and [`Plan::prepare`] decodes every op once, by the op table's
//! signatures ([`crate::format::Signature`]), into [`Step`]s the caller provides storage for,
//! checking shapes, ranges and data flow. A truncated, corrupted or hostile plan is a
//! [`PlanError`], never a panic or an access outside the arena, the weights or the caller's
//! buffers; a [`Program`] runs without decoding or checking anything again.

use core::fmt;
use core::ops::Range;

use crate::format::{
    FLAG_RELU, HEADER_WORDS, Header, Inputs, MAGIC, OP_WORDS, OpRecord, Opcode, Output, Param,
    WeightUse, not_a_plan, plan_checksum,
};
use crate::kernels::conv::{ConvKernel, ConvShape};

mod flow;

/// Why a plan was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One op, decoded and checked: arena ranges in f32 elements. Ranges an op does not use are
/// empty (see its [`crate::format::Signature`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub opcode: Opcode,
    pub relu: bool,
    pub a: Range<usize>,
    pub b: Range<usize>,
    pub out: Range<usize>,
    pub weights: Range<usize>,
    /// Channels and spatial size `[D, H, W]` of the (first) input.
    pub channels: usize,
    pub size: [usize; 3],
    pub out_channels: usize,
    /// See [`crate::format::Param`].
    pub param: usize,
    pub scale: f32,
    pub shift: f32,
    /// Used by [`Plan::prepare`]'s data-flow check; the storage the caller gives holds it, so
    /// the check needs no other memory.
    flow: flow::Scratch,
}

impl Step {
    /// Filler for the storage [`Plan::prepare`] decodes into (`[Step::UNSET; N]`).
    pub const UNSET: Step = Step {
        opcode: Opcode::Relu,
        relu: false,
        a: 0..0,
        b: 0..0,
        out: 0..0,
        weights: 0..0,
        channels: 0,
        size: [0; 3],
        out_channels: 0,
        param: 0,
        scale: 0.0,
        shift: 0.0,
        flow: flow::Scratch::UNSET,
    };

    /// The arena ranges this step reads.
    pub fn reads(&self) -> impl Iterator<Item = &Range<usize>> {
        let n = self.opcode.signature().inputs.arena_tensors();
        [&self.a, &self.b].into_iter().take(n)
    }

    /// The arena range this step writes (the last op writes the caller's output instead).
    pub fn writes(&self) -> Option<&Range<usize>> {
        (self.opcode.signature().output != Output::Caller).then_some(&self.out)
    }

    /// The convolution of a [`Opcode::Conv`] step, on a plan of `dims` axes.
    pub fn conv_shape(&self, dims: usize) -> ConvShape {
        ConvShape {
            dims,
            input: self.size,
            cin: self.channels,
            cout: self.out_channels,
            stride: self.param,
        }
    }
}

/// A checked plan file borrowing its bytes: header, checksum and weights are valid; the ops
/// are checked by [`Plan::prepare`].
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    header: Header,
    ops: &'a [u32],
    weights: &'a [f32],
}

/// A plan whose ops are decoded and checked: what [`crate::run`] runs.
#[derive(Clone, Copy, Debug)]
pub struct Program<'a> {
    plan: Plan<'a>,
    steps: &'a [Step],
    conv: ConvKernel,
}

impl<'a> Program<'a> {
    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// The decoded ops, in execution order.
    pub fn steps(&self) -> &'a [Step] {
        self.steps
    }

    /// The convolution kernel the program runs: [`ConvKernel::best`] unless set with
    /// [`Program::with_conv_kernel`].
    pub fn conv_kernel(&self) -> ConvKernel {
        self.conv
    }

    /// The same program on another convolution kernel (to compare kernels: every kernel gives
    /// the same result up to rounding, and the fused ones agree to the bit).
    pub fn with_conv_kernel(self, conv: ConvKernel) -> Self {
        Self { conv, ..self }
    }

    /// For storage [`Plan::prepare`] filled (the host session keeps its own).
    #[cfg(feature = "std")]
    pub(crate) fn from_prepared(plan: Plan<'a>, steps: &'a [Step], conv: ConvKernel) -> Self {
        Self { plan, steps, conv }
    }
}

fn product(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

impl<'a> Plan<'a> {
    /// Parses `bytes` (4-byte aligned) and checks the header, the length, the checksum and
    /// every weight.
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
        if header.op_count < 2 {
            return Err(PlanError::Header(
                "a plan has at least a first and a last op",
            ));
        }
        if header.arena_lower_bound > header.arena_len {
            return Err(PlanError::Header(
                "the arena is smaller than its own liveness lower bound",
            ));
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
        Ok(Self {
            header,
            ops,
            weights,
        })
    }

    /// Decodes and checks every op into `storage` (at least [`Plan::len`] steps; its contents
    /// on entry do not matter) and returns the runnable program. Checks, per op, shapes and
    /// ranges against the header, the arena and the weights; over the program, that the first
    /// op is the only Normalize and the last the only ClassSoftmax, that every read was
    /// written, whole, by the latest earlier op that wrote any of it, and that the header's
    /// arena is exactly what the ops use (so a hand-edited header cannot make the caller
    /// allocate more). The data-flow check is `O(n log n)` in the op count and keeps its
    /// working state in `storage`, so preparing needs no other memory.
    pub fn prepare<'s>(&self, storage: &'s mut [Step]) -> Result<Program<'s>, PlanError>
    where
        'a: 's,
    {
        let count = self.len();
        let steps = storage.get_mut(..count).ok_or(PlanError::Header(
            "the step storage is smaller than the op count",
        ))?;
        let mut arena_used = 0;
        for (index, step) in steps.iter_mut().enumerate() {
            *step = self.decode(index)?;
            arena_used = step.writes().map_or(arena_used, |w| arena_used.max(w.end));
        }
        if arena_used != self.arena_len() {
            return Err(PlanError::Header(
                "the header's arena length is not the arena the ops use",
            ));
        }
        flow::check(steps)?;
        Ok(Program {
            plan: *self,
            steps,
            conv: ConvKernel::best(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of ops (the steps [`Plan::prepare`] needs storage for).
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

    /// Decodes and checks op `index` by its signature.
    fn decode(&self, index: usize) -> Result<Step, PlanError> {
        let bad = |reason| PlanError::Op { index, reason };
        let words = self
            .ops
            .get(index * OP_WORDS..(index + 1) * OP_WORDS)
            .ok_or(bad("no such op"))?;
        let r = OpRecord::from_words(words).map_err(bad)?;
        let sig = r.opcode.signature();
        let first = sig.inputs == Inputs::Caller;
        let last = sig.output == Output::Caller;
        if first != (index == 0) || last != (index + 1 == self.len()) {
            return Err(bad(
                "the first op must be Normalize and the last ClassSoftmax, once each",
            ));
        }
        let unused = |used: bool, value: u32| {
            if used || value == 0 {
                Ok(())
            } else {
                Err(bad("a field this op does not use is not zero"))
            }
        };
        let two = sig.inputs == Inputs::Two;
        let caller_out = last;
        unused(sig.inputs != Inputs::Caller, r.a)?;
        unused(two, r.b)?;
        unused(!caller_out, r.out)?;
        unused(sig.output == Output::Conv, r.out_channels)?;
        unused(sig.param != Param::None, r.param)?;
        unused(sig.weights != WeightUse::None, r.weights)?;
        unused(sig.scale, r.scale.to_bits())?;
        unused(sig.shift, r.shift.to_bits())?;
        if r.flags & !FLAG_RELU != 0 || (r.flags != 0 && !sig.relu) {
            return Err(bad("unknown flags"));
        }
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
        let channels = r.channels as usize;
        if channels == 0 {
            return Err(bad("no channels"));
        }
        let arena = |off: u32, len: Option<usize>| -> Result<Range<usize>, PlanError> {
            let len = len.ok_or(bad("tensor size overflows"))?;
            let start = off as usize;
            match start.checked_add(len) {
                Some(end) if end <= self.arena_len() && len > 0 => Ok(start..end),
                _ => Err(bad("tensor outside the arena")),
            }
        };
        let in_len = product(&size).and_then(|p| p.checked_mul(channels));
        let a = match sig.inputs {
            Inputs::Caller => {
                if r.channels != self.header.in_channels || r.size != self.header.size {
                    return Err(bad("Normalize does not match the plan's input"));
                }
                0..0
            }
            Inputs::One | Inputs::Two => arena(r.a, in_len)?,
        };
        let b = if two { arena(r.b, in_len)? } else { 0..0 };
        let param = r.param as usize;
        match sig.param {
            Param::Stride if !(param == 1 || param == 2) => {
                return Err(bad("bad convolution channels or stride"));
            }
            Param::Phases if param == 0 || !channels.is_multiple_of(param) => {
                return Err(bad("channels are not a whole number of phases"));
            }
            _ => {}
        }
        let out_channels = r.out_channels as usize;
        let depth = if dims == 3 { 2 } else { 1 };
        let out_size = match sig.output {
            Output::Same | Output::Caller => Some(size),
            Output::Conv => {
                if out_channels == 0 {
                    return Err(bad("bad convolution channels or stride"));
                }
                Some(
                    ConvShape {
                        dims,
                        input: size,
                        cin: channels,
                        cout: out_channels,
                        stride: param,
                    }
                    .output(),
                )
            }
            Output::Pooled => {
                if !size[0].is_multiple_of(depth)
                    || !size[1].is_multiple_of(2)
                    || !size[2].is_multiple_of(2)
                {
                    return Err(bad("pooling an odd size"));
                }
                Some([size[0] / depth, size[1] / 2, size[2] / 2])
            }
            Output::Prolonged => match (
                size[0].checked_mul(depth),
                size[1].checked_mul(2),
                size[2].checked_mul(2),
            ) {
                (Some(d), Some(h), Some(w)) => Some([d, h, w]),
                _ => None,
            },
        };
        let out_c = if sig.output == Output::Conv {
            out_channels
        } else {
            channels
        };
        let out_len = out_size
            .and_then(|s| product(&s))
            .and_then(|p| p.checked_mul(out_c));
        let out = if caller_out {
            if r.channels != self.header.classes || r.size != self.header.size {
                return Err(bad("ClassSoftmax does not match the plan's output"));
            }
            0..0
        } else {
            let out = arena(r.out, out_len)?;
            if overlaps(&out, &a) || overlaps(&out, &b) {
                return Err(bad("output overlaps an input"));
            }
            out
        };
        let weights_len = match sig.weights {
            WeightUse::None => Some(0),
            WeightUse::Normalization => Some(2 * channels),
            WeightUse::Kernel => channels
                .checked_mul(out_channels)
                .and_then(|n| n.checked_mul(if dims == 3 { 27 } else { 9 })),
        };
        let weights = {
            let len = weights_len.ok_or(bad("weight size overflows"))?;
            let start = r.weights as usize;
            match start.checked_add(len) {
                Some(end) if end <= self.weights.len() => start..end,
                _ => return Err(bad("weights outside the weight section")),
            }
        };
        Ok(Step {
            opcode: r.opcode,
            relu: r.flags & FLAG_RELU != 0,
            a,
            b,
            out,
            weights,
            channels,
            size,
            out_channels,
            param,
            scale: finite(r.scale)?,
            shift: finite(r.shift)?,
            flow: flow::Scratch::UNSET,
        })
    }
}

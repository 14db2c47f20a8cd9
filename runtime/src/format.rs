//! The plan file (`model.msplan`): what the exporter writes and [`crate::Plan`] reads.
//!
//! Everything is little-endian 32-bit words, so a plan is a `[u32]` and its weights a `[f32]`
//! without copying:
//!
//! | words | what |
//! |---|---|
//! | 0..[`HEADER_WORDS`] | [`Header`] |
//! | then `op_count` × [`OP_WORDS`] | the op list, in execution order ([`OpRecord`]) |
//! | then `weights_len` | f32 weights, each op's in the layout its kernel reads |
//!
//! The header's checksum is the CRC-32 (IEEE) of the whole file with the checksum word read as
//! zero. Tensors live in one arena of `arena_len` f32 (offsets planned offline by the
//! exporter); the input image and the output probabilities are the caller's buffers, read by
//! the first op ([`Opcode::Normalize`]) and written by the last ([`Opcode::ClassSoftmax`]).
//! Arena tensors are channels-last, `[D][H][W][C]` (D = 1 in 2D); the caller's input and
//! output are channels-first `[C][D][H][W]`, as in ONNX.

/// The plan's file name in a model directory.
pub const PLAN_FILE: &str = "model.msplan";
/// File magic, the first 8 bytes.
pub const MAGIC: [u8; 8] = *b"MSNPLAN\0";
/// [`MAGIC`] as the first two little-endian words.
const MAGIC_WORDS: [u32; 2] = [
    u32::from_le_bytes([MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3]]),
    u32::from_le_bytes([MAGIC[4], MAGIC[5], MAGIC[6], MAGIC[7]]),
];
/// Why `bytes`, which do not start with [`MAGIC`], are not a plan. Names the other model
/// files of a model directory, the likeliest mix-up: a protobuf `ModelProto` starts with field
/// 1 (`ir_version`, a small varint) followed by another of its top-level fields; an NNEF plan
/// is a gzip archive.
pub fn not_a_plan(bytes: &[u8]) -> &'static str {
    match bytes {
        [0x08, v, 0x12 | 0x1a | 0x22 | 0x28 | 0x32 | 0x3a | 0x42, ..] if *v < 0x80 => {
            "not an MSNet plan (this looks like ONNX: pass model.msplan, not model.onnx)"
        }
        [0x1f, 0x8b, ..] => {
            "not an MSNet plan (this looks like a gzip archive such as model.nnef.tgz)"
        }
        _ => "not an MSNet plan (bad magic)",
    }
}

/// Format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Header length in words.
pub const HEADER_WORDS: usize = 32;
/// Length of one op record in words.
pub const OP_WORDS: usize = 16;
/// Word index of the checksum in the header.
pub const CHECKSUM_WORD: usize = 17;

/// The plan header (words 0..32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// 2 or 3.
    pub dims: u32,
    pub in_channels: u32,
    pub classes: u32,
    /// Input size `[D, H, W]` (D = 1 in 2D).
    pub size: [u32; 3],
    /// Arena length in f32 elements.
    pub arena_len: u32,
    /// The liveness lower bound of the arena (largest total of simultaneously live tensors).
    pub arena_lower_bound: u32,
    pub op_count: u32,
    /// Number of f32 weights after the op list.
    pub weights_len: u32,
    /// Whole file length in bytes.
    pub file_len: u32,
    pub checksum: u32,
    /// Multiply-accumulates of one forward pass (for GFLOP/s reports).
    pub macs: u64,
}

impl Header {
    /// The header as words (the checksum word included as stored).
    pub fn to_words(&self) -> [u32; HEADER_WORDS] {
        let mut w = [0u32; HEADER_WORDS];
        w[..2].copy_from_slice(&MAGIC_WORDS);
        w[2] = VERSION;
        w[3] = HEADER_WORDS as u32;
        w[4] = OP_WORDS as u32;
        w[5] = self.dims;
        w[6] = self.in_channels;
        w[7] = self.classes;
        w[8..11].copy_from_slice(&self.size);
        w[11] = self.arena_len;
        w[12] = self.arena_lower_bound;
        w[13] = self.op_count;
        w[14] = self.weights_len;
        w[15] = self.file_len;
        w[16] = 0;
        w[CHECKSUM_WORD] = self.checksum;
        w[18] = self.macs as u32;
        w[19] = (self.macs >> 32) as u32;
        w
    }

    /// Reads the header fields; checks magic, version and record sizes only.
    pub fn from_words(w: &[u32; HEADER_WORDS]) -> Result<Self, &'static str> {
        if w[..2] != MAGIC_WORDS {
            let mut start = [0u8; 8];
            start[..4].copy_from_slice(&w[0].to_le_bytes());
            start[4..].copy_from_slice(&w[1].to_le_bytes());
            return Err(not_a_plan(&start));
        }
        if w[2] != VERSION {
            return Err("unsupported plan version (this runtime reads version 1)");
        }
        if w[3] as usize != HEADER_WORDS || w[4] as usize != OP_WORDS {
            return Err("unexpected header or op record length");
        }
        Ok(Self {
            dims: w[5],
            in_channels: w[6],
            classes: w[7],
            size: [w[8], w[9], w[10]],
            arena_len: w[11],
            arena_lower_bound: w[12],
            op_count: w[13],
            weights_len: w[14],
            file_len: w[15],
            checksum: w[CHECKSUM_WORD],
            macs: w[18] as u64 | (w[19] as u64) << 32,
        })
    }
}

/// Where an op's first operand comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// The caller's channels-first input (the first op only).
    Caller,
    /// One arena tensor (`a`).
    One,
    /// Two arena tensors of the same shape (`a`, `b`).
    Two,
}

impl Inputs {
    /// How many arena tensors the op reads.
    pub const fn arena_tensors(self) -> usize {
        match self {
            Inputs::Caller => 0,
            Inputs::One => 1,
            Inputs::Two => 2,
        }
    }
}

/// Where an op writes, and the shape of what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// An arena tensor of the input's shape.
    Same,
    /// An arena tensor of `out_channels` at the convolution's output size (stride `param`).
    Conv,
    /// An arena tensor at half the resampled axes (depth only in 3D).
    Pooled,
    /// An arena tensor at twice the resampled axes.
    Prolonged,
    /// The caller's channels-first output (the last op only).
    Caller,
}

/// Which part of the weight section an op reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightUse {
    None,
    /// `mean[C]` then `inv_std[C]`.
    Normalization,
    /// A 3×3(×3) kernel `[kd][kh][kw][cin][cout]`.
    Kernel,
}

/// What the record's `param` word holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    None,
    /// Convolution stride, 1 or 2.
    Stride,
    /// Number of phases; it divides the channels.
    Phases,
}

/// Which record fields an op uses and what they mean. The decoder validates a record by its
/// signature and [`OpRecord::encode`] fills one by it; fields an op does not use are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub name: &'static str,
    pub inputs: Inputs,
    pub output: Output,
    pub weights: WeightUse,
    pub param: Param,
    /// Reads `scale` (and `shift`).
    pub scale: bool,
    pub shift: bool,
    /// May carry [`FLAG_RELU`].
    pub relu: bool,
}

/// The op table: each op's number in the file and its [`Signature`], written once. It makes
/// [`Opcode`] (with `from_u32`, `signature` and `ALL`); the decoder and the encoder follow the
/// signature, so adding an op is one entry here and its kernel call in the engine.
macro_rules! op_table {
    ($($(#[$doc:meta])* $name:ident = $code:literal {
        $inputs:ident, $output:ident, $weights:ident, $param:ident,
        scale: $scale:literal, shift: $shift:literal, relu: $relu:literal
    })*) => {
        /// What an op does. Arena tensors are channels-last.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum Opcode {
            $($(#[$doc])* $name = $code,)*
        }

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name),*];

            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($code => Some(Self::$name),)*
                    _ => None,
                }
            }

            pub const fn signature(self) -> Signature {
                match self {
                    $(Self::$name => Signature {
                        name: stringify!($name),
                        inputs: Inputs::$inputs,
                        output: Output::$output,
                        weights: WeightUse::$weights,
                        param: Param::$param,
                        scale: $scale,
                        shift: $shift,
                        relu: $relu,
                    },)*
                }
            }
        }
    };
}

op_table! {
    /// Caller's channels-first image → arena: `(x − mean[c]) · inv_std[c]`.
    Normalize = 1 { Caller, Same, Normalization, None, scale: false, shift: false, relu: false }
    /// 3×3(×3) convolution, padding 1, stride 1 or 2; [`FLAG_RELU`] fuses a ReLU. Transposed
    /// convolutions of stride 1 are stored as convolutions with the flipped kernel.
    Conv = 2 { One, Conv, Kernel, Stride, scale: false, shift: false, relu: true }
    /// `out = a + scale · b`.
    AddScaled = 3 { Two, Same, None, None, scale: true, shift: false, relu: false }
    /// `out = a · b`.
    Mul = 4 { Two, Same, None, None, scale: false, shift: false, relu: false }
    /// `out = scale · x + shift`.
    Affine = 5 { One, Same, None, None, scale: true, shift: true, relu: false }
    /// `out = scale · x²`.
    ScaledSquare = 6 { One, Same, None, None, scale: true, shift: false, relu: false }
    /// `out = max(x, 0)`.
    Relu = 7 { One, Same, None, None, scale: false, shift: false, relu: false }
    /// Softmax over the `phases` groups of each pixel's channels (`c = n·I + i`, over `n`).
    PhaseSoftmax = 8 { One, Same, None, Phases, scale: false, shift: false, relu: false }
    /// 2×2(×2) average pooling, stride 2.
    AvgPool = 9 { One, Pooled, None, None, scale: false, shift: false, relu: false }
    /// ×2 linear prolongation, half-pixel centres, edge-clamped.
    Prolong = 10 { One, Prolonged, None, None, scale: false, shift: false, relu: false }
    /// Arena logits → caller's channels-first probabilities: softmax over the classes.
    ClassSoftmax = 11 { One, Caller, None, None, scale: false, shift: false, relu: false }
}

/// Op flag: apply ReLU to a convolution's output.
pub const FLAG_RELU: u32 = 1;

/// One op record (16 words). Which fields an op reads is its [`Signature`]; unused fields are
/// zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpRecord {
    pub opcode: Opcode,
    pub flags: u32,
    /// Arena offsets (f32 elements) of the first and second input and of the output.
    pub a: u32,
    pub b: u32,
    pub out: u32,
    /// Channels of the (first) input.
    pub channels: u32,
    /// Channels of the output ([`Output::Conv`]).
    pub out_channels: u32,
    /// Spatial size `[D, H, W]` of the (first) input.
    pub size: [u32; 3],
    /// See [`Param`].
    pub param: u32,
    /// Offset of the op's weights in the weight section (f32 elements).
    pub weights: u32,
    pub scale: f32,
    pub shift: f32,
}

/// An op's operands by what they are rather than by record word: what a compiler knows of a
/// node. [`OpRecord::encode`] places them by the op's [`Signature`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Operands<'a> {
    /// Arena offsets of the tensors the op reads, in order (none when it reads the caller's
    /// input).
    pub inputs: &'a [u32],
    /// Arena offset of the tensor it writes (`None` when it writes the caller's output).
    pub out: Option<u32>,
    /// Channels and spatial size `[D, H, W]` of the (first) input.
    pub channels: u32,
    pub size: [u32; 3],
    /// Channels of the output.
    pub out_channels: u32,
    /// See [`Param`].
    pub param: Option<u32>,
    /// Offset of the op's weights in the weight section.
    pub weights: Option<u32>,
    pub scale: Option<f32>,
    pub shift: Option<f32>,
    pub relu: bool,
}

impl OpRecord {
    /// The record of `opcode` with `operands` in the fields its signature names, the rest
    /// zero: the same fields the decoder reads. Operands the signature has no field for, or a
    /// field it names but no operand fills, are an error (a compiler and the op table that
    /// disagree), never silently dropped or zero.
    pub fn encode(opcode: Opcode, operands: &Operands<'_>) -> Result<Self, &'static str> {
        let sig = opcode.signature();
        let o = operands;
        if o.inputs.len() != sig.inputs.arena_tensors() {
            return Err("the op reads a different number of arena tensors");
        }
        if o.out.is_some() == (sig.output == Output::Caller) {
            return Err("the op writes the caller's output exactly when it is the last op");
        }
        if sig.output != Output::Conv && o.out_channels != o.channels {
            return Err("the op keeps its channels, but the output has a different count");
        }
        if o.param.is_some() != (sig.param != Param::None)
            || o.weights.is_some() != (sig.weights != WeightUse::None)
            || o.scale.is_some() != sig.scale
            || o.shift.is_some() != sig.shift
            || (o.relu && !sig.relu)
        {
            return Err("the operands do not match the op's signature");
        }
        let mut r = Self::new(opcode);
        r.a = o.inputs.first().copied().unwrap_or(0);
        r.b = o.inputs.get(1).copied().unwrap_or(0);
        r.out = o.out.unwrap_or(0);
        r.channels = o.channels;
        r.size = o.size;
        if sig.output == Output::Conv {
            r.out_channels = o.out_channels;
        }
        r.param = o.param.unwrap_or(0);
        r.weights = o.weights.unwrap_or(0);
        r.scale = o.scale.unwrap_or(0.0);
        r.shift = o.shift.unwrap_or(0.0);
        if o.relu {
            r.flags = FLAG_RELU;
        }
        Ok(r)
    }

    /// An all-zero record of `opcode`, to fill in.
    pub fn new(opcode: Opcode) -> Self {
        Self {
            opcode,
            flags: 0,
            a: 0,
            b: 0,
            out: 0,
            channels: 0,
            out_channels: 0,
            size: [0; 3],
            param: 0,
            weights: 0,
            scale: 0.0,
            shift: 0.0,
        }
    }

    pub fn to_words(&self) -> [u32; OP_WORDS] {
        [
            self.opcode as u32,
            self.flags,
            self.a,
            self.b,
            self.out,
            self.channels,
            self.out_channels,
            self.size[0],
            self.size[1],
            self.size[2],
            self.param,
            self.weights,
            self.scale.to_bits(),
            self.shift.to_bits(),
            0,
            0,
        ]
    }

    pub fn from_words(w: &[u32]) -> Result<Self, &'static str> {
        if w.len() != OP_WORDS {
            return Err("truncated op record");
        }
        let opcode = Opcode::from_u32(w[0]).ok_or("unknown opcode")?;
        if w[14] != 0 || w[15] != 0 {
            return Err("reserved op words are not zero");
        }
        Ok(Self {
            opcode,
            flags: w[1],
            a: w[2],
            b: w[3],
            out: w[4],
            channels: w[5],
            out_channels: w[6],
            size: [w[7], w[8], w[9]],
            param: w[10],
            weights: w[11],
            scale: f32::from_bits(w[12]),
            shift: f32::from_bits(w[13]),
        })
    }
}

pub use crate::crc32::crc32;

/// The checksum of a plan file: CRC-32 of all of it with the checksum word read as zero.
pub fn plan_checksum(bytes: &[u8]) -> u32 {
    let at = CHECKSUM_WORD * 4;
    if bytes.len() < at + 4 {
        return crc32(0, bytes);
    }
    let c = crc32(0, &bytes[..at]);
    let c = crc32(c, &[0; 4]);
    crc32(c, &bytes[at + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_op_table_numbers_each_op_once() {
        for (i, &op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(Opcode::from_u32(op as u32), Some(op));
            assert!(
                Opcode::ALL[..i]
                    .iter()
                    .all(|o| o.signature().name != op.signature().name)
            );
        }
        assert_eq!(Opcode::from_u32(0), None);
        // Exactly one op reads the caller's input and one writes the caller's output.
        let count =
            |f: fn(Signature) -> bool| Opcode::ALL.iter().filter(|o| f(o.signature())).count();
        assert_eq!(count(|s| s.inputs == Inputs::Caller), 1);
        assert_eq!(count(|s| s.output == Output::Caller), 1);
    }

    #[test]
    fn encode_fills_the_fields_the_signature_names_and_refuses_the_others() {
        let conv = Operands {
            inputs: &[64],
            out: Some(128),
            channels: 3,
            size: [1, 8, 8],
            out_channels: 16,
            param: Some(2),
            weights: Some(40),
            scale: None,
            shift: None,
            relu: true,
        };
        let r = OpRecord::encode(Opcode::Conv, &conv).unwrap();
        assert_eq!(
            r.to_words(),
            [2, FLAG_RELU, 64, 0, 128, 3, 16, 1, 8, 8, 2, 40, 0, 0, 0, 0]
        );
        // An elementwise op keeps its channels: the output count is not written.
        let affine = Operands {
            out_channels: 3,
            param: None,
            weights: None,
            scale: Some(-0.5),
            shift: Some(1.0),
            relu: false,
            ..conv
        };
        let r = OpRecord::encode(Opcode::Affine, &affine).unwrap();
        assert_eq!((r.out_channels, r.scale, r.shift), (0, -0.5, 1.0));
        // The caller's buffers have no arena offset.
        let normalize = Operands {
            inputs: &[],
            scale: None,
            shift: None,
            weights: Some(0),
            ..affine
        };
        assert!(OpRecord::encode(Opcode::Normalize, &normalize).is_ok());
        let softmax = Operands {
            inputs: &[64],
            out: None,
            weights: None,
            ..normalize
        };
        assert!(OpRecord::encode(Opcode::ClassSoftmax, &softmax).is_ok());

        let refused = [
            (
                Opcode::Relu,
                Operands {
                    scale: Some(2.0),
                    ..softmax
                },
            ),
            (
                Opcode::Relu,
                Operands {
                    relu: true,
                    out: Some(0),
                    ..softmax
                },
            ),
            (
                Opcode::Mul,
                Operands {
                    out: Some(0),
                    ..softmax
                },
            ),
            (
                Opcode::AddScaled,
                Operands {
                    inputs: &[0, 64],
                    out: Some(0),
                    ..softmax
                },
            ),
            (
                Opcode::Normalize,
                Operands {
                    weights: None,
                    ..normalize
                },
            ),
            (
                Opcode::ClassSoftmax,
                Operands {
                    out: Some(0),
                    ..softmax
                },
            ),
            (
                Opcode::Prolong,
                Operands {
                    out: Some(0),
                    out_channels: 4,
                    ..softmax
                },
            ),
            (
                Opcode::Conv,
                Operands {
                    param: None,
                    ..conv
                },
            ),
        ];
        for (op, operands) in refused {
            assert!(
                OpRecord::encode(op, &operands).is_err(),
                "{op:?} {operands:?}"
            );
        }
    }

    #[test]
    fn header_and_records_roundtrip() {
        let h = Header {
            dims: 3,
            in_channels: 1,
            classes: 4,
            size: [16, 32, 32],
            arena_len: 12345,
            arena_lower_bound: 12000,
            op_count: 7,
            weights_len: 999,
            file_len: 4242,
            checksum: 0xdead_beef,
            macs: 0x1_2345_6789,
        };
        assert_eq!(Header::from_words(&h.to_words()).unwrap(), h);
        let mut bad = h.to_words();
        bad[0] ^= 1;
        assert!(Header::from_words(&bad).is_err());

        let mut op = OpRecord::new(Opcode::Conv);
        op.flags = FLAG_RELU;
        op.size = [1, 8, 8];
        op.scale = -0.5;
        assert_eq!(OpRecord::from_words(&op.to_words()).unwrap(), op);
        let mut w = op.to_words();
        w[0] = 99;
        assert!(OpRecord::from_words(&w).is_err());
    }
}

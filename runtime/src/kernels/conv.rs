//! The 3×3 (2D) and 3×3×3 (3D) convolution kernel: bias-free, zero padding 1, stride 1 or 2,
//! optional fused ReLU. Every MSNet convolution runs through here, so this file owns both the
//! layout contract and the speed of the network.
//!
//! Layout contract (all row-major, channels last):
//! - input `[d][h][w][cin]` (d = 1 in 2D);
//! - weights `[kd][3][3][cin][cout]` (kd = 3 in 3D, 1 in 2D);
//! - output `[od][oh][ow][cout]`, `o = (n - 1) / stride + 1` per axis (od = 1 in 2D).
//!
//! Why channels last with output channels innermost in the weights: for one tap and one input
//! channel, the weights of all output channels are a contiguous vector, and one input scalar
//! multiplies all of them. So the fast path puts output channels in SIMD lanes, broadcasts
//! input scalars, and keeps a block of output positions × all output channels in registers
//! while it walks taps and input channels: no transposes, no im2col buffer, no allocation.
//! Because a tap row's three `kx` taps × `cin` channels are contiguous in both the input row
//! and the weights, they are walked as one loop of `3 * cin` steps.
//!
//! Work is split by flattened output rows (`z * oh + y`): a caller hands each thread a disjoint
//! range of rows and the matching slice of the output.
//!
//! Each SIMD path comes as two [`ConvKernel`]s: direct (this file), and `-winograd`, which
//! runs the 2D stride-1 16→16 convolutions with Winograd F(2×2, 3×3)
//! ([`super::winograd`]) and the rest directly.

use core::ops::Range;

use super::winograd;

/// Shape of one convolution (see module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// 2 or 3 spatial axes.
    pub dims: usize,
    /// Input spatial size [d, h, w] (d = 1 in 2D).
    pub input: [usize; 3],
    pub cin: usize,
    pub cout: usize,
    /// 1 or 2.
    pub stride: usize,
}

impl ConvShape {
    /// Output spatial size [od, oh, ow].
    pub fn output(&self) -> [usize; 3] {
        // ceil(n / s) == (n - 1) / s + 1 for n >= 1, without underflow at n = 0.
        let o = |n: usize| n.div_ceil(self.stride);
        let [d, h, w] = self.input;
        let od = if self.dims == 3 { o(d) } else { 1 };
        [od, o(h), o(w)]
    }

    /// Output rows: od * oh (the unit of work splitting).
    pub fn rows(&self) -> usize {
        let [od, oh, _] = self.output();
        od * oh
    }

    /// Length of the input `x`.
    pub fn input_len(&self) -> usize {
        let [d, h, w] = self.input;
        d * h * w * self.cin
    }

    /// Length of the weights `w`.
    pub fn weights_len(&self) -> usize {
        self.depth_taps() * 9 * self.cin * self.cout
    }

    /// Length of a full output.
    pub fn output_len(&self) -> usize {
        let [od, oh, ow] = self.output();
        od * oh * ow * self.cout
    }

    /// Depth taps of the kernel: 3 in 3D, 1 in 2D.
    pub(super) fn depth_taps(&self) -> usize {
        if self.dims == 3 { 3 } else { 1 }
    }
}

/// Validates the call. These asserts are what makes the unchecked indexing of the fast path
/// sound, so they stay on in release; they run once per call, not per element. Products are
/// checked so that an absurd shape cannot wrap around into a passing length. `what` names the
/// kernel in the messages (the backward kernels share the layout and so the checks; for them
/// `w` is the weight gradient and `out` the output gradient).
pub(super) fn check(
    what: &str,
    shape: &ConvShape,
    x: usize,
    w: usize,
    rows: &Range<usize>,
    out: usize,
) {
    assert!(
        shape.dims == 2 || shape.dims == 3,
        "{what}: dims must be 2 or 3"
    );
    assert!(shape.stride >= 1, "{what}: stride must be at least 1");
    assert!(
        shape.dims == 3 || shape.input[0] == 1,
        "{what}: a 2D input has depth 1"
    );
    let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let [d, h, wd] = shape.input;
    let [od, oh, ow] = shape.output();
    assert_eq!(
        prod(&[d, h, wd, shape.cin]),
        Some(x),
        "{what}: input length"
    );
    assert_eq!(
        prod(&[shape.depth_taps(), 9, shape.cin, shape.cout]),
        Some(w),
        "{what}: weights length"
    );
    assert!(
        rows.start <= rows.end && prod(&[od, oh]).is_some_and(|n| rows.end <= n),
        "{what}: row range outside the output"
    );
    assert_eq!(
        prod(&[rows.end - rows.start, ow, shape.cout]),
        Some(out),
        "{what}: output length"
    );
}

/// Plain scalar reference: the obvious loops, the twin every fast path is tested against.
///
/// Computes output rows `rows` (row = `z * oh + y`) into `out`, which holds exactly those
/// rows: `out.len() == rows.len() * ow * cout`. Panics on inconsistent lengths.
pub fn conv_reference(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    check("conv", shape, x.len(), w.len(), &rows, out.len());
    let [d, h, wd] = shape.input;
    let [_, oh, ow] = shape.output();
    let (cin, cout, s) = (shape.cin, shape.cout, shape.stride);
    let kd = shape.depth_taps();
    // Input coordinate of tap k (0..3) for output coordinate o, if inside 0..n.
    let at = |o: usize, k: usize, n: usize| (o * s + k).checked_sub(1).filter(|&i| i < n);
    for (i, r) in rows.enumerate() {
        let (z, y) = (r / oh, r % oh);
        for ox in 0..ow {
            for co in 0..cout {
                let mut acc = 0.0f32;
                for kz in 0..kd {
                    let zi = if shape.dims == 3 {
                        at(z, kz, d)
                    } else {
                        Some(0)
                    };
                    let Some(zi) = zi else { continue };
                    for ky in 0..3 {
                        let Some(yi) = at(y, ky, h) else { continue };
                        for kx in 0..3 {
                            let Some(xi) = at(ox, kx, wd) else { continue };
                            for ci in 0..cin {
                                let wv = w[(((kz * 3 + ky) * 3 + kx) * cin + ci) * cout + co];
                                let xv = x[((zi * h + yi) * wd + xi) * cin + ci];
                                acc += wv * xv;
                            }
                        }
                    }
                }
                out[(i * ow + ox) * cout + co] = if relu { acc.max(0.0) } else { acc };
            }
        }
    }
}

/// The name of the path [`conv`] takes on this CPU ([`ConvKernel::best`]): `avx512f`,
/// `avx2+fma`, `neon`, or `portable` (SSE2 on x86_64, whatever LLVM makes of it elsewhere).
/// Reported by `msnet-run` so a device log shows which kernel produced its numbers.
pub fn path() -> &'static str {
    ConvKernel::best().name()
}

/// The fastest path available on this CPU ([`ConvKernel::best`]; same contract as
/// [`conv_reference`]).
pub fn conv(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    ConvKernel::best().conv(shape, x, w, relu, rows, out);
}

/// One implementation of [`conv`] (and of the weight gradient, which takes the same path:
/// [`crate::kernels::conv_grad`]). A value is proof that this CPU can run it: the only ways to
/// get one ([`ConvKernel::best`], [`ConvKernel::named`], [`ConvKernel::available`]) check the
/// CPU first, which is what makes [`ConvKernel::conv`] safe to call.
///
/// On x86_64 the CPU features are detected at run time with the `std` feature, and taken from
/// the compile-time target features without it (`-C target-cpu=...`); NEON is baseline on
/// aarch64; the portable path runs everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvKernel(pub(super) Isa, pub(super) Algo);

/// How a [`ConvKernel`] computes the convolutions it can: directly, or with Winograd where
/// [`winograd::fits`] (the rest direct). The weight gradient is direct on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algo {
    Direct,
    Winograd,
}

/// The paths this architecture has, as [`ConvKernel`] wraps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
    Portable,
}

impl Isa {
    /// Fastest first: [`ConvKernel::best`] takes the first one the CPU has. AVX-512F before
    /// AVX2: on the development machine's Xeon (Emerald Rapids) it made whole frames 1.2–1.3×
    /// faster, with no frequency penalty that ate the gain (`docs/benchmarks.md`).
    const ALL: &[Isa] = &[
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon,
        Isa::Portable,
    ];

    /// The names of its direct and its Winograd kernel.
    fn names(self) -> [&'static str; 2] {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => ["avx512f", "avx512f-winograd"],
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => ["avx2+fma", "avx2+fma-winograd"],
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => ["neon", "neon-winograd"],
            Isa::Portable => ["portable", "portable-winograd"],
        }
    }

    /// Its algorithms, fastest first. On the SIMD paths Winograd first: whole frames 1.16–1.28×
    /// faster on AVX-512F and AVX2+FMA, median of seven alternating rounds on fundus-disc-cup
    /// and wbc (`docs/benchmarks.md`). The portable path keeps the direct kernel first: it is
    /// what runs on targets without SIMD, microcontrollers among them, where Winograd's 28 KiB
    /// of stack per call ([`winograd`]'s buffers) is a cost to be chosen, not a default.
    fn algos(self) -> [Algo; 2] {
        match self {
            Isa::Portable => [Algo::Direct, Algo::Winograd],
            #[allow(unreachable_patterns)]
            _ => [Algo::Winograd, Algo::Direct],
        }
    }

    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx::avx512_available(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx::available(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            Isa::Portable => true,
        }
    }
}

/// Every kernel name on any architecture, as [`ConvKernel::name`] reports it, with the short
/// name [`ConvKernel::named`] also takes: so that a name valid elsewhere is told apart from a
/// misspelt one.
const NAMES: [(&str, &str); 8] = [
    ("avx512f", "avx512"),
    ("avx512f-winograd", "avx512-winograd"),
    ("avx2+fma", "avx2"),
    ("avx2+fma-winograd", "avx2-winograd"),
    ("neon", "neon"),
    ("neon-winograd", "neon-winograd"),
    ("portable", "portable"),
    ("portable-winograd", "portable-winograd"),
];

/// Why [`ConvKernel::named`] gave no kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// No kernel has that name on any architecture.
    Unknown,
    /// The kernel (named as [`ConvKernel::name`] would) exists, but not on this CPU.
    Unsupported(&'static str),
}

impl core::fmt::Display for KernelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown => {
                f.write_str("no convolution kernel has that name (the names:")?;
                for (i, (name, short)) in NAMES.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{name}")?;
                    if short != name {
                        write!(f, " or {short}")?;
                    }
                }
                f.write_str(")")?;
            }
            Self::Unsupported(name) => {
                write!(
                    f,
                    "this CPU cannot run the {name} convolution kernel (it runs:"
                )?;
                for (i, k) in ConvKernel::available().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{}", k.name())?;
                }
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

impl ConvKernel {
    /// The fastest kernel this CPU runs: the one place the choice is made.
    pub fn best() -> Self {
        Self::available()
            .next()
            .unwrap_or(Self(Isa::Portable, Algo::Direct))
    }

    /// Every kernel this CPU runs, fastest first (the portable ones last).
    pub fn available() -> impl Iterator<Item = Self> {
        Isa::ALL
            .iter()
            .copied()
            .filter(|i| i.supported())
            .flat_map(|i| i.algos().map(|a| Self(i, a)))
    }

    /// The kernel called `name` (what [`ConvKernel::name`] reports, or its short form:
    /// `avx512`, `avx2`, `avx512-winograd`, `avx2-winograd`), if this CPU runs it. For
    /// benchmarks and tests that compare kernels; everything else should take
    /// [`ConvKernel::best`].
    pub fn named(name: &str) -> Result<Self, KernelError> {
        let (full, _) = NAMES
            .iter()
            .find(|(full, short)| name == *full || name == *short)
            .ok_or(KernelError::Unknown)?;
        Self::available()
            .find(|k| k.name() == *full)
            .ok_or(KernelError::Unsupported(full))
    }

    /// `avx512f`, `avx2+fma`, `neon` or `portable`, with `-winograd` for the Winograd ones.
    pub fn name(self) -> &'static str {
        let [direct, winograd] = self.0.names();
        match self.1 {
            Algo::Direct => direct,
            Algo::Winograd => winograd,
        }
    }

    /// The direct kernel on the same lanes: itself, or what a Winograd kernel runs the shapes
    /// Winograd does not take (and the weight gradient) on.
    pub fn direct(self) -> Self {
        Self(self.0, Algo::Direct)
    }

    /// The convolution on this path (same contract as [`conv_reference`]).
    pub fn conv(
        self,
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        if self.1 == Algo::Winograd && winograd::fits(shape) {
            return self.winograd(shape, x, w, relu, rows, out);
        }
        match self.0 {
            // SAFETY (both `Avx512` arms): a `ConvKernel` of `Avx512` is only made where
            // AVX-512F, AVX2 and FMA were detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if shape.cout < avx::AVX512_MIN_COUT => unsafe {
                avx::conv(shape, x, w, relu, rows, out)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx::conv512(shape, x, w, relu, rows, out) },
            // SAFETY: a `ConvKernel` of `Avx2` is only made where AVX2 and FMA were detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx::conv(shape, x, w, relu, rows, out) },
            // SAFETY: NEON is baseline on aarch64. 32 registers: 6 positions × 4 vectors = 24
            // accumulators + 4 weight vectors + 1 broadcast.
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe { conv_with::<neon::Neon, 4, 6, 8>(shape, x, w, relu, rows, out) },
            Isa::Portable => conv_portable(shape, x, w, relu, rows, out),
        }
    }

    /// [`winograd`] on this kernel's lanes, for a shape it [`fits`](winograd::fits). The
    /// register blocks are the direct kernel's: `NX` tiles × `NV` vectors of 16 channels.
    fn winograd(
        self,
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        match self.0 {
            // SAFETY: a `ConvKernel` of `Avx512` is only made where AVX-512F was detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx::winograd512(shape, x, w, relu, rows, out) },
            // SAFETY: a `ConvKernel` of `Avx2` is only made where AVX2 and FMA were detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx::winograd(shape, x, w, relu, rows, out) },
            // SAFETY: NEON is baseline on aarch64. 6 tiles × 4 vectors = 24 accumulators.
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe {
                winograd::conv_with::<neon::Neon, 4, 6>(shape, x, w, relu, rows, out)
            },
            // SAFETY: `Portable` needs no CPU feature.
            Isa::Portable => unsafe {
                winograd::conv_with::<Portable, 4, 2>(shape, x, w, relu, rows, out)
            },
        }
    }
}

/// The path for CPUs without a SIMD backend here (x86_64 without AVX2+FMA, other
/// architectures), and a baseline to compare the others with.
fn conv_portable(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    // SAFETY: `Portable` needs no CPU feature.
    unsafe { conv_with::<Portable, 2, 6, 8>(shape, x, w, relu, rows, out) }
}

/// One SIMD flavour for the blocked kernel: `N` lanes of f32 per vector.
///
/// # Safety
/// Methods may rely on CPU features; they are only called (inlined) from functions compiled
/// with those features and entered after checking for them. Pointer arguments must be valid
/// for the lanes they touch: `N` lanes, or the first `n` lanes of a mask made by `mask(n)`.
pub(super) unsafe trait Simd {
    const N: usize;
    type V: Copy;
    type M: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(p: *const f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Mask of the first `n` lanes, `1 <= n <= N`.
    unsafe fn mask(n: usize) -> Self::M;
    unsafe fn load_part(p: *const f32, m: Self::M) -> Self::V;
    unsafe fn store_part(p: *mut f32, m: Self::M, v: Self::V);
    /// `a * b + c`, fused where the CPU can.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn relu(v: Self::V) -> Self::V;
}

/// Plain arrays: LLVM turns them into SSE on x86_64 and NEON on aarch64. `a * b + c` rather
/// than `mul_add`: without a hardware FMA, `mul_add` is a slow libm call (and core has none).
pub(super) struct Portable;

unsafe impl Simd for Portable {
    const N: usize = 4;
    type V = [f32; 4];
    type M = usize;
    #[inline(always)]
    unsafe fn zero() -> [f32; 4] {
        [0.0; 4]
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> [f32; 4] {
        [unsafe { *p }; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 4] {
        unsafe { p.cast::<[f32; 4]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 4]) {
        unsafe { p.cast::<[f32; 4]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> usize {
        n
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> [f32; 4] {
        // Spelled out per count: a `take(n)` loop in the inner loop costs ten times more.
        unsafe {
            match n {
                1 => [*p, 0.0, 0.0, 0.0],
                2 => [*p, *p.add(1), 0.0, 0.0],
                3 => [*p, *p.add(1), *p.add(2), 0.0],
                _ => Self::load(p),
            }
        }
    }
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, n: usize, v: [f32; 4]) {
        for (i, l) in v.iter().enumerate().take(n) {
            unsafe { *p.add(i) = *l };
        }
    }
    #[inline(always)]
    unsafe fn fma(a: [f32; 4], b: [f32; 4], c: [f32; 4]) -> [f32; 4] {
        [
            a[0] * b[0] + c[0],
            a[1] * b[1] + c[1],
            a[2] * b[2] + c[2],
            a[3] * b[3] + c[3],
        ]
    }
    #[inline(always)]
    unsafe fn relu(v: [f32; 4]) -> [f32; 4] {
        v.map(|a| a.max(0.0))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx {
    use super::{ConvShape, Range, Simd};
    use core::arch::x86_64::*;

    /// AVX2 + FMA, 8 lanes. Intrinsics rather than autovectorised `mul_add`: core has no
    /// `mul_add`, and LLVM does not contract `a * b + c` on its own.
    pub(in crate::kernels) struct Avx2;

    /// AVX-512F, 16 lanes in 32 registers. Same summation order as [`Avx2`] (lanes are output
    /// channels, so the lane count never changes which terms an output sums, nor their order):
    /// the two paths agree to the bit.
    pub(in crate::kernels) struct Avx512;

    /// Whether the AVX2+FMA path may run here.
    #[inline]
    pub(in crate::kernels) fn available() -> bool {
        #[cfg(feature = "std")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(feature = "std"))]
        {
            cfg!(all(target_feature = "avx2", target_feature = "fma"))
        }
    }

    /// Whether the AVX-512F path may run here (the detection also checks that the OS saves
    /// the 512-bit registers). It hands narrow convolutions to the AVX2 lanes, so it needs
    /// AVX2+FMA too (every AVX-512F CPU has them; a hypervisor could still hide them).
    #[inline]
    pub(in crate::kernels) fn avx512_available() -> bool {
        #[cfg(feature = "std")]
        {
            std::is_x86_feature_detected!("avx512f") && available()
        }
        #[cfg(not(feature = "std"))]
        {
            cfg!(target_feature = "avx512f") && available()
        }
    }

    /// Fewer output channels than this, and the AVX-512F kernel hands the call to the AVX2
    /// one: a single partial vector either way, the same instruction count, but the 16-lane
    /// masked loads and stores are slower (16→3 at 128×128: 18.8 against 22.7 GFLOP/s; the
    /// weight gradient 14.1 against 19.8). The two agree to the bit, so the result is the same.
    /// The AVX2 function is called from outside the AVX-512 one: inlined there, LLVM turns its
    /// 8-lane masked loads and stores into 16-lane ones and the loss comes back.
    pub(in crate::kernels) const AVX512_MIN_COUT: usize = 9;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv(
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY: the features `Avx2` needs are enabled on this function (caller's contract).
        // 6 positions × 16 channels = 12 accumulators + 2 weight vectors + 1 broadcast: 15 of
        // the 16 ymm registers.
        unsafe { super::conv_with::<Avx2, 2, 6, 12>(shape, x, w, relu, rows, out) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv512(
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY: the features `Avx512` needs are enabled on this function (caller's contract).
        // 12 positions × 32 channels = 24 accumulators + 2 weight vectors + 1 broadcast: 27 of
        // the 32 zmm registers. MSNet's 16-channel layers take the one-vector chunk: 12
        // accumulators, more than the 8 that two FMA units of latency 4 need in flight. (8, 12,
        // 16 and 24 positions there timed alike within this machine's noise on
        // fundus-disc-cup.)
        unsafe { super::conv_with::<Avx512, 2, 12, 12>(shape, x, w, relu, rows, out) }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn winograd(
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY: as for `conv`. 6 tiles × 2 vectors = 12 accumulators, as there.
        unsafe { super::winograd::conv_with::<Avx2, 2, 6>(shape, x, w, relu, rows, out) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn winograd512(
        shape: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY: as for `conv512`. 12 tiles × 1 vector = 12 accumulators, as there.
        unsafe { super::winograd::conv_with::<Avx512, 1, 12>(shape, x, w, relu, rows, out) }
    }

    // Lanes 0..n of a mask are `MASKS[8 - n..16 - n]`.
    static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    unsafe impl Simd for Avx2 {
        const N: usize = 8;
        type V = __m256;
        type M = __m256i;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m256 {
            unsafe { _mm256_broadcast_ss(&*p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(n: usize) -> __m256i {
            debug_assert!((1..=8).contains(&n));
            unsafe { _mm256_loadu_si256(MASKS.as_ptr().add(8 - n).cast()) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, m: __m256i) -> __m256 {
            // Masked-off lanes are not read, so this never touches memory past the slice.
            unsafe { _mm256_maskload_ps(p, m) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, m: __m256i, v: __m256) {
            unsafe { _mm256_maskstore_ps(p, m, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn relu(v: __m256) -> __m256 {
            // max_ps returns the second operand when the first is NaN, like f32::max(NaN, 0).
            unsafe { _mm256_max_ps(v, _mm256_setzero_ps()) }
        }
    }

    unsafe impl Simd for Avx512 {
        const N: usize = 16;
        type V = __m512;
        type M = __mmask16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> __m512 {
            // Where it feeds a single FMA (the one-vector blocks), LLVM folds this into it as
            // an embedded broadcast (`{1to16}`): no register spent on it.
            unsafe { _mm512_set1_ps(*p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(n: usize) -> __mmask16 {
            debug_assert!((1..=16).contains(&n));
            u16::MAX >> (16 - n)
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, m: __mmask16) -> __m512 {
            // Masked-off lanes are not read (faults suppressed), so this never touches memory
            // past the slice.
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, m: __mmask16, v: __m512) {
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn relu(v: __m512) -> __m512 {
            // As `Avx2::relu`: vmaxps returns the second operand when the first is NaN.
            unsafe { _mm512_max_ps(v, _mm512_setzero_ps()) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
// NEON intrinsics without pointers are safe to call where NEON is enabled, which it always is
// on aarch64; the blocks keep the code the same shape as the x86 one.
#[allow(unused_unsafe)]
pub(super) mod neon {
    use super::{Portable, Simd};
    use core::arch::aarch64::*;

    /// NEON, 4 lanes, with `fmla` (`vfmaq_f32`): `a * b + c` would not be fused.
    pub(in crate::kernels) struct Neon;

    unsafe impl Simd for Neon {
        const N: usize = 4;
        type V = float32x4_t;
        type M = usize;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            unsafe { vdupq_n_f32(0.0) }
        }
        #[inline(always)]
        unsafe fn splat(p: *const f32) -> float32x4_t {
            unsafe { vld1q_dup_f32(p) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn mask(n: usize) -> usize {
            n
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> float32x4_t {
            unsafe {
                let a = Portable::load_part(p, n);
                vld1q_f32(a.as_ptr())
            }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, n: usize, v: float32x4_t) {
            unsafe {
                let mut a = [0.0f32; 4];
                vst1q_f32(a.as_mut_ptr(), v);
                Portable::store_part(p, n, a);
            }
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            // vfmaq_f32(c, a, b) = c + a * b.
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn relu(v: float32x4_t) -> float32x4_t {
            // maxnm returns the number when one side is NaN, like f32::max(NaN, 0).
            unsafe { vmaxnmq_f32(v, vdupq_n_f32(0.0)) }
        }
    }
}

/// What the blocked kernel needs to address one output row.
struct Geo<'t> {
    x: *const f32,
    w: *const f32,
    /// Valid `(kz, ky)` taps of this row: (input row offset, weight offset).
    taps: &'t [(usize, usize)],
    cin: usize,
    cout: usize,
    stride: usize,
    /// Input width.
    wd: usize,
    ow: usize,
    /// Output x in `lo..hi` have all three `kx` taps inside the input.
    lo: usize,
    hi: usize,
}

/// The blocked kernel driver, generic over the SIMD flavour: output channels go in chunks of
/// `NVW` vectors with blocks of `NXW` output positions, the rest one vector at a time with
/// blocks of `NXN` (sized so the accumulators, weights and a broadcast fill the registers).
///
/// # Safety
/// `S`'s CPU features must be enabled in the (inlining) caller.
#[inline(always)]
unsafe fn conv_with<S: Simd, const NVW: usize, const NXW: usize, const NXN: usize>(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    check("conv", shape, x.len(), w.len(), &rows, out.len());
    if out.is_empty() {
        return;
    }
    let [d, h, wd] = shape.input;
    let [_, oh, ow] = shape.output();
    let (cin, cout, s) = (shape.cin, shape.cout, shape.stride);
    let row_len = wd * cin;
    let kn = 3 * cin;
    let lo = 1.min(ow);
    // Output x whose right tap x * s + 1 is still inside: x <= (wd - 2) / s.
    let hi = if wd >= 2 {
        ((wd - 2) / s + 1).min(ow)
    } else {
        0
    }
    .max(lo);
    let in_range = |o: usize, k: usize, n: usize| (o * s + k).checked_sub(1).filter(|&i| i < n);
    let out_ptr = out.as_mut_ptr();
    for (i, r) in rows.enumerate() {
        let (z, y) = (r / oh, r % oh);
        // Taps outside the input in z or y contribute nothing: skip them rather than pad.
        let mut taps = [(0usize, 0usize); 9];
        let mut nt = 0;
        for kz in 0..shape.depth_taps() {
            let zi = if shape.dims == 3 {
                in_range(z, kz, d)
            } else {
                Some(0)
            };
            let Some(zi) = zi else { continue };
            for ky in 0..3 {
                let Some(yi) = in_range(y, ky, h) else {
                    continue;
                };
                taps[nt] = ((zi * h + yi) * row_len, (kz * 3 + ky) * kn * cout);
                nt += 1;
            }
        }
        let g = Geo {
            x: x.as_ptr(),
            w: w.as_ptr(),
            taps: &taps[..nt],
            cin,
            cout,
            stride: s,
            wd,
            ow,
            lo,
            hi,
        };
        // SAFETY: row i of `out` is `i * ow * cout .. (i + 1) * ow * cout`, inside `out`
        // (checked above); taps, `lo` and `hi` keep every input and weight read inside `x`
        // and `w`, whose lengths `check` validated.
        unsafe {
            let orow = out_ptr.add(i * ow * cout);
            let mut co = 0;
            while cout - co >= NVW * S::N {
                row_chunk::<S, NVW, NXW, false>(&g, orow, co, S::mask(S::N), relu);
                co += NVW * S::N;
            }
            while cout - co >= S::N {
                row_chunk::<S, 1, NXN, false>(&g, orow, co, S::mask(S::N), relu);
                co += S::N;
            }
            if co < cout {
                row_chunk::<S, 1, NXN, true>(&g, orow, co, S::mask(cout - co), relu);
            }
        }
    }
}

/// One output row, output channels `co .. co + NV * N` (the last vector partial under `PART`).
///
/// # Safety
/// As for [`conv_with`]; `orow` is the row's start in the output.
#[inline(always)]
unsafe fn row_chunk<S: Simd, const NV: usize, const NX: usize, const PART: bool>(
    g: &Geo,
    orow: *mut f32,
    co: usize,
    m: S::M,
    relu: bool,
) {
    let kn = 3 * g.cin;
    for x in 0..g.lo {
        unsafe { edge::<S, NV, PART>(g, x, orow, co, m, relu) };
    }
    let mut x = g.lo;
    unsafe {
        while x + NX <= g.hi {
            block::<S, NV, NX, PART>(g, x, 0, kn, orow, co, m, relu);
            x += NX;
        }
        while x + 4 <= g.hi {
            block::<S, NV, 4, PART>(g, x, 0, kn, orow, co, m, relu);
            x += 4;
        }
        if x + 2 <= g.hi {
            block::<S, NV, 2, PART>(g, x, 0, kn, orow, co, m, relu);
            x += 2;
        }
        if x < g.hi {
            block::<S, NV, 1, PART>(g, x, 0, kn, orow, co, m, relu);
        }
    }
    for x in g.hi..g.ow {
        unsafe { edge::<S, NV, PART>(g, x, orow, co, m, relu) };
    }
}

/// A border position: only the kx taps inside the input, which are a contiguous sub-range of
/// the merged (kx, ci) loop. (A function, not a closure: a closure would be compiled without
/// the caller's target features and its intrinsics would become calls.)
///
/// # Safety
/// As for [`row_chunk`]; `x < ow`.
#[inline(always)]
unsafe fn edge<S: Simd, const NV: usize, const PART: bool>(
    g: &Geo,
    x: usize,
    orow: *mut f32,
    co: usize,
    m: S::M,
    relu: bool,
) {
    let k0 = if x == 0 { g.cin } else { 0 };
    let k1 = if x * g.stride + 1 >= g.wd {
        2 * g.cin
    } else {
        3 * g.cin
    };
    // SAFETY: k0..k1 are exactly the taps inside the input for this x.
    unsafe { block::<S, NV, 1, PART>(g, x, k0, k1, orow, co, m, relu) };
}

/// The register block: `NX` consecutive output positions from `x0` × `NV` vectors of output
/// channels from `co`, summed over the row's taps and the merged (kx, ci) range `k0..k1`.
///
/// # Safety
/// Every position in the block must have the taps `k0..k1` inside the input.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<S: Simd, const NV: usize, const NX: usize, const PART: bool>(
    g: &Geo,
    x0: usize,
    k0: usize,
    k1: usize,
    orow: *mut f32,
    co: usize,
    m: S::M,
    relu: bool,
) {
    let xstep = g.stride * g.cin;
    let cout = g.cout;
    let mut acc = [[unsafe { S::zero() }; NV]; NX];
    for &(xo, wo) in g.taps {
        // Input index of (position x, merged k) is x * s * cin + k - cin: column x * s - 1 + kx.
        // k0 >= cin whenever x0 = 0, so this never goes below the row start.
        let xp = unsafe { g.x.add(xo + x0 * xstep + k0 - g.cin) };
        let wp = unsafe { g.w.add(wo + k0 * cout + co) };
        for k in 0..k1 - k0 {
            let wk = unsafe { wp.add(k * cout) };
            let mut wv = [unsafe { S::zero() }; NV];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = unsafe {
                    if PART && v == NV - 1 {
                        S::load_part(wk.add(v * S::N), m)
                    } else {
                        S::load(wk.add(v * S::N))
                    }
                };
            }
            for (j, acc) in acc.iter_mut().enumerate() {
                let b = unsafe { S::splat(xp.add(j * xstep + k)) };
                for (a, &wv) in acc.iter_mut().zip(&wv) {
                    *a = unsafe { S::fma(b, wv, *a) };
                }
            }
        }
    }
    for (j, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            let a = if relu { unsafe { S::relu(a) } } else { a };
            unsafe {
                let p = orow.add((x0 + j) * cout + co + v * S::N);
                if PART && v == NV - 1 {
                    S::store_part(p, m, a);
                } else {
                    S::store(p, a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::test_support::{XorShift, assert_close, shape};
    use std::vec;
    use std::vec::Vec;

    /// Independent of `conv_reference`: signed coordinates and a padded-read helper, the whole
    /// output at once.
    fn naive(s: &ConvShape, x: &[f32], w: &[f32], relu: bool) -> Vec<f32> {
        let [d, h, wd] = s.input.map(|v| v as i64);
        let [od, oh, ow] = s.output();
        let st = s.stride as i64;
        let px = |z: i64, y: i64, xx: i64, c: usize| -> f32 {
            if z < 0 || y < 0 || xx < 0 || z >= d || y >= h || xx >= wd {
                0.0
            } else {
                x[(((z * h + y) * wd + xx) as usize) * s.cin + c]
            }
        };
        let kzs: &[i64] = if s.dims == 3 { &[-1, 0, 1] } else { &[0] };
        let mut out = vec![0.0; s.output_len()];
        for z in 0..od {
            for y in 0..oh {
                for xx in 0..ow {
                    for co in 0..s.cout {
                        let mut acc = 0.0f64;
                        for (izk, &dz) in kzs.iter().enumerate() {
                            for dy in -1i64..=1 {
                                for dx in -1i64..=1 {
                                    for ci in 0..s.cin {
                                        let tap =
                                            (izk * 3 + (dy + 1) as usize) * 3 + (dx + 1) as usize;
                                        let wv = w[(tap * s.cin + ci) * s.cout + co];
                                        let zz = if s.dims == 3 { z as i64 * st + dz } else { 0 };
                                        let v = px(zz, y as i64 * st + dy, xx as i64 * st + dx, ci);
                                        acc += wv as f64 * v as f64;
                                    }
                                }
                            }
                        }
                        let acc = acc as f32;
                        out[((z * oh + y) * ow + xx) * s.cout + co] =
                            if relu { acc.max(0.0) } else { acc };
                    }
                }
            }
        }
        out
    }

    trait Kernel: Fn(&ConvShape, &[f32], &[f32], bool, Range<usize>, &mut [f32]) {}
    impl<K: Fn(&ConvShape, &[f32], &[f32], bool, Range<usize>, &mut [f32])> Kernel for K {}

    fn run(k: impl Kernel, s: &ConvShape, x: &[f32], w: &[f32], relu: bool) -> Vec<f32> {
        let mut out = vec![f32::NAN; s.output_len()];
        k(s, x, w, relu, 0..s.rows(), &mut out);
        out
    }

    fn shapes() -> Vec<ConvShape> {
        let mut v = Vec::new();
        let sizes2: &[[usize; 3]] = &[
            [1, 1, 1],
            [1, 1, 2],
            [1, 2, 1],
            [1, 2, 2],
            [1, 3, 3],
            [1, 5, 7],
            [1, 7, 5],
            [1, 8, 8],
            [1, 6, 16],
            [1, 4, 17],
            [1, 3, 18],
            [1, 3, 29],
        ];
        let sizes3: &[[usize; 3]] = &[
            [1, 1, 1],
            [2, 2, 2],
            [3, 3, 3],
            [4, 5, 7],
            [5, 4, 9],
            [2, 3, 14],
        ];
        let chans: &[(usize, usize)] = &[
            (1, 1),
            (1, 16),
            (3, 16),
            (3, 4),
            (4, 3),
            (16, 16),
            (16, 1),
            (16, 2),
            (16, 3),
            (16, 4),
            (4, 8),
            (5, 12),
            (17, 20),
            (2, 24),
            (3, 32),
            (1, 35),
            (17, 17),
            (4, 48),
            (1, 51),
        ];
        for stride in [1, 2] {
            for &(cin, cout) in chans {
                for &input in sizes2 {
                    v.push(shape(2, input, cin, cout, stride));
                }
                for &input in sizes3 {
                    v.push(shape(3, input, cin, cout, stride));
                }
            }
        }
        v
    }

    fn abs_scale(s: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f32> {
        let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let aw: Vec<f32> = w.iter().map(|v| v.abs()).collect();
        run(conv_reference, s, &ax, &aw, false)
    }

    #[test]
    fn shape_arithmetic() {
        let s = shape(2, [1, 5, 7], 3, 4, 2);
        assert_eq!(s.output(), [1, 3, 4]);
        assert_eq!(s.rows(), 3);
        assert_eq!(s.input_len(), 5 * 7 * 3);
        assert_eq!(s.weights_len(), 9 * 3 * 4);
        assert_eq!(s.output_len(), 3 * 4 * 4);
        let s = shape(3, [16, 128, 128], 16, 16, 1);
        assert_eq!(s.output(), [16, 128, 128]);
        assert_eq!(s.rows(), 16 * 128);
        assert_eq!(s.weights_len(), 27 * 256);
        let s = shape(3, [5, 8, 1], 1, 1, 2);
        assert_eq!(s.output(), [3, 4, 1]);
    }

    #[test]
    fn reference_by_hand() {
        // All-ones 3×3 kernel on 1..=9: each output is the sum of its clipped neighbourhood.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let w = [1.0f32; 9];
        let s = shape(2, [1, 3, 3], 1, 1, 1);
        let out = run(conv_reference, &s, &x, &w, false);
        assert_eq!(out, [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
        let s2 = shape(2, [1, 3, 3], 1, 1, 2);
        assert_eq!(
            run(conv_reference, &s2, &x, &w, false),
            [12.0, 16.0, 24.0, 28.0]
        );
        // Negated kernel with ReLU clips everything; two output channels (+1, -1).
        let w2: Vec<f32> = (0..18)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let s3 = shape(2, [1, 3, 3], 1, 2, 2);
        assert_eq!(
            run(conv_reference, &s3, &x, &w2, true),
            [12.0, 0.0, 16.0, 0.0, 24.0, 0.0, 28.0, 0.0]
        );
        // 3D along depth only: weights kz + 1 at the centre of each depth slice, x = 1, 2, 3.
        let mut w3 = [0.0f32; 27];
        for kz in 0..3 {
            w3[kz * 9 + 4] = (kz + 1) as f32;
        }
        let s4 = shape(3, [3, 1, 1], 1, 1, 1);
        assert_eq!(
            run(conv_reference, &s4, &[1.0, 2.0, 3.0], &w3, false),
            [8.0, 14.0, 8.0]
        );
        // Input channels sum: cin = 2 with weights (1, 10) at the centre only.
        let mut w5 = [0.0f32; 18];
        w5[4 * 2] = 1.0;
        w5[4 * 2 + 1] = 10.0;
        let s5 = shape(2, [1, 1, 2], 2, 1, 1);
        assert_eq!(
            run(conv_reference, &s5, &[1.0, 2.0, 3.0, 4.0], &w5, false),
            [21.0, 43.0]
        );
    }

    #[test]
    fn reference_matches_naive() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for s in shapes()
            .iter()
            .filter(|s| s.cin <= 4 || s.cout <= 4 || s.cin == 16)
        {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let scale = abs_scale(s, &x, &w);
            for relu in [false, true] {
                let want = naive(s, &x, &w, relu);
                let got = run(conv_reference, s, &x, &w, relu);
                assert_close(&got, &want, &scale, &std::format!("{s:?} relu {relu}"));
            }
        }
    }

    /// Every kernel against the reference: full runs, and row chunks whose union is the run.
    fn check_kernel(k: impl Kernel, name: &str) {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let scale = abs_scale(&s, &x, &w);
            for relu in [false, true] {
                let what = std::format!("{name} {s:?} relu {relu}");
                let want = run(conv_reference, &s, &x, &w, relu);
                let got = run(&k, &s, &x, &w, relu);
                assert_close(&got, &want, &scale, &what);
                let rows = s.rows();
                let row_len = s.output_len() / rows;
                for chunk in [1, 2, 3] {
                    let mut out = vec![f32::NAN; s.output_len()];
                    let mut r = 0;
                    while r < rows {
                        let e = (r + chunk).min(rows);
                        k(&s, &x, &w, relu, r..e, &mut out[r * row_len..e * row_len]);
                        r = e;
                    }
                    assert_close(&out, &want, &scale, &std::format!("{what} chunk {chunk}"));
                }
            }
        }
    }

    #[test]
    fn conv_matches_reference() {
        check_kernel(conv, "conv");
    }

    #[test]
    fn portable_matches_reference() {
        check_kernel(conv_portable, "portable");
    }

    /// The kernel called `name`, or `None` after a note that its test is skipped on this CPU.
    fn kernel_or_skip(name: &str) -> Option<ConvKernel> {
        ConvKernel::named(name)
            .inspect_err(|e| std::eprintln!("skipped: {e}"))
            .ok()
    }

    fn check_named(name: &str) {
        if let Some(k) = kernel_or_skip(name) {
            assert_eq!(k.name(), name);
            check_kernel(
                |s, x, w, relu, rows, out| k.conv(s, x, w, relu, rows, out),
                name,
            );
        }
    }

    #[test]
    fn avx512_matches_reference() {
        check_named("avx512f");
    }

    #[test]
    fn avx2_matches_reference() {
        check_named("avx2+fma");
    }

    /// Lanes are output channels, so the lane count changes neither which terms an output
    /// sums nor their order: the two fused x86 paths must agree to the bit, which a trainer
    /// moving between CPUs relies on.
    #[test]
    fn avx512_agrees_with_avx2_to_the_bit() {
        let (Some(k512), Some(k2)) = (kernel_or_skip("avx512f"), kernel_or_skip("avx2+fma")) else {
            return;
        };
        let mut rng = XorShift(0x5DEE_CE66_D1CE_4E5B);
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            for relu in [false, true] {
                let a = run(
                    |s, x, w, r, rows, o| k512.conv(s, x, w, r, rows, o),
                    &s,
                    &x,
                    &w,
                    relu,
                );
                let b = run(
                    |s, x, w, r, rows, o| k2.conv(s, x, w, r, rows, o),
                    &s,
                    &x,
                    &w,
                    relu,
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "{s:?} relu {relu}");
            }
        }
    }

    #[test]
    fn kernels_are_chosen_and_named() {
        let all: Vec<ConvKernel> = ConvKernel::available().collect();
        assert_eq!(ConvKernel::best(), all[0]);
        assert_eq!(path(), all[0].name());
        // The portable kernels last, and on them the direct one first (`Isa::algos`).
        let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
        assert_eq!(names[names.len() - 2..], ["portable", "portable-winograd"]);
        for k in &all {
            let direct = k.direct().name();
            assert_eq!(direct, k.name().trim_end_matches("-winograd"));
            assert!(names.contains(&direct) && !direct.ends_with("-winograd"));
        }
        for &k in &all {
            assert_eq!(ConvKernel::named(k.name()), Ok(k));
        }
        for (full, short) in NAMES {
            assert_eq!(ConvKernel::named(short), ConvKernel::named(full), "{short}");
            if let Err(e) = ConvKernel::named(full) {
                assert_eq!(e, KernelError::Unsupported(full));
                let msg = std::format!("{e}");
                assert!(msg.contains(full) && msg.contains("portable"), "{msg}");
            }
        }
        for bad in ["", "AVX2", "avx-512", "sse2"] {
            assert_eq!(ConvKernel::named(bad), Err(KernelError::Unknown), "{bad:?}");
        }
        let msg = std::format!("{}", KernelError::Unknown);
        assert!(
            msg.contains("avx512f or avx512") && msg.contains("neon"),
            "{msg}"
        );
        #[cfg(target_arch = "x86_64")]
        {
            let has = |f: bool, name| assert_eq!(ConvKernel::named(name).is_ok(), f, "{name}");
            has(std::is_x86_feature_detected!("avx512f"), "avx512f");
            has(
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
                "avx2+fma",
            );
            assert_eq!(
                ConvKernel::named("neon"),
                Err(KernelError::Unsupported("neon"))
            );
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(path(), "neon-winograd");
            assert_eq!(
                ConvKernel::named("avx512"),
                Err(KernelError::Unsupported("avx512f"))
            );
        }
    }

    /// The driver as NEON runs it (four vectors in the wide chunk), on the portable lanes.
    fn conv_portable_wide(
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        relu: bool,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // SAFETY: `Portable` needs no CPU feature.
        unsafe { conv_with::<Portable, 4, 6, 8>(s, x, w, relu, rows, out) }
    }

    #[test]
    fn wide_chunks_match_reference() {
        check_kernel(conv_portable_wide, "portable, 4-vector chunks");
    }

    #[test]
    fn larger_shapes_match_reference() {
        let mut rng = XorShift(7);
        for s in [
            shape(2, [1, 32, 32], 16, 16, 1),
            shape(2, [1, 33, 31], 16, 16, 2),
            shape(2, [1, 20, 40], 3, 16, 1),
            shape(2, [1, 24, 24], 16, 4, 1),
            shape(3, [6, 12, 13], 16, 16, 1),
            shape(3, [7, 12, 12], 16, 16, 2),
        ] {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let scale = abs_scale(&s, &x, &w);
            let want = run(conv_reference, &s, &x, &w, true);
            for k in ConvKernel::available() {
                let what = std::format!("{} {s:?}", k.name());
                let got = run(
                    |s, x, w, r, rows, o| k.conv(s, x, w, r, rows, o),
                    &s,
                    &x,
                    &w,
                    true,
                );
                assert_close(&got, &want, &scale, &what);
                // A middle chunk on its own.
                let rows = s.rows();
                let row_len = s.output_len() / rows;
                let (a, b) = (rows / 3, 2 * rows / 3 + 1);
                let mut out = vec![0.0; (b - a) * row_len];
                k.conv(&s, &x, &w, true, a..b, &mut out);
                assert_close(
                    &out,
                    &want[a * row_len..b * row_len],
                    &scale[a * row_len..b * row_len],
                    &std::format!("{what} rows {a}..{b}"),
                );
            }
        }
    }

    #[test]
    fn empty_row_range_is_a_no_op() {
        let s = shape(2, [1, 4, 4], 2, 3, 1);
        let x = [1.0; 32];
        let w = [1.0; 54];
        conv(&s, &x, &w, false, 2..2, &mut []);
        conv_reference(&s, &x, &w, false, 4..4, &mut []);
    }

    #[test]
    #[should_panic(expected = "output length")]
    fn wrong_output_length_panics() {
        let s = shape(2, [1, 4, 4], 2, 3, 1);
        conv(&s, &[0.0; 32], &[0.0; 54], false, 0..2, &mut [0.0; 23]);
    }
}

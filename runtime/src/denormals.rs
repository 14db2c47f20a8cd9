//! Flushing subnormal floats to zero while a model runs, so that its speed does not depend on
//! its input.
//!
//! A trained MSNet produces subnormal `f32`s (magnitudes below `f32::MIN_POSITIVE`, about
//! 1.2e-38): the phase softmax of a confident pixel gives its losing phases `exp(-100)`-scale
//! weights, and the FEM's products of small probabilities push them further down. Most CPUs
//! compute with such values through a slow microcode path, dozens of times slower than a
//! normal multiply; the shipped fundus model was reported to run at half speed because of
//! them (the runtime-speed issue's profile).
//!
//! Why flush rather than never create them: they come out of ordinary arithmetic in several
//! kernels (exponentials, products, scaled updates), so avoiding them would mean a clamp after
//! every op, which costs time on every frame, and it would have to be repeated in every kernel
//! anyone adds. The values themselves carry no information at f32 inference or training
//! scale: a probability below 1.2e-38 next to ones near 1 vanishes in every sum it enters, so
//! treating it as 0 moves the results by far less than the golden tolerance. The hardware has
//! a mode for exactly that:
//!
//! * x86_64: MXCSR bit 15 (FTZ, flush-to-zero: subnormal results become 0) and bit 6 (DAZ,
//!   denormals-are-zero: subnormal inputs are read as 0);
//! * aarch64: FPCR bit 24 (FZ, which does both);
//! * any other target: nothing (the guard is a no-op and [`flushing`] is `false`; a
//!   Cortex-M4F, say, has no subnormal penalty worth a mode switch).
//!
//! The mode is a per-thread register, so it must hold on every thread that computes part of a
//! run: [`crate::run_with`] takes a [`FlushDenormals`] on the caller's thread for the whole
//! run, and every task of a run executes in the caller's mode whatever the [`Parallel`]
//! implementation (see [`crate::parallel::split`]); `pool::ThreadPool` (feature `std`) also
//! runs each job on its workers in the caller's mode. Every guard restores the thread's
//! previous state when dropped (on unwinding too), so nothing leaks into unrelated code on the
//! caller's thread or on a shared pool's workers.
//!
//! Other engines (a trainer's forward and backward pass) use the same guard:
//!
//! ```
//! use msnet_runtime::denormals::{flushing, with_flushed_denormals};
//! let tiny = core::hint::black_box(1e-20f32);
//! let product = with_flushed_denormals(|| core::hint::black_box(tiny * tiny));
//! # if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
//! assert_eq!(product, 0.0); // 1e-40 is subnormal: flushed
//! # }
//! assert!(!flushing()); // restored afterwards
//! ```
//!
//! Caveats of changing the floating-point environment from Rust, whose compiler assumes the
//! default mode: arithmetic it evaluates at compile time (on constants) is not flushed, and it
//! may move arithmetic on values held in registers across the mode switch (a product computed
//! inside the guard but only used after it may be computed after it). The switch is a barrier
//! for memory accesses, so work that reads its operands from memory and writes its results to
//! memory inside the guard, as every kernel does, is flushed; a closure that returns a bare
//! value computed from captured scalars should pass it through [`core::hint::black_box`], as
//! the example does. Either way only a result that is a subnormal or 0 can differ, never a
//! normal value.
//!
//! [`Parallel`]: crate::Parallel

use core::marker::PhantomData;

/// The control register as a plain word, and the bits of it this module owns.
#[cfg(target_arch = "x86_64")]
mod arch {
    pub type Word = u32;
    /// FTZ (bit 15) and DAZ (bit 6) of MXCSR.
    pub const MASK: Word = (1 << 15) | (1 << 6);

    #[inline]
    pub fn read() -> Word {
        let mut csr: Word = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR at the given address, which is a local
        // `u32`. (Not `_mm_getcsr`, which is deprecated.)
        unsafe {
            core::arch::asm!(
                "stmxcsr dword ptr [{}]",
                in(reg) &raw mut csr,
                options(nostack, preserves_flags),
            );
        }
        csr
    }

    #[inline]
    pub fn write(csr: Word) {
        // SAFETY: `ldmxcsr` loads MXCSR from a local `u32`; `csr` only ever differs from a
        // value read from the register in the FTZ and DAZ bits, so no reserved bit is set
        // (which would fault) and exception masks and rounding stay as they were. Without
        // `nomem`/`readonly`, the compiler cannot move memory accesses (the kernels' loads
        // and stores) across it.
        unsafe {
            core::arch::asm!(
                "ldmxcsr dword ptr [{}]",
                in(reg) &raw const csr,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub type Word = u64;
    /// FZ (bit 24) of FPCR.
    pub const MASK: Word = 1 << 24;

    #[inline]
    pub fn read() -> Word {
        let fpcr: Word;
        // SAFETY: reading FPCR has no side effect.
        unsafe {
            core::arch::asm!(
                "mrs {}, fpcr",
                out(reg) fpcr,
                options(nomem, nostack, preserves_flags),
            );
        }
        fpcr
    }

    #[inline]
    pub fn write(fpcr: Word) {
        // SAFETY: `fpcr` only ever differs from a value read from the register in the FZ bit,
        // so rounding, trap enables and reserved bits stay as they were. Without `nomem`, the
        // compiler cannot move memory accesses (the kernels' loads and stores) across it.
        unsafe {
            core::arch::asm!(
                "msr fpcr, {}",
                in(reg) fpcr,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub type Word = u32;
    pub const MASK: Word = 0;

    #[inline]
    pub fn read() -> Word {
        0
    }

    #[inline]
    pub fn write(_: Word) {}
}

/// Whether this target has a flush mode that this module sets (x86_64 and aarch64).
pub const SUPPORTED: bool = arch::MASK != 0;

/// Whether subnormals are flushed on this thread now (on x86_64: FTZ and DAZ both set).
/// Always `false` where the target has no such mode (see [`SUPPORTED`]).
#[inline]
pub fn flushing() -> bool {
    SUPPORTED && mode() == arch::MASK
}

/// A thread's flush bits (the rest of its control register masked out).
pub(crate) type Mode = arch::Word;

/// This thread's flush bits, to hand to another thread.
#[inline]
pub(crate) fn mode() -> Mode {
    arch::read() & arch::MASK
}

/// Runs `f` with subnormals flushed to zero on this thread, then restores the previous mode
/// (also when `f` panics). Work that `f` hands to other threads is only flushed there if they
/// take the mode too (the runtime's [`crate::parallel::split`] and `pool::ThreadPool` do).
#[inline]
pub fn with_flushed_denormals<R>(f: impl FnOnce() -> R) -> R {
    let _flush = FlushDenormals::enable();
    f()
}

/// While alive, this thread flushes subnormal floats to zero (see the [module docs](self));
/// dropping it restores the thread's previous mode. Guards nest: drop them in reverse order
/// of creation (scoped `let` bindings do). It is neither `Send` nor `Sync`, since it restores
/// the register of the thread that created it.
#[must_use = "the mode is restored when the guard is dropped"]
#[derive(Debug)]
pub struct FlushDenormals {
    /// The register before the guard changed it; `None` if the guard changed nothing.
    saved: Option<arch::Word>,
    _this_thread: PhantomData<*const ()>,
}

impl FlushDenormals {
    /// Turns flushing on for this thread until the guard is dropped.
    #[inline]
    pub fn enable() -> Self {
        Self::with_mode(arch::MASK)
    }

    /// Sets this thread's flush bits to `mode` (from [`mode`] on another thread) until the
    /// guard is dropped. Writes the register only if they differ, since a write costs more
    /// than a read.
    #[inline]
    pub(crate) fn with_mode(mode: Mode) -> Self {
        let before = arch::read();
        let wanted = (before & !arch::MASK) | (mode & arch::MASK);
        let saved = if wanted == before {
            None
        } else {
            arch::write(wanted);
            Some(before)
        };
        Self {
            saved,
            _this_thread: PhantomData,
        }
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        if let Some(before) = self.saved {
            // Only our bits: anything else changed meanwhile (rounding, say) stays.
            arch::write((arch::read() & !arch::MASK) | (before & arch::MASK));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hint::black_box;

    #[test]
    fn the_guard_sets_and_restores_the_register() {
        let before = arch::read();
        assert_eq!(before & arch::MASK, 0, "threads start with subnormals on");
        {
            let _flush = FlushDenormals::enable();
            assert_eq!(arch::read(), before | arch::MASK);
            assert_eq!(flushing(), SUPPORTED);
            {
                // Nested: no change, and dropping it keeps the outer guard's mode.
                let _inner = FlushDenormals::enable();
                assert_eq!(arch::read(), before | arch::MASK);
            }
            assert_eq!(arch::read(), before | arch::MASK);
            {
                // Taking another thread's "off" mode inside a guard, then back.
                let _off = FlushDenormals::with_mode(0);
                assert_eq!(arch::read(), before);
                assert!(!flushing());
            }
            assert_eq!(arch::read(), before | arch::MASK);
        }
        assert_eq!(arch::read(), before);
        assert!(!flushing());
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn the_register_bits_are_the_documented_ones() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(arch::MASK, 0x8040);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(arch::MASK, 0x0100_0000);
        const { assert!(SUPPORTED) };
    }

    #[test]
    fn the_guard_is_restored_when_the_closure_panics() {
        extern crate std;
        let before = arch::read();
        let caught = std::panic::catch_unwind(|| {
            with_flushed_denormals(|| {
                assert_eq!(flushing(), SUPPORTED);
                panic!("inside the guard");
            })
        });
        assert!(caught.is_err());
        assert_eq!(arch::read(), before);
    }

    #[test]
    fn subnormal_results_are_flushed_inside_and_kept_outside() {
        let tiny = black_box(1e-20f32);
        let outside = black_box(tiny) * black_box(tiny);
        assert!(outside.is_subnormal(), "{outside:e}");
        // The result through `black_box` too: otherwise the compiler may sink the multiply
        // past the guard's restore (see the module docs).
        let inside = with_flushed_denormals(|| black_box(black_box(tiny) * black_box(tiny)));
        if SUPPORTED {
            assert_eq!(inside.to_bits(), 0);
        } else {
            assert_eq!(inside, outside);
        }
    }
}

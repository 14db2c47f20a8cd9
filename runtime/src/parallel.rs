//! Splitting one op's output across threads, without allocating and without knowing what a
//! thread is: the core only asks a [`Parallel`] to run numbered tasks, and the `std` layer
//! (`pool::ThreadPool`) answers with persistent workers. [`Sequential`] runs them in
//! order on the caller's thread, which is what a microcontroller gets.
//!
//! Every op is split into contiguous chunks of whole output units (conv rows, pixels, values),
//! each computed exactly as in a one-thread run, so the result is bit-for-bit the same at any
//! thread count. That includes the floating-point mode: [`split`] runs every task in the
//! caller thread's denormal mode ([`crate::denormals`]), whichever thread the [`Parallel`]
//! puts it on, so an implementation need not know about it.

use core::ops::Range;

use crate::denormals::{self, FlushDenormals};

/// Runs numbered tasks, possibly at the same time.
pub trait Parallel: Sync {
    /// How many tasks may run at once (1 means one after another).
    fn width(&self) -> usize;

    /// Calls `task(i)` once for every `i` in `0..tasks` and returns when all calls have
    /// returned.
    fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync));
}

/// Runs every task on the caller's thread, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn width(&self) -> usize {
        1
    }

    fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..tasks).for_each(task);
    }
}

/// The output's base pointer, shared by tasks that each write a disjoint chunk of it.
struct SharedOut(*mut f32);

// SAFETY: tasks only ever form disjoint sub-slices from it (see `split`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Through a method, so closures capture the whole (`Sync`) wrapper, not its field.
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Computes `out` (`units` units of `unit_len` values each) as contiguous chunks of units,
/// one task per chunk: `work(units_range, chunk_of_out)`. Splits only when each task gets at
/// least `min_units`, because waking a worker for a few microseconds of work costs more than
/// it saves. Each task runs in the caller's denormal mode (flushed during a
/// [`crate::run_with`]) and leaves its thread's mode as it found it.
///
/// Panics if `out.len() != units * unit_len` (a caller bug: plan validation fixed the sizes).
pub fn split<F>(
    par: &dyn Parallel,
    units: usize,
    unit_len: usize,
    min_units: usize,
    out: &mut [f32],
    work: F,
) where
    F: Fn(Range<usize>, &mut [f32]) + Sync,
{
    assert_eq!(out.len(), units * unit_len, "split: output length");
    let tasks = par.width().min(units / min_units.max(1)).max(1);
    if tasks == 1 {
        work(0..units, out);
        return;
    }
    let base = SharedOut(out.as_mut_ptr());
    let chunk = |t: usize| units * t / tasks..units * (t + 1) / tasks;
    let mode = denormals::mode();
    par.for_each(tasks, &|t| {
        // A register read where the thread already has the mode (the caller's, a
        // `ThreadPool` worker's); a write and a restore where it has not.
        let _mode = FlushDenormals::with_mode(mode);
        let r = chunk(t);
        // SAFETY: the chunks of `0..units` for distinct `t` are disjoint and lie inside
        // `0..units`, so these sub-slices of `out` are disjoint and in bounds; `out` is
        // mutably borrowed for the whole call, and `for_each` returns only after every task.
        let slice = unsafe {
            core::slice::from_raw_parts_mut(base.at(r.start * unit_len), r.len() * unit_len)
        };
        work(r, slice);
    });
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::vec;

    /// Claims a width of 4 but runs tasks in reverse order, to show chunks are independent.
    struct Reversed(AtomicUsize);
    impl Parallel for Reversed {
        fn width(&self) -> usize {
            4
        }
        fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            self.0.store(tasks, Ordering::Relaxed);
            (0..tasks).rev().for_each(task);
        }
    }

    /// Runs every task on a thread of its own, knowing nothing of denormal modes.
    struct FreshThreads;
    impl Parallel for FreshThreads {
        fn width(&self) -> usize {
            2
        }
        fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            std::thread::scope(|s| {
                for t in 0..tasks {
                    // A new thread may inherit its creator's mode: make it differ.
                    s.spawn(move || {
                        let _flip = if denormals::flushing() {
                            FlushDenormals::with_mode(0)
                        } else {
                            FlushDenormals::enable()
                        };
                        task(t)
                    });
                }
            });
        }
    }

    #[test]
    fn tasks_run_in_the_callers_denormal_mode_on_any_parallel() {
        let seen = |par: &dyn Parallel| {
            let flushed = AtomicUsize::new(0);
            let mut out = vec![0.0f32; 8];
            split(par, 8, 1, 4, &mut out, |_, _| {
                flushed.fetch_add(denormals::flushing() as usize, Ordering::Relaxed);
            });
            flushed.load(Ordering::Relaxed)
        };
        assert_eq!(seen(&FreshThreads), 0);
        let inside = denormals::with_flushed_denormals(|| seen(&FreshThreads));
        assert_eq!(inside, if denormals::SUPPORTED { 2 } else { 0 });
        assert!(!denormals::flushing());
    }

    #[test]
    fn chunks_cover_every_unit_once() {
        for units in [1, 3, 7, 8, 100] {
            let par = Reversed(AtomicUsize::new(0));
            let mut out = vec![0.0f32; units * 3];
            split(&par, units, 3, 2, &mut out, |r, chunk| {
                assert_eq!(chunk.len(), r.len() * 3);
                for (i, u) in r.enumerate() {
                    for k in 0..3 {
                        chunk[i * 3 + k] += (u * 3 + k) as f32;
                    }
                }
            });
            let want: std::vec::Vec<f32> = (0..units * 3).map(|v| v as f32).collect();
            assert_eq!(out, want, "units {units}");
            let tasks = par.0.load(Ordering::Relaxed);
            // Small work stays on one task (for_each never called); large uses all 4.
            let expect = match (units / 2).min(4) {
                t if t >= 2 => t,
                _ => 0,
            };
            assert_eq!(tasks, expect, "units {units}");
        }
    }
}

//! A run flushes subnormal floats to zero on every thread that computes part of it, and gives
//! every thread its previous mode back afterwards. Checked on values and on the control
//! register, never on timing.

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::Mutex;
use std::thread::{self, ThreadId};

use msnet_runtime::denormals::{FlushDenormals, SUPPORTED, flushing, with_flushed_denormals};
use msnet_runtime::host::PlanBuffer;
use msnet_runtime::kernels::elementwise;
use msnet_runtime::pool::ThreadPool;
use msnet_runtime::{Parallel, run, run_with};

/// The smallest normal `f32` times 1/8, 1/4, ...: subnormal, and nonzero.
fn subnormals() -> Vec<f32> {
    (1..=16)
        .map(|k| f32::MIN_POSITIVE / (1u32 << (k % 20 + 1)) as f32)
        .collect()
}

#[test]
fn kernels_flush_subnormals_inside_the_guard_and_keep_them_outside() {
    let tiny = black_box(subnormals());
    assert!(tiny.iter().all(|v| v.is_subnormal()));
    let ones = black_box(vec![1.0f32; tiny.len()]);
    let halves = black_box(vec![1e-20f32; tiny.len()]);
    let mut out = vec![f32::NAN; tiny.len()];

    // Outside: subnormal inputs pass through, and 1e-20 · 1e-20 = 1e-40 is a subnormal result.
    elementwise::mul(&tiny, &ones, &mut out);
    assert_eq!(black_box(&out), &tiny);
    elementwise::mul(&halves, &halves, &mut out);
    assert!(black_box(&out).iter().all(|v| v.is_subnormal()), "{out:?}");
    // Repeated shrinking of normal values ends in subnormals, not 0.
    let mut x = black_box(vec![1e-30f32; 8]);
    let mut y = x.clone();
    for _ in 0..4 {
        elementwise::affine(&x, black_box(1e-3), 0.0, &mut y);
        std::mem::swap(&mut x, &mut y);
    }
    assert!(x.iter().all(|v| v.is_subnormal()), "{x:?}");

    with_flushed_denormals(|| {
        // Inside: subnormal inputs read as 0 (DAZ; FZ on aarch64), subnormal results become 0.
        elementwise::mul(&tiny, &ones, &mut out);
        assert_flushed(black_box(&out), &tiny);
        elementwise::mul(&halves, &halves, &mut out);
        assert_flushed(black_box(&out), &[1e-40; 16]);
        let mut x = black_box(vec![1e-30f32; 8]);
        let mut y = x.clone();
        for _ in 0..4 {
            elementwise::affine(&x, black_box(1e-3), 0.0, &mut y);
            std::mem::swap(&mut x, &mut y);
        }
        assert_flushed(&x, &[1e-42; 8]);
    });
    assert!(!flushing());

    // And outside again, exactly as before.
    elementwise::mul(&halves, &halves, &mut out);
    assert!(black_box(&out).iter().all(|v| v.is_subnormal()), "{out:?}");
}

/// All zeros where the target flushes; otherwise the unflushed (subnormal) values.
fn assert_flushed(got: &[f32], unflushed: &[f32]) {
    if SUPPORTED {
        assert!(got.iter().all(|v| v.to_bits() == 0), "{got:?}");
    } else {
        assert!(
            got.iter().all(|v| v.is_subnormal()),
            "{got:?} vs {unflushed:?}"
        );
    }
}

#[test]
fn the_guard_sets_and_restores_this_threads_mode() {
    assert!(!flushing());
    {
        let _flush = FlushDenormals::enable();
        assert_eq!(flushing(), SUPPORTED);
    }
    assert!(!flushing());
    assert_eq!(with_flushed_denormals(flushing), SUPPORTED);
    assert!(!flushing());
}

/// A `ThreadPool` seen through a recorder: every task notes its thread and whether it ran
/// flushed. With two tasks in a job, each waits for the other, so the caller cannot take
/// both: one runs on the worker, whatever the scheduling (no timing involved).
struct Recorder<'p> {
    pool: &'p ThreadPool,
    seen: Mutex<Vec<(ThreadId, bool)>>,
}

impl Recorder<'_> {
    fn take(&self) -> Vec<(ThreadId, bool)> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }
}

impl Parallel for Recorder<'_> {
    fn width(&self) -> usize {
        self.pool.width()
    }

    fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        assert!(tasks <= 2, "a width of 2 gives at most two tasks per op");
        let both = Barrier::new(tasks);
        self.pool.for_each(tasks, &|i| {
            self.seen
                .lock()
                .unwrap()
                .push((thread::current().id(), flushing()));
            both.wait();
            task(i);
        });
    }
}

#[test]
fn every_thread_of_a_run_flushes_and_is_restored_afterwards() {
    let pool = ThreadPool::new(2).unwrap();
    let recorder = Recorder {
        pool: &pool,
        seen: Mutex::new(Vec::new()),
    };
    let buffer = PlanBuffer::from_bytes(&common::shipped_plan());
    let plan = buffer.plan().unwrap();
    let input: Vec<f32> = (0..plan.input_len())
        .map(|i| (i % 89) as f32 / 89.0)
        .collect();
    let mut arena = vec![0.0; plan.arena_len()];
    let mut output = vec![0.0; plan.output_len()];

    assert!(!flushing());
    let mut steps = common::step_storage(&plan);
    let program = plan.prepare(&mut steps).unwrap();
    run_with(&program, &input, &mut arena, &mut output, &recorder).unwrap();
    assert!(!flushing(), "the caller's mode is restored");

    let caller = thread::current().id();
    let seen = recorder.take();
    assert!(
        !seen.is_empty(),
        "the shipped plan has ops large enough to split"
    );
    assert!(
        seen.iter().any(|&(t, _)| t != caller),
        "some task ran on the worker"
    );
    assert!(
        seen.iter().all(|&(_, flushed)| flushed == SUPPORTED),
        "every task of the run flushed, on either thread: {seen:?}"
    );

    // After the run, the worker is back in its own mode: a job published outside a run (as a
    // shared pool gets from other code) runs unflushed on both threads.
    recorder.for_each(2, &|_| {});
    let after = recorder.take();
    assert_eq!(after.len(), 2);
    assert!(after.iter().any(|&(t, _)| t != caller));
    assert!(after.iter().all(|&(_, flushed)| !flushed), "{after:?}");

    // Flushing on the caller's thread makes the worker flush for that job, not beyond it.
    with_flushed_denormals(|| recorder.for_each(2, &|_| {}));
    assert!(recorder.take().iter().all(|&(_, f)| f == SUPPORTED));
    recorder.for_each(2, &|_| {});
    assert!(recorder.take().iter().all(|&(_, f)| !f));

    // Same output bits as a one-thread run (also flushed).
    let mut one = vec![0.0; output.len()];
    run(&program, &input, &mut arena, &mut one).unwrap();
    assert!(!flushing());
    assert!(
        one.iter()
            .zip(&output)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn a_task_that_leaves_its_worker_flushed_does_not_leak_into_the_next_job() {
    let pool = ThreadPool::new(2).unwrap();
    let both = Barrier::new(2);
    let caller = thread::current().id();
    let worker_flushed = Mutex::new(Vec::new());
    // The task on the worker turns flushing on and never turns it off (a leaked guard).
    pool.for_each(2, &|_| {
        if thread::current().id() != caller {
            std::mem::forget(FlushDenormals::enable());
        }
        both.wait();
    });
    assert!(!flushing());
    // The next job, published by an unflushed caller, runs unflushed on the worker too.
    pool.for_each(2, &|_| {
        if thread::current().id() != caller {
            worker_flushed.lock().unwrap().push(flushing());
        }
        both.wait();
    });
    assert_eq!(*worker_flushed.lock().unwrap(), [false]);
}

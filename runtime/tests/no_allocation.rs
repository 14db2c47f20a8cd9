//! After setup, running frames allocates nothing: a counting global allocator watches this
//! thread while 20 frames run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use msnet_runtime::host::{PlanBuffer, Session};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn frames_allocate_nothing() {
    let buffer = PlanBuffer::from_bytes(&common::shipped_plan());
    let mut session = Session::new(buffer.plan().unwrap());
    let input: Vec<f32> = (0..session.plan().input_len())
        .map(|i| (i % 97) as f32 / 97.0)
        .collect();
    let mut output = vec![0.0; session.plan().output_len()];
    let mut first = Vec::new();

    // The counter sees this thread only, so the test harness's own threads do not count.
    WATCHING.with(|w| w.set(true));
    for frame in 0..20 {
        session.run(&input, &mut output).unwrap();
        if frame == 0 {
            WATCHING.with(|w| w.set(false));
            first = output.clone();
            WATCHING.with(|w| w.set(true));
        }
    }
    WATCHING.with(|w| w.set(false));
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations while running frames"
    );
    // And the arena's leftovers from one frame never leak into the next.
    assert_eq!(output, first);
    // A probability map: every pixel's classes sum to 1.
    let pixels = output.len() / 3;
    for p in (0..pixels).step_by(101) {
        let s: f32 = (0..3).map(|c| output[c * pixels + p]).sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
}

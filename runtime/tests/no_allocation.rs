//! After setup, running frames allocates nothing, on one thread or several: a counting global
//! allocator watches every thread while frames run. Several threads give the same bits.

mod common;

use msnet_runtime::alloc_count::{CountingAllocator, allocations};
use msnet_runtime::host::{PlanBuffer, Session};

// It counts every thread, so the pool's workers too. This binary has no test harness
// (`harness = false`), whose threads would allocate meanwhile (its "running for over 60
// seconds" notice does, under QEMU).
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `FRAMES` frames on `threads` threads, counting allocations, and returns the last output.
fn frames(plan: &[u8], threads: usize, input: &[f32]) -> Vec<f32> {
    let buffer = PlanBuffer::from_bytes(plan);
    let mut session = Session::with_threads(buffer.plan().unwrap(), threads).unwrap();
    assert_eq!(session.threads(), threads);
    let mut output = vec![0.0; session.plan().output_len()];
    let mut first = vec![0.0; output.len()];

    let before = allocations();
    for frame in 0..FRAMES {
        session.run(input, &mut output).unwrap();
        if frame == 0 {
            first.copy_from_slice(&output);
        }
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations while running frames on {threads} thread(s)"
    );
    // The arena's leftovers from one frame never leak into the next.
    assert_eq!(output, first);
    output
}

const FRAMES: usize = 8;

fn main() {
    let plan = common::shipped_plan();
    let input_len = PlanBuffer::from_bytes(&plan).plan().unwrap().input_len();
    let input: Vec<f32> = (0..input_len).map(|i| (i % 97) as f32 / 97.0).collect();

    let one = frames(&plan, 1, &input);
    // A probability map: every pixel's classes sum to 1.
    let pixels = one.len() / 3;
    for p in (0..pixels).step_by(101) {
        let s: f32 = (0..3).map(|c| one[c * pixels + p]).sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    // Ops are split into whole output rows or values, each computed as on one thread.
    for threads in [2, 3] {
        let many = frames(&plan, threads, &input);
        assert!(
            one.iter()
                .zip(&many)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} threads differ from one"
        );
    }
    println!("no_allocation: {FRAMES} frames at 1, 2 and 3 threads: 0 allocations, same bits");
}

//! The data-flow check of `Plan::prepare` on real plans: every shipped plan is accepted, and
//! with any one op's output moved, the check refuses at the op the definition names.

mod common;

use std::ops::Range;

use common::{op_word, set_word, shipped_plan};
use msnet_runtime::host::PlanBuffer;
use msnet_runtime::{PlanError, Step};

/// The first op that reads arena values the latest earlier write overlapping them did not
/// write whole, by the definition: each read compared with every earlier op.
fn first_stale_read(steps: &[Step]) -> Option<usize> {
    let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
    (0..steps.len()).find(|&i| {
        steps[i].reads().any(|read| {
            let writer = steps[..i]
                .iter()
                .rev()
                .find_map(|e| e.writes().filter(|out| overlaps(out, read)));
            !writer.is_some_and(|out| out.start <= read.start && read.end <= out.end)
        })
    })
}

#[test]
fn every_shipped_plan_is_accepted() {
    for model in ["wbc", "fundus-disc-cup", "fundus-locator", "acdc-3d"] {
        let path = format!(
            "{}/../models/{model}/model.msplan",
            env!("CARGO_MANIFEST_DIR")
        );
        let buffer = PlanBuffer::from_bytes(&std::fs::read(&path).unwrap());
        let plan = buffer.plan().unwrap();
        let mut steps = vec![Step::UNSET; plan.len()];
        let program = plan
            .prepare(&mut steps)
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(program.steps().len(), plan.header().op_count as usize);
        assert_eq!(first_stale_read(program.steps()), None, "{model}");
    }
}

#[test]
fn a_moved_output_is_refused_exactly_where_the_definition_says() {
    let good = shipped_plan();
    let buffer = PlanBuffer::from_bytes(&good);
    let plan = buffer.plan().unwrap();
    let mut storage = vec![Step::UNSET; plan.len()];
    let steps = plan.prepare(&mut storage).unwrap().steps().to_vec();
    let mut refused = 0;
    for op in 1..steps.len() - 1 {
        for shift in [-16isize, 16, 64] {
            let out = &steps[op].out;
            let Some(start) = out.start.checked_add_signed(shift) else {
                continue;
            };
            let mut bytes = good.clone();
            set_word(&mut bytes, op_word(op, 4), start as u32);
            let moved = PlanBuffer::from_bytes(&bytes);
            let moved = moved.plan().unwrap();
            let mut storage = vec![Step::UNSET; plan.len()];
            match moved.prepare(&mut storage) {
                Ok(program) => assert_eq!(first_stale_read(program.steps()), None),
                Err(PlanError::Op { index, reason }) if reason.contains("no earlier op") => {
                    let mut expected = steps.clone();
                    expected[op].out = start..start + out.len();
                    assert_eq!(
                        Some(index),
                        first_stale_read(&expected),
                        "op {op} moved by {shift}"
                    );
                    refused += 1;
                }
                // Moved onto its own input, past the arena, or off the arena's end: refused
                // by the checks before the data flow's.
                Err(_) => {}
            }
        }
    }
    // Each move leaves the op's readers without their input: nearly every one is refused.
    assert!(refused > 400, "{refused} refused");
}

//! A malformed plan or a bad buffer is an error, never a panic or an out-of-bounds access.

mod common;

use common::{fix_checksum, op_word, set_word, shipped_plan, step_storage};
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_runtime::{Plan, PlanError, RunError, Step};

/// Parses and prepares: every check a plan goes through before it runs.
fn parse(bytes: &[u8]) -> Result<(), PlanError> {
    let buffer = PlanBuffer::from_bytes(bytes);
    let plan = buffer.plan()?;
    plan.prepare(&mut step_storage(&plan)).map(|_| ())
}

#[test]
fn the_shipped_plan_parses() {
    let buffer = PlanBuffer::from_bytes(&shipped_plan());
    let plan = buffer.plan().unwrap();
    assert_eq!(plan.size(), [1, 112, 112]);
    assert_eq!(plan.input_len(), 3 * 112 * 112);
    assert!(plan.arena_len() >= plan.header().arena_lower_bound as usize);
}

#[test]
fn truncation_corruption_and_foreign_files_are_rejected() {
    let good = shipped_plan();
    let e = parse(&good[..good.len() - 4]).unwrap_err();
    assert!(matches!(e, PlanError::Length { .. }), "{e}");
    assert!(matches!(
        parse(&good[..40]),
        Err(PlanError::Truncated { .. })
    ));
    assert!(matches!(
        parse(&good[..good.len() - 1]),
        Err(PlanError::Truncated { .. })
    ));
    assert!(matches!(parse(b""), Err(PlanError::Truncated { .. })));

    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 100] ^= 0x10;
    let e = parse(&flipped).unwrap_err();
    assert!(matches!(e, PlanError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("corrupted"));

    let mut onnx = good.clone();
    onnx[..8].copy_from_slice(b"\x08\x08\x12\x0amsne");
    assert!(matches!(parse(&onnx), Err(PlanError::Header(_))));

    let mut version = good.clone();
    set_word(&mut version, 2, 2);
    let e = parse(&version).unwrap_err();
    assert!(e.to_string().contains("version"), "{e}");

    // Misaligned bytes: the parser refuses rather than reading unaligned words.
    let buffer = PlanBuffer::from_bytes(&[&[0u8][..], &good].concat());
    assert_eq!(
        Plan::parse(&buffer.bytes()[1..]).unwrap_err(),
        PlanError::Misaligned
    );
}

#[test]
fn ops_pointing_outside_the_arena_or_weights_are_rejected() {
    let good = shipped_plan();
    let plan_buffer = PlanBuffer::from_bytes(&good);
    let plan = plan_buffer.plan().unwrap();
    let arena = plan.arena_len() as u32;
    let weights = plan.header().weights_len;
    let mut steps = step_storage(&plan);
    let first_read = plan.prepare(&mut steps).unwrap().steps()[1].a.start as u32;
    let cases: [(usize, u32, &str); 8] = [
        (op_word(1, 4), arena, "outside the arena"), // output offset
        (op_word(1, 2), arena - 1, "outside the arena"), // input offset
        (op_word(1, 11), weights, "weights outside"), // weight offset of a conv
        (op_word(1, 0), 77, "unknown opcode"),
        (op_word(1, 10), 3, "stride"),
        (op_word(3, 5), 1000, "outside the arena"), // channels: a tensor past the arena
        (op_word(1, 0), 1, "first op"),             // a second Normalize
        // Inside the arena, but 16 values past what op 0 wrote: stale memory.
        (op_word(1, 2), first_read + 16, "no earlier op wrote"),
    ];
    for (word, value, expected) in cases {
        let mut bytes = good.clone();
        set_word(&mut bytes, word, value);
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.contains(expected), "word {word} = {value}: {e}");
    }
    let mut nan = good.clone();
    let n = nan.len();
    nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    fix_checksum(&mut nan);
    assert!(matches!(
        parse(&nan),
        Err(PlanError::NonFiniteWeight { .. })
    ));
}

#[test]
fn random_corruption_never_panics() {
    // Any word of the header or the op list set to a random value (checksum fixed, so the
    // validator itself is exercised): parse must fail cleanly or give a plan that runs.
    let good = shipped_plan();
    let words = (good.len() / 4).min(32 + 16 * 240);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let input = vec![0.5f32; 3 * 112 * 112];
    let mut output = vec![0.0f32; 3 * 112 * 112];
    let mut ran = 0;
    for _ in 0..1000 {
        let mut bytes = good.clone();
        let word = next() as usize % words;
        let value = match next() % 4 {
            0 => next() as u32,
            1 => (next() % 64) as u32,
            2 => u32::MAX - (next() % 4) as u32,
            _ => bytes[4 * word] as u32 ^ 1,
        };
        set_word(&mut bytes, word, value);
        let buffer = PlanBuffer::from_bytes(&bytes);
        if let Ok(plan) = buffer.plan()
            && ran < 12
            && plan.arena_len() <= 1 << 24
            && plan.input_len() == input.len()
            && plan.output_len() == output.len()
        {
            let Ok(mut session) = Session::new(plan) else {
                continue;
            };
            session.run(&input, &mut output).unwrap();
            ran += 1;
        }
    }
    assert!(
        ran > 0,
        "no corrupted plan survived validation: the run path went untested"
    );
}

#[test]
fn wrong_buffers_and_nan_input_are_errors() {
    let buffer = PlanBuffer::from_bytes(&shipped_plan());
    let plan = buffer.plan().unwrap();
    let mut session = Session::new(plan).unwrap();
    let mut output = vec![0.0; plan.output_len()];
    let e = session.run(&[0.5; 10], &mut output).unwrap_err();
    assert!(
        matches!(
            e,
            RunError::Buffer {
                what: "the input",
                ..
            }
        ),
        "{e}"
    );
    let mut input = vec![0.5; plan.input_len()];
    let e = session.run(&input, &mut output[1..]).unwrap_err();
    assert!(e.to_string().contains("the output"), "{e}");
    input[7] = f32::NAN;
    let e = session.run(&input, &mut output).unwrap_err();
    assert_eq!(e, RunError::NonFiniteInput { index: 7 });
    let mut small = vec![0.0; plan.arena_len() - 1];
    input[7] = 0.5;
    let mut steps = step_storage(&plan);
    let program = plan.prepare(&mut steps).unwrap();
    let e = msnet_runtime::run(&program, &input, &mut small, &mut output).unwrap_err();
    assert!(e.to_string().contains("the arena"), "{e}");
}

#[test]
fn overflow_inside_the_network_is_an_error_not_probabilities() {
    // Found by the plan_parse fuzzer: the tiny seed model with part of its weights replaced
    // by zeros and denormals. The plan is valid; its arithmetic makes NaN on the way.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/overflow-to-nan.msplan"
    );
    let buffer = PlanBuffer::from_bytes(&std::fs::read(path).unwrap());
    let plan = buffer.plan().unwrap();
    let mut session = Session::new(plan).unwrap();
    let mut output = vec![0.0; plan.output_len()];
    let input: Vec<f32> = (0..plan.input_len())
        .map(|i| (i % 7) as f32 / 7.0)
        .collect();
    let e = session.run(&input, &mut output).unwrap_err();
    assert!(matches!(e, RunError::NonFiniteOutput { .. }), "{e}");
    assert!(e.to_string().contains("overflowed"), "{e}");
}

#[test]
fn a_header_arena_larger_than_the_ops_use_is_refused() {
    // A valid checksum and ops, but a header asking the caller for a far larger arena: the
    // caller allocates what the header says, so it must be what the ops use.
    let good = shipped_plan();
    let buffer = PlanBuffer::from_bytes(&good);
    let arena = buffer.plan().unwrap().arena_len() as u32;
    for value in [arena + 16, 0xF000_0000] {
        let mut bytes = good.clone();
        set_word(&mut bytes, 11, value);
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.contains("arena"), "arena {value}: {e}");
    }
}

#[test]
fn fields_an_op_does_not_use_must_be_zero() {
    // Op 1 is a convolution: it has no second input and no scale.
    let good = shipped_plan();
    for field in [3, 12] {
        let mut bytes = good.clone();
        set_word(&mut bytes, op_word(1, field), 64);
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.contains("does not use"), "field {field}: {e}");
    }
}

#[test]
fn storage_smaller_than_the_op_count_is_an_error() {
    let buffer = PlanBuffer::from_bytes(&shipped_plan());
    let plan = buffer.plan().unwrap();
    let mut steps = vec![Step::UNSET; plan.len() - 1];
    let e = plan.prepare(&mut steps).unwrap_err().to_string();
    assert!(e.contains("storage"), "{e}");
}

//! The plan parser on arbitrary bytes, then the engine on every plan it accepts.
//!
//! What must hold: `Plan::parse` and `Plan::prepare` never panic; a plan they accept runs
//! without panicking or touching memory outside the arena (the engine relies on their checks
//! for that); and a run
//! either fails up front or leaves probabilities in the output. Each input is parsed twice:
//! as it is, and with its checksum word recomputed, so that mutations reach the checks that
//! lie behind the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use msnet_runtime::format::{CHECKSUM_WORD, plan_checksum};
use msnet_runtime::host::PlanBuffer;
use msnet_runtime::{Plan, Program, Step, run};

/// Plans bigger than this are parsed but not run, so one input cannot take seconds.
const MAX_RUN_MACS: u64 = 20_000_000;
const MAX_RUN_ARENA: usize = 1 << 22;

fn check(bytes: &[u8]) {
    let buffer = PlanBuffer::from_bytes(bytes);
    let Ok(plan) = Plan::parse(buffer.bytes()) else {
        return;
    };
    if plan.header().macs > MAX_RUN_MACS
        || plan.arena_len() > MAX_RUN_ARENA
        || plan.input_len() > MAX_RUN_ARENA
        || plan.output_len() > MAX_RUN_ARENA
    {
        return;
    }
    let mut steps = vec![Step::UNSET; plan.len()];
    let Ok(program) = plan.prepare(&mut steps) else {
        return;
    };
    run_accepted(&program);
}

fn run_accepted(program: &Program<'_>) {
    let plan = program.plan();
    let input: Vec<f32> = (0..plan.input_len())
        .map(|i| (i % 7) as f32 / 7.0)
        .collect();
    let mut arena = vec![f32::NAN; plan.arena_len()];
    let mut output = vec![0.0; plan.output_len()];
    if run(program, &input, &mut arena, &mut output).is_ok() {
        // Finite weights and a finite input through softmaxes give values in [0, 1]; NaN or
        // inf here means an op read arena memory no earlier op wrote.
        assert!(
            output.iter().all(|p| (0.0..=1.0).contains(p)),
            "an accepted plan produced values outside [0, 1]"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let at = 4 * CHECKSUM_WORD;
    if data.len() >= at + 4 {
        let mut fixed = data.to_vec();
        let crc = plan_checksum(&fixed);
        fixed[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

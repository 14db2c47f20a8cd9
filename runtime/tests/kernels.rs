//! The shipped model run end to end on every convolution kernel this CPU has.

mod common;

use common::{shipped_plan, step_storage};
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_runtime::kernels::conv::ConvKernel;

#[test]
fn every_kernel_runs_the_shipped_model_alike() {
    let buffer = PlanBuffer::from_bytes(&shipped_plan());
    let plan = buffer.plan().unwrap();
    let input: Vec<f32> = (0..plan.input_len())
        .map(|i| 0.5 + 0.4 * ((i % 251) as f32 * 0.05).sin())
        .collect();
    let mut session = Session::with_threads(plan, 2).unwrap();
    assert_eq!(session.conv_kernel(), ConvKernel::best());
    let mut best = vec![0.0; plan.output_len()];
    session.run(&input, &mut best).unwrap();

    // The first fused kernel of each algorithm (direct, Winograd): the others of the same
    // algorithm must agree with it to the bit.
    let mut fused: [Option<Vec<f32>>; 2] = [None, None];
    for k in ConvKernel::available() {
        session.set_conv_kernel(k);
        assert_eq!(session.conv_kernel(), k);
        let mut out = vec![0.0; plan.output_len()];
        session.run(&input, &mut out).unwrap();
        let diff = |a: &[f32]| {
            out.iter()
                .zip(a)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        // Every kernel computes the same function up to rounding: Winograd reassociates the
        // sums, the portable paths round each product.
        let worst = diff(&best);
        assert!(
            worst < 1e-4,
            "{}: probabilities differ by {worst}",
            k.name()
        );
        let same_algo = &mut fused[usize::from(k.name().ends_with("-winograd"))];
        if k.name().starts_with("portable") {
            // Over a whole network some rounding differs: had the session ignored the kernel
            // it was given, this would be the fused result again.
            let fused = same_algo.as_ref().expect("the fused kernels come first");
            assert!(
                diff(fused) > 0.0,
                "{} ran as the fused kernel did, to the bit",
                k.name()
            );
        } else {
            // The fused paths of one algorithm sum every output in the same order.
            match same_algo {
                Some(first) => assert_eq!(&out, first, "{}", k.name()),
                None => *same_algo = Some(out.clone()),
            }
        }

        // The same kernel through the no_std entry point: a `Program` carries its kernel.
        let mut steps = step_storage(&plan);
        let program = plan.prepare(&mut steps).unwrap();
        assert_eq!(program.conv_kernel(), ConvKernel::best());
        let program = program.with_conv_kernel(k);
        let mut arena = vec![0.0; plan.arena_len()];
        let mut single = vec![0.0; plan.output_len()];
        msnet_runtime::run(&program, &input, &mut arena, &mut single).unwrap();
        assert_eq!(single, out, "{}: one thread against two", k.name());
    }
}

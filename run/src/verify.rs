//! `msnet-run verify`: the runtime against the model's golden bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use msnet::golden;
use msnet_runtime::host::Session;

use crate::model::Model;

#[derive(Args)]
pub struct VerifyArgs {
    /// Model directory holding config.json, model.msplan and golden/ (from `msnet export`).
    #[arg(long)]
    model: PathBuf,
}

pub fn run(a: &VerifyArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let (manifest, cases) = golden::load(&a.model)?;
    golden::check_digests(&a.model, &manifest)?;
    let plan = model.plan()?;
    let mut session = Session::new(plan);
    let mut output = vec![0.0; plan.output_len()];
    let t = manifest.tolerance;
    println!(
        "{}: {} golden cases, reference {}; tolerance atol {:e} + rtol {:e}·|ref|, same argmax",
        a.model.display(),
        cases.len(),
        manifest.reference,
        t.atol,
        t.rtol
    );
    let mut ok = true;
    for case in &cases {
        session.run(&case.input, &mut output)?;
        let cmp = golden::compare_with(&case.output, &output, model.config.classes, t);
        let pass = cmp.agrees();
        ok &= pass;
        println!(
            "  {:<10} max abs diff {:.3e}  worst diff/tolerance {:.3}  argmax {}  {}",
            case.name,
            cmp.max_abs_diff,
            cmp.worst_ratio,
            if cmp.argmax_equal { "equal" } else { "DIFFERS" },
            if pass { "ok" } else { "FAIL" }
        );
    }
    Ok(if ok {
        println!("verified");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: the runtime does not reproduce the golden outputs");
        ExitCode::FAILURE
    })
}

//! `msnet-run verify`: the runtime against the model's golden bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use msnet::model::CONFIG_FILE;
use msnet_eval::golden;
use msnet_runtime::format::PLAN_FILE;

use crate::model::{Kernel, Model, Threads};

#[derive(Args)]
pub struct VerifyArgs {
    /// Model directory holding config.json, model.msplan and golden/ (from `msnet export`).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    #[command(flatten)]
    kernel: Kernel,
    /// Also run model.nnef.tgz with tract (tract-core + tract-nnef) on every golden input and
    /// compare: a second, independent engine cross-checking this one on the device.
    #[cfg(feature = "tract")]
    #[arg(long)]
    tract: bool,
}

pub fn run(a: &VerifyArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let (mut manifest, cases) = golden::load(&a.model)?;
    if cases.is_empty() {
        bail!(
            "{}: lists no golden cases, so there is nothing to verify (run `msnet export {}` \
             again)",
            a.model
                .join(golden::GOLDEN_DIR)
                .join(golden::MANIFEST_FILE)
                .display(),
            a.model.display()
        );
    }
    // A device needs only config.json and model.msplan: those must be there and match; the
    // host-side files (weights, ONNX, NNEF) are checked when present.
    let (present, absent): (Vec<_>, Vec<_>) = manifest.model_files.drain(..).partition(|f| {
        [CONFIG_FILE, PLAN_FILE].contains(&f.file.as_str()) || a.model.join(&f.file).exists()
    });
    manifest.model_files = present;
    golden::check_digests(&a.model, &manifest)?;
    let checked: Vec<&str> = manifest
        .model_files
        .iter()
        .map(|f| f.file.as_str())
        .collect();
    println!("sha256 as in the manifest: {}", checked.join(", "));
    if !absent.is_empty() {
        let names: Vec<&str> = absent.iter().map(|f| f.file.as_str()).collect();
        println!(
            "not on this device (not needed to run): {}",
            names.join(", ")
        );
    }
    let mut session = model.session(&a.threads)?;
    a.kernel.apply(&mut session)?;
    let t = manifest.tolerance;
    println!(
        "{}: {} golden cases, reference {}; tolerance atol {:e} + rtol {:e}·|ref|, {}",
        a.model.display(),
        cases.len(),
        manifest.reference,
        t.atol,
        t.rtol,
        if t.argmax_equal {
            "same argmax"
        } else {
            "argmax not compared (the manifest turns that check off)"
        }
    );
    println!(
        "engine: msnet-runtime on {}, conv kernel {}, {} thread(s)",
        std::env::consts::ARCH,
        session.conv_kernel().name(),
        session.threads()
    );
    let mut engines: Vec<(&str, &mut dyn golden::Engine)> = vec![("msnet-runtime", &mut session)];
    #[cfg(feature = "tract")]
    let mut tract = match a.tract {
        true => Some(crate::tract_engine::TractNnef::load(&a.model)?),
        false => None,
    };
    #[cfg(feature = "tract")]
    if let Some(tract) = &mut tract {
        engines.push(("tract-nnef", tract));
    }
    let report = |engine: &str, case: &str, cmp: &golden::Comparison| {
        let pass = cmp.agrees();
        // With the check off, `argmax_equal` is set without the argmax being compared.
        let argmax = match (t.argmax_equal, cmp.argmax_equal) {
            (false, _) => "not checked",
            (true, true) => "equal",
            (true, false) => "DIFFERS",
        };
        println!(
            "  {case:<10} {engine:<13} max abs diff {:.3e}  worst diff/tolerance {:.3}  argmax {argmax}  {}",
            cmp.max_abs_diff,
            cmp.worst_ratio,
            if pass { "ok" } else { "FAIL" }
        );
        pass
    };
    let classes = model.config.classes;
    let mut ok = true;
    for diff in golden::check_engines(&cases, &mut engines, classes, t)? {
        for e in &diff.engines {
            ok &= report(&e.engine, &diff.case, &e.comparison);
        }
        // With a second engine, the two must also agree with each other.
        if let [runtime, tract] = &diff.engines[..] {
            let between = golden::compare_with(&tract.output, &runtime.output, classes, t);
            ok &= report("runtime/tract", &diff.case, &between);
        }
    }
    Ok(if ok {
        println!("verified");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: the runtime does not reproduce the golden outputs");
        ExitCode::FAILURE
    })
}

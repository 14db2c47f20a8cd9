//! A model directory as the device sees it: `config.json` and `model.msplan`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use msnet::Config;
use msnet::model::CONFIG_FILE;
use msnet_runtime::Plan;
use msnet_runtime::format::PLAN_FILE;
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_runtime::kernels::conv;

/// A loaded model: its config and its plan bytes (parse with [`Model::plan`]).
pub struct Model {
    pub dir: PathBuf,
    pub config: Config,
    pub buffer: PlanBuffer,
}

impl Model {
    pub fn load(dir: &Path) -> Result<Self> {
        let config = Config::load(&dir.join(CONFIG_FILE))?;
        let path = dir.join(PLAN_FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (run `msnet export {}` to create it)",
                path.display(),
                dir.display()
            )
        })?;
        let model = Self {
            dir: dir.to_path_buf(),
            config,
            buffer: PlanBuffer::from_bytes(&bytes),
        };
        let plan = model.plan()?;
        let h = plan.header();
        let cfg = &model.config;
        if h.in_channels as usize != cfg.in_channels || h.classes as usize != cfg.classes {
            anyhow::bail!(
                "{}: the plan takes {} channels to {} classes, config.json says {} to {}",
                path.display(),
                h.in_channels,
                h.classes,
                cfg.in_channels,
                cfg.classes
            );
        }
        Ok(model)
    }

    pub fn plan(&self) -> Result<Plan<'_>> {
        self.buffer
            .plan()
            .with_context(|| format!("{}", self.dir.join(PLAN_FILE).display()))
    }

    /// A session for `plan` (from [`Model::plan`]) on `threads` threads, its arena allocated
    /// and its workers started.
    pub fn session<'p>(plan: Plan<'p>, threads: &Threads) -> Result<Session<'p>> {
        let n = threads.count();
        Ok(Session::with_threads(plan, n)?)
    }
}

/// `--threads`, shared by the commands that run the model.
#[derive(Args, Clone, Copy)]
pub struct Threads {
    /// Threads per frame (each large op is split across them; results are bit-for-bit those
    /// of one thread). 0 means one per core of this machine.
    #[arg(long = "threads", default_value_t = 1)]
    threads: usize,
}

impl Threads {
    pub fn count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
}

pub fn info(a: &InfoArgs) -> Result<ExitCode> {
    let model = Model::load(&a.model)?;
    let plan = model.plan()?;
    let h = plan.header();
    let mib = |floats: u32| floats as f64 * 4.0 / (1024.0 * 1024.0);
    println!(
        "model: MSNet {}D, {} -> {} classes ({})",
        h.dims,
        h.in_channels,
        h.classes,
        model.config.class_names.join(", ")
    );
    println!(
        "input: {:?} ([D, H, W]), channels-first, values in [0, 1]",
        plan.size()
    );
    println!("ops: {}", plan.len());
    println!(
        "arena: {:.2} MiB ({} floats; liveness lower bound {:.2} MiB)",
        mib(h.arena_len),
        h.arena_len,
        mib(h.arena_lower_bound)
    );
    println!(
        "weights: {} floats ({:.2} MiB), plan file {} bytes",
        h.weights_len,
        mib(h.weights_len),
        h.file_len
    );
    println!("cost: {:.3} GFLOP per frame", 2.0 * h.macs as f64 * 1e-9);
    println!(
        "this device: {}, conv kernel {}, {} core(s)",
        std::env::consts::ARCH,
        conv::path(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}

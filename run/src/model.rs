//! A model directory as the device sees it: `config.json` and `model.msplan`, checked to
//! belong together before any command uses them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use msnet::Config;
use msnet::model::CONFIG_FILE;
use msnet_eval::golden::{self, Manifest};
use msnet_runtime::Plan;
use msnet_runtime::format::PLAN_FILE;
use msnet_runtime::host::{PlanBuffer, Session, SessionError};
use msnet_runtime::kernels::conv::ConvKernel;

/// The journal `msnet export` keeps in the model directory while it moves its files into
/// place (msnet-exporter's `stage::JOURNAL_FILE`; this crate must not link the exporter,
/// which links tract).
const EXPORT_JOURNAL: &str = ".export-journal";

/// A loaded model: its config and its plan, parsed once for the process (the plan bytes stay
/// loaded until it exits, so the parsed plan can borrow them for as long).
pub struct Model {
    pub dir: PathBuf,
    pub config: Config,
    plan: Plan<'static>,
}

impl Model {
    /// Loads the model in `dir`, refusing a config and a plan that do not belong together:
    /// dimensions, channels, classes and input size must agree, and when `golden/` holds a
    /// manifest, both files must hold the bytes it names.
    pub fn load(dir: &Path) -> Result<Self> {
        let journal = dir.join(EXPORT_JOURNAL);
        if journal.exists() {
            // A reader must not write into the model directory (it may be read-only on a
            // device), so it leaves finishing the swap to the exporter.
            bail!(
                "{}: an export is moving its files into place, or was killed doing so; until \
                 it finishes, the files may come from two exports (run `msnet export {}` to \
                 complete the interrupted one)",
                journal.display(),
                dir.display()
            );
        }
        let config_path = dir.join(CONFIG_FILE);
        let config = Config::load(&config_path)?;
        let path = dir.join(PLAN_FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {} (run `msnet export {}` to create it)",
                path.display(),
                dir.display()
            )
        })?;
        let buffer: &'static PlanBuffer = Box::leak(Box::new(PlanBuffer::from_bytes(&bytes)));
        let plan = buffer
            .plan()
            .with_context(|| format!("{}", path.display()))?;
        let model = Self {
            dir: dir.to_path_buf(),
            config,
            plan,
        };
        model.check_agreement()?;
        Ok(model)
    }

    /// The check [`Model::load`] makes; in one place so that every command makes it.
    fn check_agreement(&self) -> Result<()> {
        let plan = self.plan;
        let h = plan.header();
        let cfg = &self.config;
        let (plan_path, config_path) = (self.dir.join(PLAN_FILE), self.dir.join(CONFIG_FILE));
        let found = [h.dims, h.in_channels, h.classes].map(|v| v as usize);
        let said = [cfg.dims, cfg.in_channels, cfg.classes];
        if found != said {
            bail!(
                "{} is a {}D model taking {} channels to {} classes, but {} describes a {}D \
                 model taking {} channels to {} classes: the two files come from different models",
                plan_path.display(),
                found[0],
                found[1],
                found[2],
                config_path.display(),
                said[0],
                said[1],
                said[2]
            );
        }
        match self.manifest()? {
            Some((manifest_path, mut manifest)) => {
                // The other model files are the host's (weights, ONNX, NNEF); `verify` checks
                // those that are present.
                manifest
                    .model_files
                    .retain(|f| [CONFIG_FILE, PLAN_FILE].contains(&f.file.as_str()));
                golden::check_digests(&self.dir, &manifest)?;
                // The manifest, not the config, records the size of an export made at another
                // one (`msnet export --shape`).
                let input = golden::tensor_shape(found[0], found[1], plan.size());
                let output = golden::tensor_shape(found[0], found[2], plan.size());
                if manifest.input_shape != input || manifest.output_shape != output {
                    bail!(
                        "{} maps {input:?} to {output:?}, but {} records {:?} to {:?}",
                        plan_path.display(),
                        manifest_path.display(),
                        manifest.input_shape,
                        manifest.output_shape
                    );
                }
            }
            None if plan.size() != cfg.input_size => bail!(
                "{} was compiled for input {:?} ([D, H, W]), but {} says input_size {:?} (a \
                 plan exported at another size needs the export's golden/manifest.json beside \
                 it, which records the size)",
                plan_path.display(),
                plan.size(),
                config_path.display(),
                cfg.input_size
            ),
            None => {}
        }
        Ok(())
    }

    /// `golden/manifest.json` with its path, if the directory has one.
    fn manifest(&self) -> Result<Option<(PathBuf, Manifest)>> {
        let path = self
            .dir
            .join(golden::GOLDEN_DIR)
            .join(golden::MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a golden manifest", path.display()))?;
        Ok(Some((path, manifest)))
    }

    /// The plan (parsed by [`Model::load`]).
    pub fn plan(&self) -> Plan<'static> {
        self.plan
    }

    /// A session on `threads` threads: the plan's ops decoded and checked, its arena
    /// allocated and its workers started, once.
    pub fn session(&self, threads: &Threads) -> Result<Session<'static>> {
        Session::with_threads(self.plan, threads.count()).map_err(|e| match e {
            SessionError::Plan(_) => anyhow!("{}: {e}", self.dir.join(PLAN_FILE).display()),
            e => e.into(),
        })
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

/// `--kernel`, shared by the commands that time or check the runtime.
#[derive(Args, Clone)]
pub struct Kernel {
    /// Convolution kernel to run instead of the fastest this CPU has: avx512f (or avx512),
    /// avx2+fma (or avx2), neon, portable, each also with -winograd (Winograd F(2×2, 3×3) for
    /// the 2D stride-1 16→16 convolutions, the rest direct; avx512-winograd and avx2-winograd
    /// for short). For comparing kernels on one machine; one this CPU cannot run is an error.
    #[arg(long = "kernel", value_name = "NAME")]
    kernel: Option<String>,
}

impl Kernel {
    /// Puts `session` on the named kernel, if one was named.
    pub fn apply(&self, session: &mut Session<'_>) -> Result<()> {
        if let Some(name) = &self.kernel {
            let k = ConvKernel::named(name).map_err(|e| anyhow!("--kernel {name}: {e}"))?;
            session.set_conv_kernel(k);
        }
        Ok(())
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
    let plan = model.plan();
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
    let others: Vec<&str> = ConvKernel::available()
        .skip(1)
        .map(ConvKernel::name)
        .collect();
    println!(
        "this device: {}, conv kernel {} (also runs: {}), {} core(s)",
        std::env::consts::ARCH,
        ConvKernel::best().name(),
        others.join(", "),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}

//! `msnet-run`: the device command. Segments images, verifies golden bundles and measures
//! latency with `msnet-runtime` alone, and fine-tunes a model on the same kernels
//! (`msnet-native`): it links neither burn nor tract (check with `cargo tree -p msnet-run`),
//! so it cross-builds small for ARM boards.

mod bench;
mod csv;
#[cfg(feature = "finetune")]
mod finetune;
mod model;
mod paths;
mod segment;
#[cfg(feature = "tract")]
mod tract_engine;
mod verify;
mod volume;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use msnet_runtime::alloc_count::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Run an exported MSNet model (model.msplan) on this device: segment images, check it against
/// its golden outputs, measure it.
#[derive(Parser)]
#[command(name = "msnet-run", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment images: writes a mask PNG and an overlay PNG per image into --out, and prints
    /// one JSON line per image (class areas; for a disc/cup model the vertical cup-to-disc
    /// ratio).
    Segment(segment::SegmentArgs),
    /// Watch a folder: segment each image dropped into it, append a CSV row (file, cup-to-disc
    /// ratio, disc and cup areas, latency, class areas), move it to OUT/done/. `--once` for a
    /// batch run.
    Watch(watch::WatchArgs),
    /// Segment a 3D NIfTI volume with a 3D model: writes a NIfTI label volume on the input's
    /// grid and prints the memory it used (arena, plan, buffers).
    SegmentVolume(volume::VolumeArgs),
    /// Run every golden bundle of the model and compare with the reference outputs; exits
    /// non-zero beyond the bundle's tolerance.
    Verify(verify::VerifyArgs),
    /// Measure latency per frame (median and min), allocations per frame, arena size, GFLOP/s.
    Bench(bench::BenchArgs),
    /// Print what a model's plan holds: shapes, ops, arena, weights, cost.
    Info(model::InfoArgs),
    /// Train a model further on labelled images of this device (masks as `segment` writes
    /// them) into a new model directory: weights, runtime plan and a golden bundle, checked
    /// against each other. Checkpoints as it goes; `--resume` continues a killed run.
    #[cfg(feature = "finetune")]
    Finetune(finetune::FinetuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Segment(a) => segment::run(&a),
        Command::Watch(a) => watch::run(&a),
        Command::SegmentVolume(a) => volume::run(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Info(a) => model::info(&a),
        #[cfg(feature = "finetune")]
        Command::Finetune(a) => finetune::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

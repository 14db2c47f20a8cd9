//! `msnet`: the host command of MSNet Edge (train, evaluate, export, inspect).
//!
//! A thin shell over the library crates: argument parsing, progress display and printing live
//! here; the network, data and metrics live in `msnet`, the training loop in `msnet-training`
//! (its engines: burn in `msnet-trainer`, the native trainer in `msnet-native`), export in
//! `msnet-exporter`.

mod baseline;
mod bench;
mod bench_tract;
mod choices;
mod eval;
mod export;
mod info;
mod probe;
mod score_photos;
mod setup;
mod train;
mod vcdr;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::choices::DatasetArg;

/// MSNet Edge: train MSNet from a few labelled images, evaluate it with the paper's metrics,
/// export it for deployment.
#[derive(Parser)]
#[command(name = "msnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a network's layer count, parameter count and cost (from flags or a model
    /// directory).
    Info(info::InfoArgs),
    /// Train MSNet on a dataset with the native or the burn engine (--engine); writes
    /// config.json + model.safetensors and checkpoints.
    Train(train::TrainArgs),
    /// Evaluate a trained model on its held-out test split (Acc, IoU, DSC, ASD per class).
    Eval(eval::EvalArgs),
    /// Export a trained model to ONNX, a tract NNEF plan and golden input/output bundles,
    /// checked against the burn forward pass before anything is written.
    Export(export::ExportArgs),
    /// Score whole-photograph disc/cup masks (`msnet-run segment --locator` on Drishti-GS1's
    /// test photographs) in photograph coordinates: disc and cup DSC, vertical cup-to-disc
    /// ratio against the experts, the locator's centre error.
    ScorePhotos(score_photos::ScorePhotosArgs),
    /// Inspect a freshly initialised network on real training samples: phase-softmax
    /// saturation, class probabilities, each layer's gradient; one JSON line per sample.
    Probe(probe::ProbeArgs),
    /// Benchmark training throughput (images/s) of an engine (--engine) on generated
    /// phantoms; prints JSON.
    BenchTrain(bench::BenchArgs),
    /// Benchmark tract on an exported model (tract-onnx and tract-nnef); prints JSON lines.
    BenchTract(bench_tract::BenchTractArgs),
}

/// Where the data is and which dataset it is.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Dataset (train: default wbc; eval: the one the model was trained on).
    #[arg(long, value_enum, ignore_case = true)]
    pub dataset: Option<DatasetArg>,
    /// Data root holding the dataset folders (wbc_dataset1, drishti_gs1, acdc_subset), or for
    /// `folder` the folder itself. Default: $MSNET_DATA, else ../shared/data.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// For `folder`: mask value to class name, background first, e.g.
    /// "0=background,128=cytoplasm,255=nucleus".
    #[arg(long)]
    pub classes: Option<String>,
    /// For `folder`: how many images form the test split.
    #[arg(long, default_value_t = 5)]
    pub test_count: usize,
    /// Input size D×H×W (or H×W in 2D); each side divisible by 16. Default: the dataset's
    /// (wbc 112×112, drishti 128×128, drishti-full 112×128, acdc 16×128×128, folder 128×128).
    #[arg(long)]
    pub size: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Export(a) => export::run(&a),
        Command::ScorePhotos(a) => score_photos::run(&a),
        Command::Probe(a) => probe::run(&a),
        Command::BenchTrain(a) => bench::run(&a),
        Command::BenchTract(a) => bench_tract::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

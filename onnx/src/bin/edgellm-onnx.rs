//! Native command line for the ONNX backend: export a GGUF as ONNX shards, generate with them
//! on the GPU (Vulkan/Metal/DX12 natively; Mesa's lavapipe runs it on the CPU).
//!
//!     edgellm-onnx export MODEL.gguf OUT_DIR [--context 1024] [--weights int8|f32]
//!     edgellm-onnx generate OUT_DIR --prompt "…" [--max-tokens 64]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use edgellm::timing::native_clock;
use edgellm::{GenerateRequest, Message, Result};
use edgellm_onnx::export::{export_gguf, ExportOptions, WeightStorage};
use edgellm_onnx::llm::OnnxLlm;

#[derive(Parser)]
#[command(about = "edgellm's ONNX backend: export GGUF models as ONNX shards and run them through wonnx")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Weights {
    F32,
    Int8,
}

#[derive(Subcommand)]
enum Command {
    /// Write MODEL.gguf as static-shape ONNX shards and a model.json into OUT_DIR.
    Export {
        gguf: PathBuf,
        out_dir: PathBuf,
        /// Context window fixed into the graphs.
        #[arg(long, default_value_t = 1024)]
        context: usize,
        #[arg(long, value_enum, default_value_t = Weights::Int8)]
        weights: Weights,
    },
    /// Chat with an exported model (one user message), streaming the answer.
    Generate {
        dir: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
    },
}

fn read(path: PathBuf) -> Result<Vec<u8>> {
    std::fs::read(&path)
        .map_err(|e| edgellm::Error::new(edgellm::ErrorCode::InvalidRequest, format!("{}: {e}", path.display())))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Export { gguf, out_dir, context, weights } => {
            let bytes = read(gguf)?;
            std::fs::create_dir_all(&out_dir).map_err(|e| {
                edgellm::Error::new(edgellm::ErrorCode::InvalidRequest, format!("{}: {e}", out_dir.display()))
            })?;
            let weights = match weights {
                Weights::F32 => WeightStorage::F32,
                Weights::Int8 => WeightStorage::Int8,
            };
            let opts = ExportOptions { context, weights, ..Default::default() };
            let t0 = native_clock();
            let mut total = 0;
            let manifest = export_gguf(&bytes, &opts, |name, data| {
                total += data.len();
                std::fs::write(out_dir.join(name), data).map_err(|e| {
                    edgellm::Error::new(edgellm::ErrorCode::InvalidRequest, format!("writing {name}: {e}"))
                })
            })?;
            eprintln!(
                "exported {} ({} layers in {} shards, {} head shards, {:?} weights): {:.1} MiB of shards from a {:.1} MiB GGUF in {:.1} s",
                manifest.name,
                manifest.n_layer,
                manifest.layers.len(),
                manifest.heads.len(),
                manifest.weights,
                total as f64 / (1 << 20) as f64,
                bytes.len() as f64 / (1 << 20) as f64,
                (native_clock() - t0) / 1000.0
            );
        }
        Command::Generate { dir, prompt, max_tokens } => {
            let files = |name: &str| read(dir.join(name));
            let mut llm = pollster::block_on(OnnxLlm::load(files, None, native_clock))?;
            eprintln!("loaded on {} in {:.0} ms", llm.adapter, llm.load_timings.total_ms);
            let req = GenerateRequest {
                max_new_tokens: max_tokens,
                ..GenerateRequest::chat(vec![Message::new("user", &prompt)])
            };
            let out = pollster::block_on(llm.generate(&req, |piece| {
                print!("{piece}");
                use std::io::Write;
                std::io::stdout().flush().ok();
                true
            }))?;
            println!();
            eprintln!("{}", serde_json::to_string(&out.timings).expect("timings serialize"));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

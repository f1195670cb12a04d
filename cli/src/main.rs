//! `edgellm` — the native command line over the same core the browser runs.
//!
//!   edgellm generate --model FILE --prompt "…" [--raw] [--max-new-tokens N] [--temperature T …]
//!   edgellm tokenize --model FILE --text "…"
//!   edgellm info --model FILE

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgellm::model::BackendKind;
use edgellm::timing::native_clock;
use edgellm::{GenerateRequest, LoadOptions, Message, Model, SamplingParams};

#[derive(Parser)]
#[command(name = "edgellm", about = "Run GGUF language models with the edgellm core")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Path to a GGUF file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// Context window to serve (default: the model's, at most 4096).
    #[arg(long)]
    context_length: Option<usize>,
    /// Chat template preset (zephyr, chatml, llama3, mistral, gemma) instead of the file's own.
    #[arg(long)]
    template: Option<String>,
    /// Implementation: edgellm (default) or candle (the reference).
    #[arg(long, value_parser = parse_backend)]
    backend: Option<BackendKind>,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("unknown backend '{s}' (edgellm, candle)"))
}

#[derive(Subcommand)]
enum Command {
    /// Generate text and print it with timings.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        prompt: String,
        /// Send the prompt as raw text instead of a user chat message.
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        system: Option<String>,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Start from the reference system's settings (top_k 50, top_p 0.8, repetition penalty
        /// 1.15, no-repeat-ngram 3, temperature 0.2) instead of greedy.
        #[arg(long)]
        reference_sampling: bool,
        #[arg(long)]
        temperature: Option<f64>,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long)]
        top_p: Option<f64>,
        #[arg(long)]
        repetition_penalty: Option<f32>,
        #[arg(long)]
        seed: Option<u64>,
        /// Print timings as JSON on the last line.
        #[arg(long)]
        json: bool,
    },
    /// Print token ids for a text.
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        text: String,
    },
    /// Print what the model is.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

fn load(args: &ModelArgs) -> Result<Model, String> {
    let bytes = std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let opts = LoadOptions {
        context_length: args.context_length,
        template: args.template.clone(),
        max_memory_bytes: None,
        backend: args.backend,
    };
    Model::load(bytes, &opts, native_clock).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Info { model } => {
            let m = load(&model)?;
            println!("{}", serde_json::to_string_pretty(&m.info).unwrap());
            println!("load: {}", serde_json::to_string(&m.load_timings).unwrap());
        }
        Command::Tokenize { model, text } => {
            let m = load(&model)?;
            println!("{:?}", m.tokenizer.encode(&text, true).map_err(|e| e.to_string())?);
        }
        Command::Generate {
            model,
            prompt,
            raw,
            system,
            max_new_tokens,
            reference_sampling,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            seed,
            json,
        } => {
            let mut m = load(&model)?;
            let mut sampling = if reference_sampling { SamplingParams::reference() } else { SamplingParams::greedy() };
            sampling.temperature = temperature.unwrap_or(sampling.temperature);
            sampling.top_k = top_k.unwrap_or(sampling.top_k);
            sampling.top_p = top_p.unwrap_or(sampling.top_p);
            sampling.repetition_penalty = repetition_penalty.unwrap_or(sampling.repetition_penalty);
            sampling.seed = seed.unwrap_or(sampling.seed);
            let mut req = if raw {
                GenerateRequest::text(&prompt)
            } else {
                let mut messages: Vec<Message> = system.iter().map(|s| Message::new("system", s)).collect();
                messages.push(Message::new("user", &prompt));
                GenerateRequest::chat(messages)
            };
            req.max_new_tokens = max_new_tokens;
            req.sampling = sampling;
            let out = m
                .generate(&req, |piece| {
                    print!("{piece}");
                    std::io::stdout().flush().is_ok()
                })
                .map_err(|e| e.to_string())?;
            println!();
            let l = &m.load_timings;
            let t = &out.timings;
            eprintln!(
                "load {:.0} ms (parse {:.0}, tokenizer {:.0}, weights {:.0}) | prompt {} tok, prefill {:.0} ms ({:.1} tok/s) | \
                 first token {:.0} ms | {} tok, decode {:.1} tok/s | {:?}",
                l.total_ms, l.parse_ms, l.tokenizer_ms, l.weights_ms, t.prompt_tokens, t.prefill_ms, t.prefill_tok_s,
                t.time_to_first_token_ms, t.generated_tokens, t.decode_tok_s, out.finish_reason
            );
            if json {
                println!("{}", serde_json::json!({ "load": l, "generation": t, "finish_reason": out.finish_reason }));
            }
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

//! `bench serve`: what serving costs. The same greedy generation in-process
//! and through `serve` (HTTP, JSON, server-sent events, parsed by the
//! studio's own OpenAI client), rounds interleaved: first-token latency and
//! tokens/s, medians. Then many streams at once: all finish, and the
//! server's memory over them.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;

use crate::hub::config::Token;
use crate::library::{find_manifest, load_text_model};
use crate::remote::RemoteServer;
use crate::remote::openai::{self, RemoteText};
use crate::serve::{Limits, ServeOptions, Server};
use crate::spec::text::{GenerateSpec, SamplingParams};
use crate::text::generate::{CachedTokens, generate_reusing};
use crate::train::cancel::CancelToken;

/// `bench serve` flags.
#[derive(Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// Text model id.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// New tokens per generation.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Interleaved rounds (each: one in-process run, one through serve).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Streams held open at once in the concurrency run (0 skips it).
    #[arg(long, default_value_t = 32)]
    pub streams: usize,
    /// Another OpenAI-compatible server on the same model (llama.cpp's, say)
    /// timed in the same rounds, through the same client.
    #[arg(long)]
    pub also: Option<String>,
}

/// One generation's timing.
struct Timing {
    first_token: Duration,
    tokens_per_second: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// Runs `bench serve` and prints the table.
pub fn bench_serve(models_dir: &Path, args: &BenchServeArgs) -> anyhow::Result<()> {
    let spec = GenerateSpec {
        prompt: "Write a short story about a robot who learns to paint.".into(),
        chat: true,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens: args.tokens,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
    };
    let mut model = load_text_model(&find_manifest(models_dir, &args.model)?, &crate::nn::default_device())?;
    let key = "bench-key";
    let limits = Limits { queue: args.streams.max(16), ..Limits::default() };
    let options = ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        api_key: Token::parse(key),
        models_dir: models_dir.to_owned(),
        limits,
    };
    let server = Server::bind(options)?;
    let url = format!("http://{}", server.local_addr()?);
    std::thread::spawn(move || server.run());
    let remote = RemoteServer::new(&url, Token::parse(key))?;
    let request = RemoteText { model: args.model.clone(), top_logprobs: 0 };
    // One warm-up each: the served model loads on its first request.
    // Both sides keep their KV cache between requests (serve does, per model),
    // so both reuse the chat template's common prefix.
    let mut cached = CachedTokens::default();
    generate_reusing(model.as_mut(), &mut cached, &spec, &CancelToken::new(), &mut |_, _| {})?;
    openai::generate(&remote, &request, &spec, &|| false, &mut |_, _| {})?;

    let other = args.also.as_deref().map(|url| RemoteServer::new(url, None)).transpose()?;
    if let Some(other) = &other {
        openai::generate(other, &request, &spec, &|| false, &mut |_, _| {})?;
    }
    let (mut local, mut served, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        // A new prompt each round, the same for both paths: only the template's prefix is reused.
        let spec = GenerateSpec { prompt: format!("{} (take {round})", spec.prompt), ..spec.clone() };
        let start = Instant::now();
        let mut first = None;
        let out = generate_reusing(model.as_mut(), &mut cached, &spec, &CancelToken::new(), &mut |_, _| {
            first.get_or_insert_with(|| start.elapsed());
        })?;
        local.push(Timing { first_token: first.unwrap_or_default(), tokens_per_second: out.tokens_per_second() });
        let start = Instant::now();
        let mut first = None;
        let out = openai::generate(&remote, &request, &spec, &|| false, &mut |_, _| {
            first.get_or_insert_with(|| start.elapsed());
        })?;
        served.push(Timing { first_token: first.unwrap_or_default(), tokens_per_second: out.tokens_per_second() });
        if let Some(other) = &other {
            let start = Instant::now();
            let mut first = None;
            let out = openai::generate(other, &request, &spec, &|| false, &mut |_, _| {
                first.get_or_insert_with(|| start.elapsed());
            })?;
            others.push(Timing { first_token: first.unwrap_or_default(), tokens_per_second: out.tokens_per_second() });
        }
    }
    let row = |name: &str, timings: &[Timing]| {
        let first = median(timings.iter().map(|t| t.first_token.as_secs_f64() * 1000.0).collect());
        let rate = median(timings.iter().map(|t| t.tokens_per_second).collect());
        println!("| {name} | {first:.1} | {rate:.1} |");
        (first, rate)
    };
    println!("{} greedy tokens, chat prompt, {} rounds interleaved, medians", args.tokens, args.rounds.max(1));
    println!("| path | first token (ms) | tokens/s |");
    println!("|---|---|---|");
    let (local_first, local_rate) = row("in-process", &local);
    let (served_first, served_rate) = row("through serve (HTTP + SSE)", &served);
    if let Some(url) = &args.also {
        row(&format!("{url} (same client)"), &others);
    }
    println!(
        "serving adds {:.1} ms to the first token and keeps {:.1} % of the tokens/s",
        served_first - local_first,
        100.0 * served_rate / local_rate
    );
    drop(model);
    if args.streams > 0 {
        concurrent(&remote, &request, &spec, args.streams)?;
    }
    Ok(())
}

/// `streams` streams at once (32 tokens each), queued on the one generator:
/// all must finish; the process's memory is sampled while they are open.
fn concurrent(remote: &RemoteServer, request: &RemoteText, spec: &GenerateSpec, streams: usize) -> anyhow::Result<()> {
    let spec = GenerateSpec { max_new_tokens: 32, ..spec.clone() };
    let before = rss_mib();
    let start = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (results, peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(rss_mib());
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        let handles: Vec<_> = (0..streams)
            .map(|_| scope.spawn(|| openai::generate(remote, request, &spec, &|| false, &mut |_, _| {})))
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        (results, samples.into_iter().fold(before, f64::max))
    });
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(g)) if g.generated_tokens() == 32)).count();
    let after = rss_mib();
    println!(
        "{streams} streams at once: {ok} finished with 32 tokens in {:.1} s; resident memory {before:.0} MiB before, \
         {peak:.0} MiB peak, {after:.0} MiB after",
        start.elapsed().as_secs_f64()
    );
    anyhow::ensure!(ok == streams, "only {ok} of {streams} streams finished");
    Ok(())
}

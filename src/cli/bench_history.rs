//! `bench history`: the History over an output folder of 10,000 images
//! (written by the benchmark into a temporary folder): the first index, an
//! incremental refresh, a search, and UI frame times while the list scrolls.

use std::time::Instant;

use clap::Args;
use image::RgbImage;

use crate::app::frame_bench::frame_times_in_history;
use crate::history::HistoryIndex;
use crate::io::image_record::ImageRecord;
use crate::io::png_meta::encode_png;
use crate::spec::image::ImageRequest;

/// Flags of `bench history`.
#[derive(Args, Debug)]
pub struct BenchHistoryArgs {
    /// Images in the folder.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// UI frames timed while scrolling.
    #[arg(long, default_value_t = 600)]
    frames: usize,
}

/// Runs `bench history`.
pub fn bench_history(args: BenchHistoryArgs) -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("latent-studio-bench-history-{}", std::process::id()));
    let result = run(&root, &args);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(root: &std::path::Path, args: &BenchHistoryArgs) -> anyhow::Result<()> {
    let (dir, cache) = (root.join("outputs"), root.join("cache"));
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&cache)?;
    let words = ["heart", "star", "tree", "sun", "cat", "moon", "fish", "house", "car", "flower"];
    for n in 0..args.files {
        let record = ImageRecord {
            request: ImageRequest {
                width: 32,
                height: 32,
                ..ImageRequest::new(&format!("a {}", words[n % 10]), n as u64)
            },
            model: "emoji-ldm".into(),
            init_image: None,
            noise_origin: None,
            model_hash: None,
            lora_hashes: Vec::new(),
            latent: None,
            served: None,
        };
        let image = RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, (n % 251) as u8]));
        std::fs::write(dir.join(format!("image-{n:05}.png")), encode_png(&image, &record.chunks())?)?;
    }
    let mut index = HistoryIndex::open(&dir, Some(&cache));
    let started = Instant::now();
    let first = index.refresh();
    let first_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = index.refresh();
    let again_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let found = index.search("a star", None).count();
    let search_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let reopened = HistoryIndex::open(&dir, Some(&cache));
    let reopen_s = started.elapsed().as_secs_f64();
    println!(
        "bench history ({} PNG files of 32×32 with their records, {} threads)\n",
        args.files,
        rayon::current_num_threads()
    );
    println!("| step | time | files read |\n|---|---|---|");
    println!("| first index | {first_s:.2} s | {} |", first.read);
    println!("| refresh, nothing changed | {:.0} ms | {} |", again_s * 1000.0, again.read);
    println!(
        "| index read back after a restart | {:.0} ms | 0 ({} entries) |",
        reopen_s * 1000.0,
        reopened.entries().len()
    );
    println!("| search \"a star\" ({found} found) | {search_ms:.1} ms | 0 |");
    // The UI's own index and thumbnail cache go to a temporary cache too.
    // SAFETY: set before the app's threads start; the benchmark has no other threads reading it.
    unsafe { std::env::set_var("XDG_CACHE_HOME", &cache) };
    let times = frame_times_in_history(&dir, args.frames)?;
    println!("\nHistory view while its list scrolls ({} frames at 60 Hz; {})\n", times.frames, times.training);
    println!("| UI frame | p50 ms | p99 ms |\n|---|---|---|");
    if let Some((p50, p99)) = times.cpu {
        println!("| CPU time of the UI thread | {p50:.3} | {p99:.3} |");
    }
    println!("| wall time | {:.3} | {:.3} |", times.wall.0, times.wall.1);
    Ok(())
}

//! The bodies of the fuzz targets in `fuzz/fuzz_targets` (each target calls
//! the function of its name): every parser of outside input, fed raw bytes
//! as a hostile file would. They live in the library so that `cargo test`
//! compiles them and runs every seed and every input a fuzzer once crashed
//! on (`tests/fuzz_inputs.rs`). A body may only panic on a bug: bad input
//! must come back as an error.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Value};

use crate::diffusion::autoencoder::AutoencoderConfig;
use crate::diffusion::checkpoint::family::{detect, unet_layout};
use crate::diffusion::checkpoint::keys::{TextLayout, UnetLayout, text_source, unet_source, vae_source};
use crate::diffusion::checkpoint::tensor_file::parse_header;
use crate::diffusion::clip_text::ClipTextConfig;
use crate::diffusion::clip_tokenizer::{ClipTokenizer, byte_chars};
use crate::diffusion::lora::file::split_name;
use crate::diffusion::lora::keys::ModuleIndex;
use crate::diffusion::prompt::chunks::{NoEmbeddings, chunk_prompt};
use crate::diffusion::prompt::embeddings::EmbeddingSet;
use crate::diffusion::prompt::emphasis;
use crate::diffusion::prompt::extra::take_extras;
use crate::diffusion::schedulers::{SamplerKind, SchedulerConfig, build_sampler};
use crate::diffusion::unet_config::UnetConfig;
use crate::hub::cache::{RepoId, check_repo_path, is_commit};
use crate::hub::config::HubConfig;
use crate::hub::quant::quant_label;
use crate::hub::repo_info::parse_repo_info;
use crate::io::image_record::{ImageRecord, image_record_from_chunks};
use crate::io::manifest::parse_manifest;
use crate::io::npy::{npy_bytes, parse_npy};
use crate::io::png_meta::{ImageSettings, SETTINGS_KEY, text_chunks};
use crate::io::sd_params::GenerationParams;
use crate::text::gguf_tokenizer::{ChatMessage, TextTokenizer};
use crate::text::llama::{LlamaConfig, LlamaWeights, unsupported_reason};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/Cargo.toml` names its binaries.
pub const TARGETS: &[(&str, Target)] = &[
    ("png_text", png_text),
    ("a1111_params", a1111_params),
    ("gguf", gguf),
    ("gguf_tokenizer", gguf_tokenizer),
    ("safetensors_manifest", safetensors_manifest),
    ("npy", npy),
    ("clip_tokenizer", clip_tokenizer),
    ("diffusers_config", diffusers_config),
    ("a1111_prompt", a1111_prompt),
    ("checkpoint_keys", checkpoint_keys),
    ("embedding_file", embedding_file),
    ("hub_names", hub_names),
    ("hub_repo_info", hub_repo_info),
    ("hub_answers", hub_answers),
    ("image_file", image_file),
    ("train_sources", train_sources),
    ("conversation", conversation),
    ("sse", sse),
    ("http_request", http_request),
    ("openai_stream", openai_stream),
    ("a1111_answer", a1111_answer),
];

/// A PNG's text chunks or a GIF's comments, then the settings read from
/// them (our JSON chunk or A1111's `parameters`), as "Open image…", a
/// dropped file, History and `info` do.
pub fn png_text(data: &[u8]) {
    let Ok(chunks) = text_chunks(data) else { return };
    // A pad image's or a travel's recipe: what the app computes from the file's numbers.
    if let Ok(Some(record)) = image_record_from_chunks(&chunks)
        && let Some(latent) = record.latent
    {
        if let Some(pad) = latent.pad.filter(|p| p.validate().is_ok()) {
            let _ = (pad.weights(), pad.lead());
        }
        if let Some(mut travel) = latent.travel.filter(|t| t.validate().is_ok()) {
            travel.frame = travel.frames - 1;
            let _ = travel.segment();
        }
    }
    if let Some((_, json)) = chunks.iter().find(|(k, _)| k == SETTINGS_KEY) {
        let _ = serde_json::from_str::<ImageSettings>(json);
    }
}

/// AUTOMATIC1111's `parameters` text; what we write back must parse again.
pub fn a1111_params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(params) = GenerationParams::parse_a1111(text) {
        let record = ImageRecord::from_params(&params);
        let again = GenerationParams::parse_a1111(&record.to_params().to_a1111());
        assert!(again.is_ok(), "our own parameters text does not parse: {again:?}");
    }
}

/// A GGUF file: header and metadata, the llama hyper-parameters, the
/// tokenizer and chat template, and the weights our engine loads.
pub fn gguf(data: &[u8]) {
    let mut reader = Cursor::new(data);
    let Ok(content) = gguf_file::Content::read(&mut reader) else { return };
    if let Ok(tokenizer) = TextTokenizer::from_gguf(&content.metadata) {
        if let Ok(ids) = tokenizer.encode("Hello <|im_start|> wörld", true) {
            let _ = tokenizer.decode(&ids);
        }
        let chat = [ChatMessage { role: "user".into(), content: "Hi".into() }];
        let _ = tokenizer.apply_chat_template(&chat, true);
    }
    if LlamaConfig::from_gguf(&content).is_ok() && unsupported_reason(&content).is_none() {
        let _ = LlamaWeights::load(&content, &mut reader);
    }
}

/// The byte-level BPE built from GGUF metadata: one token per line before a
/// NUL (merges from the "a b" lines), the text to encode after it; a text
/// starting with `{%` is also the chat template.
pub fn gguf_tokenizer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (head, sample) = text.split_once('\0').unwrap_or((text, "Hello world"));
    let tokens: Vec<&str> = head.lines().collect();
    let string = |s: &str| Value::String(s.to_owned());
    let mut md = HashMap::new();
    md.insert("tokenizer.ggml.model".to_owned(), string("gpt2"));
    md.insert("tokenizer.ggml.tokens".to_owned(), Value::Array(tokens.iter().map(|t| string(t)).collect()));
    let merges = tokens.iter().filter(|t| t.contains(' ')).map(|t| string(t)).collect();
    md.insert("tokenizer.ggml.merges".to_owned(), Value::Array(merges));
    let types = tokens.iter().map(|t| Value::I32(if t.starts_with("<|") { 3 } else { 1 })).collect();
    md.insert("tokenizer.ggml.token_type".to_owned(), Value::Array(types));
    md.insert("tokenizer.ggml.eos_token_id".to_owned(), Value::U32(0));
    if sample.starts_with("{%") {
        md.insert("tokenizer.chat_template".to_owned(), string(sample));
    }
    let Ok(tokenizer) = TextTokenizer::from_gguf(&md) else { return };
    for special in [false, true] {
        if let Ok(ids) = tokenizer.encode(sample, special) {
            let _ = tokenizer.decode(&ids);
            ids.iter().for_each(|&id| drop(tokenizer.piece(id)));
        }
    }
    let chat = [ChatMessage { role: "user".into(), content: sample.into() }];
    let _ = tokenizer.apply_chat_template(&chat, true);
}

/// A model folder's two files: `manifest.json` (the first line when it
/// starts with `{`) and safetensors weights (the rest), read as the model
/// library and candle read them.
pub fn safetensors_manifest(data: &[u8]) {
    let (manifest, weights) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if data.first() == Some(&b'{') => (&data[..i], &data[i + 1..]),
        _ => (&data[..0], data),
    };
    if let Ok(Ok(m)) = std::str::from_utf8(manifest).map(|text| parse_manifest(text, Path::new("model"))) {
        let _ = (m.weights_path(), m.latent_map_path(), m.has_chat_template());
    }
    if safetensors::SafeTensors::deserialize(weights).is_ok() {
        let _ = candle_core::safetensors::load_buffer(weights, &Device::Cpu);
    }
}

/// NumPy `.npy` files given as `--noise`; whatever we read, we write back readably.
pub fn npy(data: &[u8]) {
    if let Ok(array) = parse_npy(data, "fuzz.npy") {
        let again = parse_npy(&npy_bytes(&array), "again.npy");
        assert_eq!(again.map(|a| a.shape).ok(), Some(array.shape));
    }
}

/// A saved conversation (`io::conversations`), then what the Text view
/// and the CLI compute from it: its title, its Markdown, its next turn, and
/// the same conversation after a save and a read.
pub fn conversation(data: &[u8]) {
    let Ok(conversation) = crate::io::conversations::parse(data) else { return };
    let _ = conversation.shown_title();
    let _ = conversation.to_markdown();
    if let Ok(spec) = conversation.next_turn() {
        assert_eq!(spec.history.len() + 1, conversation.messages.len());
    }
    let json = serde_json::to_vec(&conversation).unwrap_or_default();
    assert_eq!(crate::io::conversations::parse(&json).ok().as_ref(), Some(&conversation));
}

/// CLIP's tokenizer from `vocab.json`, `merges.txt` and
/// `tokenizer_config.json` (the first three NUL-separated parts), then the
/// fourth part encoded to exactly the model's length.
pub fn clip_tokenizer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0');
    let (Some(vocab), Some(merges)) = (parts.next(), parts.next()) else { return };
    let config = parts.next().filter(|c| !c.is_empty());
    let Ok(tokenizer) = ClipTokenizer::from_texts(Path::new("tokenizer"), vocab, merges, config) else { return };
    let ids = tokenizer.encode(parts.next().unwrap_or("a photo of a cat"));
    assert_eq!(ids.len(), tokenizer.max_len());
}

/// The `config.json` files of a diffusers folder (after a first byte that
/// sets the number of steps): U-Net, autoencoder, CLIP text encoder and
/// scheduler, each parsed and checked as loading does, and the schedule and
/// samplers built from the scheduler's.
pub fn diffusers_config(data: &[u8]) {
    let Some((&steps, json)) = data.split_first() else { return };
    if let Ok(unet) = serde_json::from_slice::<UnetConfig>(json) {
        let _ = unet.plan();
        let _ = unet.text_time();
        let _ = unet.to_candle();
    }
    if let Ok(vae) = serde_json::from_slice::<AutoencoderConfig>(json)
        && vae.validate().is_ok()
    {
        let _ = vae.downscale();
    }
    if let Ok(clip) = serde_json::from_slice::<ClipTextConfig>(json) {
        let _ = clip.validate();
    }
    if let Ok(scheduler) = serde_json::from_slice::<SchedulerConfig>(json) {
        let _ = scheduler.betas();
        let _ = scheduler.alphas_cumprod();
        let _ = scheduler.prediction();
        let _ = scheduler.timesteps(usize::from(steps));
        for kind in SamplerKind::ALL {
            let _ = build_sampler(kind, &scheduler, usize::from(steps));
        }
    }
}

/// A tokenizer of single bytes (no merges) with 16-token windows, so that
/// chunking is exercised on short inputs.
fn byte_tokenizer() -> Option<ClipTokenizer> {
    let mut tokens: Vec<String> = byte_chars().into_iter().map(|(_, c)| c.to_string()).collect();
    let ends: Vec<String> = tokens.iter().map(|t| format!("{t}</w>")).collect();
    tokens.extend(ends);
    tokens.extend(["<|startoftext|>".to_owned(), "<|endoftext|>".to_owned()]);
    let vocab: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let vocab = serde_json::to_string(&vocab).ok()?;
    ClipTokenizer::from_texts(Path::new("tokenizer"), &vocab, "#version: 0.2\n", Some(r#"{"model_max_length": 16}"#))
        .ok()
}

/// A prompt as A1111 reads it: `<lora:…>` tags taken out, emphasis parsed,
/// then chunked; every chunk is exactly the encoder's window.
pub fn a1111_prompt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let extras = take_extras(text);
    for tag in &extras.loras {
        assert!(!tag.name.is_empty());
    }
    let pieces = emphasis::parse(&extras.text);
    assert!(!pieces.is_empty());
    static TOKENIZER: std::sync::OnceLock<Option<ClipTokenizer>> = std::sync::OnceLock::new();
    let Some(tokenizer) = TOKENIZER.get_or_init(byte_tokenizer) else { return };
    let (chunks, _) = chunk_prompt(&pieces, tokenizer, &NoEmbeddings);
    assert!(!chunks.is_empty());
    for chunk in chunks {
        assert_eq!(chunk.tokens.len(), tokenizer.max_len());
        assert_eq!(chunk.multipliers.len(), tokenizer.max_len());
    }
}

/// A safetensors file as a single-file checkpoint or a LoRA: the header
/// parsed and checked, the family told, and every name run through the key
/// maps (ours → the original layout, and a LoRA's names → our weights).
pub fn checkpoint_keys(data: &[u8]) {
    let Ok(header) = parse_header(data, data.len() as u64) else { return };
    let shapes: HashMap<String, Vec<usize>> =
        header.entries.iter().map(|(name, e)| (name.clone(), e.shape.clone())).collect();
    let _ = detect(&shapes);
    let layout = UnetLayout { layers_per_block: 2, up_attention: vec![false, true, true, true] };
    let blocks = data.get(8).map_or(4, |b| usize::from(*b % 6));
    for name in shapes.keys() {
        let _ = unet_source(name, &layout, "model.diffusion_model.");
        let _ = vae_source(name, blocks, "first_stage_model.");
        let _ = text_source(name, TextLayout::OpenClip, "cond_stage_model.model.");
        let _ = text_source(name, TextLayout::Transformers, "cond_stage_model.transformer.");
    }
    // The same names as a model's weights, and as a LoRA's modules.
    let ours: HashMap<String, Vec<usize>> = shapes.iter().map(|(n, s)| (format!("unet.{n}"), s.clone())).collect();
    let config = crate::diffusion::checkpoint::standard::unet(crate::diffusion::checkpoint::family::Family::Sd1);
    let index = ModuleIndex::new(ours, 1, &unet_layout(&config));
    for name in shapes.keys() {
        if let Some((module, _)) = split_name(name) {
            let _ = index.resolve(&module);
        }
    }
}

/// A textual-inversion embedding file from an embeddings folder (A1111's
/// `emb_params`, SDXL's `clip_l`/`clip_g`, diffusers' single tensor), read
/// for towers of 4 and 8 wide as a prompt would use it: it is loaded or
/// skipped with a reason, never both, and its vectors fit their tower.
pub fn embedding_file(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!("latent-studio-fuzz-embedding-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(dir.join("name.safetensors"), data).is_err() {
        return;
    }
    let set = EmbeddingSet::load(std::slice::from_ref(&dir), &[4, 8]);
    assert_eq!(set.items.len() + set.skipped.len(), 1);
    for item in &set.items {
        for (vectors, width) in item.vectors.iter().zip([4, 8]) {
            if let Some(v) = vectors {
                assert_eq!(v.dims().last(), Some(&width));
            }
        }
    }
}

/// Names that come from the user or from a Hub server: a repo id, a file
/// path inside a repo and a GGUF file name (one per line), then the Hub's
/// environment variables (endpoint, offline, token, home). An accepted repo
/// id makes one folder name; an accepted path stays inside the snapshot
/// folder; a quantization label is part of the upper-cased name; the
/// settings have an endpoint without a trailing slash and a hidden token.
pub fn hub_names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (id, path, file) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    if let Ok(repo) = RepoId::parse(id) {
        let folder = repo.folder_name();
        assert!(!folder.contains(['/', '\\']) && !folder.contains("..") && folder.starts_with("models--"));
    }
    if let Ok(path) = check_repo_path(path) {
        let joined = Path::new("snapshots").join(path);
        assert!(joined.components().all(|c| matches!(c, std::path::Component::Normal(_))));
        assert!(joined.starts_with("snapshots"));
    }
    if let Some(label) = quant_label(file) {
        assert!(!label.is_empty() && file.to_uppercase().contains(&label));
    }
    // The rest: environment values as a user might set them, and a token file.
    let rest: Vec<&str> = lines.collect();
    let value = |i: usize| rest.get(i).map(std::ffi::OsString::from);
    let config = HubConfig::from_vars(&|name| match name {
        "HF_ENDPOINT" => value(0),
        "HF_HUB_OFFLINE" => value(1),
        "HF_TOKEN" => value(2),
        "HF_HOME" => value(3),
        _ => None,
    });
    assert!(!config.endpoint.ends_with('/') && !config.endpoint.is_empty());
    if let Some(token) = &config.token {
        assert!(token.bearer().starts_with("Bearer ") && format!("{config:?}").contains("Token(hidden)"));
    }
}

/// Where a run's data came from, as a checkpoint or the settings store it
/// (read back from files the user may have edited): an image source, a text
/// source, an unfinished Hub pull, or a paused training run. Whatever is accepted can be checked
/// and written back as command-line flags without a panic.
pub fn train_sources(data: &[u8]) {
    use crate::io::datasets::DataSource;
    use crate::io::text_corpus::TextSource;
    if let Ok(source) = serde_json::from_slice::<DataSource>(data) {
        let _ = (source.cli_flags(), source.credit(), source.name(), source.image_shape());
        if let DataSource::Folder(spec) = &source {
            let _ = spec.check();
        }
    }
    if let Ok(source) = serde_json::from_slice::<TextSource>(data) {
        let _ = (source.cli_flag(), source.description());
    }
    if let Ok(pull) = serde_json::from_slice::<crate::hub::pull::PullPlan>(data) {
        let _ = (pull.is_well_formed(), pull.total_bytes());
    }
    // A paused training run, as the settings keep it.
    if let Ok(run) = serde_json::from_slice::<crate::worker::train_plan::TrainRequest>(data) {
        let _ = (run.plan.stem(), run.plan.epochs(), run.folder.known());
    }
}

/// A file in the user's training folder (PNG, JPEG, WebP, GIF or anything
/// else): decoded within limits and fitted, or refused with a reason; what
/// is accepted is exactly `[channels, side, side]` values in [0, 1].
pub fn image_file(data: &[u8]) {
    use crate::io::image_folder::{Fit, FolderSpec, prepare_bytes};
    let Some((&selector, bytes)) = data.split_first() else { return };
    let fit = [Fit::Crop, Fit::Pad, Fit::Stretch][usize::from(selector % 3)];
    let channels = if selector & 4 == 0 { 1 } else { 3 };
    let spec = FolderSpec { folder: Path::new(".").to_owned(), side: 16, channels, fit, flip: false };
    if let Ok(pixels) = prepare_bytes(bytes, &spec) {
        assert_eq!(pixels.len(), channels * 16 * 16);
        assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

/// What a Hub server or a repo puts in front of the studio besides the
/// repo description: an ETag header and a Content-Range header (one line
/// each), then a model card. An accepted ETag names one blob file (hex, no
/// separators); a licence read from the card is one line.
pub fn hub_answers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (etag, range, card) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Some(blob) = crate::hub::client::blob_name(etag) {
        assert!(blob.bytes().all(|b| b.is_ascii_hexdigit()) && !blob.is_empty());
        assert!(Path::new("blobs").join(&blob).parent() == Some(Path::new("blobs")));
    }
    let _ = crate::hub::download::range_start(range);
    if let Some(license) = crate::hub::installed::card_license(card) {
        assert!(!license.contains('\n') && !license.is_empty());
    }
}

/// A Hub server's description of a repo (`/api/models/{repo}?blobs=true`):
/// what is accepted names a commit, safe file paths and sha256 checksums.
pub fn hub_repo_info(data: &[u8]) {
    let Ok(info) = parse_repo_info(data) else { return };
    assert!(is_commit(&info.commit));
    for file in &info.files {
        assert!(check_repo_path(&file.path).is_ok());
        assert!(file.sha256.as_ref().is_none_or(|s| s.len() == 64));
        let _ = file.quant();
    }
}

/// A server's event stream (`io::sse`, what OpenAI-compatible servers
/// stream), fed whole and in two chunks cut where the first byte says: the
/// same events, or the same refusal, either way.
pub fn sse(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let whole = crate::io::sse::SseParser::default().feed(rest);
    let cut = usize::from(first) * rest.len() / 255;
    let mut parser = crate::io::sse::SseParser::default();
    let split = parser.feed(&rest[..cut]).and_then(|mut events| {
        events.extend(parser.feed(&rest[cut..])?);
        Ok(events)
    });
    assert_eq!(whole, split);
}

/// A request as `serve` reads it: the head, then the body as both OpenAI
/// endpoints and both A1111 image endpoints check it. A spec that passes must be within the limits.
pub fn http_request(data: &[u8]) {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").map_or(data.len(), |i| i + 4);
    let _ = crate::serve::http::parse_head(&data[..end]);
    for img2img in [true, false] {
        let _ = crate::serve::a1111_api::check_request(&data[end..], img2img);
    }
    for chat in [true, false] {
        if let Ok(spec) = crate::serve::openai_api::check_request(&data[end..], chat, 64) {
            assert!((1..=64).contains(&spec.max_new_tokens));
            assert!(spec.sampling.validate().is_ok());
        }
    }
}

/// An OpenAI-compatible server's event stream, chat and plain, as the
/// remote text backend reads it.
pub fn openai_stream(data: &[u8]) {
    for chat in [true, false] {
        let _ = crate::remote::openai::decode_stream(data, chat);
    }
}

/// An A1111-compatible server's answers as the remote image backend reads
/// them (txt2img's images with their infotexts, progress with its preview),
/// and the API key file.
pub fn a1111_answer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::remote::keys::parse_keys(&text);
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(server) = crate::remote::RemoteServer::new("http://127.0.0.1:9", None) else { return };
    let _ = crate::remote::a1111::images_of(&server, "/sdapi/v1/txt2img", &answer);
    let _ = crate::remote::a1111::progress_of(&answer);
}

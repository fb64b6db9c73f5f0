//! The llama forward pass on our own kernels: RMSNorm, grouped-query
//! attention with RoPE (interleaved, llama.cpp's "NORM"; over halves,
//! "NEOX", for Qwen2, which also adds q/k/v biases) and a KV cache, SwiGLU MLP, all
//! in f32 with weights in their GGUF block formats. Activations are quantized
//! to 8 bits before each product, as llama.cpp and candle do. Each pass runs
//! on a [`Team`]: matrix rows and heads are split between the threads.

use std::ops::Range;

use crate::text::llama::kv_cache::{CacheElement, KvCache, KvPrecision, Layers};
use crate::text::llama::team::{Member, Shared, Team};
use crate::text::llama::weights::{LlamaConfig, LlamaWeights};
use latent_kernels::activation::swiglu;
use latent_kernels::softmax::exp;
use latent_kernels::{ActFormat, Activations, QMatrix, axpy, exp_shifted};

/// Positions the KV cache grows by, so it is not reallocated every token.
const CACHE_GROWTH: usize = 256;

/// Cached positions per attention work item. Each chunk of keys is scored,
/// exponentiated and summed into its values on its own; a head's chunks are
/// then merged in order (flash-decoding's scheme). Work items of (token, key
/// group, chunk) let two threads share even a single group of heads evenly,
/// and the arithmetic does not depend on how many threads run it.
const ATTENTION_CHUNK: usize = 64;

/// A loaded model with its KV cache.
pub struct LlamaRunner {
    weights: LlamaWeights,
    team: Team,
    cache: KvCache,
    cached: usize,
    /// RoPE's angle per pair of dimensions: θ^(−2i/head_dim).
    inv_freq: Vec<f32>,
}

/// Why a forward pass was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForwardError {
    /// A token id the embedding table has no row for.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    UnknownToken { id: u32, vocab: usize },
    /// The tokens would start after the end of the cached sequence.
    #[error("position {pos} skips past the {cached} cached tokens")]
    Gap { pos: usize, cached: usize },
}

impl LlamaRunner {
    /// A runner that uses `threads` threads per pass and keeps its cache in `precision`.
    pub fn new(weights: LlamaWeights, threads: usize, precision: KvPrecision) -> Self {
        let c = &weights.config;
        let half = c.head_dim() / 2;
        // As candle and llama.cpp compute it, in f32.
        let inv_freq = (0..half).map(|i| 1.0 / c.rope_base.powf((2 * i) as f32 / c.head_dim() as f32)).collect();
        let layers = c.layers;
        Self { weights, team: Team::new(threads), cache: KvCache::new(precision, layers), cached: 0, inv_freq }
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.weights.config
    }

    /// How the KV cache stores keys and values.
    pub fn kv_precision(&self) -> KvPrecision {
        self.cache.precision()
    }

    /// Threads per pass.
    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Passes run on one thread because another process had taken a core.
    pub fn solo_passes(&self) -> u64 {
        self.team.solo_passes()
    }

    /// Forgets the cached positions.
    pub fn reset(&mut self) {
        self.cached = 0;
    }

    /// Runs `tokens` at positions `pos..` (keeping the cache before `pos`)
    /// and returns the logits after the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ForwardError> {
        let vocab = self.weights.config.vocab;
        if pos > self.cached {
            return Err(ForwardError::Gap { pos, cached: self.cached });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(ForwardError::UnknownToken { id, vocab });
        }
        if tokens.is_empty() {
            return Ok(vec![0.0; vocab]);
        }
        let logits = match &mut self.cache {
            KvCache::F32(layers) => run_pass(&self.weights, &mut self.team, &self.inv_freq, layers, tokens, pos),
            KvCache::F16(layers) => run_pass(&self.weights, &mut self.team, &self.inv_freq, layers, tokens, pos),
        };
        self.cached = pos + tokens.len();
        Ok(logits)
    }
}

/// Runs `tokens` at positions `pos..` on `team`, appending to the cache in `layers`.
fn run_pass<T: CacheElement>(
    weights: &LlamaWeights,
    team: &mut Team,
    inv_freq: &[f32],
    layers: &mut Layers<T>,
    tokens: &[u32],
    pos: usize,
) -> Vec<f32> {
    let c = &weights.config;
    let n = tokens.len();
    let (d, kv, ff) = (c.embedding, c.kv_dim(), c.feed_forward);
    let end = pos + n;
    layers.reserve(end, kv, CACHE_GROWTH);
    // cos and sin for each new position and dimension pair.
    let rope: Vec<(f32, f32)> =
        (pos..end).flat_map(|p| inv_freq.iter().map(move |f| (p as f32 * f).sin_cos()).map(|(s, c)| (c, s))).collect();
    let mut x = vec![0f32; n * d];
    for (row, &id) in x.chunks_exact_mut(d).zip(tokens) {
        weights.token_embd.dequantize_row(id as usize, row);
    }
    let (mut q, mut k, mut v) = (vec![0f32; n * d], vec![0f32; n * kv], vec![0f32; n * kv]);
    let (mut att, mut hidden, mut logits) = (vec![0f32; n * d], vec![0f32; n * ff], vec![0f32; c.vocab]);
    let chunks = end.div_ceil(ATTENTION_CHUNK);
    let mut partials = vec![0f32; n * c.heads * chunks * (c.head_dim() + 2)];
    let bufs = Buffers {
        x: Shared::new(&mut x),
        q: Shared::new(&mut q),
        k: Shared::new(&mut k),
        v: Shared::new(&mut v),
        att: Shared::new(&mut att),
        partials: Shared::new(&mut partials),
        hidden: Shared::new(&mut hidden),
        logits: Shared::new(&mut logits),
        keys: layers.keys.iter_mut().map(|v| Shared::new(v)).collect(),
        values: layers.values.iter_mut().map(|v| Shared::new(v)).collect(),
    };
    let pass = Pass { weights, config: c, rope: &rope, pos, tokens: n, bufs };
    team.run(|m| pass.run(m));
    drop(pass);
    logits
}

/// Buffers of one pass, shared by the team.
struct Buffers<'a, T> {
    /// Residual stream `[tokens, embedding]`.
    x: Shared<'a, f32>,
    /// Projections `[tokens, embedding]` and `[tokens, kv_dim]`.
    q: Shared<'a, f32>,
    k: Shared<'a, f32>,
    v: Shared<'a, f32>,
    /// Attention output `[tokens, embedding]`.
    att: Shared<'a, f32>,
    /// Per token, head and chunk of keys: the chunk's largest score, its sum
    /// of exponentials and its unnormalised output (`head_dim`), `[tokens, heads, chunks, head_dim + 2]`.
    partials: Shared<'a, f32>,
    /// SwiGLU activations `[tokens, feed_forward]`.
    hidden: Shared<'a, f32>,
    logits: Shared<'a, f32>,
    /// Per block, the cache `[position, kv_dim]`.
    keys: Vec<Shared<'a, T>>,
    values: Vec<Shared<'a, T>>,
}

/// Everything one pass reads, and the steps each member runs.
struct Pass<'a, T> {
    weights: &'a LlamaWeights,
    config: &'a LlamaConfig,
    /// (cos, sin) per new position and dimension pair.
    rope: &'a [(f32, f32)],
    pos: usize,
    tokens: usize,
    bufs: Buffers<'a, T>,
}

/// A member's private scratch: normalised rows, their quantized forms, and
/// the products for its rows.
#[derive(Default)]
struct Scratch {
    normed: Vec<f32>,
    acts: Quantized,
    scores: Vec<f32>,
    out: Vec<f32>,
    gate: Vec<f32>,
}

/// `w`'s `rows` times every token of `acts`, `[tokens, rows.len()]`, in `out`.
fn products<'o>(w: &QMatrix, rows: &Range<usize>, acts: &Activations, out: &'o mut Vec<f32>) -> &'o mut [f32] {
    out.resize(acts.tokens() * rows.len(), 0.0);
    w.dot_rows(rows.clone(), acts, out);
    out
}

impl<T: CacheElement> Pass<'_, T> {
    // SAFETY (for every `get`/`part` below): between two `m.sync()` calls each
    // buffer is either only read by all members or written in ranges that
    // `Member::rows`/`items` give to one member alone.
    fn run(&self, m: &Member) {
        let c = self.config;
        let b = &self.bufs;
        let (d, kv, ff) = (c.embedding, c.kv_dim(), c.feed_forward);
        let n = self.tokens;
        let mut s = Scratch::default();
        // Writes (or adds) this member's `[tokens, rows]` products into a `[tokens, width]` buffer.
        let scatter = |to: &Shared<f32>, width: usize, rows: &Range<usize>, values: &[f32], add: bool| {
            for (t, row) in values.chunks_exact(rows.len().max(1)).enumerate().take(n) {
                // SAFETY: `rows` belong to this member until the next barrier.
                let to = unsafe { to.part(t * width + rows.start..t * width + rows.end) };
                if add {
                    to.iter_mut().zip(row).for_each(|(to, v)| *to += v);
                } else {
                    to.copy_from_slice(row);
                }
            }
        };
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            // SAFETY: written before the last barrier; no member writes it until the next one.
            rms_norm_rows(unsafe { b.x.get() }, &block.attn_norm, c.rms_eps, &mut s.normed);
            s.acts.reset();
            // q, k and v rows as one range of d + 2·kv, split between members.
            let rows = m.rows(d + 2 * kv);
            let projections = [(&block.wq, &b.q, 0), (&block.wk, &b.k, d), (&block.wv, &b.v, d + kv)];
            for (i, (w, to, offset)) in projections.into_iter().enumerate() {
                let width = w.rows();
                let mine =
                    rows.start.clamp(offset, offset + width) - offset..rows.end.clamp(offset, offset + width) - offset;
                let values = products(w, &mine, s.acts.of(w, &s.normed, d), &mut s.out);
                if let Some(biases) = &block.qkv_bias {
                    for row in values.chunks_exact_mut(mine.len().max(1)) {
                        row.iter_mut().zip(&biases[i][mine.clone()]).for_each(|(v, b)| *v += b);
                    }
                }
                scatter(to, width, &mine, values, false);
            }
            m.sync();
            self.rope_and_cache(m, layer);
            m.sync();
            self.attend_chunks(m, layer, &mut s.scores);
            m.sync();
            self.merge_chunks(m);
            m.sync();
            s.acts.reset();
            let rows = m.rows(d);
            // SAFETY: written before the last barrier; no member writes it until the next one.
            let values = products(&block.wo, &rows, s.acts.of(&block.wo, unsafe { b.att.get() }, d), &mut s.out);
            scatter(&b.x, d, &rows, values, true);
            m.sync();
            // SAFETY: written before the last barrier; no member writes it until the next one.
            rms_norm_rows(unsafe { b.x.get() }, &block.ffn_norm, c.rms_eps, &mut s.normed);
            s.acts.reset();
            let rows = m.rows(ff);
            products(&block.gate, &rows, s.acts.of(&block.gate, &s.normed, d), &mut s.gate);
            let up = products(&block.up, &rows, s.acts.of(&block.up, &s.normed, d), &mut s.out);
            swiglu(&mut s.gate, up);
            scatter(&b.hidden, ff, &rows, &s.gate, false);
            m.sync();
            s.acts.reset();
            let rows = m.rows(d);
            let values =
                // SAFETY: written before the last barrier; no member writes it until the next one.
                products(&block.down, &rows, s.acts.of(&block.down, unsafe { b.hidden.get() }, ff), &mut s.out);
            scatter(&b.x, d, &rows, values, true);
            m.sync();
        }
        // Logits of the last token only.
        // SAFETY: written before the last barrier; no member writes it until the next one.
        let x = unsafe { b.x.get() };
        rms_norm_rows(&x[(n - 1) * d..], &self.weights.output_norm, c.rms_eps, &mut s.normed);
        s.acts.reset();
        let head = self.weights.head();
        let rows = m.rows(c.vocab);
        let values = products(head, &rows, s.acts.of(head, &s.normed, d), &mut s.out);
        scatter(&b.logits, c.vocab, &rows, values, false);
    }

    /// Rotates this member's query and key heads and appends keys and values to the cache.
    fn rope_and_cache(&self, m: &Member, layer: usize) {
        let c = self.config;
        let (d, kv, hd) = (c.embedding, c.kv_dim(), c.head_dim());
        let b = &self.bufs;
        let half = hd / 2;
        let over_halves = c.arch.rope_over_halves();
        let rotate = |head: &mut [f32], t: usize| {
            let angles = &self.rope[t * half..(t + 1) * half];
            let turn = |x0: &mut f32, x1: &mut f32, (cos, sin): (f32, f32)| {
                (*x0, *x1) = (*x0 * cos - *x1 * sin, *x0 * sin + *x1 * cos);
            };
            if over_halves {
                let (first, second) = head.split_at_mut(half);
                for ((x0, x1), &angle) in first.iter_mut().zip(second).zip(angles) {
                    turn(x0, x1, angle);
                }
            } else {
                for (pair, &angle) in head.chunks_exact_mut(2).zip(angles) {
                    let (x0, x1) = pair.split_at_mut(1);
                    turn(&mut x0[0], &mut x1[0], angle);
                }
            }
        };
        for h in m.items(c.heads) {
            for t in 0..self.tokens {
                // SAFETY: this member's own heads; no other member touches them until the next barrier.
                rotate(unsafe { b.q.part(t * d + h * hd..t * d + (h + 1) * hd) }, t);
            }
        }
        // SAFETY: written before the last barrier; no member writes it until the next one.
        let v = unsafe { b.v.get() };
        for g in m.items(c.kv_heads) {
            for t in 0..self.tokens {
                let head = t * kv + g * hd..t * kv + (g + 1) * hd;
                // SAFETY: this member's own key heads; no other member touches them until the next barrier.
                let k = unsafe { b.k.part(head.clone()) };
                rotate(k, t);
                let at = (self.pos + t) * kv + g * hd..(self.pos + t) * kv + (g + 1) * hd;
                // SAFETY: this member's heads at this position; the others write other heads, and reads wait for the barrier.
                T::store(unsafe { b.keys[layer].part(at.clone()) }, k);
                // SAFETY: this member's heads at this position; the others write other heads, and reads wait for the barrier.
                T::store(unsafe { b.values[layer].part(at) }, &v[head]);
            }
        }
    }

    /// Chunks of keys per token for this pass (the most any token sees).
    fn chunks(&self) -> usize {
        (self.pos + self.tokens).div_ceil(ATTENTION_CHUNK)
    }

    /// Causal attention, first step: this member's share of the (token, key
    /// group, chunk) items, each scoring its cached keys for the group's query
    /// heads (read once for the group) and summing the values weighted by the
    /// exponentials into the partials.
    fn attend_chunks(&self, m: &Member, layer: usize, scores: &mut Vec<f32>) {
        let c = self.config;
        let (d, kv, hd) = (c.embedding, c.kv_dim(), c.head_dim());
        let b = &self.bufs;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let stride = hd + 2;
        let chunks = self.chunks();
        // SAFETY: written before the last barrier; no member writes it until the next one.
        let (q, keys, values) = unsafe { (b.q.get(), b.keys[layer].get(), b.values[layer].get()) };
        let visible = |t: usize| self.pos + t + 1;
        let total: usize = (0..self.tokens).map(|t| visible(t).div_ceil(ATTENTION_CHUNK) * c.kv_heads).sum();
        let mine = m.items(total);
        let mut item = 0;
        for t in 0..self.tokens {
            let token_chunks = visible(t).div_ceil(ATTENTION_CHUNK);
            let count = token_chunks * c.kv_heads;
            if item + count <= mine.start || item >= mine.end {
                item += count;
                continue;
            }
            for g in 0..c.kv_heads {
                for chunk in 0..token_chunks {
                    if !mine.contains(&item) {
                        item += 1;
                        continue;
                    }
                    item += 1;
                    let positions = chunk * ATTENTION_CHUNK..((chunk + 1) * ATTENTION_CHUNK).min(visible(t));
                    let len = positions.len();
                    let heads = g * group..(g + 1) * group;
                    // The chunk's keys and values of this group: row j at j · kv.
                    let run = positions.start * kv + g * hd..(positions.end - 1) * kv + (g + 1) * hd;
                    // [head, position]
                    scores.clear();
                    scores.resize(group * len, 0.0);
                    for (i, h) in heads.clone().enumerate() {
                        let q = &q[t * d + h * hd..t * d + (h + 1) * hd];
                        T::scores(q, &keys[run.clone()], kv, scale, &mut scores[i * len..(i + 1) * len]);
                    }
                    for (i, h) in heads.clone().enumerate() {
                        let at = ((t * c.heads + h) * chunks + chunk) * stride;
                        // SAFETY: this (token, head, chunk) is this member's item alone until the next barrier.
                        let partial = unsafe { b.partials.part(at..at + stride) };
                        let row = &mut scores[i * len..(i + 1) * len];
                        let (max, sum) = exp_shifted(row);
                        let (stats, out) = partial.split_at_mut(2);
                        stats.copy_from_slice(&[max, sum]);
                        out.fill(0.0);
                        T::weighted_sum(out, row, &values[run.clone()], kv);
                    }
                }
            }
        }
    }

    /// Causal attention, second step: each of this member's (token, head)
    /// pairs merges its chunks in order into the attention output.
    fn merge_chunks(&self, m: &Member) {
        let c = self.config;
        let (d, hd) = (c.embedding, c.head_dim());
        let b = &self.bufs;
        let stride = hd + 2;
        let chunks = self.chunks();
        // SAFETY: written before the last barrier; no member writes it until the next one.
        let partials = unsafe { b.partials.get() };
        for item in m.items(self.tokens * c.heads) {
            let (t, h) = (item / c.heads, item % c.heads);
            let token_chunks = (self.pos + t + 1).div_ceil(ATTENTION_CHUNK);
            let first = (t * c.heads + h) * chunks * stride;
            let parts = || partials[first..first + token_chunks * stride].chunks_exact(stride);
            let max = parts().fold(f32::NEG_INFINITY, |m, p| m.max(p[0]));
            // SAFETY: this member's own (token, head); no other member touches it until the next barrier.
            let out = unsafe { b.att.part(t * d + h * hd..t * d + (h + 1) * hd) };
            out.fill(0.0);
            let mut total = 0.0;
            for p in parts() {
                let weight = exp(p[0] - max);
                total += weight * p[1];
                axpy(out, weight, &p[2..]);
            }
            let inv = 1.0 / total;
            out.iter_mut().for_each(|o| *o *= inv);
        }
    }
}

/// Rows of `x` quantized once per activation format and reused by every
/// matrix of that format until [`Quantized::reset`].
#[derive(Default)]
struct Quantized {
    slots: [(bool, Activations); 4],
}

impl Quantized {
    fn reset(&mut self) {
        self.slots.iter_mut().for_each(|s| s.0 = false);
    }

    fn of(&mut self, w: &QMatrix, x: &[f32], cols: usize) -> &Activations {
        let slot = match w.format().act_format() {
            ActFormat::F32 => 0,
            ActFormat::Q8_0 => 1,
            ActFormat::Q8_1 => 2,
            ActFormat::Q8K => 3,
        };
        let (ready, acts) = &mut self.slots[slot];
        if !*ready {
            acts.quantize(w.format(), x, cols);
            *ready = true;
        }
        acts
    }
}

/// RMSNorm of each `weight.len()`-wide row of `x` into `out`, as candle computes it.
fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    out.resize(x.len(), 0.0);
    for (row, o) in x.chunks_exact(weight.len()).zip(out.chunks_exact_mut(weight.len())) {
        let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
        let inv = 1.0 / (mean_square + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = v * inv * w;
        }
    }
}

//! Process-wide settings for CPU work, applied once at start-up by `main`
//! (before any other thread exists): the allocator's thresholds and how long
//! candle's helper threads spin.
//!
//! Allocator: every layer output and gradient of a training step is a fresh buffer of
//! 0.2–7 MB. With glibc's defaults, buffers above the mmap threshold come
//! straight from the kernel and go back on free, and the top of the heap is
//! trimmed back eagerly, so each step pays for page faults, zeroing and TLB
//! shootdowns again: about a fifth of a VAE training step (BENCHMARKS.md).
//! Keeping freed memory in the process removes that cost; the price is that
//! the resident size stays at its peak.

//!
//! Spinning: candle runs its element-wise ops on its own thread pool, whose
//! workers spin for 25 000 rounds (about half a millisecond) after each op
//! before they sleep. Our layers run on rayon's pool in between, and on two
//! cores the spinning thread takes a core from them: lowering the limit made
//! a VAE training step 11 % faster (25.3 → 22.5 ms).

/// Set to any value to keep glibc's defaults (for measuring the difference).
pub const DEFAULT_MALLOC_ENV: &str = "LATENT_STUDIO_DEFAULT_MALLOC";

/// candle's knob for its workers' spinning; left alone if the user set it.
const CANDLE_SPIN_ENV: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Applies both settings. Must run before any other thread starts.
pub fn tune() {
    if std::env::var_os(CANDLE_SPIN_ENV).is_none() {
        // SAFETY: called first thing in `main`, while the process has one
        // thread, so nothing reads the environment concurrently.
        unsafe { std::env::set_var(CANDLE_SPIN_ENV, "1000") };
    }
    if std::env::var_os(DEFAULT_MALLOC_ENV).is_none() {
        tune_allocator();
    }
}

/// Raises glibc's mmap and trim thresholds. Returns whether they were changed.
pub fn tune_allocator() -> bool {
    tune_glibc()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_glibc() -> bool {
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
    let settings = [(libc::M_MMAP_THRESHOLD, 32 << 20), (libc::M_TRIM_THRESHOLD, 1 << 30), (libc::M_TOP_PAD, 64 << 20)];
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists.
    settings.iter().all(|&(param, value)| unsafe { libc::mallopt(param, value) } == 1)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_glibc() -> bool {
    false // other allocators (macOS, Windows, musl) keep their own policies
}

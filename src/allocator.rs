//! Process-wide allocator settings, applied once at start-up.
//!
//! Every layer output and gradient of a training step is a fresh buffer of
//! 0.2–7 MB. With glibc's defaults, buffers above the mmap threshold come
//! straight from the kernel and go back on free, and the top of the heap is
//! trimmed back eagerly, so each step pays for page faults, zeroing and TLB
//! shootdowns again: about a fifth of a VAE training step (BENCHMARKS.md).
//! Keeping freed memory in the process removes that cost; the price is that
//! the resident size stays at its peak.

/// Set to any value to keep glibc's defaults (for measuring the difference).
pub const DEFAULT_MALLOC_ENV: &str = "LATENT_STUDIO_DEFAULT_MALLOC";

/// Raises glibc's mmap and trim thresholds. Returns whether they were changed.
pub fn tune() -> bool {
    if std::env::var_os(DEFAULT_MALLOC_ENV).is_some() {
        return false;
    }
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

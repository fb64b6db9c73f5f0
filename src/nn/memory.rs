//! Giving memory back to the system. `runtime.rs` raises glibc's trim
//! threshold so that a step loop reuses its freed buffers instead of
//! faulting fresh pages in; after dropping a whole network that memory is
//! returned here explicitly.

/// Hands memory freed inside the process back to the system. The raised
/// trim threshold keeps freed buffers for reuse, which a step loop wants;
/// after dropping a whole network (hundreds of MB in pieces below the mmap
/// threshold) nothing will reuse them soon, so they should leave.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the
    // kernel; it takes the allocator's own locks and touches no live block.
    unsafe {
        libc::malloc_trim(0);
    }
}

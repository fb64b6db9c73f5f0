//! Without a GPU the window is drawn by Mesa's software rasterizer
//! (lavapipe/llvmpipe) in threads of our own process named `llvmpipe-N`, on
//! the same cores as the models. At equal priority the scheduler shares the
//! cores evenly between those threads and a model's, and text streamed at
//! under half of its speed from the command line (issue 18). The renderer's
//! threads are made nicer than the models' instead: a busy model then slows
//! the frame rate a little, not the model a lot. Raising a nice value needs
//! no privilege; with a GPU there are no such threads and nothing changes.

/// The nice value given to the software renderer's threads (the models run at 0).
const RENDERER_NICE: i32 = 10;

/// Lowers the priority of the software renderer's threads, if this process
/// has any; returns how many it found.
pub fn lower_software_renderer_priority() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
        let mut lowered = 0;
        for task in tasks.flatten() {
            let is_renderer =
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|n| n.starts_with("llvmpipe"));
            let tid = task.file_name().to_str().and_then(|s| s.parse::<libc::id_t>().ok());
            if let (true, Some(tid)) = (is_renderer, tid) {
                // SAFETY: setpriority with PRIO_PROCESS and a thread id changes only that
                // thread's nice value; it reads and writes no memory of ours.
                if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, RENDERER_NICE) } == 0 {
                    lowered += 1;
                }
            }
        }
        lowered
    }
    #[cfg(not(target_os = "linux"))]
    0
}

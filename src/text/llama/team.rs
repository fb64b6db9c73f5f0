//! A team of threads that runs one forward pass together, splitting every
//! matrix product by rows and meeting at spin barriers between the steps that
//! depend on each other (llama.cpp's scheme). A pass has ~120 such steps per
//! token, each tens of microseconds long: parking and waking pool threads
//! between them would cost as much as the work.
//!
//! A barrier is only as fast as its slowest member, so when another process
//! (the window's renderer, a build) takes one of the cores, a member that is
//! descheduled holds every other one up for the rest of its time slice. The
//! team watches for that: a pass in which its members spent most of their
//! time waiting for each other is followed by passes on the calling thread
//! alone, and the full team is tried again after a while (twice as long each
//! time it is still contended). The results do not depend on the team's size:
//! every row and head is computed the same way by whichever thread runs it.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Spins before a waiting thread starts yielding its core (on a machine with
/// more runnable threads than cores, pure spinning would starve the others).
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// Waiting longer than this, a thread sleeps until the barrier opens.
const WAIT_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(500);

/// Rows of a split are multiples of this, so threads write whole cache lines.
const ROW_ALIGN: usize = 16;

/// A pass whose members spent more than this fraction of their time waiting
/// at barriers was contended. Uncontended passes wait for 5–20 % on this
/// machine (uneven splits); a descheduled member pushes it past a half.
const CONTENDED_WAIT: f64 = 0.45;

/// Passes shorter than this say too little about contention to act on.
const MIN_JUDGED_PASS_NS: u64 = 300_000;

/// Passes run alone after the first contended one, and at most after many.
const SOLO_FIRST: u32 = 8;
const SOLO_MOST: u32 = 256;

/// Runs closures on `threads` threads (the caller's included).
#[derive(Debug, Clone)]
pub struct Team {
    threads: usize,
    /// Passes still to run on the calling thread alone.
    solo_left: u32,
    /// How many solo passes the next contended pass earns.
    solo_next: u32,
    /// Passes run alone so far because of contention (for benchmarks).
    solo_passes: u64,
}

/// One thread's view of a running team.
pub struct Member<'a> {
    index: usize,
    count: usize,
    barrier: &'a SpinBarrier,
}

impl Team {
    /// A team of `threads` (at least 1).
    pub fn new(threads: usize) -> Self {
        Self { threads: threads.max(1), solo_left: 0, solo_next: SOLO_FIRST, solo_passes: 0 }
    }

    /// How many threads run each pass.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Passes run on one thread because the team was contended.
    pub fn solo_passes(&self) -> u64 {
        self.solo_passes
    }

    /// Runs `work` on every member and returns when all are done. A panic in
    /// one member releases the others from the barrier and is passed on.
    pub fn run(&mut self, work: impl Fn(&Member) + Sync) {
        let threads = if self.solo_left > 0 && self.threads > 1 {
            self.solo_left -= 1;
            self.solo_passes += 1;
            1
        } else {
            self.threads
        };
        let start = Instant::now();
        let barrier = SpinBarrier::new(threads);
        run_members(threads, &barrier, &work);
        if threads > 1 {
            self.judge(start.elapsed().as_nanos() as u64, barrier.waited_ns.load(Ordering::Relaxed), threads);
        }
    }

    /// After a full-team pass: run alone for a while if it was contended.
    fn judge(&mut self, wall_ns: u64, waited_ns: u64, threads: usize) {
        if wall_ns < MIN_JUDGED_PASS_NS {
            return;
        }
        let waiting = waited_ns as f64 / (wall_ns as f64 * threads as f64);
        if waiting > CONTENDED_WAIT {
            self.solo_left = self.solo_next;
            self.solo_next = (self.solo_next * 2).min(SOLO_MOST);
        } else {
            self.solo_next = SOLO_FIRST;
        }
    }
}

/// Runs `work` on `threads` members meeting at `barrier`.
fn run_members(threads: usize, barrier: &SpinBarrier, work: &(impl Fn(&Member) + Sync)) {
    let member = |index| {
        let m = Member { index, count: threads, barrier };
        let _guard = PoisonOnPanic(barrier);
        work(&m);
    };
    std::thread::scope(|scope| {
        for index in 1..threads {
            let member = &member;
            let spawned = std::thread::Builder::new()
                .name(format!("llama-team-{index}"))
                .spawn_scoped(scope, move || member(index));
            if spawned.is_err() {
                // Without this thread the barrier can never fill: release the others.
                barrier.poison();
            }
        }
        member(0);
    });
}

impl Member<'_> {
    /// This thread's number, 0 for the caller.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Waits until every member reaches this point.
    pub fn sync(&self) {
        self.barrier.wait(self.index);
    }

    /// This member's part of `0..n` rows: contiguous, a multiple of
    /// [`ROW_ALIGN`] long except at the end.
    pub fn rows(&self, n: usize) -> Range<usize> {
        let blocks = n.div_ceil(ROW_ALIGN);
        let part = |i: usize| (blocks * i / self.count * ROW_ALIGN).min(n);
        part(self.index)..part(self.index + 1)
    }

    /// This member's items of `0..n` small work items (such as heads).
    pub fn items(&self, n: usize) -> Range<usize> {
        (n * self.index / self.count)..(n * (self.index + 1) / self.count)
    }
}

/// A reusable barrier that spins, then yields, then sleeps, and adds up how
/// long its members waited.
struct SpinBarrier {
    count: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
    waited_ns: AtomicU64,
    /// The core each member last arrived on (`usize::MAX`: not known).
    cores: Vec<AtomicUsize>,
    /// Members asleep in [`SpinBarrier::wait`], and what wakes them.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    opened: Condvar,
}

impl SpinBarrier {
    fn new(count: usize) -> Self {
        Self {
            count,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            waited_ns: AtomicU64::new(0),
            cores: (0..count).map(|_| AtomicUsize::new(usize::MAX)).collect(),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            opened: Condvar::new(),
        }
    }

    /// Waits for every member; `index` is the caller's.
    ///
    /// A member whose core another member last arrived on sleeps at once
    /// instead of spinning: while another process (the window's software
    /// renderer) held one core, the scheduler had put both members on the
    /// other, where spinning or yielding only trades time slices with the
    /// member it waits for. Seen in the window: passes of 5 ms took 70–97 ms
    /// now and then, the two members taking turns of 0.45 ms on one core, a
    /// quarter of the generation's time.
    fn wait(&self, index: usize) {
        let generation = self.generation.load(Ordering::Acquire);
        let core = current_core();
        self.cores[index].store(core, Ordering::Relaxed);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
            self.arrived.store(0, Ordering::Relaxed);
            // SeqCst with the sleepers' count: a sleeper either is counted
            // here or sees the new generation before it sleeps.
            self.generation.fetch_add(1, Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                self.wake_sleepers();
            }
            return;
        }
        let start = Instant::now();
        let shared_core = core != usize::MAX
            && self.cores.iter().enumerate().any(|(i, c)| i != index && c.load(Ordering::Relaxed) == core);
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another thread of the forward pass failed");
            }
            if shared_core {
                self.sleep_until_changed(generation);
            } else if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else if start.elapsed() < WAIT_BEFORE_SLEEP {
                std::thread::yield_now();
            } else {
                self.sleep_until_changed(generation);
            }
        }
        self.waited_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Sleeps until the generation is no longer `generation` or the barrier is poisoned.
    fn sleep_until_changed(&self, generation: usize) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let closed =
            |_: &mut ()| self.generation.load(Ordering::SeqCst) == generation && !self.poisoned.load(Ordering::SeqCst);
        drop(self.opened.wait_while(guard, closed).unwrap_or_else(PoisonError::into_inner));
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the members asleep in [`SpinBarrier::wait`].
    fn wake_sleepers(&self) {
        // Notified under the lock, so a sleeper between its check and its wait cannot miss it.
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.opened.notify_all();
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.wake_sleepers();
    }
}

struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison();
        }
    }
}

/// The core this thread runs on (`usize::MAX` where that cannot be known).
fn current_core() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
        let core = unsafe { libc::sched_getcpu() };
        if core >= 0 {
            return core as usize;
        }
    }
    usize::MAX
}

/// A slice that every member may read and write during a pass. Members write
/// disjoint parts between two barriers and read only after the next one;
/// that discipline, not the type, keeps it free of data races.
pub struct Shared<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: access follows the disjoint-writes-between-barriers rule above.
unsafe impl<T: Send> Sync for Shared<'_, T> {}
// SAFETY: it only borrows a `&mut [T]` of `Send` elements; see above.
unsafe impl<T: Send> Send for Shared<'_, T> {}

impl<'a, T> Shared<'a, T> {
    /// Shares `slice` for the duration of a pass.
    pub fn new(slice: &'a mut [T]) -> Self {
        Self { ptr: slice.as_mut_ptr(), len: slice.len(), _borrow: PhantomData }
    }

    /// The whole slice, to read.
    ///
    /// # Safety
    /// No member writes to it until the next barrier.
    pub unsafe fn get(&self) -> &[T] {
        // SAFETY: the pointer and length come from a live `&mut [T]`; the caller rules out writers.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// `range`, to write.
    ///
    /// # Safety
    /// No other member touches `range` until the next barrier.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, range: Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.len, "{range:?} outside 0..{}", self.len);
        // SAFETY: in bounds (asserted); the caller rules out other access to the range.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cover_the_range_once_in_aligned_parts() {
        for threads in 1..5 {
            for n in [1, 15, 16, 17, 576, 961, 49152] {
                let barrier = SpinBarrier::new(threads);
                let parts: Vec<_> =
                    (0..threads).map(|index| Member { index, count: threads, barrier: &barrier }.rows(n)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[threads - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].end % ROW_ALIGN == 0 || w[0].end == n);
                }
            }
        }
    }

    #[test]
    fn members_see_each_others_writes_after_a_barrier() {
        let mut data = vec![0usize; 4 * 1000];
        let shared = Shared::new(&mut data);
        let mut sums = vec![0usize; 4];
        let sums_shared = Shared::new(&mut sums);
        Team::new(4).run(|m| {
            for round in 1..=50 {
                let rows = m.items(4000);
                // SAFETY: members write disjoint item ranges, read after the barrier.
                unsafe { shared.part(rows.clone()).iter_mut().for_each(|v| *v = round) };
                m.sync();
                // SAFETY: nobody writes until the next barrier.
                let total: usize = unsafe { shared.get() }.iter().sum();
                assert_eq!(total, 4000 * round);
                m.sync();
            }
            // SAFETY: one slot per member.
            unsafe { sums_shared.part(m.index()..m.index() + 1)[0] = m.index() + 1 };
        });
        assert_eq!(sums, vec![1, 2, 3, 4]);
    }

    #[test]
    fn members_asleep_at_a_barrier_wake_when_the_last_one_arrives() {
        // A late member makes the others spin, yield, then sleep.
        let arrived = AtomicUsize::new(0);
        let mut team = Team::new(3);
        team.run(|m| {
            for round in 1..=3 {
                if m.index() == round - 1 {
                    std::thread::sleep(WAIT_BEFORE_SLEEP * 4);
                }
                arrived.fetch_add(1, Ordering::SeqCst);
                m.sync();
                assert_eq!(arrived.load(Ordering::SeqCst), 3 * round, "round {round}");
                m.sync();
            }
        });
        let barrier = SpinBarrier::new(2);
        barrier.cores[1].store(current_core(), Ordering::Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                barrier.wait(1);
            });
            // Member 1 was last seen on this core: member 0 sleeps until it arrives.
            barrier.wait(0);
        });
        assert_eq!(barrier.sleepers.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_contended_team_runs_alone_for_a_while_then_tries_again() {
        let mut team = Team::new(2);
        team.judge(1_000_000, 1_400_000, 2); // 70 % waiting
        assert_eq!(team.solo_left, SOLO_FIRST);
        let ran_alone = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..SOLO_FIRST {
            team.run(|m| {
                assert_eq!(m.count, 1);
                ran_alone.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(ran_alone.load(Ordering::Relaxed), SOLO_FIRST as usize);
        assert_eq!(team.solo_passes(), u64::from(SOLO_FIRST));
        team.run(|m| assert_eq!(m.count, 2, "the full team again"));
        // (That real pass was judged too; the backoff is checked on a fresh team.)
        let mut team = Team::new(2);
        team.judge(1_000_000, 1_400_000, 2);
        team.solo_left = 0;
        team.judge(1_000_000, 1_400_000, 2);
        assert_eq!(team.solo_left, 2 * SOLO_FIRST, "longer when still contended");
        team.solo_left = 0;
        team.judge(1_000_000, 100_000, 2);
        assert_eq!((team.solo_left, team.solo_next), (0, SOLO_FIRST), "an easy pass resets the backoff");
        team.judge(10_000, 20_000, 2);
        assert_eq!(team.solo_left, 0, "too short to judge");
    }

    #[test]
    fn a_panicking_member_does_not_hang_the_others() {
        let result = std::panic::catch_unwind(|| {
            Team::new(3).run(|m| {
                if m.index() == 2 {
                    panic!("boom");
                }
                m.sync();
            })
        });
        assert!(result.is_err());
    }
}

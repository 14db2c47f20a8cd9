//! Persistent worker threads for [`crate::run_with`] (feature `std`).
//!
//! Why not `std::thread::scope` per op: spawning a thread allocates and costs tens of
//! microseconds, and a frame has a few hundred ops. The workers here are spawned once, wait
//! for a job (spinning briefly, then sleeping on a condition variable), claim task numbers from
//! an atomic counter, and go back to waiting. Publishing a job writes a pointer and bumps a
//! counter under a mutex, so a frame allocates nothing, whatever the thread count.
//!
//! A worker runs each job in the denormal mode of the thread that published it
//! ([`crate::denormals`]: flushed during a [`crate::run_with`]) and restores its own mode when
//! it leaves the job, so a pool shared with other code behaves like [`crate::Sequential`]
//! there too.

use std::format;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::vec::Vec;

use crate::denormals::{self, FlushDenormals};
use crate::parallel::Parallel;

/// How long an idle worker spins before it sleeps: about 0.1 ms, longer than the gap between
/// two ops of a frame and much shorter than the gap between frames of a camera.
const SPIN_ROUNDS: u32 = 1 << 14;

/// The task of the current job, with its lifetime erased. It is only dereferenced by workers
/// that joined the job, and `for_each` does not return before every such worker has left.
#[derive(Clone, Copy)]
struct Job {
    task: *const (dyn Fn(usize) + Sync + 'static),
    tasks: usize,
    /// The publishing thread's denormal flush bits, which the workers take for the job.
    mode: denormals::Mode,
}

// SAFETY: the pointee is `Sync`, and the pointer is only used while `for_each` keeps it alive.
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped for every job. Written only under the lock (so a worker that checks it under
    /// the lock before sleeping cannot miss a wake-up), read without it by spinning workers.
    generation: AtomicU64,
    /// The next task number to claim.
    next: AtomicUsize,
    /// Workers that joined the current job and have not left it.
    active: AtomicUsize,
    /// Workers that have started and are waiting for jobs.
    ready: AtomicUsize,
    /// A task panicked on some thread; the caller re-raises it after the job.
    panicked: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state stays consistent because
        // every critical section here is a few plain stores.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims and runs tasks until none is left. A panicking task is caught and recorded
    /// (the caller re-raises it once no thread can touch the job any more).
    fn drain(&self, task: &(dyn Fn(usize) + Sync), tasks: usize) {
        let claimed = || {
            loop {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                if i >= tasks {
                    return;
                }
                task(i);
            }
        };
        if catch_unwind(AssertUnwindSafe(claimed)).is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// A fixed set of threads that [`crate::run_with`] splits ops across: the calling thread plus
/// `threads - 1` workers.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Threads per core a pool may have. Past the core count, threads only add hand-over cost
/// (1,000 threads took 39 s for one frame that one thread runs in 30 ms), and an unbounded
/// count exhausts the process's threads; a small multiple still lets a caller oversubscribe.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The most threads [`ThreadPool::new`] starts on this machine.
pub fn max_threads() -> usize {
    MAX_THREADS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ThreadPool {
    /// Starts `threads - 1` workers (`threads` of 0 or 1 starts none and runs everything on
    /// the caller's thread). More than [`max_threads`] is refused (`InvalidInput`), with a
    /// message that says the limit.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let max = max_threads();
        if threads > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{threads} threads asked for, at most {max} on this machine ({} per core)",
                    MAX_THREADS_PER_CORE
                ),
            ));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            ready: AtomicUsize::new(0),
        });
        let mut pool = Self {
            shared,
            workers: Vec::new(),
        };
        for n in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("msnet-worker-{n}"))
                .spawn(move || worker(&shared))?;
            pool.workers.push(handle);
        }
        // A starting thread allocates (its runtime bookkeeping); wait until every worker is
        // past that, so that no allocation falls into the first frames.
        while pool.shared.ready.load(Ordering::Acquire) < pool.workers.len() {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    /// Threads that run tasks, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }
}

impl Parallel for ThreadPool {
    fn width(&self) -> usize {
        self.threads()
    }

    fn for_each(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || tasks <= 1 {
            (0..tasks).for_each(task);
            return;
        }
        let shared = &*self.shared;
        // SAFETY: only the lifetime is erased; see `Job`.
        let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe {
            core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), _>(task as *const _)
        };
        {
            let mut state = shared.lock();
            // No worker is inside a job here (the previous call waited for all to leave), so
            // nobody claims from `next` while it is reset.
            shared.next.store(0, Ordering::Relaxed);
            state.job = Some(Job {
                task: erased,
                tasks,
                mode: denormals::mode(),
            });
            let generation = shared.generation.load(Ordering::Relaxed) + 1;
            shared.generation.store(generation, Ordering::Release);
        }
        shared.wake.notify_all();
        // The caller works too; even if one of its tasks panics, it must not unwind before
        // the workers have left the job, since they hold a pointer to `task`.
        shared.drain(task, tasks);
        // Every task is claimed; wait until the workers that claimed some have finished. A
        // worker joins only under the lock while `job` is set, so clearing `job` under the
        // lock with no worker active means none can still reach `task`.
        let mut rounds = 0u32;
        loop {
            if shared.active.load(Ordering::Acquire) == 0 {
                let mut state = shared.lock();
                if shared.active.load(Ordering::Acquire) == 0 {
                    state.job = None;
                    break;
                }
            }
            rounds += 1;
            if rounds < SPIN_ROUNDS {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("an msnet-runtime task panicked (see the message above)");
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            // A worker only ends by shutdown (task panics are caught), so join cannot fail.
            let _ = worker.join();
        }
    }
}

fn worker(shared: &Shared) {
    shared.ready.fetch_add(1, Ordering::Release);
    let mut seen = 0u64;
    loop {
        let mut rounds = 0;
        while shared.generation.load(Ordering::Acquire) == seen && rounds < SPIN_ROUNDS {
            core::hint::spin_loop();
            rounds += 1;
        }
        let job = {
            let mut state = shared.lock();
            while shared.generation.load(Ordering::Acquire) == seen && !state.shutdown {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.shutdown {
                return;
            }
            seen = shared.generation.load(Ordering::Acquire);
            match state.job {
                Some(job) => {
                    shared.active.fetch_add(1, Ordering::Relaxed);
                    job
                }
                // The caller already finished that job alone.
                None => continue,
            }
        };
        // SAFETY: we joined the job under the lock while it was set, so the caller's
        // `for_each` is still waiting for us and `task` is alive.
        let task = unsafe { &*job.task };
        {
            let _mode = FlushDenormals::with_mode(job.mode);
            shared.drain(task, job.tasks);
        }
        shared.active.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn a_thread_count_past_the_cap_is_refused_with_the_limit() {
        let too_many = max_threads() + 1;
        let e = ThreadPool::new(too_many).err().expect("refused");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let message = std::format!("{e}");
        assert!(
            message.contains(&std::format!("at most {}", max_threads())),
            "{message}"
        );
    }

    #[test]
    fn every_task_runs_once_per_call() {
        let pool = ThreadPool::new(3).unwrap();
        assert_eq!(pool.width(), 3);
        let hits: Vec<AtomicU32> = (0..97).map(|_| AtomicU32::new(0)).collect();
        for round in 1..=200u32 {
            let tasks = (round as usize % 97) + 1;
            pool.for_each(tasks, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        let total: u32 = hits.iter().map(|h| h.load(Ordering::Relaxed)).sum();
        let want: u32 = (1..=200u32).map(|r| (r % 97) + 1).sum();
        assert_eq!(total, want);
    }

    #[test]
    fn a_panicking_task_is_reported_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.for_each(64, &|i| {
                if i % 2 == 1 {
                    panic!("task {i}");
                }
            })
        }));
        assert!(caught.is_err());
        let count = AtomicU32::new(0);
        pool.for_each(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}

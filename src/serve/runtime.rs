//! The async runtime velochat runs on, sized from `server.worker_threads`.
//!
//! One worker thread runs the single-threaded runtime: a request then never crosses threads
//! (server connection, upstream connection and timers share one thread), which on a small machine
//! costs less CPU per request and gives a shorter latency tail than two workers waking each other
//! (BENCHMARKS.md). More workers use tokio's work-stealing runtime.

use tokio::runtime::{Builder, Runtime};

/// Worker threads for `configured` (0 = automatic) when the process may use `available` CPUs:
/// automatic leaves one CPU to the SQLite and log writer threads and the kernel's network work.
pub fn worker_threads(configured: usize, available: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        available.saturating_sub(1).max(1)
    }
}

/// The CPUs this process may use (cgroup quotas and affinity included), 1 when unknown.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn build(configured: usize) -> std::io::Result<Runtime> {
    match worker_threads(configured, available_cpus()) {
        1 => Builder::new_current_thread().enable_all().build(),
        workers => Builder::new_multi_thread().worker_threads(workers).enable_all().build(),
    }
}

/// What the running runtime is, for the ready log line: its flavour and worker count.
pub fn describe() -> (&'static str, usize) {
    let handle = tokio::runtime::Handle::current();
    let flavor = match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => "current_thread",
        _ => "multi_thread",
    };
    (flavor, handle.metrics().num_workers())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_leaves_one_cpu_and_never_goes_below_one_worker() {
        assert_eq!(worker_threads(0, 1), 1);
        assert_eq!(worker_threads(0, 2), 1);
        assert_eq!(worker_threads(0, 8), 7);
        assert_eq!(worker_threads(0, 0), 1);
    }

    #[test]
    fn a_configured_count_wins_over_the_cpu_count() {
        assert_eq!(worker_threads(4, 2), 4);
        assert_eq!(worker_threads(1, 16), 1);
    }

    #[test]
    fn one_worker_builds_the_single_threaded_runtime_and_more_build_work_stealing() {
        let single = build(1).unwrap();
        assert_eq!(single.block_on(async { describe() }), ("current_thread", 1));
        let multi = build(3).unwrap();
        assert_eq!(multi.block_on(async { describe() }), ("multi_thread", 3));
    }
}

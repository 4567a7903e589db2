//! The async runtime velochat runs on, sized from `server.worker_threads`.
//!
//! The accept loop runs on the main thread (the runtime's `block_on`), connections on the workers.
//! Automatic sizing is tokio's: one worker per CPU the process may use, so a 2-vCPU container uses
//! both. (A benchmark whose load generator shares the machine pins its own count.)

use tokio::runtime::{Builder, Runtime};

/// Worker threads for `configured` (0 = automatic: every CPU) when the process may use `available`.
pub fn worker_threads(configured: usize, available: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        available.max(1)
    }
}

/// The CPUs this process may use (cgroup quotas and affinity included), 1 when unknown.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn build(configured: usize) -> std::io::Result<Runtime> {
    Builder::new_multi_thread().worker_threads(worker_threads(configured, available_cpus())).enable_all().build()
}

/// Worker threads of the running runtime, for the ready log line.
pub fn workers() -> usize {
    tokio::runtime::Handle::current().metrics().num_workers()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_uses_every_cpu_and_never_goes_below_one_worker() {
        assert_eq!(worker_threads(0, 1), 1);
        assert_eq!(worker_threads(0, 2), 2);
        assert_eq!(worker_threads(0, 8), 8);
        assert_eq!(worker_threads(0, 0), 1);
    }

    #[test]
    fn a_configured_count_wins_over_the_cpu_count() {
        assert_eq!(worker_threads(4, 2), 4);
        assert_eq!(worker_threads(1, 16), 1);
    }

    #[test]
    fn the_runtime_has_the_resolved_number_of_workers() {
        assert_eq!(build(1).unwrap().block_on(async { workers() }), 1);
        assert_eq!(build(3).unwrap().block_on(async { workers() }), 3);
        assert_eq!(build(0).unwrap().block_on(async { workers() }), worker_threads(0, available_cpus()));
    }
}

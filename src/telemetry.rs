//! Logging: `tracing` to stderr, as text or JSON lines.

use crate::config::TelemetrySettings;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the configured level.
pub fn init(s: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&s.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if s.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Makes glibc's malloc give large freed buffers back to the system. By default glibc raises its
/// mmap threshold (up to 32 MiB) each time a large block is freed, after which COPY buffers and
/// librdkafka's decompression buffers come from the per-thread heaps and stay there, fragmented:
/// the 13-topic benchmark peaked at ~480 MiB RSS against a ~240 MiB heap. A fixed 128 KiB
/// threshold (as `MALLOC_MMAP_THRESHOLD_=131072` would set) brought it to ~270 MiB at the same
/// throughput (docs/PERFORMANCE.md). Call first, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

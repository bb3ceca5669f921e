//! What the benchmark reads from `/proc`: a process's CPU time and peak RSS, the CPU time of the
//! PostgreSQL cluster and the Kafka broker of the local stack, and the machine's busy time.
//!
//! Linux only; every reader returns `None` where `/proc` does not say (the figures are then left
//! out of the report rather than guessed).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Clock ticks per second of the `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` the benchmark uses (times in clock ticks).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stat {
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    /// CPU time of waited-for children (how the postmaster inherits its exited backends' time).
    pub cutime: u64,
    pub cstime: u64,
}

/// The command name (`comm`) of a process.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

pub fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: num(4)? as u32,
        utime: num(14)?,
        stime: num(15)?,
        cutime: num(16)?,
        cstime: num(17)?,
    })
}

/// CPU seconds (user + system) a process used so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    stat(pid).map(|s| (s.utime + s.stime) as f64 / clk_tck())
}

/// A `VmXXX:` value of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident set size so far (`VmHWM`), in KiB. Gone once the process has exited.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Every process id in `/proc`.
fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
}

/// The processes of the local stack (`scripts/stack`), found through its pid files in
/// `$ESURIO_STACK_DIR` (default `./.stack`), else by name.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    /// PostgreSQL postmasters (normally one).
    pub postmasters: Vec<u32>,
    pub kafka: Option<u32>,
}

impl Stack {
    pub fn find() -> Self {
        let dir = std::env::var_os("ESURIO_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".stack"));
        let mut postmasters: Vec<u32> = pid_file(&dir.join("pg/data/postmaster.pid"))
            .into_iter()
            .collect();
        if postmasters.is_empty() {
            // Every `postgres` process whose parent is not one.
            postmasters = pids()
                .into_iter()
                .filter(|p| comm(*p).as_deref() == Some("postgres"))
                .filter(|p| stat(*p).is_some_and(|s| comm(s.ppid).as_deref() != Some("postgres")))
                .collect();
        }
        let kafka = pid_file(&dir.join("kafka/kafka.pid")).or_else(|| {
            pids().into_iter().find(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains("kafka.Kafka") || c.contains("kafka.server.KafkaRaftServer")
                    })
                    .unwrap_or(false)
            })
        });
        Self { postmasters, kafka }
    }

    /// CPU seconds of the PostgreSQL cluster: the postmaster (with its exited backends' time) plus
    /// every live backend. Differences between two readings are what the cluster used meanwhile,
    /// whoever its clients were.
    pub fn pg_cpu_secs(&self) -> Option<f64> {
        if self.postmasters.is_empty() {
            return None;
        }
        let mut ticks = 0u64;
        for pm in &self.postmasters {
            let s = stat(*pm)?;
            ticks += s.utime + s.stime + s.cutime + s.cstime;
        }
        for p in pids() {
            if let Some(s) = stat(p) {
                if self.postmasters.contains(&s.ppid) {
                    ticks += s.utime + s.stime;
                }
            }
        }
        Some(ticks as f64 / clk_tck())
    }

    pub fn kafka_cpu_secs(&self) -> Option<f64> {
        self.kafka.and_then(cpu_secs)
    }
}

/// The machine's busy and total CPU time so far, in seconds (all CPUs), from `/proc/stat`.
pub fn machine_cpu_secs() -> Option<(f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are included in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let t = clk_tck();
    Some(((total - idle) as f64 / t, total as f64 / t))
}

/// One reading of everything the CPU-share figures need. The stack's processes are looked up
/// anew each time: other users of the stack may restart PostgreSQL or Kafka, and a difference
/// across a restart means nothing (it is then not reported).
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    stack: Stack,
    pub worker: Option<f64>,
    pub pg: Option<f64>,
    pub kafka: Option<f64>,
    pub bench: Option<f64>,
    pub machine_busy: Option<f64>,
    pub machine_total: Option<f64>,
}

impl CpuSnapshot {
    pub fn take(worker: Option<u32>) -> Self {
        let stack = Stack::find();
        let m = machine_cpu_secs();
        Self {
            worker: worker.and_then(cpu_secs),
            pg: stack.pg_cpu_secs(),
            kafka: stack.kafka_cpu_secs(),
            bench: cpu_secs(std::process::id()),
            machine_busy: m.map(|m| m.0),
            machine_total: m.map(|m| m.1),
            stack,
        }
    }

    /// Whether PostgreSQL and Kafka are the same processes in both readings (not restarted).
    pub fn same_stack(&self, later: &CpuSnapshot) -> bool {
        self.stack.postmasters == later.stack.postmasters && self.stack.kafka == later.stack.kafka
    }

    /// What was used between `self` (earlier) and `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let worker = later.worker.map(|w| w - self.worker.unwrap_or(0.0));
        let pg = d(self.pg, later.pg).filter(|_| self.stack.postmasters == later.stack.postmasters);
        let kafka = d(self.kafka, later.kafka).filter(|_| self.stack.kafka == later.stack.kafka);
        let bench = d(self.bench, later.bench);
        let busy = d(self.machine_busy, later.machine_busy);
        let other = busy.map(|b| {
            (b - worker.unwrap_or(0.0)
                - pg.unwrap_or(0.0)
                - kafka.unwrap_or(0.0)
                - bench.unwrap_or(0.0))
            .max(0.0)
        });
        CpuUse {
            worker,
            pg,
            kafka,
            bench,
            other,
            machine_busy: busy,
            machine_capacity: d(self.machine_total, later.machine_total),
        }
    }
}

/// CPU seconds used over an interval, by whom.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CpuUse {
    pub worker: Option<f64>,
    pub pg: Option<f64>,
    pub kafka: Option<f64>,
    /// The benchmark process itself (polling, and producing in the latency runs).
    pub bench: Option<f64>,
    /// Busy time nobody above accounts for (other processes on the machine, kernel threads).
    pub other: Option<f64>,
    pub machine_busy: Option<f64>,
    /// All CPUs' time over the interval (wall time x CPUs).
    pub machine_capacity: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        let s = stat(me).expect("/proc/self/stat");
        assert!(s.ppid > 0);
        assert!(vm_hwm_kib(me).unwrap_or(0) > 0);
        assert!(cpu_secs(me).is_some());
        let (busy, total) = machine_cpu_secs().unwrap();
        assert!(busy <= total && total > 0.0);
    }
}

//! What the machine has: CPUs, memory, the data directory's disk, process
//! ids, and how it names itself, read from `/proc`, `/etc` and the file
//! system, as the kubelet reads them.

use std::path::Path;

/// Why the machine could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file the probe needs could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file did not say what the probe looks for in it.
    #[error("{path} does not give {what}")]
    Missing {
        /// The file.
        path: String,
        /// What it lacks.
        what: &'static str,
    },
    /// The data directory's file system could not be asked for its size.
    #[error("the file system of {path}: {source}")]
    Disk {
        /// The data directory.
        path: String,
        /// What went wrong.
        source: rustix::io::Errno,
    },
}

/// The machine at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cpus: u32,
    /// Memory, bytes.
    pub memory_total: u64,
    /// Memory still available to new work (`MemAvailable`), bytes.
    pub memory_available: u64,
    /// Size of the data directory's file system, bytes.
    pub disk_total: u64,
    /// Bytes of it left to unprivileged writers.
    pub disk_available: u64,
    /// Processes and threads that exist.
    pub pids_in_use: u64,
    /// The most process ids the kernel hands out.
    pub pid_max: u64,
    /// Kernel release (`uname -r`).
    pub kernel_version: String,
    /// The operating system's name (`PRETTY_NAME` of `/etc/os-release`).
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// This boot's id.
    pub boot_id: String,
    /// The firmware's system UUID, where readable.
    pub system_uuid: String,
}

impl Machine {
    /// Reads the machine, the disk being that of `data_dir`.
    ///
    /// # Errors
    /// `/proc/meminfo`, `/proc/loadavg` or `pid_max` unreadable or without
    /// their figures; the data directory's file system unanswering.
    pub fn probe(data_dir: &Path) -> Result<Self, ProbeError> {
        let meminfo = read("/proc/meminfo")?;
        let (memory_total, memory_available) = meminfo_figures(&meminfo)
            .ok_or(ProbeError::Missing { path: "/proc/meminfo".into(), what: "MemTotal and MemAvailable" })?;
        let loadavg = read("/proc/loadavg")?;
        let pids_in_use = loadavg_entities(&loadavg)
            .ok_or(ProbeError::Missing { path: "/proc/loadavg".into(), what: "the number of scheduling entities" })?;
        let pid_max_path = "/proc/sys/kernel/pid_max";
        let pid_max = read(pid_max_path)?
            .trim()
            .parse()
            .map_err(|_| ProbeError::Missing { path: pid_max_path.into(), what: "a number" })?;
        let disk = rustix::fs::statvfs(data_dir)
            .map_err(|source| ProbeError::Disk { path: data_dir.display().to_string(), source })?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let optional = |path: &str| read(path).map(|text| text.trim().to_owned()).unwrap_or_default();
        Ok(Self {
            cpus,
            memory_total,
            memory_available,
            disk_total: disk.f_blocks.saturating_mul(disk.f_frsize),
            disk_available: disk.f_bavail.saturating_mul(disk.f_frsize),
            pids_in_use,
            pid_max,
            kernel_version: optional("/proc/sys/kernel/osrelease"),
            os_image: os_image(&optional("/etc/os-release")),
            machine_id: optional("/etc/machine-id"),
            boot_id: optional("/proc/sys/kernel/random/boot_id"),
            system_uuid: optional("/sys/class/dmi/id/product_uuid"),
        })
    }
}

fn read(path: &str) -> Result<String, ProbeError> {
    std::fs::read_to_string(path).map_err(|source| ProbeError::Read { path: path.into(), source })
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
fn meminfo_figures(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            kib.checked_mul(1024)
        })
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

/// The scheduling entities (processes and threads) that exist: the number
/// after the slash in `/proc/loadavg`'s fourth field.
fn loadavg_entities(loadavg: &str) -> Option<u64> {
    loadavg.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok()
}

/// `PRETTY_NAME` of an os-release file, unquoted; `Linux` without one.
fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "Linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_files_are_read_for_their_figures() {
        // Goal: the figures the status reports come from the right fields.
        let meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_figures(meminfo), Some((24_576_000 * 1024, 20_000_000 * 1024)));
        assert_eq!(meminfo_figures("MemTotal: 10 kB\n"), None);
        assert_eq!(loadavg_entities("0.52 0.58 0.59 3/467 12345\n"), Some(467));
        assert_eq!(loadavg_entities("0.52 0.58"), None);
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
            "Debian GNU/Linux 13 (trixie)"
        );
        assert_eq!(os_image(""), "Linux");
    }

    #[test]
    fn this_machine_is_read() {
        // Goal: the probe works on the machine the tests run on.
        let dir = tempfile::tempdir().expect("temporary directory");
        let machine = Machine::probe(dir.path()).expect("the machine");
        assert!(machine.cpus >= 1 && machine.memory_total >= machine.memory_available && machine.memory_total > 0);
        assert!(machine.disk_total >= machine.disk_available && machine.disk_total > 0);
        assert!(machine.pid_max > 0 && machine.pids_in_use > 0);
        assert!(!machine.kernel_version.is_empty());
    }
}

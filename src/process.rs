//! Facts about the running process that reports quote: its peak memory.

/// The process's peak resident memory (Linux's `VmHWM`), in bytes; `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// "peak memory (RSS): 812 MiB", or nothing where it cannot be read.
pub fn peak_rss_line() -> Option<String> {
    peak_rss_bytes().map(|b| format!("peak memory (RSS): {} MiB", b / (1024 * 1024)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let bytes = super::peak_rss_bytes().unwrap();
            assert!(bytes > 1024 * 1024, "{bytes}");
        }
    }
}

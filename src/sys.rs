//! The operating system calls of the control plane, in one place, each with why it is sound.
//! (The query path's socket calls live with it in `dns/udp.rs`; dropping root in
//! `privileges.rs`.)

use std::path::Path;

/// The effective user id.
pub fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether the effective user may create files in the directory `dir` (`W_OK | X_OK`, judged
/// as the kernel would for this process, `AT_EACCESS`).
pub fn can_create_in(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; faccessat only reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Fix glibc's mmap and trim thresholds at their defaults (128 KiB), and use two arenas. Left
/// dynamic, freeing one large table (a reload frees the old zones' hash maps) raises both
/// thresholds to megabytes: later large blocks then come from the heap, and a thread arena keeps
/// up to twice that much freed memory at its top, where `malloc_trim` does not reach. The query
/// path does not allocate, so arenas per thread buy nothing but fragmentation. Measured with
/// 10,000 one-member pools (`bench/scale.sh`): 17–19 MiB after start and ten reloads, instead
/// of 37–41 MiB after the first reload. Call it before any other thread starts.
pub fn fixed_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Give the heap freed after parsing a config back to the system (glibc keeps it otherwise:
/// parsing 100,000 names leaves ~150 MiB of free heap behind).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lower the calling thread's priority to `nice` (on Linux, the nice value is per thread).
/// Without the right to, or where the call is filtered, the thread keeps its priority.
pub fn lower_thread_priority(nice: libc::c_int) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls without pointers, on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

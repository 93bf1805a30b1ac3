//! Flushes to disk skipped for programs that build intermediate trees and files: a seccomp
//! filter makes `fsync`, `fdatasync`, `syncfs`, `sync` and `sync_file_range` return success at
//! once (as `eatmydata` does), inherited by every process the program starts.
//!
//! What kiln stages — the image root, the raw disk before roast converts it — is thrown away
//! if the build stops, so a flush there buys nothing; it only waits for the disk. rpm's sqlite
//! database flushes after every package, ldconfig after every run (the scriptlets run it a
//! hundred times for one image), mke2fs and debugfs at their end: on a busy disk that is most
//! of a build's time. Contents are the same either way: a flush changes when data reaches the
//! disk, never what the files hold. What kiln hands over — the artifacts (written and flushed
//! by kiln itself), a live install's target device (flushed once at its end) — stays durable.

use std::process::Command;

/// `struct sock_filter` of classic BPF.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

/// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
/// BPF_JMP | BPF_JEQ | BPF_K (0x05 | 0x10 | 0x00).
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_ERRNO` with errno 0: the call returns 0 without running.
const SECCOMP_RET_SUCCESS: u32 = 0x0005_0000;
/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The flushing system calls of this architecture.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYNC_CALLS: [libc::c_long; 5] = [
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_syncfs,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
];

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// The filter: another architecture's calls (a 32-bit program) and every other call pass.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn program() -> [SockFilter; 5 + SYNC_CALLS.len()] {
    let n = SYNC_CALLS.len();
    let mut p = [stmt(BPF_RET_K, SECCOMP_RET_ALLOW); 5 + SYNC_CALLS.len()];
    p[0] = stmt(BPF_LD_W_ABS, ARCH_OFFSET);
    // Not this architecture: to the ALLOW at 3 + n.
    p[1] = SockFilter {
        code: BPF_JMP_JEQ_K,
        jt: 0,
        jf: (n + 1) as u8,
        k: AUDIT_ARCH,
    };
    p[2] = stmt(BPF_LD_W_ABS, NR_OFFSET);
    for (i, nr) in SYNC_CALLS.iter().enumerate() {
        // A flush: to the SUCCESS at 4 + n.
        p[3 + i] = SockFilter {
            code: BPF_JMP_JEQ_K,
            jt: (n - i) as u8,
            jf: 0,
            k: *nr as u32,
        };
    }
    p[3 + n] = stmt(BPF_RET_K, SECCOMP_RET_ALLOW);
    p[4 + n] = stmt(BPF_RET_K, SECCOMP_RET_SUCCESS);
    p
}

/// Installs the filter on the calling thread (and so on what it executes). Async-signal-safe:
/// for a forked child before exec. A kernel without seccomp leaves flushes as they are.
pub(crate) fn install() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let p = program();
        let prog = SockFprog {
            len: p.len() as u16,
            filter: p.as_ptr(),
        };
        // SAFETY: no_new_privs (needed without CAP_SYS_ADMIN) and a valid filter program that
        // outlives the call; the kernel copies it.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const SockFprog,
            );
        }
    }
}

/// Makes `cmd` (a host tool writing an intermediate file, e.g. mke2fs on the staged disk) skip
/// its flushes.
pub fn skip_flushes(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: `install` only makes system calls on the child itself.
    unsafe {
        cmd.pre_exec(|| {
            install();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fsync of a pipe fails (EINVAL) when it runs; under the filter it is not run and succeeds.
    /// Other calls work as before.
    #[test]
    fn flushes_succeed_without_running_and_other_calls_still_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let script = format!(
            "import os; r, w = os.pipe(); os.fsync(w); os.fdatasync(w); os.sync(); \
             fd = os.open('{}', os.O_CREAT | os.O_WRONLY); os.write(fd, b'x'); os.close(fd)",
            file.display()
        );
        let plain = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            !plain.status.success(),
            "fsync of a pipe fails when it runs"
        );
        let filtered = skip_flushes(Command::new("python3").args(["-c", &script]))
            .output()
            .unwrap();
        assert!(
            filtered.status.success(),
            "{}",
            String::from_utf8_lossy(&filtered.stderr)
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}

//! The job watchdog: a job dies with its runner, even when the runner is killed with SIGKILL.
//!
//! Between `fork` and `exec` of a job the child forks once more. The grandchild goes on to
//! exec the job; the child stays behind as the job's *supervisor*: it leads the job's process
//! group, waits for the job, mirrors its exit status (so the runner sees the job's own code or
//! signal) and, the moment its parent is no longer the runner that started it, kills the whole
//! group. This works the same on Linux and macOS (no `PR_SET_PDEATHSIG` on macOS); on Linux the
//! supervisor also asks for a parent-death signal, only to wake up at once instead of at the
//! next poll. The parent-death signal fires when the *thread* that forked exits, not the
//! process, so it is used as a wake-up only: `getppid()` decides.
//!
//! Everything here runs in a forked child of a multi-threaded process, so it is restricted to
//! async-signal-safe calls: no allocation, no locks, no `std` I/O.

use std::io;

/// How often the supervisor checks on the job and on its parent.
const POLL_NANOS: libc::c_long = 50_000_000;

/// Split the forked child into supervisor and job. Returns `Ok(())` in the job (which then
/// execs); never returns in the supervisor.
///
/// # Safety
/// Call only between `fork` and `exec` (a `pre_exec` hook), after the process group is set.
pub unsafe fn split(runner_pid: libc::pid_t, exit_file: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: fork is async-signal-safe; the caller is a pre_exec hook.
    let job = unsafe { libc::fork() };
    if job < 0 {
        return Err(io::Error::last_os_error());
    }
    if job == 0 {
        return Ok(());
    }
    // SAFETY: as above; supervise only makes async-signal-safe calls.
    unsafe { supervise(job, runner_pid, exit_file) }
}

extern "C" fn wake(_: libc::c_int) {}

unsafe fn supervise(job: libc::pid_t, runner_pid: libc::pid_t, exit_file: &std::ffi::CStr) -> ! {
    // SAFETY: all calls below are async-signal-safe system calls on plain values.
    unsafe {
        // std's exec-error pipe (and anything else inherited) must not be held open by a
        // process that never execs, or the runner's spawn would wait for the whole job.
        close_from(3);
        // The stop ladder signals the whole group; the job answers for itself, the supervisor
        // stays to report how it ended. A handler (not SIG_IGN) so nothing leaks into execs.
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = wake as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
        ] {
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        #[cfg(target_os = "linux")]
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGUSR1 as libc::c_ulong,
            0,
            0,
            0,
        );
        loop {
            let mut status: libc::c_int = 0;
            let r = libc::waitpid(job, &mut status, libc::WNOHANG);
            if r == job {
                // The runner may die before it records this end (or may be dead already):
                // leave it where a restarted runner finds it. Reaped here, before this loop
                // ever killed the group, the end is the job's own (or the runner's stop
                // ladder's, which the runner marks in `job.stopping` first).
                record_status(exit_file, status);
                mirror(status);
            }
            if r < 0 && *errno() != libc::EINTR {
                // The job is gone without a status we can read: end the group.
                libc::killpg(0, libc::SIGKILL);
                libc::_exit(127);
            }
            if libc::getppid() != runner_pid {
                // The runner is gone: nobody is holding a lease for this work any more.
                libc::killpg(0, libc::SIGKILL);
                libc::_exit(137);
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: POLL_NANOS,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
}

/// Write `status` in decimal to `path` (create or truncate); failures are ignored.
unsafe fn record_status(path: &std::ffi::CStr, status: libc::c_int) {
    let mut buf = [0u8; 16];
    let mut at = buf.len() - 1;
    buf[at] = b'\n';
    let negative = status < 0;
    let mut n = (status as i64).unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    // SAFETY: open/write/close on a NUL-terminated path and a stack buffer.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        );
        if fd >= 0 {
            libc::write(fd, buf[at..].as_ptr().cast(), buf.len() - at);
            libc::close(fd);
        }
    }
}

/// End the supervisor the way the job ended.
unsafe fn mirror(status: libc::c_int) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

#[cfg(target_os = "linux")]
unsafe fn errno() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot.
    unsafe { libc::__errno_location() }
}

#[cfg(not(target_os = "linux"))]
unsafe fn errno() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno slot.
    unsafe { libc::__error() }
}

unsafe fn close_from(first: libc::c_int) {
    // SAFETY: closing descriptors only.
    unsafe {
        #[cfg(target_os = "linux")]
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) == 0
        {
            return;
        }
        let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(256, 65_536) as libc::c_int;
        for fd in first..max {
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use crate::exec::{self, JobSpec, Tick};

    const DIR_VAR: &str = "MACBRIDGE_WATCHDOG_TEST_DIR";

    /// Not a test on its own: the stand-in runner that `a_sigkilled_runner_...` starts and
    /// kills. It runs a job with two background children and waits for it.
    #[test]
    #[ignore = "helper process for a_sigkilled_runner_takes_its_whole_job_group_with_it"]
    fn helper_runner() {
        let Some(dir) = std::env::var_os(DIR_VAR) else {
            return;
        };
        let dir = Path::new(&dir);
        let script =
            "sleep 120 & a=$!; sleep 120 & b=$!; echo $$ $a $b > pids.tmp; mv pids.tmp pids; wait";
        let spec = JobSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            timeout: Duration::from_secs(300),
            grace: Duration::from_millis(200),
            stdout_path: dir.join("stdout.log"),
            stderr_path: dir.join("stderr.log"),
            tick_every: Duration::from_millis(50),
            max_output_bytes: 1 << 20,
            pid_file: dir.join("job.pid"),
        };
        let _ = exec::run(&spec, || Tick::Continue);
    }

    /// Alive and not a zombie waiting for init to reap it.
    fn running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            // No /proc (macOS): signal 0 only checks existence.
            // SAFETY: signal 0 sends nothing.
            Err(_) => !Path::new("/proc").exists() && unsafe { libc::kill(pid, 0) == 0 },
        }
    }

    fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while !done() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn a_sigkilled_runner_takes_its_whole_job_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let mut runner = Command::new(exe)
            .args(["--exact", "watchdog::tests::helper_runner", "--ignored"])
            .env(DIR_VAR, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pids_file = dir.path().join("pids");
        assert!(
            wait_for(Duration::from_secs(60), || pids_file.exists()),
            "the job never started"
        );
        let pids: Vec<i32> = std::fs::read_to_string(&pids_file)
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 3);
        let pgid: i32 = std::fs::read_to_string(dir.path().join("job.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(pids.iter().all(|p| running(*p)));
        runner.kill().unwrap();
        runner.wait().unwrap();
        let gone = wait_for(Duration::from_secs(5), || {
            pids.iter().chain([&pgid]).all(|p| !running(*p))
        });
        if !gone {
            // SAFETY: clean up what the failed check left, then fail.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        assert!(
            gone,
            "job processes {pids:?} (group {pgid}) outlived their runner"
        );
    }
}

//! Linux confinement: a landlock ruleset built in the runner (where allocating and opening
//! paths is safe), then entered between fork and exec with two system calls. When the network
//! is denied the job also gets a private network namespace (inside a user namespace mapping
//! the runner's own ids), which blocks UDP and abstract sockets too; landlock's TCP rules
//! (ABI v4) stand alone where user namespaces are disabled.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};

use super::{DEVICE_WRITE, Rules, SandboxError};

/// The newest ABI whose rights this code asks for; older kernels get what they support.
const TARGET: ABI = ABI::V6;

pub struct Prepared {
    ruleset: Arc<OwnedFd>,
    abi: i64,
    /// Unshare the network (and a user namespace to be allowed to).
    netns: bool,
    /// Without landlock TCP rules the namespace is the only network barrier: required.
    netns_required: bool,
    uid_map: Arc<Vec<u8>>,
    gid_map: Arc<Vec<u8>>,
}

/// The landlock ABI version of the running kernel, 0 when absent or disabled.
pub fn abi_version() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attr only queries the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

impl Prepared {
    pub fn new(rules: &Rules) -> Result<Self, SandboxError> {
        let abi = abi_version();
        if abi < 1 {
            return Err(SandboxError::Unavailable(
                "landlock is not enabled in this kernel".into(),
            ));
        }
        let unavailable = |e: landlock::RulesetError| SandboxError::Unavailable(e.to_string());
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(TARGET))
            .map_err(unavailable)?
            .scope(Scope::from_all(TARGET))
            .map_err(unavailable)?;
        if !rules.network {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(TARGET))
                .map_err(unavailable)?;
        }
        let mut created = ruleset.create().map_err(unavailable)?;
        let read = AccessFs::from_read(TARGET);
        let file_rw = AccessFs::from_file(TARGET);
        let grants = rules
            .read
            .iter()
            .map(|p| (p.as_path(), read))
            .chain(DEVICE_WRITE.iter().map(|p| (Path::new(*p), file_rw)))
            .chain(
                rules
                    .write
                    .iter()
                    .map(|p| (p.as_path(), AccessFs::from_all(TARGET))),
            );
        for (path, access) in grants {
            let Ok(meta) = std::fs::metadata(path) else {
                continue; // Nothing to grant through a path that does not exist.
            };
            // Directory rights on a file are invalid: a file gets the file subset.
            let access = if meta.is_dir() {
                access
            } else {
                access & file_rw
            };
            let fd = PathFd::new(path).map_err(|e| {
                SandboxError::Path(path.to_path_buf(), std::io::Error::other(e.to_string()))
            })?;
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(unavailable)?;
        }
        let fd: Option<OwnedFd> = created.into();
        let fd =
            fd.ok_or_else(|| SandboxError::Unavailable("landlock ruleset not created".into()))?;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Self {
            ruleset: Arc::new(fd),
            abi,
            netns: !rules.network,
            netns_required: !rules.network && abi < 4,
            uid_map: Arc::new(format!("{uid} {uid} 1\n").into_bytes()),
            gid_map: Arc::new(format!("{gid} {gid} 1\n").into_bytes()),
        })
    }

    pub fn describe(&self) -> String {
        let mut parts = vec![format!("landlock ABI v{} (filesystem", self.abi)];
        if self.netns && self.abi >= 4 {
            parts.push("tcp".into());
        }
        if self.abi >= 6 {
            parts.push("signals, abstract sockets scoped".into());
        }
        let mut text = parts.join(", ") + ")";
        if self.netns {
            text.push_str("; private network namespace when user namespaces allow");
        }
        text
    }

    /// The between-fork-and-exec step: only system calls on prepared data.
    pub fn hook(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let ruleset = Arc::clone(&self.ruleset);
        let uid_map = Arc::clone(&self.uid_map);
        let gid_map = Arc::clone(&self.gid_map);
        let (netns, netns_required) = (self.netns, self.netns_required);
        move || {
            // SAFETY: raw system calls on prepared buffers and a live descriptor; no allocation.
            unsafe {
                if netns {
                    if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                        // Map the runner's own ids so files keep their owners inside.
                        write_proc(c"/proc/self/setgroups", b"deny");
                        write_proc(c"/proc/self/uid_map", &uid_map);
                        write_proc(c"/proc/self/gid_map", &gid_map);
                    } else if netns_required {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }
}

/// Write `data` to a /proc file; failures leave ids unmapped, which confines no less.
unsafe fn write_proc(path: &std::ffi::CStr, data: &[u8]) {
    // SAFETY: open/write/close on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, data.as_ptr().cast(), data.len());
            libc::close(fd);
        }
    }
}

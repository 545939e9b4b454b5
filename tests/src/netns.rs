//! Network namespaces made by a test: one for the bus (served by `git daemon`) and one per
//! runner, each joined to the bus namespace by its own veth pair, so one runner's link can be
//! cut (both ends down) and restored while the others keep theirs. Needs root with
//! CAP_NET_ADMIN and `ip` (iproute2); [`unavailable`] says why not when they are missing.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `None` when namespaces and veth pairs can be made here, else why not.
pub fn unavailable() -> Option<String> {
    let probe = format!("mbprobe{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(e);
    }
    let veth = ip(&[
        "-n", &probe, "link", "add", "mbpa", "type", "veth", "peer", "name", "mbpb",
    ]);
    let _ = ip(&["netns", "del", &probe]);
    veth.err()
}

/// The bus namespace and one namespace per runner; all deleted when dropped.
pub struct Net {
    pub bus_ns: String,
    tag: String,
    runners: Vec<String>,
}

impl Net {
    /// A bus namespace with loopback up.
    pub fn new() -> Result<Net, String> {
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let bus_ns = format!("mbbus{tag}");
        ip(&["netns", "add", &bus_ns])?;
        let net = Net {
            bus_ns,
            tag,
            runners: Vec::new(),
        };
        ip(&["-n", &net.bus_ns, "link", "set", "lo", "up"])?;
        Ok(net)
    }

    /// Add runner namespace number `index` (0..250), linked to the bus namespace at
    /// 10.77.<index>.0/30. Returns (namespace name, the bus's address as this runner sees it).
    pub fn add_runner(&mut self, index: u8) -> Result<(String, String), String> {
        let ns = format!("mbr{}x{index}", self.tag);
        ip(&["netns", "add", &ns])?;
        self.runners.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let (inner, outer) = self.veth(index);
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            &inner,
            "type",
            "veth",
            "peer",
            "name",
            &outer,
            "netns",
            &self.bus_ns,
        ])?;
        let bus_addr = format!("10.77.{index}.1");
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.77.{index}.2/30"),
            "dev",
            &inner,
        ])?;
        ip(&[
            "-n",
            &self.bus_ns,
            "addr",
            "add",
            &format!("{bus_addr}/30"),
            "dev",
            &outer,
        ])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &self.bus_ns, "link", "set", &outer, "up"])?;
        Ok((ns, bus_addr))
    }

    fn veth(&self, index: u8) -> (String, String) {
        // Interface names are at most 15 bytes.
        (format!("mbi{index}"), format!("mbo{}x{index}", &self.tag))
    }

    /// Cut (`up == false`) or restore runner `index`'s link: both ends of its veth pair.
    pub fn link(&self, index: u8, up: bool) -> Result<(), String> {
        let ns = &self.runners[usize::from(index)];
        let (inner, outer) = self.veth(index);
        let state = if up { "up" } else { "down" };
        ip(&["-n", ns, "link", "set", &inner, state])?;
        ip(&["-n", &self.bus_ns, "link", "set", &outer, state])
    }

    /// The command prefix that runs a program in runner namespace `index`.
    pub fn wrap(&self, index: u8) -> Vec<String> {
        ["ip", "netns", "exec", &self.runners[usize::from(index)]]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The command prefix that runs a program in the bus namespace.
    pub fn wrap_bus(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.bus_ns]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.runners.iter().chain(std::iter::once(&self.bus_ns)) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

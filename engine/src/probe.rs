//! `kakeya env-probe`: what this machine offers the engine, verified by running a small
//! computation on every device that is available rather than trusting compile flags.

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use crate::device::{CUDA_COMPILED, METAL_COMPILED};

/// The probe's findings, as the body of an `env_probe` report.
pub fn probe() -> (Value, String) {
    let mut devices = vec![device_entry("cpu", true, Ok(Device::Cpu))];
    devices.push(device_entry(
        "metal",
        METAL_COMPILED,
        if METAL_COMPILED {
            Device::new_metal(0)
        } else {
            Err(candle_core::Error::Msg("not compiled".into()))
        },
    ));
    devices.push(device_entry(
        "cuda",
        CUDA_COMPILED,
        if CUDA_COMPILED {
            Device::new_cuda(0)
        } else {
            Err(candle_core::Error::Msg("not compiled".into()))
        },
    ));
    // Report the best device that actually computed correctly.
    let best = ["metal", "cuda", "cpu"]
        .into_iter()
        .find(|name| {
            devices
                .iter()
                .any(|d| d["name"] == *name && d["available"] == true && d["check_passed"] == true)
        })
        .unwrap_or("cpu");
    let device_label = if best == "cpu" {
        "cpu".to_string()
    } else {
        format!("{best}:0")
    };
    let body = json!({
        "devices": devices,
        "compiled_features": {"metal": METAL_COMPILED, "cuda": CUDA_COMPILED},
        "cpu": cpu_info(),
        "os": os_info(),
        "memory_bytes": memory_bytes(),
        "candle": {"version": "0.11", "with_avx": candle_core::utils::with_avx(),
                   "with_neon": candle_core::utils::with_neon(),
                   "with_accelerate": candle_core::utils::has_accelerate(),
                   "with_mkl": candle_core::utils::has_mkl()},
    });
    (body, device_label)
}

fn device_entry(name: &str, compiled: bool, opened: candle_core::Result<Device>) -> Value {
    match opened {
        Ok(device) => {
            let check = compute_check(&device);
            json!({
                "name": name,
                "compiled": compiled,
                "available": true,
                "check_passed": check.is_ok(),
                "check": match &check { Ok(msg) => msg.clone(), Err(e) => e.to_string() },
            })
        }
        Err(e) => json!({
            "name": name,
            "compiled": compiled,
            "available": false,
            "check_passed": false,
            "check": e.to_string(),
        }),
    }
}

/// Multiply two small matrices on the device and compare with the exact answer.
fn compute_check(device: &Device) -> candle_core::Result<String> {
    let a = Tensor::arange(0f32, 12f32, device)?.reshape((3, 4))?;
    let b = Tensor::arange(0f32, 8f32, device)?.reshape((4, 2))?;
    let got: Vec<Vec<f32>> = a.matmul(&b)?.to_vec2()?;
    let want = [[28f32, 34.], [76., 98.], [124., 162.]];
    for (row, want_row) in got.iter().zip(want.iter()) {
        for (g, w) in row.iter().zip(want_row.iter()) {
            if (g - w).abs() > 1e-4 {
                return Err(candle_core::Error::Msg(format!(
                    "3x4·4x2 matmul gave {got:?}, expected {want:?}"
                )));
            }
        }
    }
    Ok("3x4·4x2 f32 matmul matched the exact result".to_string())
}

fn cpu_info() -> Value {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    json!({
        "model": cpu_model(),
        "threads": threads,
        "features": cpu_features(),
    })
}

fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_x86_feature_detected!($f) { found.push($f); })*};
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vnni",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_aarch64_feature_detected!($f) { found.push($f); })*};
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "bf16", "sve");
    }
    found
}

fn cpu_model() -> String {
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(line) = text.lines().find(|l| l.starts_with("model name"))
        && let Some((_, name)) = line.split_once(':')
    {
        return name.trim().to_string();
    }
    sysctl("machdep.cpu.brand_string").unwrap_or_else(|| "unknown".to_string())
}

fn memory_bytes() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let kib = text
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok());
        return kib.map(|k| k * 1024);
    }
    sysctl("hw.memsize").and_then(|s| s.parse().ok())
}

fn os_info() -> Value {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| sysctl("kern.osrelease"));
    json!({
        "family": std::env::consts::FAMILY,
        "name": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "kernel_release": release,
    })
}

/// Read a value with the `sysctl` tool (macOS); `None` where it does not exist.
fn sysctl(name: &str) -> Option<String> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

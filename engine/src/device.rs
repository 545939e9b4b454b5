//! Which compute devices this build can use, and picking one at run time.

use candle_core::Device;

/// Whether the `metal` feature was compiled in.
pub const METAL_COMPILED: bool = cfg!(feature = "metal");
/// Whether the `cuda` feature was compiled in.
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// Errors from device selection.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected cpu, metal, cuda or auto)")]
    Unknown(String),
    #[error("device `{0}` was not compiled into this build (rebuild with --features {0})")]
    NotCompiled(String),
    #[error("device `{name}` could not be opened: {source}")]
    Open {
        name: String,
        source: candle_core::Error,
    },
}

/// Open the named device. `auto` prefers Metal, then CUDA, then the CPU.
pub fn open(name: &str) -> Result<(Device, String), DeviceError> {
    match name {
        "cpu" => Ok((Device::Cpu, "cpu".to_string())),
        "metal" => open_metal(),
        "cuda" => open_cuda(),
        "auto" => open_metal()
            .or_else(|_| open_cuda())
            .or_else(|_| Ok((Device::Cpu, "cpu".to_string()))),
        other => Err(DeviceError::Unknown(other.to_string())),
    }
}

fn open_metal() -> Result<(Device, String), DeviceError> {
    if !METAL_COMPILED {
        return Err(DeviceError::NotCompiled("metal".into()));
    }
    Device::new_metal(0)
        .map(|d| (d, "metal:0".to_string()))
        .map_err(|source| DeviceError::Open {
            name: "metal".into(),
            source,
        })
}

fn open_cuda() -> Result<(Device, String), DeviceError> {
    if !CUDA_COMPILED {
        return Err(DeviceError::NotCompiled("cuda".into()));
    }
    Device::new_cuda(0)
        .map(|d| (d, "cuda:0".to_string()))
        .map_err(|source| DeviceError::Open {
            name: "cuda".into(),
            source,
        })
}

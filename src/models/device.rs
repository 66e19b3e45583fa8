//! The device a model runs on, from its name: `cpu`, `cuda` or `cuda:N`.

use candle_core::Device;

/// A parsed device name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    Cpu,
    /// GPU ordinal.
    Cuda(usize),
}

impl DeviceName {
    /// Parses `cpu`, `cuda` (GPU 0) or `cuda:N`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => {
                    n.parse().map(Self::Cuda).map_err(|_| format!("`{other}`: the GPU number must be an integer"))
                }
                None => Err(format!("`{other}` is not a device: use cpu, cuda or cuda:N")),
            },
        }
    }
}

/// Whether this build can run models on CUDA GPUs.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// Opens the device `name`; a CUDA name in a CPU-only build, or a GPU that cannot be opened,
/// is an error that says which.
pub fn open(name: &str) -> Result<Device, String> {
    match DeviceName::parse(name)? {
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda(n) if !CUDA_BUILD => Err(format!(
            "cuda:{n} asked for, but this omnid was built without the `cuda` feature \
             (cargo build --release --no-default-features --features cuda)"
        )),
        DeviceName::Cuda(n) => Device::new_cuda(n).map_err(|e| format!("cannot open GPU cuda:{n}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_a_cpu_build_refuses_cuda_clearly() {
        assert_eq!(DeviceName::parse("cpu"), Ok(DeviceName::Cpu));
        assert_eq!(DeviceName::parse("cuda"), Ok(DeviceName::Cuda(0)));
        assert_eq!(DeviceName::parse("cuda:3"), Ok(DeviceName::Cuda(3)));
        assert!(DeviceName::parse("cuda:x").unwrap_err().contains("integer"));
        assert!(DeviceName::parse("tpu").unwrap_err().contains("cpu, cuda or cuda:N"));
        assert!(open("cpu").unwrap().is_cpu());
        if !CUDA_BUILD {
            assert!(open("cuda:1").unwrap_err().contains("without the `cuda` feature"));
        }
    }
}

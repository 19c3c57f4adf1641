//! Where and in what precision the model computes, from the shared `--device` / `--dtype` flags.

use candle_core::{DType, Device};
use saha_common::flags::{Dtype, ModelArgs};

use crate::error::{ModelError, Result};

/// `cpu` or `cuda:N`.
pub fn device(text: &str) -> Result<Device> {
    if text == "cpu" {
        return Ok(Device::Cpu);
    }
    let Some(ordinal) = text.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) else {
        return Err(ModelError::Flag(format!("--device {text}: expected cpu or cuda:N")));
    };
    Device::new_cuda(ordinal).map_err(|e| {
        ModelError::Flag(format!(
            "--device {text} (this binary needs the `cuda` feature and a GPU): {e}"
        ))
    })
}

/// The dtype `--dtype` asks for; auto is f32 on the CPU and bf16 elsewhere.
pub fn dtype(flag: Dtype, device: &Device) -> DType {
    match (flag, device) {
        (Dtype::Auto, Device::Cpu) | (Dtype::F32, _) => DType::F32,
        (Dtype::Auto, _) | (Dtype::Bf16, _) => DType::BF16,
        (Dtype::F16, _) => DType::F16,
    }
}

/// Device and dtype of a stage's `ModelArgs`.
pub fn placement(args: &ModelArgs) -> Result<(Device, DType)> {
    let device = device(&args.device)?;
    let dtype = dtype(args.dtype, &device);
    Ok((device, dtype))
}

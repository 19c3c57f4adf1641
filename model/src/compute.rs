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
        // candle appends a backtrace to some errors; the first line is the reason.
        let reason = e.to_string();
        let reason = reason.lines().next().unwrap_or_default().to_string();
        ModelError::Flag(format!(
            "--device {text} needs a CUDA build of this program (make cuda) and a GPU: {reason}"
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

//! Qwen3-VL (dense): its config, its vision tower with DeepStack, and its checkpoint tensors. The text
//! decoder is [`crate::text`] with Qwen3's settings; inputs, positions and pooling are Qwen2-VL's.

pub mod config;
pub mod tensors;
pub mod vision;

pub use vision::VisionTower;

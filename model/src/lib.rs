//! Qwen2-VL and Qwen3-VL as embedding models on candle.
//!
//! Reads a Hugging Face snapshot (config, safetensors, tokenizer, preprocessor config), turns
//! prompts and images into model inputs exactly as transformers' processor does, and returns the
//! L2-normalised final hidden state of each input's last real token.

pub mod adapter;
pub mod batch;
pub mod compute;
pub mod config;
pub mod embedder;
pub mod error;
pub mod fused;
pub mod image;
pub mod image_memo;
pub mod inputs;
pub mod layers;
pub mod model;
pub mod peft;
pub mod positions;
pub mod qwen3_vl;
pub mod snapshot;
pub mod startup;
pub mod tensors;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use batch::{EncodedInput, Padding};
pub use config::ModelConfig;
pub use embedder::Embedder;
pub use error::{ModelError, Result};
pub use inputs::{BadImage, EncodeError, InputRules, ItemEncoder, Tokens};
pub use model::Qwen2Vl;
pub use snapshot::Snapshot;
pub use weights::Weights;

//! Everything needed to go from (prompt, images) to an embedding: snapshot, tokenizer, processor, model.

use std::path::Path;

use candle_core::{DType, Device, Var};

use crate::batch::{EncodedInput, Padding};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::image::{ImageProcessor, PilImage};
use crate::inputs::{InputRules, ItemEncoder};
use crate::model::Qwen2Vl;
use crate::snapshot::Snapshot;
use crate::tokenizer::PromptTokenizer;
use crate::weights::Weights;

pub struct Embedder {
    pub snapshot: Snapshot,
    pub config: ModelConfig,
    pub tokenizer: PromptTokenizer,
    pub processor: ImageProcessor,
    pub model: Qwen2Vl,
    pub padding: Padding,
}

impl Embedder {
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self::load_with(dir, dtype, device, false)?.0)
    }

    /// Loads with every weight a trainable variable (full fine-tuning); returns them by original name.
    pub fn load_trainable(dir: &Path, dtype: DType, device: &Device) -> Result<(Self, Vec<(String, Var)>)> {
        Self::load_with(dir, dtype, device, true)
    }

    fn load_with(dir: &Path, dtype: DType, device: &Device, trainable: bool) -> Result<(Self, Vec<(String, Var)>)> {
        let snapshot = Snapshot::open(dir)?;
        let config_text =
            std::fs::read_to_string(&snapshot.config).map_err(|e| ModelError::file(&snapshot.config, e))?;
        let config = ModelConfig::from_json(&config_text)
            .map_err(|e| ModelError::file(&snapshot.config, e.to_string().trim_start_matches("config.json: ")))?;
        let tokenizer = PromptTokenizer::load(&snapshot.tokenizer, &config.tokens)?;
        let processor = ImageProcessor::from_file(&snapshot.preprocessor)
            .map_err(|e| ModelError::file(&snapshot.preprocessor, e))?;
        let processor_config = processor.config();
        if processor_config.patch_size != config.vision.patch_size
            || processor_config.merge_size != config.vision.spatial_merge_size
            || processor_config.temporal_patch_size != config.vision.temporal_patch_size
        {
            return Err(ModelError::file(
                &snapshot.preprocessor,
                "patch_size / merge_size / temporal_patch_size differ from config.json's vision_config",
            ));
        }
        let mut weights = Weights::open(&snapshot, dtype, device)?;
        if trainable {
            weights.make_trainable();
        }
        let model = Qwen2Vl::load(&weights, &config)?;
        let unused = weights.unused();
        if !unused.is_empty() {
            const SHOWN: usize = 6;
            let more = unused.len().saturating_sub(SHOWN);
            return Err(ModelError::file(
                &snapshot.config,
                format!(
                    "the weights hold {} tensors this config does not use ({}{}); the config has {} language-model \
                     and {} vision layers: does it belong to these weights?",
                    unused.len(),
                    unused[..unused.len().min(SHOWN)].join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    config.text.num_hidden_layers,
                    config.vision.depth
                ),
            ));
        }
        let vars = weights.trainable_vars();
        Ok((
            Embedder {
                snapshot,
                config,
                tokenizer,
                processor,
                model,
                padding: Padding::Right,
            },
            vars,
        ))
    }

    /// Token ids with every `<|image_pad|>` expanded for its image, plus the images' pixel patches.
    pub fn encode(&self, prompt: &str, images: &[PilImage]) -> Result<EncodedInput> {
        let patches = images
            .iter()
            .map(|image| self.processor.preprocess_pil(image))
            .collect::<Result<Vec<_>, _>>()?;
        let grids: Vec<[usize; 3]> = patches.iter().map(|p| p.grid_thw).collect();
        let ids = self.prompt_ids(prompt, &grids)?;
        Ok(EncodedInput { ids, images: patches })
    }

    /// Token ids of `prompt` with the i-th `<|image_pad|>` expanded to one token per merged patch of
    /// an image whose patch grid is `grids[i]`.
    pub fn prompt_ids(&self, prompt: &str, grids: &[[usize; 3]]) -> Result<Vec<u32>> {
        let merge = self.config.vision.merge_unit();
        let counts: Vec<usize> = grids.iter().map(|g| g.iter().product::<usize>() / merge).collect();
        self.tokenizer.expand_images(&self.tokenizer.encode(prompt)?, &counts)
    }

    /// Items to model inputs under `rules`: see [`ItemEncoder`].
    pub fn item_encoder(&self, rules: InputRules) -> ItemEncoder<'_> {
        ItemEncoder::new(self, rules)
    }

    /// L2-normalised embeddings, one row of `hidden` values per input.
    pub fn embed(&self, inputs: &[EncodedInput]) -> Result<Vec<Vec<f32>>> {
        let embeddings = self.model.embed(inputs, self.padding, self.tokenizer.pad_token())?;
        Ok(embeddings.to_vec2::<f32>()?)
    }
}

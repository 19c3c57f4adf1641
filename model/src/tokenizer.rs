//! The snapshot's `tokenizer.json`, checked against the config's special token ids.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::config::SpecialTokens;
use crate::error::{ModelError, Result};

pub const IMAGE_PAD: &str = "<|image_pad|>";
pub const VISION_START: &str = "<|vision_start|>";
pub const VISION_END: &str = "<|vision_end|>";
pub const PAD: &str = "<|endoftext|>";

pub struct PromptTokenizer {
    inner: Tokenizer,
    image_token: u32,
    pad_token: u32,
    im_start: Option<u32>,
    im_end: Option<u32>,
    /// Ids of added (control) tokens, sorted.
    special: Vec<u32>,
}

impl PromptTokenizer {
    pub fn load(path: &Path, tokens: &SpecialTokens) -> Result<Self> {
        let inner =
            Tokenizer::from_file(path).map_err(|e| ModelError::file(path, format!("cannot load tokenizer: {e}")))?;
        for (text, id) in [
            (IMAGE_PAD, tokens.image),
            (VISION_START, tokens.vision_start),
            (VISION_END, tokens.vision_end),
        ] {
            match inner.token_to_id(text) {
                Some(found) if found == id => {}
                Some(found) => {
                    return Err(ModelError::Tokenizer(format!(
                        "{}: `{text}` has id {found} but config.json says {id}; tokenizer and model do not match",
                        path.display()
                    )))
                }
                None => {
                    return Err(ModelError::Tokenizer(format!(
                        "{}: no `{text}` token (config.json expects id {id}); is this a Qwen2-VL tokenizer?",
                        path.display()
                    )))
                }
            }
        }
        let pad_token = inner
            .token_to_id(PAD)
            .ok_or_else(|| ModelError::Tokenizer(format!("{}: no `{PAD}` padding token", path.display())))?;
        let mut special: Vec<u32> = inner.get_added_tokens_decoder().keys().copied().collect();
        special.sort_unstable();
        Ok(PromptTokenizer {
            im_start: inner.token_to_id("<|im_start|>"),
            im_end: inner.token_to_id("<|im_end|>"),
            inner,
            image_token: tokens.image,
            pad_token,
            special,
        })
    }

    pub fn pad_token(&self) -> u32 {
        self.pad_token
    }

    pub fn image_token(&self) -> u32 {
        self.image_token
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.binary_search(&id).is_ok()
    }

    /// Shortens an expanded prompt to `max_len` tokens by dropping tokens from the end of the user turn's
    /// text, keeping the system turn, the `user` role header, every image and control token, and the chat
    /// tail from the user turn's `<|im_end|>` on (the pooled token stays the assistant header's last token).
    /// Returns how many tokens were dropped.
    pub fn fit_user_text(&self, ids: &mut Vec<u32>, max_len: usize) -> Result<usize> {
        if ids.len() <= max_len {
            return Ok(0);
        }
        let excess = ids.len() - max_len;
        let (Some(im_start), Some(im_end)) = (self.im_start, self.im_end) else {
            return Err(ModelError::Input(
                "cannot find the user turn: the tokenizer has no <|im_start|>/<|im_end|>".into(),
            ));
        };
        let tail = ids.iter().rposition(|&id| id == im_end);
        let turn = tail.and_then(|t| ids[..t].iter().rposition(|&id| id == im_start));
        let (Some(tail), Some(turn)) = (tail, turn) else {
            return Err(ModelError::Input(
                "cannot find the user turn (<|im_start|>user ... <|im_end|>) in the prompt".into(),
            ));
        };
        // The role name and its newline follow <|im_start|>.
        let text_start = (turn + 3).min(tail);
        let cuttable: Vec<usize> = (text_start..tail).filter(|&i| !self.is_special(ids[i])).collect();
        if cuttable.len() < excess {
            return Err(ModelError::Input(format!(
                "the prompt has {} tokens and only {} of them are user text; it cannot fit in --max-len {max_len} tokens",
                ids.len(),
                cuttable.len()
            )));
        }
        let drop: std::collections::HashSet<usize> = cuttable[cuttable.len() - excess..].iter().copied().collect();
        let mut i = 0;
        ids.retain(|_| {
            let keep = !drop.contains(&i);
            i += 1;
            keep
        });
        Ok(excess)
    }

    /// Token ids of `text` exactly as written: the prompt already carries its chat markers, so nothing is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Replaces the i-th `<|image_pad|>` with `counts[i]` copies, as the processor expands the placeholder
    /// to one token per merged patch.
    pub fn expand_images(&self, ids: &[u32], counts: &[usize]) -> Result<Vec<u32>> {
        let found = ids.iter().filter(|&&id| id == self.image_token).count();
        if found != counts.len() {
            return Err(ModelError::Input(format!(
                "the prompt has {found} {IMAGE_PAD} placeholder(s) but {} image(s) were given",
                counts.len()
            )));
        }
        let mut out = Vec::with_capacity(ids.len() + counts.iter().sum::<usize>());
        let mut next = counts.iter();
        for &id in ids {
            if id == self.image_token {
                let n = *next.next().expect("counted above");
                out.extend(std::iter::repeat_n(id, n));
            } else {
                out.push(id);
            }
        }
        Ok(out)
    }
}

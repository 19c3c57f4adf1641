//! Checks that a tokenizer's ids mean what a decoder's token table was trained on.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Every (token, id) of `tokenizer.json` (its BPE vocabulary and added tokens) must lie inside the
/// decoder's `vocab` rows and, when the decoder lists its token strings, name the same token there.
pub fn check_tokenizer(tokenizer: &Path, decoder_tokens: Option<&[String]>, vocab: usize, source: &Path) -> Result<()> {
    let text = std::fs::read_to_string(tokenizer)
        .with_context(|| format!("--tokenizer {}: cannot read", tokenizer.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("--tokenizer {}: not valid JSON", tokenizer.display()))?;
    let mut pairs: Vec<(&str, u64)> = Vec::new();
    if let Some(map) = json.pointer("/model/vocab").and_then(Value::as_object) {
        for (token, id) in map {
            pairs.push((token, id.as_u64().unwrap_or(u64::MAX)));
        }
    }
    for added in json.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let token = added.get("content").and_then(Value::as_str).unwrap_or("");
        pairs.push((token, added.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX)));
    }
    if pairs.is_empty() {
        bail!("--tokenizer {}: no model.vocab or added_tokens", tokenizer.display());
    }
    pairs.sort_by_key(|&(_, id)| id);
    for (token, id) in pairs {
        if id >= vocab as u64 {
            bail!(
                "--tokenizer {}: token {token:?} has id {id}, beyond the {vocab} rows of {}'s token table",
                tokenizer.display(),
                source.display()
            );
        }
        if let Some(names) = decoder_tokens {
            let theirs = names.get(id as usize).map(String::as_str);
            if theirs != Some(token) {
                bail!(
                    "--tokenizer {} does not match {}: id {id} is {token:?} in the tokenizer but {theirs:?} in the \
                     decoder's token list",
                    tokenizer.display(),
                    source.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("tokenizer.json");
        let json = r#"{"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [{"id": 3, "content": "<|x|>"}]}"#;
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn accepts_matching_tokens_and_refuses_a_shifted_table() {
        let dir = tempfile::tempdir().unwrap();
        let tok = tokenizer(dir.path());
        let gguf = Path::new("model.gguf");
        let table: Vec<String> = ["a", "b", "[PAD2]", "<|x|>", "[PAD4]"].map(String::from).to_vec();
        check_tokenizer(&tok, Some(&table), 5, gguf).unwrap();
        check_tokenizer(&tok, None, 4, gguf).unwrap();
        let shifted: Vec<String> = ["b", "a", "", "<|x|>"].map(String::from).to_vec();
        let err = check_tokenizer(&tok, Some(&shifted), 4, gguf).unwrap_err().to_string();
        assert!(err.contains("id 0") && err.contains("model.gguf"), "{err}");
        let err = check_tokenizer(&tok, None, 3, gguf).unwrap_err().to_string();
        assert!(err.contains("id 3") && err.contains("3 rows"), "{err}");
    }
}

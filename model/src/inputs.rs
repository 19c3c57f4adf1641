//! The one way an item (a rendered prompt and at most one image path) becomes model inputs, for
//! embedding, training and anything that counts tokens: the image path joined to the image root,
//! the resolution policy applied in the file's own mode (as the reference does), the processor,
//! `<|image_pad|>` expanded per merged patch, then the prompt fitted to the token limit.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use saha_common::flags::{ImageRoot, Truncate};

use crate::batch::EncodedInput;
use crate::embedder::Embedder;
use crate::error::ModelError;
use crate::image::{PilImage, ResolutionPolicy};

/// How an item's inputs are made: where images live, how they are sized, how long a prompt may be.
#[derive(Debug, Clone)]
pub struct InputRules {
    pub image_root: ImageRoot,
    /// Images with more pixels are refused before decoding (Pillow's decompression-bomb limit).
    pub max_image_pixels: u64,
    pub resolution: ResolutionPolicy,
    /// Longest prompt in tokens, image tokens included.
    pub max_len: usize,
    pub truncate: Truncate,
}

/// An item's token ids and how many user-text tokens were dropped to fit the limit.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub dropped: usize,
}

/// Why an item could not be encoded. A stage may skip an item whose image is bad; anything else stops it.
#[derive(Debug)]
pub enum EncodeError {
    /// The image is missing, unreadable or cannot be processed (the message names its path).
    Image(String),
    Other(ModelError),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Image(message) => f.write_str(message),
            EncodeError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<ModelError> for EncodeError {
    fn from(e: ModelError) -> Self {
        EncodeError::Other(e)
    }
}

/// Turns items into model inputs with one embedder's tokenizer and processor under one set of rules.
pub struct ItemEncoder<'a> {
    embedder: &'a Embedder,
    rules: InputRules,
}

impl<'a> ItemEncoder<'a> {
    pub fn new(embedder: &'a Embedder, rules: InputRules) -> Self {
        Self { embedder, rules }
    }

    /// The item's tokens with image sizes read from the file header alone (no decoding): what
    /// [`Self::encode`] gives, at a fraction of the cost, for planning batches.
    pub fn tokens(&self, prompt: &str, image: Option<&str>) -> Result<Tokens, EncodeError> {
        let grids = match image {
            None => Vec::new(),
            Some(relative) => vec![self.planned_grid(&self.image_path(relative)?)?],
        };
        Ok(self.fit(self.embedder.prompt_ids(prompt, &grids)?)?)
    }

    /// The item's model inputs: token ids fitted to the limit and the image's pixel patches.
    pub fn encode(&self, prompt: &str, image: Option<&str>) -> Result<(EncodedInput, usize), EncodeError> {
        let images = match image {
            None => Vec::new(),
            Some(relative) => vec![self.load(&self.image_path(relative)?)?],
        };
        let input = self.embedder.encode(prompt, &images)?;
        let tokens = self.fit(input.ids)?;
        Ok((
            EncodedInput {
                ids: tokens.ids,
                images: input.images,
            },
            tokens.dropped,
        ))
    }

    /// Decodes the image `relative` to the root and applies the resolution policy, as [`Self::encode`]
    /// does, to learn whether it is usable before a run relies on it (a file broken past its header).
    pub fn check_image(&self, relative: &str) -> Result<(), EncodeError> {
        self.load(&self.image_path(relative)?).map(|_| ())
    }

    fn image_path(&self, relative: &str) -> Result<PathBuf, EncodeError> {
        self.rules.image_root.resolve(relative).map_err(EncodeError::Image)
    }

    fn fit(&self, mut ids: Vec<u32>) -> Result<Tokens, ModelError> {
        let max_len = self.rules.max_len;
        let dropped = match self.rules.truncate {
            Truncate::UserText => self.embedder.tokenizer.fit_user_text(&mut ids, max_len)?,
            Truncate::Error if ids.len() > max_len => {
                return Err(ModelError::Input(format!(
                    "the prompt has {} tokens, over --max-len {max_len} (use --truncate user-text)",
                    ids.len()
                )))
            }
            Truncate::Error => 0,
        };
        Ok(Tokens { ids, dropped })
    }

    fn load(&self, path: &Path) -> Result<PilImage, EncodeError> {
        let bad = |e: &dyn std::fmt::Display| EncodeError::Image(format!("{}: {e}", path.display()));
        let image = PilImage::open(path).map_err(|e| bad(&e))?;
        self.rules.resolution.apply(&image).map_err(|e| bad(&e))
    }

    fn planned_grid(&self, path: &Path) -> Result<[usize; 3], EncodeError> {
        let bad = |e: &dyn std::fmt::Display| EncodeError::Image(format!("{}: {e}", path.display()));
        let (width, height) = header_size(path)?;
        if (width as u64).saturating_mul(height as u64) > self.rules.max_image_pixels {
            return Err(EncodeError::Image(format!(
                "{}: {width} x {height} pixels is more than --max-image-pixels {} (a decompression bomb to Pillow)",
                path.display(),
                self.rules.max_image_pixels
            )));
        }
        let (width, height) = self
            .rules
            .resolution
            .target_size(width, height)
            .map_err(|e| bad(&e))?
            .unwrap_or((width, height));
        self.embedder.processor.grid_thw(height, width).map_err(|e| bad(&e))
    }
}

/// The width and height in an image file's header, without decoding it; a missing, unreadable or
/// truncated file (no PNG or JPEG end marker) is an error naming the file.
pub fn header_size(path: &Path) -> Result<(usize, usize), EncodeError> {
    if !path.is_file() {
        return Err(EncodeError::Image(format!("{}: image file not found", path.display())));
    }
    let io = |e: std::io::Error| EncodeError::Image(format!("{}: cannot open image: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io)?;
    // Encoders may pad after the end marker; 4 KiB is more than any padding seen in MMEB images.
    let len = file.metadata().map_err(io)?.len();
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let reader = image::ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(io)?;
    let format = reader.format();
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| EncodeError::Image(format!("{}: not a readable image: {e}", path.display())))?;
    if !ends_complete(format, &tail) {
        return Err(EncodeError::Image(format!(
            "{}: the file is truncated (no end-of-image marker)",
            path.display()
        )));
    }
    Ok((w as usize, h as usize))
}

/// Whether a PNG or JPEG file still has its end marker (IEND, EOI) in its last bytes `tail`: a
/// file cut short in transfer is noticed when the run is planned, not halfway through it. Other
/// formats pass.
fn ends_complete(format: Option<image::ImageFormat>, tail: &[u8]) -> bool {
    let marker: &[u8] = match format {
        Some(image::ImageFormat::Png) => b"IEND",
        Some(image::ImageFormat::Jpeg) => &[0xFF, 0xD9],
        _ => return true,
    };
    tail.windows(marker.len()).any(|w| w == marker)
}

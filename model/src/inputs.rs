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
use crate::image::{ImageError, PilImage, PixelPatches, ResolutionPolicy};

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
    /// The image is missing, unreadable or cannot be processed.
    Image(BadImage),
    Other(ModelError),
}

/// What is wrong with an item's image: a short kind (what stages count skips by) and a message naming its path.
#[derive(Debug, Clone)]
pub struct BadImage {
    /// `missing`, `unreadable`, `outside_root`, `truncated`, `too_large`, `undecodable` or `unprocessable`.
    pub kind: &'static str,
    pub message: String,
}

impl EncodeError {
    fn image(kind: &'static str, path: &Path, e: impl std::fmt::Display) -> Self {
        EncodeError::Image(BadImage {
            kind,
            message: format!("{}: {e}", path.display()),
        })
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Image(bad) => f.write_str(&bad.message),
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

    /// The item's model inputs: token ids fitted to the limit and the image's pixel patches. Every
    /// failure of reading, decoding, size limits and preprocessing of the image is an
    /// [`EncodeError::Image`].
    pub fn encode(&self, prompt: &str, image: Option<&str>) -> Result<(EncodedInput, usize), EncodeError> {
        let images = match image {
            None => Vec::new(),
            Some(relative) => vec![self.load(&self.image_path(relative)?)?],
        };
        let grids: Vec<[usize; 3]> = images.iter().map(|p| p.grid_thw).collect();
        let tokens = self.fit(self.embedder.prompt_ids(prompt, &grids)?)?;
        Ok((
            EncodedInput {
                ids: tokens.ids,
                images,
            },
            tokens.dropped,
        ))
    }

    fn image_path(&self, relative: &str) -> Result<PathBuf, EncodeError> {
        self.rules.image_root.resolve(relative).map_err(|message| {
            EncodeError::Image(BadImage {
                kind: "outside_root",
                message,
            })
        })
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

    /// The image read, decoded, sized by the resolution policy and preprocessed. The header is checked
    /// first (size limit, truncation), as when planning, so a decompression bomb is never decoded.
    fn load(&self, path: &Path) -> Result<PixelPatches, EncodeError> {
        let (width, height) = header_size(path)?;
        self.check_pixels(path, width, height)?;
        let bytes = std::fs::read(path).map_err(|e| EncodeError::image("unreadable", path, e))?;
        let image = PilImage::decode_limited(&bytes, Some(self.rules.max_image_pixels)).map_err(|e| {
            let kind = match &e {
                ImageError::Decode(::image::ImageError::Limits(_)) => "too_large",
                _ => "undecodable",
            };
            EncodeError::image(kind, path, e)
        })?;
        let unprocessable = |e: ImageError| EncodeError::image("unprocessable", path, e);
        let sized = self.rules.resolution.apply(&image).map_err(unprocessable)?;
        self.embedder.processor.preprocess_pil(&sized).map_err(unprocessable)
    }

    fn check_pixels(&self, path: &Path, width: usize, height: usize) -> Result<(), EncodeError> {
        if (width as u64).saturating_mul(height as u64) > self.rules.max_image_pixels {
            return Err(EncodeError::image(
                "too_large",
                path,
                format!(
                    "{width} x {height} pixels is more than --max-image-pixels {} (a decompression bomb to Pillow)",
                    self.rules.max_image_pixels
                ),
            ));
        }
        Ok(())
    }

    fn planned_grid(&self, path: &Path) -> Result<[usize; 3], EncodeError> {
        let (width, height) = header_size(path)?;
        self.check_pixels(path, width, height)?;
        let unprocessable = |e: ImageError| EncodeError::image("unprocessable", path, e);
        let (width, height) = self
            .rules
            .resolution
            .target_size(width, height)
            .map_err(unprocessable)?
            .unwrap_or((width, height));
        self.embedder.processor.grid_thw(height, width).map_err(unprocessable)
    }
}

/// The width and height in an image file's header, without decoding it; a missing, unreadable or
/// truncated file (no PNG or JPEG end marker) is an error naming the file.
pub fn header_size(path: &Path) -> Result<(usize, usize), EncodeError> {
    if !path.is_file() {
        return Err(EncodeError::image("missing", path, "image file not found"));
    }
    let io = |e: std::io::Error| EncodeError::image("unreadable", path, format!("cannot open image: {e}"));
    let mut file = std::fs::File::open(path).map_err(io)?;
    // Encoders may pad after the end marker; 4 KiB is more than any padding seen in MMEB images.
    let len = file.metadata().map_err(io)?.len();
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut head = [0u8; 8];
    let head_len = file.read(&mut head).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let reader = image::ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(io)?;
    let format = reader.format();
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| EncodeError::image("undecodable", path, format!("not a readable image: {e}")))?;
    if !ends_complete(format, &head[..head_len], &tail, len) {
        return Err(EncodeError::image(
            "truncated",
            path,
            "the file is truncated (no end-of-image marker, or shorter than its header says)",
        ));
    }
    Ok((w as usize, h as usize))
}

/// Whether a file still has its end: PNG's IEND and JPEG's EOI among its last bytes `tail`, and WebP's
/// whole RIFF chunk (`len` at least the 8 + size its header declares). A file cut short in transfer is
/// noticed when the run is planned, not halfway through it. GIF, BMP and TIFF have no end marker
/// Pillow insists on; a cut one fails when it is decoded (and is skipped then under --on-bad-image skip).
fn ends_complete(format: Option<image::ImageFormat>, head: &[u8], tail: &[u8], len: u64) -> bool {
    let marker: &[u8] = match format {
        Some(image::ImageFormat::Png) => b"IEND",
        Some(image::ImageFormat::Jpeg) => &[0xFF, 0xD9],
        Some(image::ImageFormat::WebP) => {
            return head.len() >= 8 && 8 + u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64 <= len
        }
        _ => return true,
    };
    tail.windows(marker.len()).any(|w| w == marker)
}

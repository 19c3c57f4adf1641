//! Reading an item's image: the resolution policy first (in the file's own mode, as the reference does),
//! then the Qwen2-VL processor. Planning reads only the file header.

use std::path::{Path, PathBuf};

use anyhow::Result;
use saha_model::image::{ImageProcessor, PilImage, PixelPatches, ResolutionPolicy};
use saha_schemas::Item;

pub fn parse_policy(text: &str) -> Result<ResolutionPolicy> {
    text.parse::<ResolutionPolicy>()
        .map_err(|e| anyhow::anyhow!("--resolution {text}: {e}"))
}

pub struct ImageContext<'a> {
    pub root: Option<PathBuf>,
    pub processor: &'a ImageProcessor,
    pub policy: ResolutionPolicy,
}

impl ImageContext<'_> {
    fn path(&self, relative: &str) -> Result<PathBuf, String> {
        match &self.root {
            Some(root) => Ok(root.join(relative)),
            None => Err(format!("the item has image {relative} but no --image-root was given")),
        }
    }

    /// The patch grid of the item's image from its header alone (no decoding); empty for text items.
    pub fn planned_grids(&self, item: &Item) -> Result<Vec<[usize; 3]>, String> {
        let Some(relative) = &item.image_path else {
            return Ok(Vec::new());
        };
        let path = self.path(relative)?;
        let (width, height) = header_size(&path)?;
        let (width, height) = match self
            .policy
            .target_size(width, height)
            .map_err(|e| format!("{}: {e}", path.display()))?
        {
            Some(size) => size,
            None => (width, height),
        };
        let grid = self
            .processor
            .grid_thw(height, width)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(vec![grid])
    }

    /// The item's image as pixel patches; empty for text items.
    pub fn load(&self, item: &Item) -> Result<Vec<PixelPatches>, String> {
        let Some(relative) = &item.image_path else {
            return Ok(Vec::new());
        };
        let path = self.path(relative)?;
        let image = PilImage::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let image = self
            .policy
            .apply(&image)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let patches = self
            .processor
            .preprocess_pil(&image)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(vec![patches])
    }
}

fn header_size(path: &Path) -> Result<(usize, usize), String> {
    if !path.is_file() {
        return Err(format!("{}: image file not found", path.display()));
    }
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("{}: cannot open image: {e}", path.display()))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("{}: not a readable image: {e}", path.display()))?;
    Ok((w as usize, h as usize))
}

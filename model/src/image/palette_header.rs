//! The Pillow mode of palette formats other than PNG, read from the file header: the `image` crate
//! expands GIF and BMP palettes to RGB(A), while Pillow keeps `P` (or `L` / `1` for a grey palette),
//! and the mode decides the resize filter (`P` and `1` resize by nearest neighbour).

use super::pil_image::PilMode;

/// The mode `PIL.Image.open` gives a GIF's first frame and whether that frame has a transparent index.
///
/// Pillow (GifImagePlugin) takes the frame's local palette, else the global one; a frame without one, or
/// whose palette is the identity grey ramp (entry i = (i, i, i)), opens as `L`, any other as `P`.
pub fn gif_mode(bytes: &[u8]) -> Option<(PilMode, bool)> {
    if bytes.len() < 13 || !(bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        return None;
    }
    let table = |flags: u8| (flags & 0x80 != 0).then(|| 3usize << ((flags & 7) + 1));
    let mut at = 13;
    let global = table(bytes[10]).map(|len| {
        let palette = bytes.get(at..at + len);
        at += len;
        palette
    });
    let mut transparent = false;
    loop {
        match *bytes.get(at)? {
            0x21 => {
                let label = *bytes.get(at + 1)?;
                if label == 0xF9 {
                    transparent = bytes.get(at + 3)? & 1 != 0;
                }
                at += 2;
                // Sub-blocks until a zero length.
                loop {
                    let len = *bytes.get(at)? as usize;
                    at += 1 + len;
                    if len == 0 {
                        break;
                    }
                }
            }
            0x2C => {
                let flags = *bytes.get(at + 9)?;
                let palette = match table(flags) {
                    Some(len) => bytes.get(at + 10..at + 10 + len),
                    None => global.flatten(),
                };
                let grey_ramp = |p: &[u8]| {
                    p.chunks_exact(3)
                        .enumerate()
                        .all(|(i, c)| c.iter().all(|&v| v as usize == i))
                };
                let mode = match palette {
                    Some(p) if !grey_ramp(p) => PilMode::P,
                    _ => PilMode::L,
                };
                return Some((mode, transparent));
            }
            _ => return None,
        }
    }
}

/// The mode `PIL.Image.open` gives a palette BMP (1, 2, 4 or 8 bits per pixel): `L` (or `1` for two
/// colours) when the palette is the grey ramp Pillow's BmpImagePlugin checks (entries (0, 255) for two
/// colours, else 0, 1, 2, ...), `P` otherwise. `None` for BMPs without a palette.
pub fn bmp_mode(bytes: &[u8]) -> Option<PilMode> {
    if bytes.len() < 26 || &bytes[..2] != b"BM" {
        return None;
    }
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header = u32_at(14)? as usize;
    // The OS/2 core header (12 bytes) has 16-bit sizes and 3-byte palette entries.
    let (bits, colours, entry) = if header == 12 {
        (u16_at(24)?, 0, 3)
    } else {
        (u16_at(28)?, u32_at(46)? as usize, 4)
    };
    if !matches!(bits, 1 | 2 | 4 | 8) {
        return None;
    }
    let colours = if colours == 0 || colours > 1 << bits {
        1 << bits
    } else {
        colours
    };
    let start = 14 + header;
    let palette = bytes.get(start..start + colours * entry)?;
    let ramp: Vec<u8> = if colours == 2 {
        vec![0, 255]
    } else {
        (0..colours).map(|i| i as u8).collect()
    };
    let grey = palette
        .chunks_exact(entry)
        .zip(ramp)
        .all(|(c, v)| c[..3].iter().all(|&x| x == v));
    Some(match grey {
        true if colours <= 2 => PilMode::Bilevel,
        true => PilMode::L,
        false => PilMode::P,
    })
}

//! A scene: one coloured shape on a plain background, its picture and the words for it.

use image::{Rgb, RgbImage};

use saha_common::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Cross,
}

pub const SHAPES: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Cross];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour {
    pub name: &'static str,
    pub synonyms: [&'static str; 2],
    pub rgb: [u8; 3],
}

pub const COLOURS: [Colour; 4] = [
    Colour {
        name: "red",
        synonyms: ["crimson", "scarlet"],
        rgb: [210, 40, 40],
    },
    Colour {
        name: "green",
        synonyms: ["emerald", "grass-coloured"],
        rgb: [40, 170, 60],
    },
    Colour {
        name: "blue",
        synonyms: ["navy", "azure"],
        rgb: [40, 70, 200],
    },
    Colour {
        name: "yellow",
        synonyms: ["golden", "lemon"],
        rgb: [230, 200, 30],
    },
];

pub const POSITIONS: [&str; 4] = ["left", "right", "top", "bottom"];

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
        }
    }

    pub fn synonyms(self) -> [&'static str; 2] {
        match self {
            Shape::Circle => ["disc", "round shape"],
            Shape::Square => ["box", "block"],
            Shape::Triangle => ["wedge", "three-sided shape"],
            Shape::Cross => ["plus sign", "x-shaped mark"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scene {
    pub shape: Shape,
    pub colour: Colour,
    pub position: usize,
    pub large: bool,
    pub width: u32,
    pub height: u32,
    pub background: [u8; 3],
}

impl Scene {
    pub fn random(rng: &mut Rng) -> Self {
        let mut scene = Scene {
            shape: *rng.pick(&SHAPES),
            colour: *rng.pick(&COLOURS),
            position: rng.below(POSITIONS.len()),
            large: rng.below(2) == 1,
            width: 0,
            height: 0,
            background: [0; 3],
        };
        scene.restyle(rng);
        scene
    }

    /// New picture size and background, same content: another photo of the same scene.
    pub fn restyle(&mut self, rng: &mut Rng) {
        self.width = rng.range(48, 128);
        // Aspect ratios between 1:2 and 2:1, like the photos the resolution policies clamp.
        let aspect = [0.5, 0.75, 1.0, 1.5, 2.0][rng.below(5)];
        self.height = ((self.width as f32 * aspect).round() as u32).clamp(32, 192);
        let grey = rng.range(215, 250) as u8;
        self.background = [grey, grey, rng.range(200, 250) as u8];
    }

    /// The ground-truth class: colour and shape.
    pub fn class(&self) -> String {
        format!("{} {}", self.colour.name, self.shape.name())
    }

    /// A caption; `variant` picks one of several wordings of the same content, so that many
    /// different targets mean the same thing (false-negative traps).
    pub fn caption(&self, variant: usize) -> String {
        let size = if self.large {
            ["large", "big"]
        } else {
            ["small", "little"]
        };
        let colour = [self.colour.name, self.colour.synonyms[0], self.colour.synonyms[1]];
        let shape = [self.shape.name(), self.shape.synonyms()[0], self.shape.synonyms()[1]];
        let pos = POSITIONS[self.position];
        match variant % 4 {
            0 => format!("A {} {} {} on the {pos}.", size[0], colour[0], shape[0]),
            1 => format!("A {} {} {} near the {pos} edge.", size[1], colour[1], shape[1]),
            2 => format!("There is a {} {} at the {pos} of the picture.", colour[2], shape[2]),
            _ => format!("{} {} {}, placed {pos}.", capitalise(size[0]), colour[0], shape[1]),
        }
    }

    pub fn draw(&self) -> RgbImage {
        let (w, h) = (self.width, self.height);
        let mut img = RgbImage::from_pixel(w, h, Rgb(self.background));
        let r = (w.min(h) as f32) * if self.large { 0.32 } else { 0.18 };
        let (cx, cy) = match POSITIONS[self.position] {
            "left" => (w as f32 * 0.28, h as f32 * 0.5),
            "right" => (w as f32 * 0.72, h as f32 * 0.5),
            "top" => (w as f32 * 0.5, h as f32 * 0.28),
            _ => (w as f32 * 0.5, h as f32 * 0.72),
        };
        for y in 0..h {
            for x in 0..w {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let inside = match self.shape {
                    Shape::Circle => dx * dx + dy * dy <= r * r,
                    Shape::Square => dx.abs() <= r && dy.abs() <= r,
                    Shape::Triangle => dy <= r && dy >= -r && dx.abs() <= (dy + r) / 2.0,
                    Shape::Cross => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
                };
                if inside {
                    img.put_pixel(x, y, Rgb(self.colour.rgb));
                }
            }
        }
        img
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

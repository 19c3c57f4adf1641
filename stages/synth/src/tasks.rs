//! The four MMEB task kinds of the synthetic data, and how one example of each is phrased.

use crate::scene::{Scene, COLOURS, POSITIONS, SHAPES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Image -> class name (like ImageNet-1K): every class name is the positive of many queries.
    Classification,
    /// Caption -> image (like MSCOCO_t2i).
    TextToImage,
    /// Image -> caption (like MSCOCO_i2t): paraphrased captions of identical scenes.
    ImageToText,
    /// Image + question -> short answer (like OK-VQA): answers are shared by many queries.
    Vqa,
}

pub const TASKS: [(&str, Kind); 4] = [
    ("ShapeClass", Kind::Classification),
    ("ShapeCaps_t2i", Kind::TextToImage),
    ("ShapeCaps_i2t", Kind::ImageToText),
    ("ShapeVQA", Kind::Vqa),
];

pub const QUESTIONS: [&str; 3] = [
    "What colour is the shape?",
    "What shape is shown?",
    "Where is the shape?",
];

/// What an example's query and positive say; image slots are filled by the caller.
pub struct Phrased {
    pub query: String,
    pub query_has_image: bool,
    pub target: String,
    pub target_has_image: bool,
    /// Ground-truth class: two examples with equal labels are interchangeable positives.
    pub label: String,
}

pub fn describe(scene: &Scene) -> String {
    format!(
        "{} {} {}",
        if scene.large { "large" } else { "small" },
        scene.class(),
        POSITIONS[scene.position]
    )
}

pub fn answer(scene: &Scene, question: usize) -> String {
    match question {
        0 => scene.colour.name.to_string(),
        1 => scene.shape.name().to_string(),
        _ => POSITIONS[scene.position].to_string(),
    }
}

/// Every answer a question can have, for candidate lists.
pub fn answers(question: usize) -> Vec<String> {
    match question {
        0 => COLOURS.iter().map(|c| c.name.to_string()).collect(),
        1 => SHAPES.iter().map(|s| s.name().to_string()).collect(),
        _ => POSITIONS.iter().map(|p| p.to_string()).collect(),
    }
}

pub fn classes() -> Vec<String> {
    COLOURS
        .iter()
        .flat_map(|c| SHAPES.iter().map(move |s| format!("{} {}", c.name, s.name())))
        .collect()
}

pub fn phrase(kind: Kind, scene: &Scene, variant: usize, question: usize) -> Phrased {
    match kind {
        Kind::Classification => Phrased {
            query: "<|image_1|> Represent the given image for classification".into(),
            query_has_image: true,
            target: scene.class(),
            target_has_image: false,
            label: scene.class(),
        },
        Kind::TextToImage => Phrased {
            query: format!(
                "Find me an everyday image that matches the given caption: {}",
                scene.caption(variant)
            ),
            query_has_image: false,
            target: "<|image_1|> Represent the given image.".into(),
            target_has_image: true,
            label: describe(scene),
        },
        Kind::ImageToText => Phrased {
            query: "<|image_1|> Find an image caption describing the given everyday image.".into(),
            query_has_image: true,
            target: scene.caption(variant),
            target_has_image: false,
            label: describe(scene),
        },
        Kind::Vqa => Phrased {
            query: format!(
                "<|image_1|> Represent the given image with the following question: {}",
                QUESTIONS[question]
            ),
            query_has_image: true,
            target: answer(scene, question),
            target_has_image: false,
            label: format!("{}: {}", QUESTIONS[question], answer(scene, question)),
        },
    }
}

//! Three MMEB-style subsets from WordNet noun synsets, labelled by synset so the false-negative audit
//! can tell a mined negative that means the same as the anchor's positive.

use std::collections::HashMap;

use saha_common::rng::Rng;
use saha_schemas::mmeb_data::DataRow;

use crate::parse::Synset;

/// Subset names and whether the mining treats them as classification.
pub const SUBSETS: [(&str, bool); 3] = [
    ("WordNet_Synonym", false),
    ("WordNet_Gloss", false),
    ("WordNet_Hypernym", true),
];

/// A synset the subsets can use: two or more plain lemmas, a hypernym, a short definition.
pub fn usable(s: &Synset) -> bool {
    let plain =
        |w: &str| !w.is_empty() && w.len() <= 24 && w.chars().all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-');
    s.lemmas.len() >= 2
        && s.lemmas.iter().take(2).all(|w| plain(w))
        && !s.hypernyms.is_empty()
        && (12..=110).contains(&s.definition.len())
}

pub struct Lexicon<'a> {
    pub by_id: HashMap<&'a str, &'a Synset>,
}

impl<'a> Lexicon<'a> {
    pub fn new(all: &'a [Synset]) -> Self {
        Lexicon {
            by_id: all.iter().map(|s| (s.id.as_str(), s)).collect(),
        }
    }

    /// The first hypernym with a plain name.
    pub fn hypernym(&self, s: &Synset) -> Option<&'a Synset> {
        s.hypernyms
            .iter()
            .filter_map(|h| self.by_id.get(h.as_str()).copied())
            .find(|h| !h.lemmas.is_empty())
    }
}

fn row(query: String, positive: String, distractors: Vec<String>, label: &str) -> DataRow {
    let targets = std::iter::once(positive)
        .chain(distractors)
        .map(|t| (t, String::new()))
        .collect();
    DataRow {
        query,
        query_image: String::new(),
        targets,
        label: label.to_string(),
    }
}

/// Training pairs of one subset from `synsets`. Synonym: several pairs per synset (lemma i -> lemma i+1),
/// so a mined negative can be the anchor's own synonym; gloss: each of two lemmas -> the definition;
/// hypernym: word and definition -> a lemma of the hypernym drawn at random, so one category (several
/// words each) appears under several names (labels are the hypernym's synset).
pub fn train_rows(subset: &str, synsets: &[&Synset], lex: &Lexicon, rng: &mut Rng) -> Vec<DataRow> {
    let mut rows = Vec::new();
    for s in synsets {
        match subset {
            "WordNet_Synonym" => {
                let n = s.lemmas.len().min(3);
                for i in 0..n {
                    rows.push(row(
                        synonym_query(&s.lemmas[i]),
                        s.lemmas[(i + 1) % n].clone(),
                        vec![],
                        &s.id,
                    ));
                }
            }
            "WordNet_Gloss" => {
                for lemma in s.lemmas.iter().take(2) {
                    rows.push(row(gloss_query(lemma), s.definition.clone(), vec![], &s.id));
                }
            }
            _ => {
                if let Some(h) = lex.hypernym(s) {
                    let name = rng.pick(&h.lemmas).clone();
                    rows.push(row(hypernym_query(s), name, vec![], &h.id));
                }
            }
        }
    }
    rows
}

/// Evaluation rows: one query per synset, the positive and `candidates - 1` distractors from the other
/// synsets of the split (other categories for the hypernym subset).
pub fn eval_rows(subset: &str, synsets: &[&Synset], lex: &Lexicon, candidates: usize, rng: &mut Rng) -> Vec<DataRow> {
    let mut rows = Vec::new();
    for (i, s) in synsets.iter().enumerate() {
        let others = |rng: &mut Rng, pick: &dyn Fn(&Synset) -> Option<(String, String)>, own: &str| {
            let mut out: Vec<String> = Vec::new();
            let mut tries = 0;
            while out.len() + 1 < candidates && tries < 50 * candidates {
                tries += 1;
                let j = rng.below(synsets.len());
                if j == i {
                    continue;
                }
                if let Some((label, text)) = pick(synsets[j]) {
                    if label != own && !out.contains(&text) {
                        out.push(text);
                    }
                }
            }
            out
        };
        match subset {
            "WordNet_Synonym" => {
                let d = others(rng, &|o| Some((o.id.clone(), o.lemmas[1].clone())), &s.id);
                rows.push(row(synonym_query(&s.lemmas[0]), s.lemmas[1].clone(), d, &s.id));
            }
            "WordNet_Gloss" => {
                let d = others(rng, &|o| Some((o.id.clone(), o.definition.clone())), &s.id);
                rows.push(row(gloss_query(&s.lemmas[0]), s.definition.clone(), d, &s.id));
            }
            _ => {
                let Some(h) = lex.hypernym(s) else { continue };
                let pick = |o: &Synset| lex.hypernym(o).map(|oh| (oh.id.clone(), oh.lemmas[0].clone()));
                let d = others(rng, &pick, &h.id);
                rows.push(row(hypernym_query(s), h.lemmas[0].clone(), d, &h.id));
            }
        }
    }
    rows
}

fn synonym_query(word: &str) -> String {
    format!("Find a synonym of the word: {word}")
}

fn gloss_query(word: &str) -> String {
    format!("Find the dictionary definition of the word: {word}")
}

fn hypernym_query(s: &Synset) -> String {
    format!("What kind of thing is this? {}: {}", s.lemmas[0], s.definition)
}

//! Three MMEB-style subsets from WordNet noun synsets, labelled by synset so the false-negative audit
//! can tell a mined negative that means the same as the anchor's positive.

use std::collections::{HashMap, HashSet};

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
    s.lemmas.len() >= 2
        && s.lemmas.iter().take(2).all(|w| plain(w))
        && !s.hypernyms.is_empty()
        && short_definition(&s.definition)
}

pub struct Lexicon<'a> {
    pub by_id: HashMap<&'a str, &'a Synset>,
    /// Each synset's hyponyms (the synsets whose hypernym pointers name it), in file order.
    hyponyms: HashMap<&'a str, Vec<&'a Synset>>,
    /// The synsets each lemma belongs to (its senses), in file order.
    senses: HashMap<&'a str, Vec<&'a Synset>>,
    /// The synsets with a lemma containing each word (of three letters or more), in file order.
    by_word: HashMap<&'a str, Vec<&'a Synset>>,
}

impl<'a> Lexicon<'a> {
    pub fn new(all: &'a [Synset]) -> Self {
        let mut lex = Lexicon {
            by_id: all.iter().map(|s| (s.id.as_str(), s)).collect(),
            hyponyms: HashMap::new(),
            senses: HashMap::new(),
            by_word: HashMap::new(),
        };
        for s in all {
            for h in &s.hypernyms {
                lex.hyponyms.entry(h.as_str()).or_default().push(s);
            }
            for lemma in &s.lemmas {
                lex.senses.entry(lemma.as_str()).or_default().push(s);
                for w in words(lemma) {
                    let list = lex.by_word.entry(w).or_default();
                    if list.last().is_none_or(|l| l.id != s.id) {
                        list.push(s);
                    }
                }
            }
        }
        lex
    }

    /// The first hypernym with a plain name.
    pub fn hypernym(&self, s: &Synset) -> Option<&'a Synset> {
        s.hypernyms
            .iter()
            .filter_map(|h| self.by_id.get(h.as_str()).copied())
            .find(|h| !h.lemmas.is_empty())
    }

    /// Every synset `lemma` is a word of (each of its senses).
    pub fn senses(&self, lemma: &str) -> &[&'a Synset] {
        self.senses.get(lemma).map_or(&[], |v| v.as_slice())
    }

    /// Every synset above `s` on any hypernym path.
    pub fn ancestors(&self, s: &Synset) -> Vec<&'a Synset> {
        let mut out: Vec<&Synset> = Vec::new();
        let mut todo: Vec<&str> = s.hypernyms.iter().map(String::as_str).collect();
        while let Some(id) = todo.pop() {
            if let Some(&h) = self.by_id.get(id) {
                if !out.iter().any(|o| o.id == h.id) {
                    out.push(h);
                    todo.extend(h.hypernyms.iter().map(String::as_str));
                }
            }
        }
        out
    }

    /// The other hyponyms of `s`'s hypernyms (its siblings), in file order.
    pub fn siblings(&self, s: &Synset) -> Vec<&'a Synset> {
        let mut out: Vec<&Synset> = Vec::new();
        for h in &s.hypernyms {
            for &o in self.hyponyms.get(h.as_str()).into_iter().flatten() {
                if o.id != s.id && !out.iter().any(|x| x.id == o.id) {
                    out.push(o);
                }
            }
        }
        out
    }

    /// Synsets with a lemma sharing a word with `lemma`, each with that lemma, in file order.
    pub fn lexical_neighbours(&self, lemma: &str) -> Vec<(&'a Synset, &'a str)> {
        let mut out: Vec<(&Synset, &str)> = Vec::new();
        for w in words(lemma) {
            for &o in self.by_word.get(w).into_iter().flatten() {
                if out.iter().any(|(x, _)| x.id == o.id) {
                    continue;
                }
                if let Some(l) = o
                    .lemmas
                    .iter()
                    .find(|l| l.as_str() != lemma && words(l).any(|x| x == w))
                {
                    out.push((o, l.as_str()));
                }
            }
        }
        out
    }
}

/// The words of a lemma that say something (three letters or more).
fn words(lemma: &str) -> impl Iterator<Item = &str> {
    lemma.split([' ', '-']).filter(|w| w.len() >= 3)
}

/// A lemma the subsets show: lowercase ASCII words, short.
pub fn plain(w: &str) -> bool {
    !w.is_empty() && w.len() <= 24 && w.chars().all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-')
}

/// A definition the gloss subset shows.
pub fn short_definition(d: &str) -> bool {
    (12..=110).contains(&d.len())
}

pub(crate) fn row(query: String, positive: String, distractors: Vec<String>, label: &str) -> DataRow {
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
/// words each) appears under several names (labels are the hypernym's synset). A query and positive
/// that an earlier synset already gave (two synsets sharing two lemmas: "bank" and "depository" in
/// two senses) are left out, as MMEB's data has no repeated pair.
pub fn train_rows(subset: &str, synsets: &[&Synset], lex: &Lexicon, rng: &mut Rng) -> Vec<DataRow> {
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |r: DataRow| {
        if seen.insert((r.query.clone(), r.targets[0].0.clone())) {
            rows.push(r);
        }
    };
    for s in synsets {
        match subset {
            "WordNet_Synonym" => {
                let n = s.lemmas.len().min(3);
                for i in 0..n {
                    push(row(
                        synonym_query(&s.lemmas[i]),
                        s.lemmas[(i + 1) % n].clone(),
                        vec![],
                        &s.id,
                    ));
                }
            }
            "WordNet_Gloss" => {
                for lemma in s.lemmas.iter().take(2) {
                    push(row(gloss_query(lemma), s.definition.clone(), vec![], &s.id));
                }
            }
            _ => {
                if let Some(h) = lex.hypernym(s) {
                    let name = rng.pick(&h.lemmas).clone();
                    push(row(hypernym_query(s), name, vec![], &h.id));
                }
            }
        }
    }
    rows
}

pub(crate) fn synonym_query(word: &str) -> String {
    format!("Find a synonym of the word: {word}")
}

pub(crate) fn gloss_query(word: &str) -> String {
    format!("Find the dictionary definition of the word: {word}")
}

pub(crate) fn hypernym_query(s: &Synset) -> String {
    format!("What kind of thing is this? {}: {}", s.lemmas[0], s.definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synset(id: &str, lemmas: &[&str], definition: &str) -> Synset {
        Synset {
            id: id.to_string(),
            lemmas: lemmas.iter().map(|l| l.to_string()).collect(),
            hypernyms: vec!["n00000001".to_string()],
            definition: definition.to_string(),
        }
    }

    /// Two senses sharing their two lemmas would give the synonym subset the same two pairs twice.
    #[test]
    fn a_pair_an_earlier_synset_gave_is_left_out() {
        let all = [
            synset("n00000001", &["entity"], "that which exists"),
            synset("n00000002", &["bank", "depository"], "a financial institution"),
            synset(
                "n00000003",
                &["bank", "depository", "vault"],
                "a place where things are kept",
            ),
        ];
        let lex = Lexicon::new(&all);
        let picked = [&all[1], &all[2]];
        let pairs = |subset: &str| -> Vec<(String, String)> {
            train_rows(subset, &picked, &lex, &mut Rng::new(1))
                .into_iter()
                .map(|r| (r.query, r.targets[0].0.clone()))
                .collect()
        };
        let synonym = pairs("WordNet_Synonym");
        let q = |w: &str| synonym_query(w);
        assert_eq!(
            synonym,
            [
                (q("bank"), "depository".to_string()),
                (q("depository"), "bank".to_string()),
                (q("depository"), "vault".to_string()),
                (q("vault"), "bank".to_string()),
            ]
        );
        // Different definitions: nothing repeats, nothing is left out.
        assert_eq!(pairs("WordNet_Gloss").len(), 4);
    }
}

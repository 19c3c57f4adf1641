//! Evaluation rows: one query per synset with its positive, hard distractors from WordNet's neighbourhood
//! of the positive (its siblings under the same hypernym, then lemmas sharing a word with it), and random
//! distractors drawn from every candidate of the subset's split (the other queries' positives and hard
//! distractors), so the candidate lists overlap as MMEB's do. A text WordNet also makes a right answer is
//! never a distractor: for the synonym subset no lemma of any sense of the query word, for the gloss subset
//! no definition of any of its senses, for the hypernym subset no name of any synset above the query's.

use std::collections::HashSet;

use saha_common::rng::Rng;
use saha_schemas::mmeb_data::DataRow;

use crate::parse::Synset;
use crate::tasks::{gloss_query, hypernym_query, plain, row, short_definition, synonym_query, Lexicon};

/// Candidates per query (the positive included) and how many of them are hard distractors at most.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub candidates: usize,
    pub hard: usize,
}

struct Query<'a> {
    text: String,
    positive: String,
    label: String,
    /// Every text that would also be a right answer (the positive among them).
    right: HashSet<&'a str>,
    hard: Vec<String>,
}

pub fn eval_rows<'a>(
    subset: &str,
    synsets: &[&'a Synset],
    lex: &Lexicon<'a>,
    sizes: Sizes,
    rng: &mut Rng,
) -> Vec<DataRow> {
    let queries: Vec<Query> = synsets
        .iter()
        .filter_map(|s| query(subset, s, lex, sizes.hard, rng))
        .collect();
    let mut pool: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for q in &queries {
        for t in std::iter::once(&q.positive).chain(&q.hard) {
            if seen.insert(t.as_str()) {
                pool.push(t);
            }
        }
    }
    let mut order: Vec<usize> = (0..pool.len()).collect();
    queries
        .iter()
        .map(|q| {
            let mut distractors = q.hard.clone();
            // A partial shuffle of the pool: random draws without repeats, to the end if need be.
            for i in 0..order.len() {
                if distractors.len() + 1 >= sizes.candidates {
                    break;
                }
                let j = i + rng.below(order.len() - i);
                order.swap(i, j);
                let t = pool[order[i]];
                if !q.right.contains(t) && t != q.positive && !distractors.iter().any(|d| d == t) {
                    distractors.push(t.to_string());
                }
            }
            row(q.text.clone(), q.positive.clone(), distractors, &q.label)
        })
        .collect()
}

/// One query of `subset` on synset `s`; `None` for a hypernym query on a synset without a named hypernym.
fn query<'a>(subset: &str, s: &'a Synset, lex: &Lexicon<'a>, hard: usize, rng: &mut Rng) -> Option<Query<'a>> {
    let word = &s.lemmas[0];
    let lemmas_of = |synsets: &[&'a Synset]| -> HashSet<&'a str> {
        synsets
            .iter()
            .flat_map(|o| o.lemmas.iter().map(String::as_str))
            .collect()
    };
    let (text, positive, label, right, anchor) = match subset {
        "WordNet_Synonym" => (
            synonym_query(word),
            s.lemmas[1].clone(),
            s.id.clone(),
            lemmas_of(lex.senses(word)),
            s,
        ),
        "WordNet_Gloss" => (
            gloss_query(word),
            s.definition.clone(),
            s.id.clone(),
            lex.senses(word).iter().map(|o| o.definition.as_str()).collect(),
            s,
        ),
        _ => {
            let h = lex.hypernym(s)?;
            (
                hypernym_query(s),
                h.lemmas[0].clone(),
                h.id.clone(),
                lemmas_of(&lex.ancestors(s)),
                h,
            )
        }
    };
    let shown = |o: &'a Synset, lemma: &'a str| -> Option<&'a str> {
        if subset == "WordNet_Gloss" {
            short_definition(&o.definition).then_some(o.definition.as_str())
        } else {
            plain(lemma).then_some(lemma)
        }
    };
    let mut out: Vec<String> = Vec::new();
    for (o, lemma) in neighbours(lex, anchor, rng) {
        if out.len() >= hard {
            break;
        }
        if let Some(t) = shown(o, lemma) {
            if !right.contains(t) && t != positive && !out.iter().any(|x| x == t) {
                out.push(t.to_string());
            }
        }
    }
    Some(Query {
        text,
        positive,
        label,
        right,
        hard: out,
    })
}

/// `anchor`'s siblings (each with its first lemma), then the synsets with a lemma sharing a word with
/// `anchor`'s first lemma (with that lemma); each group in a seeded order.
fn neighbours<'a>(lex: &Lexicon<'a>, anchor: &'a Synset, rng: &mut Rng) -> Vec<(&'a Synset, &'a str)> {
    let mut siblings: Vec<(&Synset, &str)> = lex
        .siblings(anchor)
        .into_iter()
        .filter(|o| !o.lemmas.is_empty())
        .map(|o| (o, o.lemmas[0].as_str()))
        .collect();
    let mut lexical = lex.lexical_neighbours(&anchor.lemmas[0]);
    lexical.retain(|(o, _)| o.id != anchor.id && !siblings.iter().any(|(x, _)| x.id == o.id));
    for group in [&mut siblings, &mut lexical] {
        for i in (1..group.len()).rev() {
            group.swap(i, rng.below(i + 1));
        }
    }
    siblings.into_iter().chain(lexical).collect()
}

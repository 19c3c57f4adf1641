//! The WordNet 3.0 database format (`wndb(5WN)`): one synset per line of `data.noun`.
//!
//! `offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [symbol offset pos source/target]... | gloss`;
//! lines that start with two spaces are the licence header.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synset {
    /// `n` + the 8-digit byte offset: WordNet's own synset id.
    pub id: String,
    /// The synset's words, spaces for underscores, adjective markers like `(a)` removed, in file order.
    pub lemmas: Vec<String>,
    /// Ids of the hypernym synsets (`@` and instance `@i` pointers to nouns).
    pub hypernyms: Vec<String>,
    /// The gloss up to its first quoted example.
    pub definition: String,
}

pub fn read_nouns(path: &Path) -> Result<Vec<Synset>> {
    let text = std::fs::read(path).with_context(|| {
        format!(
            "{}: cannot read the WordNet noun database (install Debian's wordnet-base, or pass --wordnet DIR)",
            path.display()
        )
    })?;
    // WordNet 3.0 is Latin-1 in a few glosses; decode byte by byte so nothing is refused for that.
    let text: String = text.iter().map(|&b| b as char).collect();
    let mut synsets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("  ") || line.trim().is_empty() {
            continue;
        }
        let synset =
            parse_line(line).with_context(|| format!("{} line {}: not a WordNet data line", path.display(), n + 1))?;
        synsets.push(synset);
    }
    if synsets.is_empty() {
        bail!("{}: no synsets (is it WordNet's data.noun?)", path.display());
    }
    Ok(synsets)
}

pub fn parse_line(line: &str) -> Result<Synset> {
    let (fields, gloss) = line.split_once(" | ").unwrap_or((line, ""));
    let mut f = fields.split_whitespace();
    let mut next = |what: &str| f.next().with_context(|| format!("the line ends before its {what}"));
    let offset = next("offset")?;
    if offset.len() != 8 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        bail!("offset {offset:?} is not 8 digits");
    }
    next("lexicographer file")?;
    let kind = next("synset type")?;
    if kind != "n" {
        bail!("synset type {kind:?}, expected n (a noun)");
    }
    let words = usize::from_str_radix(next("word count")?, 16).context("the word count is not hexadecimal")?;
    let mut lemmas = Vec::with_capacity(words);
    for _ in 0..words {
        let word = next("word")?;
        next("lex_id")?;
        let word = word.split('(').next().unwrap_or(word).replace('_', " ");
        if !lemmas.contains(&word) {
            lemmas.push(word);
        }
    }
    let pointers: usize = next("pointer count")?
        .parse()
        .context("the pointer count is not a number")?;
    let mut hypernyms = Vec::new();
    for _ in 0..pointers {
        let symbol = next("pointer symbol")?;
        let target = next("pointer offset")?;
        let pos = next("pointer part of speech")?;
        next("pointer source/target")?;
        if (symbol == "@" || symbol == "@i") && pos == "n" {
            hypernyms.push(format!("n{target}"));
        }
    }
    let definition = gloss
        .split("; \"")
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    Ok(Synset {
        id: format!("n{offset}"),
        lemmas,
        hypernyms,
        definition,
    })
}

/// Ids of the synsets that are the most frequent sense of some word found in WordNet's sense-tagged
/// corpus (`index.noun`: a lemma's synsets in frequency order, with the count of its tagged senses).
pub fn read_common(path: &Path) -> Result<std::collections::HashSet<String>> {
    let text = std::fs::read(path).with_context(|| format!("{}: cannot read WordNet's noun index", path.display()))?;
    let text: String = text.iter().map(|&b| b as char).collect();
    let mut common = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("  ") || line.trim().is_empty() {
            continue;
        }
        let bad = || format!("{} line {}: not a WordNet index line", path.display(), n + 1);
        let f: Vec<&str> = line.split_whitespace().collect();
        let pointers: usize = f.get(3).and_then(|v| v.parse().ok()).with_context(bad)?;
        let tagged: usize = f.get(5 + pointers).and_then(|v| v.parse().ok()).with_context(bad)?;
        let first = f.get(6 + pointers).with_context(bad)?;
        if tagged > 0 {
            common.insert(format!("n{first}"));
        }
    }
    Ok(common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_words_hypernyms_and_the_definition() {
        let line = "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 003 @ 02083346 n 0000 @ 01317541 n 0000 \
                    #m 02083863 n 0000 | a member of the genus Canis; \"the dog barked all night\"  ";
        let s = parse_line(line).unwrap();
        assert_eq!(s.id, "n02084071");
        assert_eq!(s.lemmas, ["dog", "domestic dog", "Canis familiaris"]);
        assert_eq!(s.hypernyms, ["n02083346", "n01317541"]);
        assert_eq!(s.definition, "a member of the genus Canis");
    }

    #[test]
    fn a_tagged_words_first_sense_is_common() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.noun");
        let index = "  1 licence line\ndog n 2 2 @ ~ 2 1 02084071 10114209  \nzyzzyva n 1 1 @ 1 0 02210728  \n";
        std::fs::write(&path, index).unwrap();
        let common = read_common(&path).unwrap();
        assert!(common.contains("n02084071") && common.len() == 1, "{common:?}");
        std::fs::write(&path, "dog n 2 9 @ 1 02084071\n").unwrap();
        assert!(read_common(&path).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn refuses_lines_that_are_not_noun_synsets() {
        for bad in [
            "0208407 05 n 01 dog 0 000 | x",
            "02084071 05 v 01 run 0 000 | x",
            "02084071 05 n 0g dog 0 000 | x",
            "02084071 05 n 02 dog 0 | x",
            "02084071 05 n 01 dog 0 002 @ 02083346 n 0000 | x",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}

//! A small WordNet-format database (data.noun, index.noun) for the saha-wordnet tests.

use std::path::{Path, PathBuf};

/// Lowercase letters for a number, so every lemma is a plain word.
pub fn word(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

/// `categories` category synsets and `per_category` members of each, in WordNet's data and index formats;
/// with `second_senses`, each member's first word is also the second word of another synset in its category
/// (lemmas "alias <i>", "thing <i>"; a word with two senses, whose other synonyms are right answers too).
pub fn database_with(dir: &Path, categories: usize, per_category: usize, second_senses: bool) -> PathBuf {
    let wn = dir.join("wordnet");
    std::fs::create_dir_all(&wn).unwrap();
    let (mut data, mut index) = (
        String::from("  1 This licence header line is skipped.\n"),
        String::new(),
    );
    let mut line = |offset: usize, lemmas: &[String], hypernym: Option<usize>, gloss: &str| {
        let words: Vec<String> = lemmas.iter().map(|l| format!("{} 0", l.replace(' ', "_"))).collect();
        let pointers = hypernym.map_or("000".to_string(), |h| format!("001 @ {h:08} n 0000"));
        data.push_str(&format!(
            "{offset:08} 03 n {:02x} {} {pointers} | {gloss}; \"an example\"  \n",
            lemmas.len(),
            words.join(" ")
        ));
        for l in lemmas {
            index.push_str(&format!("{} n 1 1 @ 1 1 {offset:08}  \n", l.replace(' ', "_")));
        }
    };
    for c in 0..categories {
        let offset = 10_000_000 + c;
        line(
            offset,
            &[format!("kind {}", word(c)), format!("sort {}", word(c))],
            Some(9_999_999),
            "a class",
        );
        for m in 0..per_category {
            let i = c * per_category + m;
            let lemmas = [
                format!("thing {}", word(i)),
                format!("item {}", word(i)),
                format!("object {}", word(i)),
            ];
            line(
                20_000_000 + i,
                &lemmas,
                Some(offset),
                &format!("member number {i} of a class of things"),
            );
            if second_senses {
                line(
                    30_000_000 + i,
                    &[format!("alias {}", word(i)), format!("thing {}", word(i))],
                    Some(offset),
                    &format!("another sense number {i} of a thing"),
                );
            }
        }
    }
    line(
        9_999_999,
        &["entity".into(), "being".into()],
        None,
        "that which exists in any form",
    );
    std::fs::write(wn.join("data.noun"), data).unwrap();
    std::fs::write(wn.join("index.noun"), index).unwrap();
    wn
}

/// [`database_with`] without second senses.
pub fn database(dir: &Path, categories: usize, per_category: usize) -> PathBuf {
    database_with(dir, categories, per_category, false)
}

//! Which items go into which batch and which part: sorted by length, packed under a token budget.
//! The plan depends only on the items and the arguments, so a resumed run or another shard computes the
//! same batches, and the same batches give bit-identical embeddings.

/// One item ready to embed: index into the item list and its token count (image tokens included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub item: usize,
    pub len: usize,
}

/// Batches of item indices, longest first, each under `batch_tokens` padded tokens and `max_batch` rows.
pub fn batches(items: &[Planned], batch_tokens: usize, max_batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<Planned> = items.to_vec();
    // Longest first: the biggest batch runs first, so an out-of-memory shows at once, not hours in.
    order.sort_by(|a, b| b.len.cmp(&a.len).then(a.item.cmp(&b.item)));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for p in order {
        let longest_with = longest.max(p.len);
        if !current.is_empty() && (longest_with * (current.len() + 1) > batch_tokens || current.len() >= max_batch) {
            out.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(p.len);
        current.push(p.item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Consecutive batches grouped into parts of at least `part_items` items (the last may be smaller).
pub fn parts(batches: Vec<Vec<usize>>, part_items: usize) -> Vec<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut count = 0;
    for batch in batches {
        count += batch.len();
        current.push(batch);
        if count >= part_items.max(1) {
            out.push(std::mem::take(&mut current));
            count = 0;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(lens: &[usize]) -> Vec<Planned> {
        lens.iter()
            .enumerate()
            .map(|(item, &len)| Planned { item, len })
            .collect()
    }

    #[test]
    fn batches_are_longest_first_and_respect_the_budget() {
        let items = planned(&[10, 50, 20, 50, 5, 30]);
        let b = batches(&items, 100, 8);
        assert_eq!(b, vec![vec![1, 3], vec![5, 2, 0], vec![4]]);
        for batch in &b {
            let longest = batch.iter().map(|&i| items[i].len).max().unwrap();
            assert!(longest * batch.len() <= 100);
        }
    }

    #[test]
    fn an_item_over_the_budget_still_gets_a_batch_of_its_own() {
        let b = batches(&planned(&[500, 10]), 100, 8);
        assert_eq!(b, vec![vec![0], vec![1]]);
    }

    #[test]
    fn batch_size_is_capped_and_parts_hold_whole_batches() {
        let b = batches(&planned(&[1; 10]), 1000, 3);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        let p = parts(b, 4);
        assert_eq!(
            p.iter()
                .map(|part| part.iter().map(Vec::len).sum::<usize>())
                .collect::<Vec<_>>(),
            vec![6, 4]
        );
    }
}

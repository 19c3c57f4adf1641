"""An independent re-statement of the range baseline's draw (sentence-transformers / FlagEmbedding style
"sample k negatives from ranks [start, end)"), with the project's seeded SplitMix64 generator written out
again from its definition, used only by the parity tests.

Input (JSON on the command line path): {"seed", "top_k", "range_start", "range_end",
"pairs": [{"pair_id", "negatives"}...]} where negatives is the length of the pair's non-positive
candidate list. Output (JSON on stdout): {pair_id: [ranks picked, ascending]}.
"""

import json
import sys

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


class SplitMix64:
    def __init__(self, state):
        self.state = state & MASK

    def next_u64(self):
        self.state = (self.state + GOLDEN) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK
        z = ((z ^ (z >> 27)) * MIX2) & MASK
        return z ^ (z >> 31)

    @classmethod
    def fork(cls, seed, stream, index):
        """Stream `index` of family `stream`: the seed mixed with the stream, then with one draw plus the index."""
        r = cls(seed ^ ((stream * GOLDEN) & MASK))
        drawn = r.next_u64()
        r.state ^= (drawn + index * MIX1) & MASK
        return r

    def below(self, n):
        """Uniform in 0..n from the top 53 bits, as a double."""
        return int((self.next_u64() >> 11) / float(1 << 53) * n)


def draw(seed, top_k, start, end, pair_id, negatives):
    end = min(end, negatives)
    start = min(start, end)
    pool = list(range(start, end))
    rng = SplitMix64.fork(seed, 0, pair_id)
    k = min(top_k, len(pool))
    for i in range(k):  # a partial Fisher-Yates shuffle: the first k of a uniform permutation
        j = i + rng.below(len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:k])


def main():
    spec = json.load(open(sys.argv[1]))
    out = {
        p["pair_id"]: draw(spec["seed"], spec["top_k"], spec["range_start"], spec["range_end"], p["pair_id"], p["negatives"])
        for p in spec["pairs"]
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

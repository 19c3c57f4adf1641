"""An independent re-statement of the reference SaHa sampler (Gen2Embed `cli/sample_mmeb.py`,
`couple_samples`), written from its description, used only by the parity tests.

Input (JSON on the command line path): {"top_k", "pool_mult", "classification": [subset...],
"rows": [{"subset", "qry", "qry_image_path", "pos_text", "pos_image_path"}...] in dataset order,
"vectors": {"q": {key: [floats]}, "t": {key: [floats]}}} where key = text + "\\u0000" + image.
Output (JSON on stdout): a list of groups {"subset", "phase", "anchor", "negatives"} where anchor
and negatives are row indices within the subset, in the order the reference emits them.
"""

import json
import sys

import numpy as np


def key(text, image):
    return text + "\u0000" + image


def sample_subset(name, rows, qvec, tvec, top_k, pool_mult, classification):
    d2q = {}
    q2rid = {}
    for i, row in enumerate(rows):
        q = key(row["qry"], row["qry_image_path"])
        p = key(row["pos_text"], row["pos_image_path"])
        d2q.setdefault(p, set()).add(q)
        q2rid[q] = i
    cand_texts = list(d2q.keys())
    cand_map = {k: i for i, k in enumerate(cand_texts)}
    cand_vecs = np.stack([np.asarray(tvec[k], dtype=np.float64) for k in cand_texts])
    qv = {k: np.asarray(v, dtype=np.float64) for k, v in qvec.items()}
    q_keys_all = list(qv.keys())
    q_index = {k: i for i, k in enumerate(q_keys_all)}
    q_matrix = np.stack([qv[k] for k in q_keys_all])

    first_n_cands = top_k * pool_mult
    pool_size = first_n_cands * 2
    used_q = set()
    groups = []

    def couple_samples(phase, first_n):
        allow_redundant = bool(used_q)
        reused = set()
        for i, row in enumerate(rows):
            a = key(row["qry"], row["qry_image_path"])
            if a in used_q:
                continue
            scores = cand_vecs @ qv[a]
            order = np.argsort(-scores, kind="stable")[:pool_size]
            pos_idx = cand_map.get(key(row["pos_text"], row["pos_image_path"]))
            negs = [int(j) for j in order if j != pos_idx and j != -1]
            q_keys = []
            for j in negs:
                owners = d2q[cand_texts[j]] - (reused if allow_redundant else used_q)
                if not owners:
                    continue
                if len(owners) == 1:
                    o = next(iter(owners))
                else:
                    listed = sorted(owners)
                    sims = q_matrix[[q_index[x] for x in listed]] @ qv[a]
                    o = listed[int(np.argmax(sims))]
                q_keys.append(o)
                if len(q_keys) >= first_n:
                    break
            if not q_keys:
                continue
            used_q.add(a)
            if name not in classification:
                q_scores = [float(qv[a] @ qv[o]) for o in q_keys]
                q_keys = [q_keys[k] for k in np.argsort(q_scores, kind="stable")]
            final = q_keys[:top_k]
            groups.append({"subset": name, "phase": phase, "anchor": i, "negatives": [q2rid[o] for o in final]})
            used_q.update(final)
            if allow_redundant:
                reused.update(final)

    couple_samples(1, first_n_cands)
    couple_samples(2, first_n_cands * 2)
    return groups


def main():
    spec = json.load(open(sys.argv[1]))
    by_subset = {}
    for row in spec["rows"]:
        by_subset.setdefault(row["subset"], []).append(row)
    out = []
    for name, rows in by_subset.items():
        out += sample_subset(
            name, rows, spec["vectors"]["q"], spec["vectors"]["t"], spec["top_k"], spec["pool_mult"], spec["classification"]
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

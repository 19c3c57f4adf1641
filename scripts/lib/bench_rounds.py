"""The runs of a benchmark made in rounds: `$OUT/times` lines "name@round seconds peak_rss_mib ...", each
run's JSON report (last line of `$OUT/name@round.json`), grouped by name without its round."""
import json
from pathlib import Path


def load(out: Path):
    """(times by run, reports by name in round order, whole-process peak MiB by name). Both benches reset the
    kernel's high-water mark after loading (to measure the work alone), which also resets what `time` sees,
    so a run's peak is the larger of it and the load's own peak."""
    times = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in (out / "times").read_text().splitlines()}
    rounds = {}
    for name in times:
        report = json.loads((out / f"{name}.json").read_text().strip().splitlines()[-1])
        rounds.setdefault(name.split("@")[0], []).append(report)
    peak = {base: max(max(times[f"{base}@{i + 1}"][1], x.get("peak_rss_load_mib") or 0) for i, x in enumerate(xs))
            for base, xs in rounds.items()}
    return times, rounds, peak

"""Detection quality on labelled synthetic telemetry, through the real dataflow, at default settings.

Usage: ``.venv/bin/python benchmarks/labelled.py [--hours 24] [--seeds 7,11,23]`` — writes
``benchmarks/results/labelled.json`` (per seed and the mean).

For each seed: ``sentinel generate`` writes OTLP JSON lines and the labels file
(reused when present in ``--workdir``), then ``sentinel backtest --labels`` runs the
real flow (file source → decode → windows → detect → dedup) and scores the alerts
with :func:`sentinel.eval.labels.score_alerts` — so the numbers here are exactly
those of ``DIR/report.json``'s ``labels`` section.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_KEYS = ("recall", "recall_matching", "precision", "false_alerts_per_series_hour")


def _run(args: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-c", "import sys; from sentinel.cli import main; sys.exit(main())", *args],
        check=True,
        cwd=ROOT,
    )


def one_seed(seed: int, hours: float, workdir: Path) -> dict[str, Any]:
    data = workdir / f"labelled-{seed}-{hours:g}h.jsonl.gz"
    labels = Path(str(data) + ".labels.json")
    t0 = time.perf_counter()
    if not (data.is_file() and labels.is_file()):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sentinel.generate",
                "--output",
                str(data),
                "--hours",
                str(hours),
                "--seed",
                str(seed),
            ],
            check=True,
            cwd=ROOT,
        )
    out = workdir / f"backtest-{seed}"
    t1 = time.perf_counter()
    _run(["backtest", "-q", "--input", str(data), "--output", str(out), "--labels", str(labels)])
    t2 = time.perf_counter()
    report = json.loads((out / "report.json").read_text())
    res: dict[str, Any] = dict(report["labels"])
    res["seed"] = seed
    res["events"] = report.get("events")
    res["backtest_s"] = round(t2 - t1, 1)
    res["generate_s"] = round(t1 - t0, 1)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seeds", default="7,11,23")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sentinel-labelled"))
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "labelled.json")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in (int(s) for s in args.seeds.split(",")):
        r = one_seed(seed, args.hours, args.workdir)
        per_seed.append(r)
        print(
            f"seed {seed}: "
            + "  ".join(f"{k} {r[k]:.3f}" for k in _KEYS)
            + f"  delay median {r['delay_s']['median']} p90 {r['delay_s']['p90']}"
        )
        for kind, k in r["per_kind"].items():
            print(f"  {kind:24s} {k['detected']}/{k['incidents']}  matching {k['detected_matching']}")
    mean = {k: sum(r[k] for r in per_seed) / len(per_seed) for k in _KEYS}
    print("mean: " + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"hours": args.hours, "mean": mean, "seeds": per_seed}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast the command line answers, and how long the README's test command takes.

    python -m bench --startup [--suite]       (this section alone; the others are kept)
    python -m bench.bench_startup [--runs 7] [--suite]

Each command runs ``--runs`` times in a fresh process (the median is reported) beside
``python -c pass``, so the figure reads as a ratio to Python's own start-up on the same machine
in the same minute: these shared machines are noisy, ratios less so. ``PYTHONDONTWRITEBYTECODE``
is as the machine sets it (recorded), so the package may be compiled anew on every start.
``--suite`` also times ``python3 scripts/dev.py tests`` (set-up already done) once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Start-up of the command line, and the test suite"
GOAL_S = 1.0  # every case below answers in under a second on the 2-core development machine
CASES: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "aes-ensemble --version": ["-m", "aes_ensemble.cli.main", "--version"],
    "aes-ensemble --help": ["-m", "aes_ensemble.cli.main", "--help"],
    "aes-ensemble fit-bas (usage error)": ["-m", "aes_ensemble.cli.main", "fit-bas"],
    "aes-ensemble data check missing.csv": [
        "-m",
        "aes_ensemble.cli.main",
        "data",
        "check",
        "missing.csv",
    ],
}


def _seconds(args: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - started


def run(runs: int = 7, suite: bool = False) -> dict[str, Any]:
    """Median seconds of each case over ``runs`` interleaved rounds, and its ratio to Python."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):  # interleaved, so a busy minute weighs on every case alike
        for name, args in CASES.items():
            times[name].append(_seconds(args))
    medians = {name: statistics.median(values) for name, values in times.items()}
    python = medians["python -c pass"]
    result: dict[str, Any] = {
        "runs": runs,
        "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "cases": {
            name: {"median_s": round(value, 3), "ratio_to_python": round(value / python, 1)}
            for name, value in medians.items()
        },
    }
    if suite:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "scripts/dev.py", "tests"], cwd=ROOT, check=False)
        result["suite"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "exit_code": done.returncode,
        }
    return result


def markdown(section: dict[str, Any]) -> list[str]:
    bytecode = (
        "not written (PYTHONDONTWRITEBYTECODE)" if section["dont_write_bytecode"] else "cached"
    )
    lines = [
        HEADING,
        "",
        f"- machine: {section['machine']}",
        f"- command: `{section['command']}`",
        f"- median of {section['runs']} runs, each in a fresh process; bytecode {bytecode}",
        f"- goal: every command below answers in under {GOAL_S:g} s",
        "",
        "| command | seconds | x `python -c pass` |",
        "|---|---:|---:|",
    ]
    for name, case in section["cases"].items():
        lines.append(f"| `{name}` | {case['median_s']:.2f} | {case['ratio_to_python']:.1f} |")
    lines.append("")
    suite = section.get("suite")
    if suite:
        lines += [
            f"`python3 scripts/dev.py tests` (the README's test command, set-up already done): "
            f"{suite['seconds'] / 60:.1f} min, exit code {suite['exit_code']}.",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--suite", action="store_true")
    args = parser.parse_args(argv)
    section = run(args.runs, args.suite)
    print("\n".join(markdown({**section, "machine": "this machine", "command": "-"})))
    return 0


if __name__ == "__main__":
    sys.exit(main())

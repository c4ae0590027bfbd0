"""Cut the embedded essay sample (aes_ensemble/sample/) from the ELLIPSE corpus, reproducibly.

    python scripts/make_sample.py [--source ../shared/data/ellipse/ELLIPSE_Final_github_test.csv]

Why this shape: whole prompts (so prompt-grouped 5-fold CV has prompts to hold out), the same
number of essays per prompt, and systematic sampling over each prompt's essays sorted by score
(so the score distribution follows the full file without rare levels breaking a stratified
splitter). The test file drops ``Overall``: it plays the part of unlabelled essays to score.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ellipse" / "ELLIPSE_Final_github_test.csv"
OUT_DIR = ROOT / "aes_ensemble" / "sample"
COLUMNS = (
    "text_id_kaggle",
    "full_text",
    "prompt",
    "Overall",
    "gender",
    "grade",
    "race_ethnicity",
    "SES",
)
SEED = 20230601
N_PROMPTS = 10
PER_PROMPT = 56  # 48 train + 8 test
TEST_EVERY = 7  # every 7th essay of a prompt's score-sorted pick goes to test
MIN_PROMPT_ESSAYS = 60


def read_rows(source: Path) -> list[dict[str, str]]:
    with source.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def systematic(n_have: int, n_take: int) -> np.ndarray:
    """Indices of ``n_take`` evenly spaced picks (cell midpoints) out of ``n_have`` sorted rows."""
    return np.floor((np.arange(n_take) + 0.5) * n_have / n_take).astype(np.int64)


def cut(rows: list[dict[str, str]], seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, test) rows: N_PROMPTS seeded prompts, PER_PROMPT score-stratified essays each."""
    rng = np.random.default_rng(seed)
    by_prompt: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
    eligible = sorted(p for p, rs in by_prompt.items() if len(rs) >= MIN_PROMPT_ESSAYS)
    prompts = sorted(rng.choice(eligible, size=N_PROMPTS, replace=False).tolist())
    train: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for prompt in prompts:
        essays = by_prompt[prompt]
        # Random tie-break inside a score level, then sort by score: the pick is stratified.
        order = np.lexsort((rng.random(len(essays)), [float(r["Overall"]) for r in essays]))
        picked = [essays[i] for i in order[systematic(len(essays), PER_PROMPT)]]
        for k, row in enumerate(picked):
            (test if k % TEST_EVERY == TEST_EVERY // 2 else train).append(row)
    return _shuffled(train, rng), _shuffled(test, rng)


def _shuffled(rows: list[dict[str, str]], rng: np.random.Generator) -> list[dict[str, str]]:
    return [rows[i] for i in rng.permutation(len(rows))]


def write(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    train, test = cut(read_rows(args.source), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "ellipse_train.csv", train, COLUMNS)
    write(args.out / "ellipse_test.csv", test, tuple(c for c in COLUMNS if c != "Overall"))
    print(f"wrote {len(train)} train and {len(test)} test essays to {args.out}")


if __name__ == "__main__":
    main()

"""RSMTool's side of the peer check: run ``rsmeval`` on each job, in RSMTool's own environment.

    python bench/peer_rsmeval.py JOBS.json     # RSMTool's interpreter, never the project's

Imports RSMTool only (never ``aes_ensemble``): ``bench/peer_rsmtool.py`` writes the predictions
and the rsmeval configs, runs this script with the interpreter of the environment the nox session
``peer`` built, and compares the CSV files it leaves. Each job is what ``rsmeval run CONFIG
OUTPUT`` does (``rsmtool.rsmeval.run_evaluation``) with one change: the HTML report is not
rendered (its notebooks take ~40 s a run and only display the CSV files already written), except
for the step of it that computes numbers: the fairness analyses, which RSMTool 12.0.0 runs inside
its ``fairness_analyses`` notebook; they run here as that notebook runs them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from rsmtool import rsmeval
from rsmtool.fairness_utils import get_fairness_analyses, write_fairness_results
from rsmtool.reader import DataReader
from rsmtool.reporter import Reporter

CONVERTERS = {"spkitemid": str, "candidate": str}  # as the report's header notebook reads


def _fairness(config: dict[str, Any], csv_dir: Path) -> None:
    """The ``fairness_analyses`` notebook's computation: per subgroup, the OSA/OSD/CSD models
    on the trimmed raw predictions, written as that notebook writes them."""
    experiment = config["experiment_id"]
    preds = DataReader.read_from_file(
        str(csv_dir / f"{experiment}_pred_processed.csv"), converters=CONVERTERS
    )
    metadata = DataReader.read_from_file(
        str(csv_dir / f"{experiment}_test_metadata.csv"), converters=CONVERTERS
    )
    merged = preds.merge(metadata, on="spkitemid")
    for group in config["subgroups"]:
        fits, container = get_fairness_analyses(merged.copy(), group, "raw_trim")
        write_fairness_results(fits, container, group, str(csv_dir), experiment, "csv")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")  # RSMTool's own warnings (a constant group's kappa: 0/0)
    Reporter.create_report = lambda self, *args, **kwargs: None  # type: ignore[method-assign]
    jobs = json.loads(Path(argv[0]).read_text())
    start = time.perf_counter()
    for job in jobs:
        config = json.loads(Path(job["config"]).read_text())
        rsmeval.run_evaluation(job["config"], job["output"], overwrite_output=True)
        if config.get("subgroups"):
            _fairness(config, Path(job["output"]) / "output")
    print(f"rsmeval: {len(jobs)} runs in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

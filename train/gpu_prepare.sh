#!/usr/bin/env bash
# Prepare, on this machine, what train/gpu_run.sh needs on the lent GPU machine (no internet there, no diffusers):
#   .gpu_carry/wheels/                    the wheels of the Python packages missing there, at our pins, for that
#                                         machine's Python 3.12: diffusers (pure Python) and pillow-heif
#   .gpu_carry/shared/data/ffhq256/       the training faces (train/) and the held-out faces of the test set (test/)
#   .gpu_carry/start/                     with FACEREST_GPU_START=PIPELINE only: that saved IDM pipeline in fp16, for
#                                         gpu_run.sh to train further (FACEREST_GPU_FINETUNE_FROM=.gpu_carry/start)
# .gpu_carry/ is git-ignored and travels with the run tool's carry=[".gpu_carry"]: about 24 MiB, with a checkout of
# about 22 MiB, of the 64 allowed, so a carried start holds at most about 18 MiB of fp16 weights (9M parameters; the
# default's 4.1M fit, the H200 run's 13.6M IDM did not); the script checks the sum.
#
#   bash train/gpu_prepare.sh             # from the repository root; PYTHON=... for another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SHARED=${FACEREST_SHARED:-../shared}
CARRY=.gpu_carry

[[ -d $SHARED/data/ffhq256/train && -d $SHARED/data/ffhq256/test ]] || { echo "no $SHARED/data/ffhq256/{train,test}" >&2; exit 1; }
rm -rf "$CARRY"
mkdir -p "$CARRY/wheels" "$CARRY/shared/data"
# the GPU machine's image holds torch, transformers, accelerate, huggingface_hub, safetensors, opencv and scipy
# and pillow (/work/.library/device/KINDS.md); of what facerest and the training scripts import, diffusers and
# pillow-heif (a binary wheel, for that machine's Python 3.12) are missing
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
    "$(grep -E '^diffusers==' requirements.txt)" "$(grep -E '^pillow-heif==' requirements.txt)"
cp -r "$SHARED/data/ffhq256" "$CARRY/shared/data/"
if [[ -n ${FACEREST_GPU_START:-} ]]; then
  "$PYTHON" -c "import sys, torch; from facerest import FaceRestorePipeline
FaceRestorePipeline.from_pretrained(sys.argv[1]).to(torch.float16).save_pretrained(sys.argv[2])" "$FACEREST_GPU_START" "$CARRY/start"
fi
du -sh "$CARRY"/* "$CARRY"
# the run tool sends the checkout (tracked and untracked-not-ignored files) with the carry, 64 MiB at most in all
checkout=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
carry=$(du -sb "$CARRY" | cut -f1)
echo "the run tool's transfer: $((checkout >> 20)) MiB of checkout + $((carry >> 20)) MiB of $CARRY (at most 64 MiB)"
if ((checkout + carry > 64 << 20)); then
  start=$(du -sb "$CARRY/start" 2> /dev/null | cut -f1)
  echo "too large for the run tool: a start of at most $((((64 << 20) - checkout - carry + ${start:-0}) >> 20)) MiB fits" >&2
  exit 1
fi

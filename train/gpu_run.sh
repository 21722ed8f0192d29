#!/usr/bin/env bash
# Train the 256-px IDM and GFP-GAN on a lent GPU for a fixed time; the fp16 weights, logs and metrics come back in $OUT.
#
# 1. Here, on a CPU machine with PyPI access, from the repository root (the checkout the run tool sends):
#      bash train/gpu_prepare.sh          # .gpu_carry/ (git-ignored): the diffusers wheel, ../shared/data/ffhq256
# 2. The device tool, one call (the script keeps itself inside 560 s of the 600; 15 minutes of device time a task):
#      run(command="bash train/gpu_run.sh", carry=[".gpu_carry"], timeout_s=600)
# 3. Back here, with the returned files in DIR (files_at):
#      mkdir -p runs/gpu256 && cat DIR/results.tar.part-* | tar -x -C runs/gpu256   # idm256/, gfpgan256/, idm256ft/
#
# On the machine (everything printed also goes to $OUT/gpu_run.log):
#   a. installs the carried wheels into $WORK/site and checks degrade_batch on CUDA against the CPU
#      (tests/test_degradation.py -k cuda); if that fails, the faces are degraded in the data loader instead;
#   b. bench/degradation_throughput.py: faces/s with and without degradation on the GPU ($OUT/degradation_throughput.md;
#      FACEREST_GPU_BENCH=0 leaves it out and gives its minute to training);
#   c. the paired test set: make-testset of ffhq256/test at 256 px, seed 0 (as runs/testset256 here);
#   d. trains three models side by side on the GPU, bf16, whole 256-px faces degraded on the GPU, for
#      FACEREST_GPU_RUN_MINUTES (default: what the setup left of the 560 s, less 100 s for the end, at most 8 minutes):
#      a new 256-px IDM (idm256, its learning rate decayed to 0 by the clock), the 256-px GFP-GAN (gfpgan256), and a
#      stage from the shipped default
#      (idm256ft: models/default fine-tuned on whole faces with stage 9's options, a candidate to replace it);
#      FACEREST_GPU_RUNS picks among them (idm, gfpgan, finetune), FACEREST_GPU_FINETUNE_FROM, _LR, _DETAIL, _SSIM,
#      _THROUGH_SAMPLING_STEPS and _AT_SAMPLING_STEPS set the stage's start, rate, detail and SSIM weights and the
#      sampling steps it trains through (or, with _THROUGH_SAMPLING_STEPS=0, the step count whose timesteps it trains at),
#      and FACEREST_GPU_FINETUNE_DEEPEN=1 makes its start one layer per block deeper first
#      (FACEREST_GPU_FINETUNE_FROM=idm: the stage follows the new IDM in the same call, from its weights, for
#      FACEREST_GPU_FINETUNE_MINUTES, default a quarter of the minutes) (a run to train on: FACEREST_GPU_START=PIPELINE
#      bash train/gpu_prepare.sh, then FACEREST_GPU_RUNS=finetune FACEREST_GPU_FINETUNE_FROM=.gpu_carry/start bash train/gpu_run.sh);
#      each stops with a checkpoint, saves its pipeline and then scores the test set (the hard stop may cut a
#      score short, never the weights; the first H200 run, 2026-12-04, lost both IDMs that way before the order changed);
#   e. packs the pipelines as fp16 safetensors with their logs, validation grids and scores into
#      $OUT/results.tar.part-NN (15 MiB parts) and writes $OUT/summary.md.
#
# Rehearsal on a CPU, everything but the GPU (tiny models, 4 test faces, one minute of training; 4-5 minutes in all):
#   OUT=/tmp/gpu_out PYTHON=.venv/bin/python FACEREST_GPU_RUN_TINY=1 FACEREST_GPU_RUN_MINUTES=1 bash train/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
: "${OUT:?set OUT: the folder whose files come back}"
PYTHON=${PYTHON:-python3}
CARRY=${FACEREST_GPU_CARRY:-.gpu_carry}
WORK=${FACEREST_GPU_WORK:-/tmp/facerest_gpu}
BUDGET_S=${FACEREST_GPU_RUN_BUDGET_S:-560}
RESERVE_S=${FACEREST_GPU_RUN_RESERVE_S:-100}
DATA=$PWD/$CARRY/shared/data/ffhq256
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK/logs" "$WORK/pack"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 FACEREST_SHARED=$PWD/$CARRY/shared

# IDM: whole 256-px faces, a fully convolutional UNet of five levels down to 16 px (13.6M parameters, 27 MB in fp16;
# a forward at 256 px about 1.25x the default's on a 2-core CPU), the residual target at the 256-px faces' RMS (0.19),
# L1, one face in five clean; 5e-4 after 200 warm-up steps, decayed to 0 by a cosine of the minutes spent
# (--lr_scheduler cosine_by_clock). No detail term from the start: it asks for local gradient energy, not for it where
# the face has it, and a model that does not yet restore meets it with a grid (the H200 run of 2026-12-04: NIQE 18.9);
# stage 5 added it to a model that already restored. GAN: the 64-px default's shape at 256 px (4.5M parameters).
# Which of the three trainings run: idm (a new IDM), gfpgan, finetune (a stage from FINETUNE_FROM, a saved IDM
# pipeline in the checkout or in .gpu_carry, at FINETUNE_LR), e.g. FACEREST_GPU_RUNS=finetune to give it the whole GPU.
RUNS=" ${FACEREST_GPU_RUNS:-idm gfpgan finetune} "
FINETUNE_FROM=${FACEREST_GPU_FINETUNE_FROM:-models/default}
FINETUNE_LR=${FACEREST_GPU_FINETUNE_LR:-5e-5}
FINETUNE_DETAIL=${FACEREST_GPU_FINETUNE_DETAIL:-2}  # the detail term's weight (0: L1 alone)
FINETUNE_SSIM=${FACEREST_GPU_FINETUNE_SSIM:-2}  # the SSIM term's weight (0: none, as before stage 7)
# stage 9's option: train what sampling with this many steps restores, with gradients through every step (the default
# samples 2); 0 trains single steps instead, at the timesteps that FACEREST_GPU_FINETUNE_AT_SAMPLING_STEPS-step
# sampling visits (stage 8's option; 0 there: every timestep, as before stage 8)
FINETUNE_THROUGH_SAMPLING_STEPS=${FACEREST_GPU_FINETUNE_THROUGH_SAMPLING_STEPS:-2}
FINETUNE_AT_SAMPLING_STEPS=${FACEREST_GPU_FINETUNE_AT_SAMPLING_STEPS:-2}
# 1: the stage starts from its start made one layer per block deeper, computing the same (train/deepen_unet.py: the
# default's 4.1M parameters become 6.0M), so that the GPU's steps have more capacity to fill
FINETUNE_DEEPEN=${FACEREST_GPU_FINETUNE_DEEPEN:-0}
if (( FINETUNE_THROUGH_SAMPLING_STEPS > 0 )); then
  FINETUNE_SAMPLING=(--train_through_sampling_steps "$FINETUNE_THROUGH_SAMPLING_STEPS")
else
  FINETUNE_SAMPLING=(--train_at_sampling_steps "$FINETUNE_AT_SAMPLING_STEPS")
fi
if [[ ${FACEREST_GPU_RUN_TINY:-0} == 1 ]]; then
  IDM_UNET='{"block_out_channels":[16,32],"layers_per_block":1,"norm_num_groups":8,"attention_head_dim":8}'
  GAN_SHAPE=(--num_style_feat 32 --narrow 0.0625 --discriminator_narrow 0.0625)
  IDM_BATCH=2 GAN_BATCH=2 WORKERS=1 TEST_FACES=4 EVAL_STEPS=(1 2) EVERY=1000
  BENCH=(--batch_size 2 --batches 1 --workers 0 1 --seconds 10)
else
  IDM_UNET=${FACEREST_GPU_IDM_UNET:-'{"block_out_channels":[32,64,128,192,256],"layers_per_block":1,"norm_num_groups":16,"down_block_types":["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D"]}'}
  GAN_SHAPE=(--num_style_feat 128 --narrow 0.25 --discriminator_narrow 0.25)
  IDM_BATCH=32 GAN_BATCH=16 WORKERS=$(( $(wc -w <<< "$RUNS") == 1 ? 12 : 18 / $(wc -w <<< "$RUNS") )) TEST_FACES=100 EVAL_STEPS=(1 2) EVERY=1000
  BENCH=(--batch_size 32 --batches 12 --workers 0 12 --seconds 8)
fi

main() {
echo "== a. setup ($(date -u +%FT%TZ))"
ls "$CARRY"/wheels/*.whl > /dev/null 2>&1 || { echo "no wheels in $CARRY/wheels: run train/gpu_prepare.sh and carry $CARRY"; exit 1; }
for wheel in "$CARRY"/wheels/*.whl; do
  # a wheel built for the GPU machine's Python (pillow-heif's, cp312) does not install in a rehearsal on another
  # Python: there the package must already be importable
  module=$(basename "$wheel" | cut -d- -f1)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$wheel" 2> /dev/null \
    || "$PYTHON" -c "import $module" 2> /dev/null \
    || { echo "$(basename "$wheel") does not install on this Python and $module is missing: run train/gpu_prepare.sh"; exit 1; }
done
export PYTHONPATH=$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" -c "import torch, torchvision, diffusers, transformers, accelerate, facerest; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'diffusers', diffusers.__version__, diffusers.__file__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'cuda', torch.cuda.is_available())" \
  || exit 1
if "$PYTHON" -c "import torch; raise SystemExit(not torch.cuda.is_available())"; then DEVICE=cuda PRECISION=bf16; else DEVICE=cpu PRECISION=no; fi
DEGRADATION=accelerator
if [[ $DEVICE == cuda ]]; then
  "$PYTHON" -m pytest -q -s -p no:cacheprovider -W ignore::DeprecationWarning tests/test_degradation.py -k cuda \
    || { echo "degrade_batch failed its CUDA check: the data loaders degrade on the CPU instead"; DEGRADATION=cpu WORKERS=7; }
fi

echo "== b. degradation throughput ($((SECONDS - START)) s)"
if [[ ${FACEREST_GPU_BENCH:-1} == 1 ]]; then
  "$PYTHON" -W ignore::DeprecationWarning bench/degradation_throughput.py --data "$DATA/train" --resolution 256 --device "$DEVICE" \
    "${BENCH[@]}" --out "$OUT/degradation_throughput.md"
fi

echo "== c. test set ($((SECONDS - START)) s)"
mkdir -p "$WORK/test_hq"
for path in $(ls "$DATA/test" | head -n "$TEST_FACES"); do ln -s "$DATA/test/$path" "$WORK/test_hq/$path"; done
"$PYTHON" -m facerest make-testset "$WORK/test_hq" "$WORK/testset256" --resolution 256 --seed 0 || exit 1

MINUTES=${FACEREST_GPU_RUN_MINUTES:-$("$PYTHON" -c "print(round(min(8.0, max(0.5, ($BUDGET_S - $((SECONDS - START)) - $RESERVE_S) / 60)), 2))")}
HARD_STOP=$((BUDGET_S - (SECONDS - START) - 30))  # a run that overstays is killed, so the packing below still happens
(( HARD_STOP < 60 )) && HARD_STOP=60
echo "== d. training for $MINUTES minutes, degradation on $DEGRADATION, $PRECISION ($((SECONDS - START)) s; hard stop after $HARD_STOP s)"
COMMON=(--resolution 256 --train_data_dir "$DATA/train" --testset "$WORK/testset256" --mixed_precision "$PRECISION"
        --degradation_device "$DEGRADATION" --dataloader_num_workers "$WORKERS" --max_train_steps 1000000
        --checkpointing_steps "$EVERY" --checkpoints_total_limit 1 --validation_steps "$EVERY" --seed 0)
new_idm() {  # HARD_STOP_S MINUTES
  timeout "$1" "$PYTHON" -W ignore::DeprecationWarning train/train_idm.py "${COMMON[@]}" --max_train_minutes "$2" \
    --unet_overrides "$IDM_UNET" --prediction_type residual --sigma_data 0.19 --loss l1 --clean_prob 0.2 \
    --learning_rate 5e-4 --lr_scheduler cosine_by_clock --lr_warmup_steps 200 \
    --train_batch_size "$IDM_BATCH" --sampling_steps 2 --eval_sampling_steps "${EVAL_STEPS[@]}" --eval_batch_size 50 \
    --output_dir "$WORK/idm256" > "$WORK/logs/train_idm.log" 2>&1
}
stage() {  # HARD_STOP_S MINUTES FROM: stage 9's options (train/train_default.sh) on whole faces, decayed over the minutes
  local from=$3
  if [[ $FINETUNE_DEEPEN == 1 ]]; then
    "$PYTHON" -W ignore train/deepen_unet.py "$from" "$WORK/deeper_start" || return 1
    from=$WORK/deeper_start
  fi
  timeout "$1" "$PYTHON" -W ignore::DeprecationWarning train/train_idm.py "${COMMON[@]}" --max_train_minutes "$2" \
    --pretrained_model_name_or_path "$from" --loss l1 --clean_prob 0.2 --detail_weight "$FINETUNE_DETAIL" --ssim_weight "$FINETUNE_SSIM" \
    "${FINETUNE_SAMPLING[@]}" \
    --learning_rate "$FINETUNE_LR" --lr_scheduler cosine_by_clock --lr_warmup_steps 0 --train_batch_size "$IDM_BATCH" \
    --sampling_steps 2 --eval_sampling_steps 1 2 --eval_batch_size 50 \
    --output_dir "$WORK/idm256ft" > "$WORK/logs/train_idm_finetune.log" 2>&1
}
declare -A PIDS
if [[ $FINETUNE_FROM == idm ]]; then
  # the new IDM, then the stage from it, one after the other: the stage gets FACEREST_GPU_FINETUNE_MINUTES (default a
  # quarter) of the minutes, less half a minute for the IDM's scores and the stage's start
  [[ $RUNS == *" idm "* && $RUNS == *" finetune "* ]] || { echo "FACEREST_GPU_FINETUNE_FROM=idm needs idm and finetune in FACEREST_GPU_RUNS"; exit 1; }
  STAGE_MINUTES=${FACEREST_GPU_FINETUNE_MINUTES:-$("$PYTHON" -c "print(round($MINUTES / 4, 2))")}
  IDM_MINUTES=$("$PYTHON" -c "print(round(max(0.25, $MINUTES - $STAGE_MINUTES - 0.5), 2))")
  echo "the new IDM for $IDM_MINUTES minutes, then the stage from it for $STAGE_MINUTES"
  { chain_start=$SECONDS; new_idm "$HARD_STOP" "$IDM_MINUTES" \
      && stage $((HARD_STOP - (SECONDS - chain_start))) "$STAGE_MINUTES" "$WORK/idm256"; } &
  PIDS[idm+finetune]=$!
elif [[ $RUNS == *" idm "* ]]; then
  new_idm "$HARD_STOP" "$MINUTES" &
  PIDS[idm]=$!
fi
if [[ $RUNS == *" gfpgan "* ]]; then
  timeout "$HARD_STOP" "$PYTHON" -W ignore::DeprecationWarning train/train_gfpgan.py "${COMMON[@]}" --max_train_minutes "$MINUTES" \
    "${GAN_SHAPE[@]}" --channel_multiplier 1 \
    --perceptual_weight 0 --style_weight 0 --identity_weight 0 --l1_weight 1 --component_gan_weight 0 --component_style_weight 0 \
    --learning_rate 2e-4 --component_learning_rate 2e-4 --train_batch_size "$GAN_BATCH" \
    --output_dir "$WORK/gfpgan256" > "$WORK/logs/train_gfpgan.log" 2>&1 &
  PIDS[gfpgan]=$!
fi
if [[ $RUNS == *" finetune "* && $FINETUNE_FROM != idm ]]; then
  stage "$HARD_STOP" "$MINUTES" "$FINETUNE_FROM" &
  PIDS[finetune]=$!
fi
FAILED=()
for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" || FAILED+=("$name (exit status $?)"); done
for log in "$WORK"/logs/train_*.log; do echo "-- $(basename "$log"), last lines"; tail -n 15 "$log" | cut -c1-300; done
echo "trained:${RUNS% }; failed: ${FAILED[*]:-none}"

echo "== e. packing ($((SECONDS - START)) s)"
"$PYTHON" -W ignore - "$WORK" <<'EOF'
import shutil, sys
from pathlib import Path

import torch

from facerest import FaceRestorePipeline

work = Path(sys.argv[1])
for name in ("idm256", "gfpgan256", "idm256ft"):
    source, target = work / name, work / "pack" / name
    if not (source / "model_index.json").is_file():
        print(f"{name}: no saved pipeline")
        continue
    FaceRestorePipeline.from_pretrained(source).to(torch.float16).save_pretrained(target)
    for pattern in ("training_summary.json", "logs/**/*", "validation/*.png", "samples/*.png", "eval/**/metrics.json", "testset/metrics.json"):
        for path in source.glob(pattern):
            if path.is_file():
                (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / path.relative_to(source))
    print(f"{name}: packed, {sum(p.stat().st_size for p in target.rglob('*.safetensors')) / 2**20:.1f} MiB of fp16 weights")
EOF
cp -r "$WORK/logs" "$WORK/pack/"
tar -C "$WORK/pack" -cf - . | split -b 15m -d - "$OUT/results.tar.part-"
"$PYTHON" -W ignore - "$WORK" "$MINUTES" "$IDM_BATCH" "$GAN_BATCH" "$DEGRADATION" > "$OUT/summary.md" <<'EOF'
import json, re, sys
from pathlib import Path

work, minutes, degradation = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[5]
print(f"# GPU run: {minutes} minutes of training each, degradation on {degradation}\n")
for name, batch in (("idm256", int(sys.argv[3])), ("gfpgan256", int(sys.argv[4])), ("idm256ft", int(sys.argv[3]))):
    if not (work / name).is_dir():
        continue
    steps = [int(m.group(1)) for p in (work / name).glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    step = max(steps, default=0)
    print(f"- {name}: {step} steps of {batch} faces ({step * batch / (60 * minutes):.1f} faces/s over the minutes, start-up included)")
    for path in sorted((work / name).glob("eval/*/*/metrics.json")) + sorted((work / name).glob("testset/metrics.json")):
        print(f"  - {path.relative_to(work / name).parent}: {json.loads(path.read_text())}")
print()
EOF
cat "$OUT/degradation_throughput.md" >> "$OUT/summary.md" 2>/dev/null
cat "$OUT/summary.md"
ls -la "$OUT"
echo "== done in $((SECONDS - START)) s"
[[ ${#FAILED[@]} == 0 ]]
}

main 2>&1 | tee -a "$OUT/gpu_run.log"

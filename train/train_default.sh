#!/usr/bin/env bash
# The shipped default, models/default: an IDM that restores 256-px faces, trained on a 2-core CPU in nine stages.
# Run from the repository root after the README's set-up and
#   .venv/bin/python -m facerest make-testset ../shared/data/ffhq256/test runs/testset256 --resolution 256 --seed 0
# Each stage checkpoints every 250 steps: after a kill, run this script again with --resume_from_checkpoint latest
# (each stage resumes from its last checkpoint; a finished one only validates and saves its weights again).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
# A convolutional UNet (attention only in its middle block, at 1/8 of the face's size), so that it trains on 96-px
# windows and restores whole 256-px faces.
UNET='{"block_out_channels":[32,64,128,128],"norm_num_groups":16,"layers_per_block":1,"down_block_types":["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D"]}'
SAMPLING_STEPS=${SAMPLING_STEPS:-2}  # the default step count saved with the model (README, "Results at 256 px")
EXTRA=("$@")  # options given to this script reach every stage (e.g. --resume_from_checkpoint latest)

# Stage 1: constant learning rate 1e-3 (about 80 min on 2 shared cores).
OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --unet_overrides "$UNET" --prediction_type residual --sigma_data 0.19 --loss l1 \
  --learning_rate 1e-3 --lr_warmup_steps 100 --train_batch_size 8 --max_train_steps 2750 \
  --dataloader_num_workers 1 --sampling_steps 10 --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 --mixed_precision no --seed 0 \
  --output_dir runs/idm256 "${EXTRA[@]}"

# Stages 2-9 fine-tune the previous stage's EMA weights on new degradation draws (a seed each), the learning rate
# decayed to 0 by a cosine: fine_tune FROM OUTPUT_DIR SEED STEPS LEARNING_RATE [the stage's own train_idm.py options].
fine_tune() {
  local from=$1 output_dir=$2 seed=$3 steps=$4 learning_rate=$5
  shift 5
  OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
    --pretrained_model_name_or_path "$from" --loss l1 "$@" \
    --learning_rate "$learning_rate" --lr_scheduler cosine --lr_warmup_steps 0 --train_batch_size 8 --max_train_steps "$steps" \
    --dataloader_num_workers 1 --sampling_steps "$SAMPLING_STEPS" --num_validation_images 4 \
    --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps "$steps" --mixed_precision no --seed "$seed" \
    --output_dir "$output_dir" "${EXTRA[@]}"
}

# Stage 2: from stage 1's EMA weights (about 25 min).
fine_tune runs/idm256 runs/idm256ft 1 1000 5e-4

# Stages 3 and 4: clean pairs, one face in ten and then one in five left undegraded, so that a face that needs nothing
# is kept (stages 1-2 learnt to undo the degradation's brightness and colour jitter, and so darkened clean bright
# faces); about 50 and 24 min.
fine_tune runs/idm256ft runs/idm256clean 2 1500 5e-4 --clean_prob 0.1
fine_tune runs/idm256clean runs/idm256clean2 3 1000 3e-4 --clean_prob 0.2

# Stage 5: the detail term (--detail_weight 2: the local gradient energy the estimate of the clean face lacks against
# it, IDMDenoiser.loss), so that two steps do not average texture away; still one face in five clean (about 22 min).
fine_tune runs/idm256clean2 runs/idm256detail 4 1000 2e-4 --clean_prob 0.2 --detail_weight 2

# Stage 6: 128-px windows (more of the face around each pixel, 1.8x the pixels per step), the learning rate 1e-4
# decayed to 0 (75 min while other jobs shared the cores). The option given last wins:
# --crop_size 128 over fine_tune's 96.
fine_tune runs/idm256detail runs/idm256c128 5 1500 1e-4 --clean_prob 0.2 --detail_weight 2 --crop_size 128

# Stage 7: the SSIM term (--ssim_weight 2: 1 - the SSIM of the estimate of the clean face against it, the evaluation's
# SSIM made differentiable, IDMDenoiser.loss), 2,802 steps on 128-px windows from stage 6, the learning rate 1e-4
# decayed to 0. The run that made it decayed the rate over 100 minutes of wall time instead (--lr_scheduler
# cosine_by_clock --max_train_minutes 100, stopped at step 2,802; 2.1 s per step); at its steady step time that is this
# schedule.
fine_tune runs/idm256c128 runs/idm256ssim 17 2802 1e-4 --clean_prob 0.2 --detail_weight 2 --crop_size 128 --ssim_weight 2

# Stage 8: stage 7's options trained at the timesteps the default samples (999 and 499 for SAMPLING_STEPS=2) instead
# of all 1,000, so that the small UNet spends itself on the only noise levels it is called at; 2,808 steps from stage
# 7, the learning rate 1e-4 decayed to 0. The run that made it decayed the rate over 95 minutes of wall time
# (--lr_scheduler cosine_by_clock --max_train_minutes 95, stopped at step 2,808; 2.0 s per step).
fine_tune runs/idm256ssim runs/idm256ssimspec2 19 2808 1e-4 --clean_prob 0.2 --detail_weight 2 --crop_size 128 --ssim_weight 2 \
  --train_at_sampling_steps "$SAMPLING_STEPS"

# Stage 9: stage 8's terms on what two-step sampling restores (--train_through_sampling_steps: the two DDIM steps run
# with gradients through both, the last step trained on the estimate the first step makes rather than on the clean face
# noised); 1,450 steps from stage 8 at twice the cost of a step, the learning rate 1e-4 decayed to 0 (its output is
# models/default). The run that made it decayed the rate over 100 minutes of wall time (--lr_scheduler cosine_by_clock
# --max_train_minutes 100, stopped at step 1,450; 4.1 s per step).
fine_tune runs/idm256ssimspec2 runs/idm256chain 31 1450 1e-4 --clean_prob 0.2 --detail_weight 2 --crop_size 128 --ssim_weight 2 \
  --train_through_sampling_steps "$SAMPLING_STEPS"

#!/usr/bin/env bash
# The shipped default, models/default: an IDM that restores 256-px faces, trained on a 2-core CPU in five stages.
# Run from the repository root after the README's set-up and
#   .venv/bin/python -m facerest make-testset ../shared/data/ffhq256/test runs/testset256 --resolution 256 --seed 0
# Each stage checkpoints every 250 steps: after a kill, run the same line with --resume_from_checkpoint latest.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
# A fully convolutional UNet (no attention), so that it trains on 96-px windows and restores whole 256-px faces.
UNET='{"block_out_channels":[32,64,128,128],"norm_num_groups":16,"layers_per_block":1,"down_block_types":["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D","UpBlock2D","UpBlock2D"]}'
SAMPLING_STEPS=${SAMPLING_STEPS:-2}  # the default step count saved with the model (README, "Results at 256 px")

# Stage 1: constant learning rate 1e-3 (about 80 min on 2 shared cores).
OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --unet_overrides "$UNET" --prediction_type residual --sigma_data 0.19 --loss l1 \
  --learning_rate 1e-3 --lr_warmup_steps 100 --train_batch_size 8 --max_train_steps 2750 \
  --dataloader_num_workers 1 --sampling_steps 10 --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 --mixed_precision no --seed 0 \
  --output_dir runs/idm256 "$@"

# Stage 2: from stage 1's EMA weights, new degradation draws (seed 1), the learning rate decayed to 0 (about 25 min).
OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --pretrained_model_name_or_path runs/idm256 --loss l1 \
  --learning_rate 5e-4 --lr_scheduler cosine --lr_warmup_steps 0 --train_batch_size 8 --max_train_steps 1000 \
  --dataloader_num_workers 1 --sampling_steps "$SAMPLING_STEPS" --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 --mixed_precision no --seed 1 \
  --output_dir runs/idm256ft "$@"

# Stages 3 and 4: clean pairs, one face in ten and then one in five left undegraded, so that a face that needs nothing
# is kept (stages 1-2 learnt to undo the degradation's brightness and colour jitter, and so darkened clean bright
# faces); new draws (seeds 2 and 3), the learning rate decayed to 0 in each (about 50 and 24 min).
OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --pretrained_model_name_or_path runs/idm256ft --loss l1 --clean_prob 0.1 \
  --learning_rate 5e-4 --lr_scheduler cosine --lr_warmup_steps 0 --train_batch_size 8 --max_train_steps 1500 \
  --dataloader_num_workers 1 --sampling_steps "$SAMPLING_STEPS" --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1500 --mixed_precision no --seed 2 \
  --output_dir runs/idm256clean "$@"

OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --pretrained_model_name_or_path runs/idm256clean --loss l1 --clean_prob 0.2 \
  --learning_rate 3e-4 --lr_scheduler cosine --lr_warmup_steps 0 --train_batch_size 8 --max_train_steps 1000 \
  --dataloader_num_workers 1 --sampling_steps "$SAMPLING_STEPS" --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 --mixed_precision no --seed 3 \
  --output_dir runs/idm256clean2 "$@"

# Stage 5: the detail term (--detail_weight 2: the local gradient energy the estimate of the clean face lacks against
# it, IDMDenoiser.loss), so that two steps do not average texture away; still one face in five clean, new draws
# (seed 4), the learning rate decayed to 0 (about 22 min).
OMP_NUM_THREADS=2 $PYTHON train/train_idm.py --train_data_dir ../shared/data/ffhq256/train --resolution 256 --crop_size 96 \
  --pretrained_model_name_or_path runs/idm256clean2 --loss l1 --clean_prob 0.2 --detail_weight 2 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 0 --train_batch_size 8 --max_train_steps 1000 \
  --dataloader_num_workers 1 --sampling_steps "$SAMPLING_STEPS" --num_validation_images 4 \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 --mixed_precision no --seed 4 \
  --output_dir runs/idm256detail "$@"

#!/usr/bin/env bash
# The initialisation A/B arms, one after another (each resumes from runs/ab_<arm>/last.pt when cut).
# Each arm is configs/ab/deeplab.yaml with one change (frozen7_encoder_lr_0.1 combines two winners;
# deeplab_seed1 repeats the first arm with another seed, for the spread between seeds); run a subset by naming them:
#   bash configs/ab/arms.sh imagenet frozen7
set -euo pipefail
MNV2=../shared/models/mobilenetv2
declare -A ARMS=(
  [deeplab]=""
  [imagenet]="backbone_weights=[$MNV2/mobilenet_v2_1.0_224_quant.tflite]"
  [frozen7]="freeze_backbone_blocks=7"
  [encoder_lr_0.1]="backbone_lr_scale=0.1"
  [frozen_bn]="freeze_backbone_bn=true"
  [no_distractor_samples]="object_prob=0 negative_prob=0 busy_background_prob=0"
  [frozen7_encoder_lr_0.1]="freeze_backbone_blocks=7 backbone_lr_scale=0.1"
  [deeplab_seed1]="seed=1"
  [no_object_pastes]="object_prob=0"
)
ORDER=(deeplab imagenet frozen7 encoder_lr_0.1 frozen_bn no_distractor_samples frozen7_encoder_lr_0.1 deeplab_seed1
       no_object_pastes)
for arm in "${@:-${ORDER[@]}}"; do
  [[ -v "ARMS[$arm]" ]] || { echo "unknown arm: $arm (one of: ${ORDER[*]})" >&2; exit 2; }
  # shellcheck disable=SC2086  # the overrides are separate words
  modnet train --config configs/ab/deeplab.yaml "name=ab_$arm" ${ARMS[$arm]}
done

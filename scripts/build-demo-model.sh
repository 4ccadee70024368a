#!/usr/bin/env bash
# Rebuild the demonstration bundle models/cadr-demo/ from nothing.
#
# Steps: generate three disjoint sets of schematic lesion images (training, validation,
# test; seeds 101, 202, 303), train the classifier with cadr-train, convert it with
# cadr-convert --int8 (threshold for 0.90 sensitivity on the validation set), then score
# float and int8 models on the test set that neither training nor the threshold saw.
# The bundle also carries the IMX500 network (packerOut.zip) for the Raspberry Pi AI
# Camera, so `make imx500-toolchain` must have run first.
# The training images are not kept in the repository; this script makes them again.
#
# Usage: scripts/build-demo-model.sh [WORK_DIR] [BUNDLE_DIR]
#   WORK_DIR    images, model and metrics (default build/cadr-demo)
#   BUNDLE_DIR  the bundle to write (default models/cadr-demo; replaced if present)
# Environment: BIN, the folder holding the cadr-* commands and python (default .venv/bin).
#
# Takes about 20 minutes on two x86-64 cores. See models/README.md for what is
# reproduced bit for bit and what only within tolerance.
set -euo pipefail

cd "$(dirname "$0")/.."
WORK_DIR=${1:-build/cadr-demo}
BUNDLE_DIR=${2:-models/cadr-demo}
BIN=${BIN:-.venv/bin}

IMAGE_SIZE=256
TRAIN_PER_CLASS=1000
EVAL_PER_CLASS=300
INPUT_SIZE=128
CROP_FRACTION=0.8
TRAIN_SEED=7
INTENDED_USE="Demonstration of the cadr pipeline only, trained on generated schematic drawings; not for clinical use."

mkdir -p "$WORK_DIR"

echo "== generating images into $WORK_DIR/data" >&2
"$BIN/cadr-lesions" --out "$WORK_DIR/data/train" --count "$TRAIN_PER_CLASS" --seed 101 \
    --size "$IMAGE_SIZE" --jobs 2
"$BIN/cadr-lesions" --out "$WORK_DIR/data/val" --count "$EVAL_PER_CLASS" --seed 202 \
    --size "$IMAGE_SIZE" --jobs 2
"$BIN/cadr-lesions" --out "$WORK_DIR/data/test" --count "$EVAL_PER_CLASS" --seed 303 \
    --size "$IMAGE_SIZE" --jobs 2

echo "== training" >&2
"$BIN/cadr-train" --data "$WORK_DIR/data/train" --val "$WORK_DIR/data/val" \
    --out "$WORK_DIR/model/cadr-demo.keras" --input-size "$INPUT_SIZE" \
    --crop-fraction "$CROP_FRACTION" --architecture separable --alpha 1.0 \
    --epochs 8 --patience 4 --batch-size 32 --learning-rate 0.002 --label-smoothing 0.1 \
    --seed "$TRAIN_SEED"

echo "== converting to $BUNDLE_DIR" >&2
"$BIN/cadr-convert" --int8 "$WORK_DIR/model/cadr-demo.keras" \
    --calibration "$WORK_DIR/data/train" --validation "$WORK_DIR/data/val" \
    --out "$BUNDLE_DIR" --force \
    --signing-key models/keys/cadr-demo-signing-key.pem --demonstration-only \
    --name cadr-demo --version 1.1.0 --intended-use "$INTENDED_USE" \
    --crop-fraction "$CROP_FRACTION" --resample bilinear \
    --calibration-count 300 --seed 0 --target-sensitivity 0.90 --target imx500

echo "== scoring float and int8 models on the test set" >&2
"$BIN/python" -m cadr_convert.train.evaluate --model "$WORK_DIR/model/cadr-demo.keras" \
    --bundle "$BUNDLE_DIR" --data "$WORK_DIR/data/test" --out "$WORK_DIR/test-metrics.json"
cp "$WORK_DIR/model/cadr-train.json" "$WORK_DIR/cadr-train.json"

echo "== writing the README sample images into samples/" >&2
"$BIN/cadr-lesions" --out "$WORK_DIR/samples" --count 4 --seed 2026 --size "$IMAGE_SIZE" --jobs 1
for label in non_severe severe; do
    for index in 0 1 2 3; do
        cp "$WORK_DIR/samples/$label/${label}_0000$index.jpg" "samples/${label}_$((index + 1)).jpg"
    done
done

echo "== done: bundle $BUNDLE_DIR, metrics $WORK_DIR/test-metrics.json" >&2

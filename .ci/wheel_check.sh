#!/usr/bin/env bash
# Installed as users install: build the sdist and the wheel, install the wheel into a brand-new virtual
# environment outside the source tree, and run the commands a new user runs first. Prints the wheel's size
# (README states it). Called by .ci/run after the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip install -q build
python -m build --sdist --wheel --outdir "$work/dist" . > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/*.whl)"
echo "wheel: $(basename "$wheel") $(du -k "$wheel" | cut -f1) KiB; sdist: $(du -k "$work"/dist/*.tar.gz | cut -f1) KiB"
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
needed = ["modnet_matting/weights_data/modnet_people.safetensors", "modnet_matting/weights_data/modnet_people.int8.xml",
          "modnet_matting/weights_data/modnet_people.int8.bin", "modnet_matting/assets/grace_hopper.jpg",
          "modnet_matting/server/static/index.html", "modnet_matting/deploy/web_static/browser.js"]
missing = [n for n in needed if n not in names]
sys.exit(f"the wheel lacks {missing}" if missing else 0)
PY

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q torch==2.13.0
"$work/venv/bin/python" -m pip install -q -c "$repo/constraints.txt" "$wheel"
cd "$work"  # no source tree on the path: only what the wheel installed
photo="$("$work/venv/bin/python" -c 'import modnet_matting, pathlib; print(pathlib.Path(modnet_matting.__file__).parent / "assets" / "grace_hopper.jpg")')"
case "$photo" in "$repo"*) echo "the package was imported from the source tree" >&2; exit 1;; esac
"$work/venv/bin/modnet" weights list
"$work/venv/bin/modnet" matte "$photo" -o "$work/out" --output alpha,cutout,composite,preview
test -s "$work/out/grace_hopper.alpha.png" && test -s "$work/out/grace_hopper.cutout.png"
echo "the wheel installs and mattes the bundled photo in a new environment"

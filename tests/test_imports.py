"""What importing costs: the CLI's parser needs no numerical library, the library no optional runtime."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "numpy", "cv2", "PIL", "onnxruntime", "openvino", "onnx", "fastapi", "av")


def _modules_after(code: str) -> set[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_command_line_parser_imports_nothing_heavy() -> None:
    """`modnet --help`, `modnet weights list` and argument errors took 2.6 s of torch imports."""
    loaded = _modules_after(
        "from modnet_matting.cli.main import build_parser, main\n"
        "build_parser()\n"
        "main(['weights', 'list'])"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_the_library_imports_no_optional_runtime() -> None:
    loaded = _modules_after("import modnet_matting\nfrom modnet_matting import inference, load_model, CheckpointError")
    assert not loaded & {"onnxruntime", "openvino", "onnx", "fastapi", "av", "torch"}

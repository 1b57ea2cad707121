import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "models" / "resnet8_cifar10.onnx").is_file():
        pytest.skip(
            f"../shared not found at {SHARED} (real models and data live there; a fresh clone has none)"
        )
    return SHARED


def in_ci() -> bool:
    return bool(os.environ.get("CI"))

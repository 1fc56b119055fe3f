"""Modal's CPU memory snapshot is taken without a GPU: the modules imported before it
(hosting/snapshot_imports.py) must not ask CUDA anything, or the restored process believes it
has no GPU for the rest of its life (Modal's memory snapshot guide, "Known limitations")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pictale_server.hosting.snapshot_imports import MODEL_MODULES, snapshot_modules

SERVER_DIR = Path(__file__).resolve().parents[1]

# Every torch.cuda entry point that initializes CUDA or counts devices, made to fail; then the
# snapshot's imports, in a fresh interpreter.
SCRIPT = """
import json, sys
import torch

def asked(*args, **kwargs):
    raise RuntimeError("CUDA was asked before the snapshot")

for name in ("is_available", "device_count", "init", "_lazy_init", "current_device",
             "get_device_capability", "get_device_properties", "get_device_name", "mem_get_info"):
    setattr(torch.cuda, name, asked)

from pictale_server.hosting.snapshot_imports import import_for_snapshot
names = import_for_snapshot()
print(json.dumps({"imported": len(names), "bitsandbytes": "bitsandbytes" in sys.modules}))
"""


def test_the_snapshot_phase_imports_everything_without_asking_cuda():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=SERVER_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported"] == len(snapshot_modules())
    assert result["bitsandbytes"] is False  # it asks CUDA when imported: the load imports it


def test_the_snapshot_holds_the_whole_package_and_both_architectures():
    names = snapshot_modules()
    for expected in (
        "pictale_server.app",
        "pictale_server.engine.loader",
        "pictale_server.engine.transformers_engine",
        "pictale_server.kernels.decode_ops",
        "pictale_server.safety.gate",
        *MODEL_MODULES,
    ):
        assert expected in names
    assert "pictale_server.__main__" not in names  # it starts a server when imported

"""What Modal's memory snapshot of the GPU container holds: the server's modules, imported
before the snapshot is taken, while no GPU is there.

Under a CPU memory snapshot the phase before it has no GPU, and the first CUDA query made there
(`torch.cuda.is_available()`, `get_device_capability()`) leaves the restored process believing it
has none. So this imports every module of the package and the transformers modules of the two
model architectures, none of which asks CUDA anything at import; bitsandbytes, which does, is
imported by the load, after the restore. server/tests/test_snapshot_imports.py imports them all
with every CUDA query made to fail.
"""

from __future__ import annotations

import importlib
import pkgutil

import pictale_server

# The architectures of the reference models (engine/reference_configs/), loaded lazily by
# transformers otherwise.
MODEL_MODULES = (
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl",
    "transformers.models.mistral.modeling_mistral",
)
# Entry points that run something when imported.
SKIPPED = ("pictale_server.__main__",)


def snapshot_modules() -> list[str]:
    package = [
        module.name
        for module in pkgutil.walk_packages(pictale_server.__path__, "pictale_server.")
        if module.name not in SKIPPED
    ]
    return [*package, *MODEL_MODULES]


def import_for_snapshot() -> list[str]:
    """Import everything `snapshot_modules` names; returns the names."""
    names = snapshot_modules()
    for name in names:
        importlib.import_module(name)
    return names

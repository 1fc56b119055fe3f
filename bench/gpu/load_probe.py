"""What a cold engine load spends its time on: every Triton compilation (kernel and constants),
every Triton launcher build (a C compiler run per kernel signature) and NVRTC build, timed.

Loads the dev-profile engine (tiny models of the real architectures; same kernels, other
shapes) on the GPU in a fresh process with an empty Triton cache, once per setting of
PICTALE_DEPENDENT_LAUNCH, so the two cold loads compare.

    python3 bench/gpu/load_probe.py          # writes $OUT/load_probe.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def probe() -> dict:
    sys.path[:0] = [str(ROOT / "server")]
    import triton.compiler
    import triton.runtime.build

    from pictale_server.engine.loader import load_engine
    from pictale_server.settings import Settings

    compiles: list = []
    builds: list = []
    original_compile, original_build = triton.compiler.compile, triton.runtime.build._build

    def compile(src, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_compile(src, *args, **kwargs)
        finally:
            constants = {str(k): v for k, v in getattr(src, "constants", {}).items() if not callable(v)}
            compiles.append([src.fn.__name__, round(time.perf_counter() - start, 3), repr(constants)[:300]])

    def build(name, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_build(name, *args, **kwargs)
        finally:
            builds.append([name, round(time.perf_counter() - start, 3)])

    triton.compiler.compile, triton.runtime.build._build = compile, build
    settings = Settings(profile="dev", cache_dir=Path(os.environ["PROBE_CACHE"]))
    engine = load_engine(settings)
    start = time.perf_counter()
    engine.load()
    return {
        "load_s": time.perf_counter() - start,
        "triton_compiles": len(compiles), "triton_compile_s": sum(c[1] for c in compiles),
        "launcher_builds": len(builds), "launcher_build_s": sum(b[1] for b in builds),
        "compiles": compiles, "builds": builds,
    }


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(probe()))
        return
    sys.path[:0] = [str(ROOT / "server")]
    from pictale_server.engine.dev.models import ensure_dev_models

    results = {}
    cache = tempfile.mkdtemp()
    ensure_dev_models(Path(cache))  # built once, outside the timed loads
    for setting in ("true", "false", "true"):
        env = dict(os.environ, PICTALE_DEPENDENT_LAUNCH=setting, TRITON_CACHE_DIR=tempfile.mkdtemp(), PROBE_CACHE=cache)
        proc = subprocess.run([sys.executable, __file__, "probe"], env=env, capture_output=True, text=True)
        key = f"dependent_{setting}" if f"dependent_{setting}" not in results else f"dependent_{setting}_again"
        results[key] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else proc.stderr[-3000:]
    out = Path(os.environ.get("OUT", ".")) / "load_probe.json"
    out.write_text(json.dumps(results, indent=1))
    for key, value in results.items():
        print(key, {k: v for k, v in value.items() if k not in ("compiles", "builds")} if isinstance(value, dict) else value)


if __name__ == "__main__":
    main()

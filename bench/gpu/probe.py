"""Environment probe for the GPU machine: versions, copy bandwidth, bitsandbytes NF4 matmul."""

import json
import os
import shutil
import subprocess
import sys
import time

import torch

out = {}
out["python"] = sys.version.split()[0]
out["torch"] = torch.__version__
props = torch.cuda.get_device_properties(0)
out["device"] = props.name
out["total_gib"] = props.total_memory / 2**30
free, total = torch.cuda.mem_get_info()
out["context_gib"] = (total - free) / 2**30
for mod in ("transformers", "bitsandbytes", "triton", "accelerate", "flash_attn"):
    try:
        out[mod] = __import__(mod).__version__
    except Exception as exc:  # noqa: BLE001
        out[mod] = f"missing: {exc}"
out["disk_tmp_free_gib"] = shutil.disk_usage("/tmp").free / 2**30
out["shm_free_gib"] = shutil.disk_usage("/dev/shm").free / 2**30
out["cpus"] = os.cpu_count()

x = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
torch.cuda.synchronize()
t = time.perf_counter()
n = 20
for _ in range(n):
    y.copy_(x)
torch.cuda.synchronize()
dt = (time.perf_counter() - t) / n
out["copy_tb_s"] = 2 * x.numel() / dt / 1e12
del x, y

import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

w = torch.randn(14336, 5120, dtype=torch.bfloat16, device="cuda")
qw, state = F.quantize_4bit(w, quant_type="nf4", blocksize=64)
a = torch.randn(1, 5120, dtype=torch.bfloat16, device="cuda")
for _ in range(5):
    bnb.matmul_4bit(a, qw.t(), quant_state=state)
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(200):
    bnb.matmul_4bit(a, qw.t(), quant_state=state)
torch.cuda.synchronize()
dt = (time.perf_counter() - t) / 200
out["bnb_gemv_us_14336x5120"] = dt * 1e6
out["bnb_gemv_gb_s"] = (qw.numel() + state.absmax.numel() * 4) / dt / 1e9
print(json.dumps(out, indent=1))
os.makedirs(os.environ.get("OUT", "/tmp/out"), exist_ok=True)
json.dump(out, open(os.path.join(os.environ.get("OUT", "/tmp/out"), "probe.json"), "w"), indent=1)
print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm", "--format=csv"], capture_output=True, text=True).stdout)

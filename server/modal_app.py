"""pictale on Modal: image, volumes, secrets, the GPU server, its status endpoint, a smoke test.

    modal run --detach server/modal_app.py::prepare_weights   # once: NF4 checkpoints into the volume
    modal deploy server/modal_app.py                           # the HTTPS endpoints
    modal run server/modal_app.py::smoke                       # health + a streamed pipeline

docs/deploy.md walks through it from a new account; its table of settings is checked against
the values below by server/tests/test_modal_app.py. This is the only file that imports modal;
what it wires together (status records, the restart budget, the status endpoint, deploy-time
settings) is plain code in pictale_server/hosting/.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import modal
import modal.experimental

from pictale_server.hosting.deploy_settings import DeploySettings

APP_NAME = "pictale"
SERVER_DIR = Path(__file__).resolve().parent
REPO_DIR = SERVER_DIR.parent

# Deploy-time settings (docs/deploy.md, "Deploy-time settings"): PICTALE_GPU, PICTALE_MAX_CONTAINERS,
# PICTALE_PROXY_AUTH, PICTALE_GPU_SNAPSHOT, PICTALE_WRITER_STREAMS in the environment of `modal deploy`; a value that
# cannot work stops the deploy with DeploySettingError. The containers get them back (DEPLOY_ENV)
# so their own import of this file agrees.
DEPLOY = DeploySettings.from_env(os.environ)
DEPLOY_ENV = DEPLOY.as_env()

# --- Image ----------------------------------------------------------------------------------
# Exactly the server's own locks, the files its tests run against: the runtime lock, then the
# GPU lock (torch 2.13.0, which resolves to PyPI's CUDA build on Linux, bitsandbytes,
# accelerate). No flash-attn: no published wheel is known for torch 2.13, and building it from
# source takes an hour per image; the engine falls back to PyTorch SDPA, which has its own
# flash kernel (docs/deploy.md, "Attention kernel"). debian_slim has the C compiler Triton
# builds its kernel launchers with.
LOCK_FILES = (SERVER_DIR / "requirements.lock", SERVER_DIR / "requirements-gpu.lock")
PYTHON_VERSION = "3.11"
# The package ships data files (reference configs), so only caches are left out, not the
# default "everything but .py".
PACKAGE_IGNORE = ["**/__pycache__", "**/*.pyc"]

image = modal.Image.debian_slim(python_version=PYTHON_VERSION)
for lock_file in LOCK_FILES:
    image = image.pip_install_from_requirements(str(lock_file))
image = image.env({"HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"})
# Last, so code edits don't rebuild the layers above.
image = image.add_local_python_source("pictale_server", ignore=PACKAGE_IGNORE)

# The status endpoint's image: Python and the package, no locks. Its code (hosting/status_app.py
# and what that imports) is standard library only.
status_image = modal.Image.debian_slim(python_version=PYTHON_VERSION).add_local_python_source(
    "pictale_server", ignore=PACKAGE_IGNORE
)

app = modal.App(APP_NAME, image=image)

# --- Weights volume and secrets ---------------------------------------------------------------
WEIGHTS_VOLUME_NAME = "pictale-weights"
WEIGHTS_PATH = "/weights"
weights_volume = modal.Volume.from_name(WEIGHTS_VOLUME_NAME, create_if_missing=True)

# Triton's compiled kernels (the fused decode ops, attention, the sampler), kept across cold
# starts so a new container reads them back instead of compiling them. Written in the background
# by Modal's volume commits; entries are content-addressed, so containers that write the same
# kernel write the same bytes.
KERNEL_CACHE_VOLUME_NAME = "pictale-kernel-cache"
KERNEL_CACHE_PATH = "/kernel-cache"
kernel_cache_volume = modal.Volume.from_name(KERNEL_CACHE_VOLUME_NAME, create_if_missing=True)

# Modal's proxy auth in front of the API (on unless deployed with PICTALE_PROXY_AUTH=off):
# off serves clients that cannot send the Modal-Key/Modal-Secret headers (KoboldCpp clients,
# SillyTavern's Text Completion), with pictale's API keys as the only guard (docs/deploy.md).
PROXY_AUTH = DEPLOY.proxy_auth

# Runs' events and states, shared by the containers (runtime/run_store.py says why a Dict).
RUNS_DICT_NAME = "pictale-runs"
runs_dict = modal.Dict.from_name(RUNS_DICT_NAME, create_if_missing=True)

# Each GPU container's status record and the count of failed loads (hosting/container_status.py,
# hosting/restart_budget.py), read by the status endpoint. Both are kept per app id
# (deployed_app_id): a `modal serve` of this file in the same environment uses the same Dict.
STATE_DICT_NAME = "pictale-state"
state_dict = modal.Dict.from_name(STATE_DICT_NAME, create_if_missing=True)

HF_SECRET_NAME = "pictale-hf"
API_KEYS_SECRET_NAME = "pictale-api-keys"
hf_secret = modal.Secret.from_name(HF_SECRET_NAME, required_keys=["HF_TOKEN"])
api_keys_secret = modal.Secret.from_name(API_KEYS_SECRET_NAME, required_keys=["PICTALE_API_KEYS"])

# --- Preparing weights (once per model revision) -------------------------------------------
# bitsandbytes quantizes on the GPU; the same 24 GB card as serving holds one model in bf16
# shard by shard while it is turned into NF4.
PREPARE_GPU = "A10G"
PREPARE_TIMEOUT_S = 2 * 60 * 60
PREPARE_MEMORY_MIB = 32 * 1024

# Which models, read by pictale's Settings in both functions so they prepare and serve the same
# checkpoints (docs/deploy.md, "Swapping models").
MODEL_ENV = {"PICTALE_PROFILE": "reference", "PICTALE_WEIGHTS_DIR": WEIGHTS_PATH}


@app.function(
    gpu=PREPARE_GPU,
    volumes={WEIGHTS_PATH: weights_volume},
    secrets=[hf_secret],
    env=MODEL_ENV,
    timeout=PREPARE_TIMEOUT_S,
    memory=PREPARE_MEMORY_MIB,
)
def prepare_weights() -> list[str]:
    """Download both models at their configured revisions and save NF4 checkpoints to the volume."""
    from pictale_server.engine import prepare_weights as weights
    from pictale_server.settings import Settings

    settings = Settings()

    def report(result: weights.Prepared) -> None:
        weights_volume.commit()  # each finished model survives a later failure
        state = "already prepared" if result.skipped else "prepared"
        print(f"{result.source.role}: {result.source.repo_id}@{result.source.revision} {state}")

    results = weights.prepare(
        Path(WEIGHTS_PATH),
        weights.hub_models(settings),
        download=weights.hub_download,
        quantize=weights.quantize_nf4,
        on_prepared=report,
    )
    return [str(result.path) for result in results]


# --- The server ---------------------------------------------------------------------------------
GPU = DEPLOY.gpu  # A10G unless PICTALE_GPU says otherwise (docs/deploy.md, "Choosing the GPU")
SCALEDOWN_WINDOW_S = 10 * 60  # idle time before the container (and its GPU bill) stops
STARTUP_TIMEOUT_S = 5 * 60  # container start and imports (and, with GPU snapshots, the load)
REQUEST_TIMEOUT_S = 30 * 60  # one HTTP request, queue wait and a long story included
MIN_CONTAINERS = 0  # scale to zero; 1 keeps a GPU warm around the clock
MAX_CONTAINERS = DEPLOY.max_containers  # 1 unless PICTALE_MAX_CONTAINERS says otherwise
# Requests one container accepts: what its scheduler runs or queues (the writer's streams, the
# vision model's, PICTALE_QUEUE_DEPTH waiting for each model), and room for resumes, lookups,
# cancels and health. Modal starts another container (up to max_containers) once a container
# has more than TARGET_INPUTS: as many as it runs at once, before any has to queue.
QUEUE_DEPTH = 8  # the server's PICTALE_QUEUE_DEPTH default
TARGET_INPUTS = DEPLOY.writer_streams + DEPLOY.vision_streams
MAX_CONCURRENT_INPUTS = TARGET_INPUTS + 2 * QUEUE_DEPTH + 7
# Loaded models and captured graphs go into the snapshot only with PICTALE_GPU_SNAPSHOT=on
# (alpha; docs/deploy.md, "Cold starts"). Without it the snapshot holds the imports.
GPU_SNAPSHOT_OPTIONS = {"enable_gpu_snapshot": True} if DEPLOY.gpu_snapshot else None
# A failed load asks for this many fresh containers within the window, then stays up to report it.
LOAD_RESTARTS = 2
LOAD_RESTART_WINDOW_S = 60 * 60

# Everything is on the volume: serving never reaches for the Hub. The engine compiles two kinds
# of kernels: Triton's (the fused decode ops, attention, the sampler), cached here across cold
# starts, and the CUDA NF4 kernel, which NVRTC builds in well under a second and is not cached.
# Nothing uses torch.compile, so there is no inductor cache to keep.
SERVE_ENV = {
    **MODEL_ENV,
    **DEPLOY_ENV,
    "HF_HUB_OFFLINE": "1",
    "TRITON_CACHE_DIR": f"{KERNEL_CACHE_PATH}/triton",
}


@app.cls(
    gpu=GPU,
    volumes={
        WEIGHTS_PATH: weights_volume.with_mount_options(read_only=True),
        KERNEL_CACHE_PATH: kernel_cache_volume,
    },
    secrets=[api_keys_secret],
    env=SERVE_ENV,
    scaledown_window=SCALEDOWN_WINDOW_S,
    startup_timeout=STARTUP_TIMEOUT_S,
    timeout=REQUEST_TIMEOUT_S,
    min_containers=MIN_CONTAINERS,
    max_containers=MAX_CONTAINERS,
    enable_memory_snapshot=True,
    experimental_options=GPU_SNAPSHOT_OPTIONS,
)
@modal.concurrent(max_inputs=MAX_CONCURRENT_INPUTS, target_inputs=TARGET_INPUTS)
class Server:
    @modal.enter(snap=True)
    def prepare(self) -> None:
        """Before the memory snapshot: the imports (no GPU is there without GPU snapshots)."""
        import_server_modules()
        self.engine = load_before_snapshot() if DEPLOY.gpu_snapshot else None

    @modal.enter(snap=False)
    def start(self) -> None:
        """After the restore: the engine (unless the snapshot holds it), settings, status record."""
        from pictale_server.settings import Settings

        if self.engine is None:
            self.engine, _ = start_engine()
        self.settings = Settings()  # read here, not before the snapshot: the Secret's keys as of now
        self.watch, self.publisher = start_host(self.engine, deployed_app_id())

    @modal.asgi_app(requires_proxy_auth=PROXY_AUTH)
    def web(self):
        return build_web_app(self.engine, self.settings, load_hooks=self.watch.hooks())

    @modal.exit()
    def stop(self) -> None:
        self.publisher.stop()


# --- Status endpoint: CPU only, never starts the GPU class ------------------------------------
STATUS_MAX_CONTAINERS = 1  # one small CPU container answers every poll
STATUS_MAX_INPUTS = 100


@app.function(image=status_image, env=DEPLOY_ENV, max_containers=STATUS_MAX_CONTAINERS)
@modal.concurrent(max_inputs=STATUS_MAX_INPUTS)
@modal.asgi_app()
def status():
    """`cold | warming | ready | failed` from the GPU containers' records (hosting/status_app.py).
    Public, like the app's own /health: it answers one word, reveals no more and starts no GPU."""
    from pictale_server.hosting.container_status import Deployment
    from pictale_server.hosting.status_app import status_app

    deployment = Deployment(deployed_app_id(), restart_limit=LOAD_RESTARTS, restart_window_s=LOAD_RESTART_WINDOW_S)
    return status_app(read_state_items, deployment)


# --- Smoke test, run on your machine against the deployment -----------------------------------
SAMPLE_IMAGE = REPO_DIR / "examples" / "assets" / "sample.png"


@app.local_entrypoint()
def smoke(
    url: str = "", instruction: str = "Write a two-sentence bedtime story about this picture."
):
    """Health, then a streamed pipeline on the bundled sample picture, printed as it arrives."""
    base_url = (url or os.environ.get("PICTALE_BASE_URL") or deployed_url()).rstrip("/")
    headers = auth_headers(os.environ)
    try:
        print(f"GET {base_url}/health")
        print(http_json(f"{base_url}/health", headers))
        body = {"image": sample_image_data_url(), "instruction": instruction, "stream": True}
        print(f"POST {base_url}/v1/pipeline (stream)")
        for event, data in post_sse(f"{base_url}/v1/pipeline", body, headers):
            if event == "delta":
                print(data["text"], end="", flush=True)
            else:
                print(f"\n[{event}] {json.dumps(data)[:300]}", flush=True)
            if event == "error":
                raise SystemExit(1)
    except urllib.error.HTTPError as error:
        raise SystemExit(
            f"HTTP {error.code}: {error.read().decode(errors='replace')[:500]}"
        ) from None


# --- Plain helpers (no Modal objects; tests call them directly) -----------------------------------


def import_server_modules() -> None:
    """The snapshot phase's work: every server module, imported without asking CUDA anything."""
    from pictale_server.hosting.snapshot_imports import import_for_snapshot

    print(f"imported {len(import_for_snapshot())} modules for the memory snapshot")


def load_before_snapshot():
    """With GPU snapshots: the engine, loaded and warmed up, so the snapshot holds the models.

    A failed load here is logged and the engine returned unloaded: the snapshot then holds no
    models, and each restored container loads them the usual way (status events, `failed`,
    the restart budget). A failure must not end up inside the snapshot.
    """
    engine, _ = start_engine()
    try:
        engine.load()
    except Exception as exc:
        logging.getLogger("pictale.server").error(
            "loading before the GPU snapshot failed (%s); containers will load after restoring", exc
        )
        release_gpu_memory()
    return engine


def release_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def deployed_app_id() -> str:
    """The id (`ap-…`) of the app this container belongs to, which Modal sets before any
    @modal.enter runs. A redeploy keeps the id; `modal serve` and `modal run` run as other apps."""
    if app.app_id is None:
        raise RuntimeError("no app id: this runs only inside a container of the app")
    return app.app_id


def start_host(engine, app_id: str):
    """This container's status record (heartbeats until it stops) and the hooks that publish the
    load's outcome and, on a failure, ask Modal for a fresh container while the budget allows."""
    from pictale_server.hosting.container_status import KEY_PREFIX
    from pictale_server.hosting.load_watch import LoadWatch
    from pictale_server.hosting.restart_budget import RestartBudget
    from pictale_server.hosting.status_publisher import StatusPublisher

    publisher = StatusPublisher(state_dict, KEY_PREFIX + uuid.uuid4().hex[:16], app_id=app_id)
    budget = RestartBudget(state_dict, app_id=app_id, limit=LOAD_RESTARTS, window_s=LOAD_RESTART_WINDOW_S)
    watch = LoadWatch(publisher, budget, replace=modal.experimental.stop_fetching_inputs)
    loaded = engine.vision_loaded and engine.writer_loaded
    publisher.start("ready" if loaded else "loading")
    if loaded:  # restored with the models (GPU snapshot): no load will settle to say so
        watch.models_ready()
    return watch, publisher


async def read_state_items() -> list:
    """Every (key, value) of `pictale-state`, for the status endpoint: the containers' records and
    the count of failed loads, in one read."""
    return [(key, value) async for key, value in state_dict.items.aio()]


def start_engine():
    """Settings from the environment (API keys from the Secret) and the engine, not yet loaded.

    The app's lifespan loads it in a background thread (pictale_server/runtime/lifecycle.py) while the
    container already takes requests: one that caused a cold start gets its `run` event,
    `status: loading` events and pings at once instead of waiting at Modal's edge against the
    150 s web limit. Health says "loading" until the models are loaded and warmed up.
    """
    from pictale_server.engine.loader import load_engine
    from pictale_server.settings import Settings
    from pictale_server.engine.prepare_weights import missing_checkpoints

    settings = Settings()
    for model in missing_checkpoints(settings):
        where = f"{model.repo_id}@{model.revision} in {settings.weights_dir}"
        print(
            f"no prepared NF4 checkpoint for {where}: "
            "run `modal run server/modal_app.py::prepare_weights`"
        )
    return WarmStart(load_engine(settings)), settings


def build_web_app(engine, settings, load_hooks=None):
    """The app, with the run store its containers share: a resume or a run fetched by id can
    reach another container than the one running the job (runtime/run_store.py)."""
    from pictale_server.app import create_app
    from pictale_server.runtime.run_store import DictRunStore

    return create_app(engine, settings, run_store=DictRunStore(runs_dict), load_hooks=load_hooks)


def warm_up(engine) -> dict[str, int]:
    """A tiny describe and narrate, so kernels, caches and graphs exist before real traffic.

    Returns the tokens each model generated.
    """
    from PIL import Image

    from pictale_server.engine.base import Cancel, ChatMessage, Finished, Sampling

    sampling = Sampling(max_tokens=8, temperature=0.0)
    picture = Image.new("RGB", (112, 112), (200, 80, 60))
    ask = [ChatMessage(role="user", content="Describe this picture in one sentence.")]
    tell = [ChatMessage(role="user", content="Write one sentence about a red square.")]
    streams = {
        "vision": engine.stream_vision(picture, ask, sampling, Cancel()),
        "writer": engine.stream_writer(tell, sampling, Cancel()),
    }
    generated = {}
    for name, stream in streams.items():  # one after the other: generators start on first next()
        for chunk in stream:
            if isinstance(chunk, Finished):
                generated[name] = chunk.output_tokens
    print(f"warmed up: {generated}")
    return generated


class WarmStart:
    """Wraps an engine: `load()` also warms it up, and it reports itself loaded only after that.

    `load()` is idempotent and thread-safe; every other attribute is the wrapped engine's. The
    warm-up runs before the app's scheduler can send any job, so nothing races it for the GPU.
    """

    def __init__(self, engine, warm: Callable[[object], object] = warm_up) -> None:
        self._engine = engine
        self._warm = warm
        self._lock = threading.Lock()
        self._ready = False

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    @property
    def vision_loaded(self) -> bool:
        return self._ready and self._engine.vision_loaded

    @property
    def writer_loaded(self) -> bool:
        return self._ready and self._engine.writer_loaded

    def load(self) -> None:
        with self._lock:
            if not self._ready:
                self._engine.load()
                self._warm(self._engine)
                self._ready = True


def deployed_url() -> str:
    url = modal.Cls.from_name(APP_NAME, "Server")().web.get_web_url()
    if not url:
        raise SystemExit(f"no deployed web endpoint for {APP_NAME!r}: run `modal deploy` first")
    return url


def auth_headers(env) -> dict[str, str]:
    """Proxy-auth headers (MODAL_KEY/MODAL_SECRET) and the app's key (PICTALE_API_KEY): in
    x-api-key beside Modal's headers, so Authorization stays the edge's (docs/protocol.md)."""
    headers = {}
    proxy = bool(env.get("MODAL_KEY") and env.get("MODAL_SECRET"))
    if proxy:
        headers["Modal-Key"] = env["MODAL_KEY"]
        headers["Modal-Secret"] = env["MODAL_SECRET"]
    if env.get("PICTALE_API_KEY"):
        if proxy:
            headers["x-api-key"] = env["PICTALE_API_KEY"]
        else:
            headers["Authorization"] = f"Bearer {env['PICTALE_API_KEY']}"
    return headers


def sample_image_data_url() -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(SAMPLE_IMAGE.read_bytes()).decode()


def http_json(url: str, headers: dict[str, str]) -> dict:
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=600
    ) as answer:
        return json.load(answer)


def post_sse(url: str, body: dict, headers: dict[str, str]) -> Iterator[tuple[str, dict]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/json", "Accept": "text/event-stream"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        yield from parse_sse(line.decode("utf-8") for line in answer)


def parse_sse(lines) -> Iterator[tuple[str, dict]]:
    """(event, JSON data) pairs from SSE lines; comments (`: ping`) and ids are skipped."""
    event, data = "message", []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)

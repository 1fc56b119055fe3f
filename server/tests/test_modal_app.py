"""The Modal deployment, checked without a Modal account.

The recording of modal_app's recipe (tests/modal_recipe.py) is compared with docs/deploy.md,
the server's lock files and the installed modal's own signatures.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from pathlib import Path

import modal
import pytest

from pictale_server.settings import Settings
from fastapi.testclient import TestClient

from engine_fixtures import dev_cache_dir, dev_engine, dev_model_paths  # noqa: F401
from modal_recipe import DEPLOY_DOC, REPO_DIR, SERVER_DIR, FakeModalDict, deploy_table, one_call, recipe, record_import  # noqa: F401
from pictale_server.engine.base import Delta, Finished
from pictale_server.hosting.deploy_settings import DeploySettingError

GPU_PINS = {"torch": "2.13.0", "bitsandbytes": "0.50.2", "accelerate": "1.15.0"}


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", line.strip())
        if match:
            pins[match.group(1).split("[")[0].lower().replace("_", "-")] = match.group(2)
    return pins


def function_options(calls, *, gpu: bool) -> dict:
    """The App.function options of prepare_weights (gpu=True) or of the status endpoint."""
    found = [options for _, options in calls["App.function"] if ("gpu" in options) == gpu]
    assert len(found) == 1, found
    return found[0]


# --- the recipe -------------------------------------------------------------------------


def test_the_module_imports_and_defines_the_four_entry_points(recipe):
    module, _ = recipe
    assert isinstance(module.app, modal.App)
    assert isinstance(module.Server, modal.Cls)
    assert isinstance(module.prepare_weights, modal.Function)
    assert isinstance(module.status, modal.Function)
    assert isinstance(module.smoke, modal.app.LocalEntrypoint)


def test_server_class_matches_the_deploy_doc(recipe):
    module, calls = recipe
    table = deploy_table()
    _, options = one_call(calls, "App.cls")
    assert options["gpu"] == table["gpu"] == "A10G"
    assert options["scaledown_window"] == int(table["scaledown_window"])
    assert options["startup_timeout"] == int(table["startup_timeout"])
    assert options["timeout"] == int(table["timeout"])
    assert options["min_containers"] == int(table["min_containers"])
    assert options["max_containers"] == int(table["max_containers"])
    assert options["enable_memory_snapshot"] is True and table["enable_memory_snapshot"] == "True"
    assert options["experimental_options"] is None and table["gpu_snapshot"] == "off"
    assert module.LOAD_RESTARTS == int(table["load_restarts"])
    assert module.LOAD_RESTART_WINDOW_S == int(table["load_restart_window"])
    server, status = [kwargs for _, kwargs in calls["concurrent"]]  # in the file's order
    assert server == {"max_inputs": int(table["max_inputs"]), "target_inputs": int(table["target_inputs"])}
    # Room for what the server runs and queues: each model's streams, a full queue for each
    # model, and more besides.
    settings = Settings()
    assert module.QUEUE_DEPTH == settings.queue_depth
    runs_at_once = settings.writer_streams + settings.vision_streams
    runs_or_queues = runs_at_once + 2 * settings.queue_depth
    assert int(table["target_inputs"]) == runs_at_once < runs_or_queues < int(table["max_inputs"])
    assert status == {"max_inputs": module.STATUS_MAX_INPUTS}


def test_imports_go_into_the_memory_snapshot_and_the_gpu_is_met_after_the_restore(recipe):
    _, calls = recipe
    assert [kwargs for _, kwargs in calls["enter"]] == [{"snap": True}, {"snap": False}]
    assert len(calls["exit"]) == 1  # the status record is deleted when the container stops


def test_gpu_snapshots_are_an_opt_in_that_reaches_the_containers(monkeypatch):
    module, calls = record_import(monkeypatch, PICTALE_GPU_SNAPSHOT="on")
    _, options = one_call(calls, "App.cls")
    assert options["experimental_options"] == {"enable_gpu_snapshot": True}
    assert options["env"]["PICTALE_GPU_SNAPSHOT"] == "on"  # the container's import agrees
    inspect.signature(modal.App.cls).bind(module.app, **options)


def test_gpu_fallbacks_and_max_containers_are_deploy_time_settings(monkeypatch):
    module, calls = record_import(
        monkeypatch, PICTALE_GPU="a10g, L4", PICTALE_MAX_CONTAINERS="3", PICTALE_WRITER_STREAMS="16",
        PICTALE_VISION_STREAMS="2",
    )
    _, options = one_call(calls, "App.cls")
    assert options["gpu"] == ["A10G", "L4"]
    assert options["max_containers"] == 3
    server = [kwargs for _, kwargs in calls["concurrent"]][0]
    assert server == {"max_inputs": 18 + 16 + 7, "target_inputs": 18}  # sized from the streams
    assert options["env"]["PICTALE_WRITER_STREAMS"] == "16"  # the containers decode as many
    assert options["env"]["PICTALE_VISION_STREAMS"] == "2"
    inspect.signature(modal.App.cls).bind(module.app, **options)


@pytest.mark.parametrize(
    "env", [{"PICTALE_GPU": "T4"}, {"PICTALE_GPU": "A10G:2"}, {"PICTALE_MAX_CONTAINERS": "0"}, {"PICTALE_GPU_SNAPSHOT": "yes"}]
)
def test_a_deploy_time_setting_that_cannot_work_stops_the_deploy(monkeypatch, env):
    with pytest.raises(DeploySettingError):
        record_import(monkeypatch, **env)


def test_the_status_endpoint_runs_on_a_small_cpu_image_that_installs_nothing(recipe):
    module, calls = recipe
    table = deploy_table()
    options = function_options(calls, gpu=False)
    assert options["image"] is module.status_image
    assert options["max_containers"] == int(table["status_max_containers"]) == 1
    assert options["env"] == module.DEPLOY_ENV
    assert "volumes" not in options and "secrets" not in options
    assert module.STATE_DICT_NAME == table["state_dict"]
    dicts = {args[0]: kwargs for args, kwargs in calls["Dict.from_name"]}
    assert dicts == {"pictale-runs": {"create_if_missing": True}, "pictale-state": {"create_if_missing": True}}


def test_weights_volume_is_mounted_read_only_where_settings_look(recipe):
    module, calls = recipe
    table = deploy_table()
    volumes = {args[0]: kwargs for args, kwargs in calls["Volume.from_name"]}
    assert set(volumes) == {table["volume"], table["kernel_cache_volume"]}
    assert all(options.get("create_if_missing") is True for options in volumes.values())
    _, mount = one_call(calls, "Volume.with_mount_options")
    assert mount == {"read_only": True}
    _, options = one_call(calls, "App.cls")
    assert set(options["volumes"]) == {table["weights_path"], table["kernel_cache_path"]}
    assert table["weights_path"] == module.SERVE_ENV["PICTALE_WEIGHTS_DIR"]


def test_triton_keeps_its_compiled_kernels_on_the_writable_cache_volume(recipe):
    module, _ = recipe
    table = deploy_table()
    assert module.SERVE_ENV["TRITON_CACHE_DIR"].startswith(table["kernel_cache_path"] + "/")
    assert module.KERNEL_CACHE_VOLUME_NAME == table["kernel_cache_volume"]


def test_serving_is_offline_and_gets_only_the_api_key_secret(recipe):
    module, calls = recipe
    table = deploy_table()
    secrets = {args[0]: kwargs.get("required_keys") for args, kwargs in calls["Secret.from_name"]}
    assert secrets == {
        table["api_keys_secret"]: ["PICTALE_API_KEYS"],
        table["hf_secret"]: ["HF_TOKEN"],
    }
    _, options = one_call(calls, "App.cls")
    assert options["secrets"] == [module.api_keys_secret]
    assert options["env"]["HF_HUB_OFFLINE"] == "1"
    assert options["env"]["PICTALE_PROFILE"] == "reference"


def test_the_api_requires_proxy_auth_and_the_status_endpoint_is_public(recipe):
    _, calls = recipe
    assert [kwargs for _, kwargs in calls["asgi_app"]] == [{"requires_proxy_auth": True}, {}]


def test_proxy_auth_is_off_only_when_deployed_with_it_off(monkeypatch):
    for value, expected in (("off", False), ("OFF ", False), ("on", True), ("", True)):
        module, calls = record_import(monkeypatch, PICTALE_PROXY_AUTH=value)
        assert module.PROXY_AUTH is expected, value
        assert calls["asgi_app"][0][1] == {"requires_proxy_auth": expected}
    with pytest.raises(DeploySettingError, match="on or off"):
        record_import(monkeypatch, PICTALE_PROXY_AUTH="0")


def test_prepare_weights_has_a_gpu_the_hub_token_and_a_writable_volume(recipe):
    module, calls = recipe
    table = deploy_table()
    options = function_options(calls, gpu=True)
    assert options["gpu"] == table["prepare_gpu"]
    assert options["secrets"] == [module.hf_secret]
    assert options["volumes"] == {module.WEIGHTS_PATH: module.weights_volume}
    assert options["env"] == module.MODEL_ENV  # the same models and quantization as serving
    assert options["timeout"] == int(table["prepare_timeout"])


def test_every_option_is_accepted_by_the_installed_modal(recipe):
    module, calls = recipe
    for name, method in [("App.cls", modal.App.cls), ("App.function", modal.App.function)]:
        for _, options in calls[name]:
            inspect.signature(method).bind(module.app, **options)
    for name, decorator in [("concurrent", modal.concurrent), ("asgi_app", modal.asgi_app), ("enter", modal.enter), ("exit", modal.exit)]:
        for _, options in calls[name]:
            inspect.signature(decorator).bind(**options)
    assert callable(modal.experimental.stop_fetching_inputs)
    assert modal.__version__ == "1.6.4"


# --- the image: one source of truth for versions -----------------------------------------


def test_image_installs_the_server_locks_on_python_3_11(recipe):
    _, calls = recipe
    assert [kwargs for _, kwargs in calls["Image.debian_slim"]] == [{"python_version": "3.11"}] * 2  # server, status
    installed = [Path(args[1]) for args, _ in calls["Image.pip_install_from_requirements"]]
    assert installed == [SERVER_DIR / "requirements.lock", SERVER_DIR / "requirements-gpu.lock"]
    assert all(path.is_file() for path in installed)


def test_the_locks_pin_the_gpu_stack_and_nothing_else_installs_packages(recipe):
    module, calls = recipe
    pins = {}
    for path in module.LOCK_FILES:
        pins.update(lock_pins(path))
    assert {name: pins.get(name) for name in GPU_PINS} == GPU_PINS
    assert "modal" not in pins  # the deploy tool is not part of the server image
    assert "flash-attn" not in pins  # SDPA, as docs/deploy.md explains
    assert "Image.pip_install" not in calls and "Image.uv_pip_install" not in calls


def test_the_package_is_added_with_its_data_files_and_without_caches(recipe):
    module, calls = recipe
    (server_args, kwargs), (status_args, status_kwargs) = calls["Image.add_local_python_source"]
    assert server_args[1:] == status_args[1:] == ("pictale_server",) and kwargs == status_kwargs
    ignored = modal.FilePatternMatcher(*kwargs["ignore"])
    package = SERVER_DIR / "pictale_server"
    data_files = list(package.rglob("*.json"))
    assert data_files and not any(ignored(path.relative_to(SERVER_DIR)) for path in data_files)
    assert ignored(Path("pictale_server/engine/__pycache__/base.cpython-311.pyc"))


def test_deploy_doc_explains_the_attention_kernel_choice():
    text = DEPLOY_DOC.read_text()
    assert "## Attention kernel: PyTorch SDPA, not flash-attn" in text


# --- the served app -------------------------------------------------------------------------


class FakeEngine:
    profile = "reference"
    vision_id = "acme/vision"
    writer_id = "acme/writer"
    writer_admission = False
    vision_admission = False

    def __init__(self) -> None:
        self.release = threading.Event()
        self.loaded = False
        self.loads = 0
        self.calls: list[str] = []

    @property
    def vision_loaded(self) -> bool:
        return self.loaded

    @property
    def writer_loaded(self) -> bool:
        return self.loaded

    def load(self) -> None:
        self.loads += 1
        self.release.wait(10)
        self.loaded = True

    def decode_info(self, model: str) -> dict[str, str] | None:
        return {"path": "fast", "reason": ""} if self.loaded else None

    def stream_vision(self, image, messages, sampling, cancel):
        self.calls.append("vision")
        yield Delta("A red square.")
        yield Finished("stop", 3, 4)

    def stream_writer(self, messages, sampling, cancel):
        self.calls.append("writer")
        yield Delta("Once upon a time.")
        yield Finished("stop", 3, 5)

    def score_vision_options(self, image, messages, options):
        return [0.0 for _ in options]


def wait_until(condition, limit_s=10.0):
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def test_the_runs_dict_is_named_and_created_if_missing(recipe):
    module, _ = recipe
    assert module.RUNS_DICT_NAME == "pictale-runs"


def test_the_served_app_is_create_app_with_the_loading_engine(recipe, monkeypatch):
    module, _ = recipe
    engine = FakeEngine()
    monkeypatch.setattr("pictale_server.engine.loader.load_engine", lambda settings: engine)
    monkeypatch.setenv("PICTALE_API_KEYS", "key-one,key-two")
    monkeypatch.setenv("PICTALE_PROFILE", "reference")

    warm, settings = module.start_engine()
    assert settings.api_keys == ["key-one", "key-two"]
    monkeypatch.setattr(module, "runs_dict", FakeModalDict())  # no Modal account here
    with TestClient(module.build_web_app(warm, settings)) as client:
        health = client.get("/health").json()
        assert health["status"] == "loading" and health["profile"] == "reference"

        engine.release.set()
        wait_until(lambda: warm.writer_loaded)
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert health["models"]["writer"] == {"id": "acme/writer", "loaded": True, "decode": {"path": "fast", "reason": ""}}
        assert client.post("/v1/narrate", json={"instruction": "hi"}).status_code == 401
    assert engine.calls[:2] == ["vision", "writer"]  # the warm-up ran before anything else
    assert engine.loads == 1


# --- warm start -------------------------------------------------------------------------------


def test_warm_start_reports_loaded_only_after_the_warm_up(recipe):
    module, _ = recipe
    engine = FakeEngine()
    engine.release.set()
    seen_during_warm_up = []
    warm = module.WarmStart(
        engine, warm=lambda inner: seen_during_warm_up.append(warm.vision_loaded)
    )

    assert not warm.vision_loaded
    warm.load()
    warm.load()

    assert seen_during_warm_up == [False]
    assert warm.vision_loaded and warm.writer_loaded
    assert engine.loads == 1
    assert warm.writer_id == "acme/writer"  # everything else is the engine's


def test_concurrent_loads_wait_for_the_first(recipe):
    module, _ = recipe
    engine = FakeEngine()
    warm = module.WarmStart(engine, warm=module.warm_up)
    threads = [threading.Thread(target=warm.load) for _ in range(3)]
    for thread in threads:
        thread.start()
    engine.release.set()
    for thread in threads:
        thread.join(10)
    assert engine.loads == 1 and engine.calls == ["vision", "writer"]


def test_a_failed_load_reaches_the_caller_and_leaves_the_engine_unloaded(recipe):
    module, _ = recipe

    class Broken(FakeEngine):
        def load(self):
            raise FileNotFoundError("no checkpoint: run prepare_weights")

    warm = module.WarmStart(Broken())
    with pytest.raises(FileNotFoundError):
        warm.load()
    assert not warm.vision_loaded and not warm.writer_loaded


def test_start_engine_names_the_checkpoints_still_to_prepare(recipe, monkeypatch, tmp_path, capsys):
    module, _ = recipe
    monkeypatch.setattr("pictale_server.engine.loader.load_engine", lambda settings: FakeEngine())
    monkeypatch.setenv("PICTALE_PROFILE", "reference")
    monkeypatch.setenv("PICTALE_WEIGHTS_DIR", str(tmp_path))

    module.start_engine()

    out = capsys.readouterr().out
    assert out.count("no prepared NF4 checkpoint") == 2
    assert "modal run server/modal_app.py::prepare_weights" in out


# --- the smoke entrypoint's helpers -----------------------------------------------------------


def test_parse_sse_reads_the_contract_stream(recipe):
    module, _ = recipe
    text = (REPO_DIR / "tests" / "contract" / "streams" / "pipeline.sse").read_text()
    events = list(module.parse_sse(text.splitlines(keepends=True)))
    names = [name for name, _ in events]
    assert names[0] == "run" and names[-1] == "done"
    assert "delta" in names
    assert all(isinstance(data, dict) for _, data in events)


def test_parse_sse_skips_pings_and_joins_data_lines(recipe):
    module, _ = recipe
    lines = [": ping\n", "id: 1\n", "event: delta\n", 'data: {"text":\n', 'data: "hi"}\n', "\n"]
    assert list(module.parse_sse(lines)) == [("delta", {"text": "hi"})]


def test_auth_headers_keep_authorization_free_beside_proxy_credentials(recipe):
    module, _ = recipe
    env = {"MODAL_KEY": "wk-1", "MODAL_SECRET": "ws-2", "PICTALE_API_KEY": "k"}
    assert module.auth_headers(env) == {"Modal-Key": "wk-1", "Modal-Secret": "ws-2", "x-api-key": "k"}
    assert module.auth_headers({"PICTALE_API_KEY": "k"}) == {"Authorization": "Bearer k"}
    assert module.auth_headers({"MODAL_KEY": "wk-1"}) == {}


def test_smoke_sends_the_bundled_sample_picture(recipe):
    module, _ = recipe
    assert module.SAMPLE_IMAGE.stat().st_size < 100_000
    assert module.sample_image_data_url().startswith("data:image/png;base64,iVBORw0KGgo")


def test_post_sse_streams_from_a_live_server(recipe):
    module, _ = recipe
    body = b'event: run\ndata: {"id": "run_1"}\n\n: ping\n\nevent: done\ndata: {"id": "run_1"}\n\n'
    with _serve_once(body) as url:
        events = list(module.post_sse(url, {"instruction": "x"}, {"Authorization": "Bearer k"}))
    assert events == [("run", {"id": "run_1"}), ("done", {"id": "run_1"})]


class _serve_once:
    """A one-request HTTP server on localhost that answers with an SSE body."""

    def __init__(self, body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Accept"] == "text/event-stream"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.handle_request, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}/v1/pipeline"

    def __exit__(self, *exc) -> None:
        self.server.server_close()


# --- the guide's commands exist and take the arguments shown -------------------------------------


def deploy_doc_commands(program: str) -> list[list[str]]:
    """Command lines of `program` in the guide's bash blocks, with `$(…)` replaced by a value."""
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", DEPLOY_DOC.read_text(), re.DOTALL)
    commands = []
    for line in "\n".join(blocks).splitlines():
        line = re.sub(r'\$\(python -c "[^"]*"\)', "generated-key", line.strip())
        if line.startswith(program + " "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def test_every_modal_command_in_the_guide_parses_with_the_installed_cli(monkeypatch):
    from click.testing import CliRunner
    from modal.cli.entry_point import entrypoint_cli

    monkeypatch.chdir(REPO_DIR)  # the guide runs from the repository root
    commands = deploy_doc_commands("modal")
    shown = {" ".join([arg for arg in args if not arg.startswith("-")][:2]) for args in commands}
    assert {
        "setup",
        "secret create",
        "run server/modal_app.py::prepare_weights",
        "deploy server/modal_app.py",
        "workspace proxy-tokens",
        "run server/modal_app.py::smoke",
        "app logs",
        "app rollover",
    } <= shown
    assert ["run", "--detach", "server/modal_app.py::prepare_weights"] in commands  # a dropped laptop must not stop it
    assert ["deploy", "--strategy", "recreate", "server/modal_app.py"] in commands
    for args in commands:
        # --help stops before anything runs, after every option and function reference is checked
        result = CliRunner().invoke(entrypoint_cli, [*args, "--help"])
        assert result.exit_code == 0, f"modal {' '.join(args)}: {result.output}"


def test_the_guide_runs_an_npm_script_that_exists():
    scripts = json.loads((REPO_DIR / "package.json").read_text())["scripts"]
    commands = deploy_doc_commands("npm")
    assert ["run", "demo"] in commands
    for args in commands:
        assert args == ["install"] or (args[0] == "run" and args[1] in scripts), f"npm {args}"


def test_the_warm_up_runs_on_the_real_dev_engine(recipe, dev_engine):
    module, _ = recipe
    generated = module.warm_up(dev_engine)
    assert set(generated) == {"vision", "writer"}
    assert all(0 < tokens <= 8 for tokens in generated.values())

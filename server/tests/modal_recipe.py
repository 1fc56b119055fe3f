"""The Modal deployment's recipe, recorded without a Modal account, and a fake modal.Dict.

Importing server/modal_app.py builds its whole recipe locally (images, volumes, secrets,
functions, class) without contacting Modal. `record_import` re-imports it with Modal's builders
wrapped so every argument they receive is recorded. Import the `recipe` fixture into a test
module to share one recording per module.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections import defaultdict
from pathlib import Path

import modal
import pytest

SERVER_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = SERVER_DIR.parent
DEPLOY_DOC = REPO_DIR / "docs" / "deploy.md"

RECORDED = [
    (modal.App, "cls"),
    (modal.App, "function"),
    (modal.Image, "debian_slim"),
    (modal.Image, "pip_install"),
    (modal.Image, "uv_pip_install"),
    (modal.Image, "pip_install_from_requirements"),
    (modal.Image, "add_local_python_source"),
    (modal.Volume, "from_name"),
    (modal.Volume, "with_mount_options"),
    (modal.Secret, "from_name"),
    (modal.Dict, "from_name"),
    (modal, "concurrent"),
    (modal, "asgi_app"),
    (modal, "enter"),
    (modal, "exit"),
]


def record_import(monkeypatch: pytest.MonkeyPatch | None = None, **env: str):
    """(module, {builder name: [(args, kwargs), ...]}) from a fresh import of modal_app, with
    `env` set in the environment of the import (as for `modal deploy`)."""
    calls = defaultdict(list)
    originals = [(owner, name, inspect.getattr_static(owner, name)) for owner, name in RECORDED]
    for owner, name, original in originals:
        key = f"{owner.__name__}.{name}".removeprefix("modal.")
        setattr(owner, name, _recording(getattr(owner, name), key, calls, original))
    sys.modules.pop("modal_app", None)
    try:
        if monkeypatch is not None:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
        module = importlib.import_module("modal_app")
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        sys.modules.pop("modal_app", None)
    return module, calls


@pytest.fixture(scope="module")
def recipe():
    """The default recipe: modal_app imported with no deploy-time settings in the environment."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("PICTALE_GPU", "PICTALE_MAX_CONTAINERS", "PICTALE_PROXY_AUTH", "PICTALE_GPU_SNAPSHOT"):
            monkeypatch.delenv(name, raising=False)
        return record_import()


def _recording(function, key, calls, original):
    def record(*args, **kwargs):
        calls[key].append((args, kwargs))
        return function(*args, **kwargs)

    return staticmethod(record) if isinstance(original, staticmethod) else record


def one_call(calls, name):
    assert len(calls[name]) == 1, f"{name} called {len(calls[name])} times"
    return calls[name][0]


def deploy_table() -> dict[str, str]:
    """The `| `name` | `value` | why |` rows of docs/deploy.md's settings table."""
    rows = re.findall(r"^\| `([\w.()=]+)` \| `([^`]+)` \|", DEPLOY_DOC.read_text(), re.MULTILINE)
    assert rows, "docs/deploy.md has no settings table"
    return dict(rows)


class FakeModalDict:
    """modal.Dict's get/put/pop/items, blocking and as `.aio`, over a plain dict."""

    def __init__(self) -> None:
        self.data: dict = {}
        data = self.data

        def get(key, default=None):
            return data.get(key, default)

        def put(key, value):
            data[key] = value
            return True

        def pop(key, default=None):
            return data.pop(key, default)

        def items():
            return list(data.items())

        async def get_aio(key, default=None):
            return get(key, default)

        async def put_aio(key, value):
            return put(key, value)

        async def items_aio():
            for item in list(data.items()):
                yield item

        self.get, self.put, self.pop, self.items = (
            _Method(get, get_aio), _Method(put, put_aio), _Method(pop, None), _Method(items, items_aio)
        )


class _Method:
    def __init__(self, blocking, aio) -> None:
        self._blocking = blocking
        self.aio = aio

    def __call__(self, *args, **kwargs):
        return self._blocking(*args, **kwargs)

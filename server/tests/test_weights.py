"""Preparing NF4 checkpoints: layout, manifest, skipping finished work, never half-done.

The real download and quantization need the Hub and a CUDA GPU; here they are replaced by
fakes with the same signatures, which is all `prepare` needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pictale_server.engine import prepare_weights as weights
from pictale_server.engine.checkpoints import FORMAT_VERSION, Manifest
from pictale_server.engine.prepare_weights import HubModel

COMMIT = "0123456789abcdef0123456789abcdef01234567"
VISION = HubModel("vision", "acme/vision-7b", COMMIT)
WRITER = HubModel("writer", "acme/writer-12b", "main")


class FakeHub:
    """Writes a snapshot like the Hub cache does: .../snapshots/<commit>/files."""

    def __init__(self) -> None:
        self.downloads: list[str] = []

    def __call__(self, source: HubModel, downloads: Path) -> Path:
        self.downloads.append(source.repo_id)
        snapshot = downloads / f"models--{source.repo_id.replace('/', '--')}" / "snapshots" / COMMIT
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / "config.json").write_text('{"bf16": true}')
        (snapshot / "model-00001-of-00002.safetensors").write_bytes(b"bf16 weights")
        (snapshot / "model.safetensors.index.json").write_text("{}")
        (snapshot / "tokenizer.json").write_text('{"tokenizer": 1}')
        (snapshot / "chat_template.jinja").write_text("{{ messages }}")
        (snapshot / "pytorch_model.bin").write_bytes(b"duplicate weights")
        return snapshot


class FakeQuantizer:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, source: HubModel, snapshot: Path, output: Path) -> None:
        self.calls.append(source.repo_id)
        (output / "config.json").write_text(
            '{"quantization_config": {"quant_method": "bitsandbytes"}}'
        )
        (output / "model.safetensors").write_bytes(b"nf4 weights")
        if source.repo_id == self.fail_on:
            raise RuntimeError("CUDA out of memory")


def run_prepare(root: Path, sources, *, hub=None, quantizer=None):
    return weights.prepare(
        root,
        sources,
        download=hub or FakeHub(),
        quantize=quantizer or FakeQuantizer(),
    )


def test_checkpoint_dir_is_one_folder_per_model_under_nf4(tmp_path):
    assert (
        weights.checkpoint_dir(tmp_path, "acme/writer-12b") == tmp_path / "nf4" / "acme--writer-12b"
    )


@pytest.mark.parametrize("bad", ["writer", "a/b/c", "../x", "acme/..", "/x"])
def test_checkpoint_dir_rejects_anything_but_owner_slash_name(tmp_path, bad):
    with pytest.raises(ValueError, match="owner/name"):
        weights.checkpoint_dir(tmp_path, bad)


def test_prepare_writes_quantized_model_support_files_and_manifest(tmp_path):
    [result] = run_prepare(tmp_path, [VISION])

    target = tmp_path / "nf4" / "acme--vision-7b"
    assert result.path == target and not result.skipped
    assert sorted(p.name for p in target.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "model.safetensors",
        "pictale-weights.json",
        "tokenizer.json",
    ]
    # the quantized config wins over the snapshot's bf16 one
    assert "quantization_config" in (target / "config.json").read_text()
    manifest = json.loads((target / "pictale-weights.json").read_text())
    assert manifest == {
        "repo_id": "acme/vision-7b",
        "revision": COMMIT,
        "commit": COMMIT,
        "double_quant": False,
        "format_version": FORMAT_VERSION,
    }


def test_prepare_removes_the_bf16_download_afterwards(tmp_path):
    run_prepare(tmp_path, [VISION, WRITER])
    assert not (tmp_path / "downloads").exists()


def test_prepare_skips_models_already_prepared(tmp_path):
    run_prepare(tmp_path, [VISION])
    hub, quantizer = FakeHub(), FakeQuantizer()

    results = run_prepare(tmp_path, [VISION, WRITER], hub=hub, quantizer=quantizer)

    assert [r.skipped for r in results] == [True, False]
    assert hub.downloads == ["acme/writer-12b"]
    assert quantizer.calls == ["acme/writer-12b"]


def test_a_branch_revision_matches_by_name_and_a_commit_by_hash(tmp_path):
    run_prepare(tmp_path, [WRITER])
    pinned = HubModel("writer", WRITER.repo_id, COMMIT)
    [by_name] = run_prepare(tmp_path, [WRITER])
    [by_hash] = run_prepare(tmp_path, [pinned])
    assert by_name.skipped and by_hash.skipped


def test_prepare_rebuilds_when_the_revision_changes(tmp_path):
    run_prepare(tmp_path, [VISION])
    moved = HubModel("vision", VISION.repo_id, "f" * 40)
    quantizer = FakeQuantizer()

    run_prepare(tmp_path, [moved], quantizer=quantizer)
    run_prepare(tmp_path, [moved], quantizer=quantizer)

    assert quantizer.calls == [VISION.repo_id]
    assert weights.read_manifest(tmp_path / "nf4" / "acme--vision-7b").revision == "f" * 40


def test_a_double_quantized_checkpoint_is_rebuilt(tmp_path):
    """Older manifests may record nested quantization, which the fast kernel cannot read."""
    [first] = run_prepare(tmp_path, [VISION])
    weights.write_manifest(first.path, Manifest(VISION.repo_id, COMMIT, COMMIT, double_quant=True))
    assert weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) is None
    quantizer = FakeQuantizer()
    [again] = run_prepare(tmp_path, [VISION], quantizer=quantizer)
    assert not again.skipped and quantizer.calls == [VISION.repo_id]
    assert weights.read_manifest(again.path).double_quant is False


def test_an_interrupted_build_leaves_no_checkpoint_that_looks_complete(tmp_path):
    with pytest.raises(RuntimeError, match="out of memory"):
        run_prepare(tmp_path, [VISION], quantizer=FakeQuantizer(fail_on=VISION.repo_id))

    assert weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) is None
    assert not (tmp_path / "nf4" / "acme--vision-7b").exists()
    assert (tmp_path / "downloads").exists()  # kept, so the retry need not fetch it again

    [retry] = run_prepare(tmp_path, [VISION])
    assert not retry.skipped
    assert (
        weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) == retry.path
    )
    assert not (tmp_path / "nf4" / "acme--vision-7b.partial").exists()


def test_on_prepared_is_called_after_each_model(tmp_path):
    seen = []
    weights.prepare(
        tmp_path,
        [VISION, WRITER],
        download=FakeHub(),
        quantize=FakeQuantizer(),
        on_prepared=lambda result: seen.append((result.source.role, result.path.exists())),
    )
    assert seen == [("vision", True), ("writer", True)]


def test_find_checkpoint_needs_a_matching_manifest(tmp_path):
    directory = weights.checkpoint_dir(tmp_path, VISION.repo_id)
    assert weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) is None

    directory.mkdir(parents=True)
    (directory / "pictale-weights.json").write_text("{not json")
    assert weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) is None

    weights.write_manifest(directory, Manifest(VISION.repo_id, COMMIT, COMMIT))
    assert weights.find_checkpoint(tmp_path, VISION.repo_id, COMMIT) == directory
    assert weights.find_checkpoint(tmp_path, VISION.repo_id, "main") is None


def test_a_manifest_from_an_older_format_is_rebuilt(tmp_path):
    directory = weights.checkpoint_dir(tmp_path, VISION.repo_id)
    directory.mkdir(parents=True)
    old = Manifest(VISION.repo_id, COMMIT, COMMIT, format_version=0)
    weights.write_manifest(directory, old)

    [result] = run_prepare(tmp_path, [VISION])

    assert not result.skipped
    assert weights.read_manifest(directory).format_version == FORMAT_VERSION


def test_copy_support_files_skips_weights_and_files_already_written(tmp_path):
    snapshot = FakeHub()(VISION, tmp_path / "downloads")
    (snapshot / "nested").mkdir()
    (snapshot / "nested" / "preprocessor_config.json").write_text("{}")
    output = tmp_path / "out"
    output.mkdir()
    (output / "tokenizer.json").write_text("already here")

    copied = weights.copy_support_files(snapshot, output)

    assert copied == ["chat_template.jinja", "nested/preprocessor_config.json"]
    assert (output / "tokenizer.json").read_text() == "already here"


# --- which models a profile needs -------------------------------------------------------------


def test_reference_profile_prepares_both_reference_models_at_their_revisions():
    from pictale_server.engine import model_sources as sources
    from pictale_server.settings import Settings

    models = weights.hub_models(Settings(profile="reference", writer_revision=COMMIT))

    assert models == [
        HubModel("vision", sources.REFERENCE_VISION_ID, sources.REFERENCE_VISION_REVISION),
        HubModel("writer", sources.REFERENCE_WRITER_ID, COMMIT),
    ]


def test_custom_profile_prepares_its_hub_models_but_not_local_directories(tmp_path):
    from pictale_server.settings import Settings

    settings = Settings(
        profile="custom",
        vision_model=str(tmp_path),
        writer_model="acme/writer-12b",
        writer_revision="v2",
    )
    assert weights.hub_models(settings) == [HubModel("writer", "acme/writer-12b", "v2")]


def test_missing_checkpoints_lists_what_prepare_weights_has_not_made_yet(tmp_path):
    from pictale_server.settings import Settings

    settings = Settings(
        profile="custom",
        weights_dir=tmp_path,
        vision_model=VISION.repo_id,
        vision_revision=COMMIT,
        writer_model=WRITER.repo_id,
    )
    assert [m.repo_id for m in weights.missing_checkpoints(settings)] == [
        VISION.repo_id,
        WRITER.repo_id,
    ]

    run_prepare(tmp_path, [VISION])

    assert weights.missing_checkpoints(settings) == [WRITER]
    assert (
        weights.missing_checkpoints(Settings(profile="custom")) == []
    )  # no weights_dir: Hub cache

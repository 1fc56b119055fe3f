"""The creative samplers through pictale's own routes: fields reach the engine, bounds hold."""

from __future__ import annotations

import httpx
import pytest
from conftest import IMAGE, live_server
from engine_fixtures import dev_cache_dir, dev_engine, dev_model_paths, dev_settings  # noqa: F401

from pictale_server.app import create_app

CREATIVE = {
    "presence_penalty": 0.3, "frequency_penalty": 0.2, "logit_bias": {"5": -100, "9": 1.5},
    "dry_multiplier": 0.8, "dry_base": 1.5, "dry_allowed_length": 3, "dry_penalty_last_n": -1,
    "dry_sequence_breakers": ["\n", "."], "xtc_threshold": 0.2, "xtc_probability": 0.5,
    "banned_phrases": ["shivers down her spine"],
}


def test_narrate_and_the_pipelines_stages_take_the_creative_samplers(serve) -> None:
    served = serve()
    assert served.client.post("/v1/narrate", json={"instruction": "Go.", **CREATIVE}).status_code == 200
    body = {"image": IMAGE, "instruction": "Go.", "narrate": CREATIVE, "describe": {"banned_phrases": ["a photo of"]}}
    assert served.client.post("/v1/pipeline", json=body).status_code == 200
    narrate, describe, story = served.engine.calls
    for call in (narrate, story):
        sampling = call.sampling
        assert sampling.logit_bias == ((5, -100.0), (9, 1.5))
        assert sampling.dry_sequence_breakers == ("\n", ".") and sampling.dry_penalty_last_n == -1
        assert sampling.banned_phrases == ("shivers down her spine",)
        assert (sampling.xtc_probability, sampling.presence_penalty) == (0.5, 0.3)
    assert describe.sampling.banned_phrases == ("a photo of",)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"banned_phrases": ["x"] * 10_000}, "banned_phrases"),
        ({"banned_phrases": [""]}, "banned_phrases.0"),
        ({"banned_phrases": ["y" * 5000]}, "banned_phrases.0"),
        ({"dry_sequence_breakers": [{"a": 1}]}, "dry_sequence_breakers.0"),
        ({"dry_sequence_breakers": "\n"}, "dry_sequence_breakers"),
        ({"logit_bias": {"-3": 1}}, "logit_bias.-3"),
        ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
        ({"dry_base": 0.5}, "dry_base"),
        ({"dry_allowed_length": 0}, "dry_allowed_length"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"xtc_threshold": "high"}, "xtc_threshold"),
    ],
)
def test_absurd_sampler_values_are_invalid_requests_naming_the_field(serve, fields, param) -> None:
    response = serve().client.post("/v1/narrate", json={"instruction": "Go.", **fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["param"].startswith(param), error


def test_a_biased_token_the_model_lacks_is_an_invalid_request(dev_cache_dir, dev_engine) -> None:  # noqa: F811
    app = create_app(dev_engine, dev_settings(dev_cache_dir))
    with live_server(app) as url:
        response = httpx.post(f"{url}/v1/narrate", json={"instruction": "Go.", "logit_bias": {"999999": -100}}, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logit_bias"


def test_the_dev_engine_writes_with_every_creative_sampler(dev_cache_dir, dev_engine) -> None:  # noqa: F811
    app = create_app(dev_engine, dev_settings(dev_cache_dir))
    with live_server(app) as url:
        response = httpx.post(f"{url}/v1/narrate", json={"instruction": "Go.", "max_tokens": 24, "seed": 1, **CREATIVE}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["output_tokens"] >= 1

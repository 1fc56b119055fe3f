"""SSE data lines survive clients that split lines the way Python's str.splitlines does."""

from __future__ import annotations

import json

import httpx

from pictale_server.api.sse import encode_event

WIDE_BREAKS = "\x85\u2028\u2029"


def test_unicode_line_breaks_in_text_are_escaped_and_round_trip() -> None:
    text = f"one{WIDE_BREAKS}two \u00e9\u4e16"
    encoded = encode_event(3, "delta", {"stage": "narrate", "text": text}).decode()
    assert not any(mark in encoded for mark in WIDE_BREAKS)
    assert "\u00e9\u4e16" in encoded  # everything else stays readable UTF-8
    data_line = encoded.splitlines()[2]
    assert json.loads(data_line.removeprefix("data: "))["text"] == text


def test_an_httpx_line_reader_sees_one_data_line_per_event() -> None:
    body = encode_event(1, "delta", {"stage": "narrate", "text": f"a{WIDE_BREAKS}b"})
    response = httpx.Response(200, content=body)
    lines = list(response.iter_lines())
    assert lines[:3] == ["event: delta", "id: 1", lines[2]]
    assert json.loads(lines[2].removeprefix("data: "))["text"] == f"a{WIDE_BREAKS}b"

import pytest
from transformers import AutoTokenizer

from pictale_server.engine.base import Cancel, Delta, Finished
from pictale_server.engine.chunk_stream import stream_chunks
from pictale_server.engine.text_stream import REPLACEMENT, IncrementalDetokenizer, StopStringFilter

pytest_plugins = ["engine_fixtures"]

TEXT = "Café au lait — 🌍 über Zürich, naïve déjà vu 42."


@pytest.fixture(scope="module")
def tokenizer(dev_model_paths):
    return AutoTokenizer.from_pretrained(dev_model_paths.writer)


def test_byte_level_tokens_split_characters_so_the_test_is_meaningful(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    assert any(REPLACEMENT in tokenizer.decode([i]) for i in ids)


def test_detokenizer_never_emits_half_a_character_and_loses_nothing(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(tokenizer)
    deltas = [detokenizer.push(i) for i in ids]
    deltas.append(detokenizer.flush())
    assert all(REPLACEMENT not in delta for delta in deltas)
    assert "".join(deltas) == TEXT


def run_filter(stops, pieces):
    stop_filter = StopStringFilter(stops)
    emitted = [stop_filter.push(piece) for piece in pieces]
    emitted.append(stop_filter.flush())
    return emitted, stop_filter.stopped


def test_stop_string_split_across_pieces_is_never_emitted():
    emitted, stopped = run_filter(["THE END"], ["and so it was. TH", "E E", "ND and more"])
    assert stopped
    assert "".join(emitted) == "and so it was. "
    assert emitted[0] == "and so it was. "  # "TH" held back


def test_text_that_only_looked_like_a_stop_prefix_is_released():
    emitted, stopped = run_filter(["###"], ["a #", "# b", " c"])
    assert not stopped
    assert "".join(emitted) == "a ## b c"
    assert emitted[0] == "a "


def test_held_tail_is_flushed_when_generation_ends():
    emitted, stopped = run_filter(["User:"], ["Hello Us"])
    assert (emitted, stopped) == (["Hello ", "Us"], False)


def test_the_earliest_of_several_stop_strings_wins():
    emitted, _ = run_filter(["zzz", "\n\n"], ["one\n\ntwo zzz"])
    assert "".join(emitted) == "one"


def test_chunk_stream_deltas_concatenate_to_the_decoded_text(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    chunks = list(
        stream_chunks(
            iter(ids), tokenizer=tokenizer, end_ids={2}, stop=(), input_tokens=5, cancel=Cancel()
        )
    )
    assert isinstance(chunks[-1], Finished)
    assert "".join(c.text for c in chunks[:-1]) == tokenizer.decode(ids)
    assert chunks[-1] == Finished("length", 5, len(ids))


def test_chunk_stream_stops_at_the_end_token_without_counting_it(tokenizer):
    ids = tokenizer.encode("Hello there", add_special_tokens=False)
    chunks = list(
        stream_chunks(
            iter(ids + [2] + ids),
            tokenizer=tokenizer,
            end_ids={2},
            stop=(),
            input_tokens=1,
            cancel=Cancel(),
        )
    )
    assert "".join(c.text for c in chunks if isinstance(c, Delta)) == "Hello there"
    assert chunks[-1] == Finished("stop", 1, len(ids))


def test_chunk_stream_with_a_stop_string_finishes_with_stop(tokenizer):
    ids = tokenizer.encode("The calm water. The mood is calm.", add_special_tokens=False)
    chunks = list(
        stream_chunks(
            iter(ids),
            tokenizer=tokenizer,
            end_ids=set(),
            stop=("mood",),
            input_tokens=1,
            cancel=Cancel(),
        )
    )
    assert "".join(c.text for c in chunks if isinstance(c, Delta)) == "The calm water. The "
    assert chunks[-1].finish_reason == "stop"


def test_chunk_stream_reports_cancelled_when_the_flag_is_set_before_starting(tokenizer):
    cancel = Cancel()
    cancel.set()
    pulled = []

    def tokens():
        for token in tokenizer.encode("abc", add_special_tokens=False):
            pulled.append(token)
            yield token

    chunks = list(
        stream_chunks(
            tokens(), tokenizer=tokenizer, end_ids=set(), stop=(), input_tokens=3, cancel=cancel
        )
    )
    assert pulled == []
    assert chunks == [Finished("cancelled", 3, 0)]

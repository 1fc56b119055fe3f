"""Generated token ids → the engine's chunk stream (deltas, then one `Finished`).

Stops at an end-of-turn token, a stop string, `max_tokens` or the cancel flag, which is read
between tokens: the decode step for the next token only runs when this asks for it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from pictale_server.engine.base import Cancel, Chunk, Delta, Finished, FinishReason
from pictale_server.engine.text_stream import IncrementalDetokenizer, StopStringFilter


def stream_chunks(
    tokens: Iterator[int],
    *,
    tokenizer,
    end_ids: Collection[int],
    stop: tuple[str, ...],
    input_tokens: int,
    cancel: Cancel,
) -> Iterator[Chunk]:
    detokenizer = IncrementalDetokenizer(tokenizer)
    stops = StopStringFilter(stop)
    output_tokens = 0
    finish: FinishReason = "length"
    try:
        if cancel.is_set:
            finish = "cancelled"
        else:
            for token in tokens:
                if token in end_ids:
                    finish = "stop"
                    break
                output_tokens += 1
                text = stops.push(detokenizer.push(token))
                if text:
                    yield Delta(text)
                if stops.stopped:
                    finish = "stop"
                    break
                if cancel.is_set:
                    finish = "cancelled"
                    break
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
    tail = stops.push(detokenizer.flush()) + stops.flush()
    if tail:
        yield Delta(tail)
    yield Finished(finish_reason=finish, input_tokens=input_tokens, output_tokens=output_tokens)

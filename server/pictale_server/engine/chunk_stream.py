"""Generated token ids → the engine's chunk stream (deltas, then one `Finished`).

Stops at an end-of-turn token, a stop string, `max_tokens` or the cancel flag, which is read
between tokens: the decode step for the next token only runs when this asks for it.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator

from pictale_server.engine.base import Cancel, Chunk, Delta, Finished, FinishReason
from pictale_server.engine.banned_phrases import MAX_REWINDS, PhraseGuard
from pictale_server.engine.decode_loop import Rewind
from pictale_server.engine.text_stream import IncrementalDetokenizer, StopStringFilter


def stream_chunks(
    tokens: Generator[int, Rewind | None, None],
    *,
    tokenizer,
    end_ids: Collection[int],
    stop: tuple[str, ...],
    input_tokens: int,
    cancel: Cancel,
    banned_phrases: tuple[str, ...] = (),
) -> Iterator[Chunk]:
    if banned_phrases:
        yield from _guarded_chunks(
            tokens, tokenizer=tokenizer, end_ids=end_ids, stop=stop, input_tokens=input_tokens,
            cancel=cancel, banned_phrases=banned_phrases,
        )
        return
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


def _guarded_chunks(
    tokens: Generator[int, Rewind | None, None],
    *,
    tokenizer,
    end_ids: Collection[int],
    stop: tuple[str, ...],
    input_tokens: int,
    cancel: Cancel,
    banned_phrases: tuple[str, ...],
) -> Iterator[Chunk]:
    """`stream_chunks` with banned phrases (banned_phrases.py): a token that completes one
    sends the loop back to where the phrase began."""
    guard = PhraseGuard(tokenizer, banned_phrases)
    stops = StopStringFilter(stop)
    finish: FinishReason = "length"
    command: Rewind | None = None
    try:
        if cancel.is_set:
            finish = "cancelled"
        else:
            while True:
                try:
                    token = tokens.send(command)
                except StopIteration:
                    break
                command = None
                if token in end_ids:
                    finish = "stop"
                    break
                rewind = guard.push(token)
                if rewind is not None:
                    if guard.rewinds > MAX_REWINDS:
                        finish = "stop"
                        break
                    command = Rewind(rewind.index, rewind.banned)
                    continue
                text = stops.push(guard.release())
                if text:
                    yield Delta(text)
                if stops.stopped:
                    finish = "stop"
                    break
                if cancel.is_set:
                    finish = "cancelled"
                    break
    finally:
        tokens.close()
    tail = stops.push(guard.finish()) + stops.flush()
    if tail:
        yield Delta(tail)
    yield Finished(finish_reason=finish, input_tokens=input_tokens, output_tokens=len(guard.ids))

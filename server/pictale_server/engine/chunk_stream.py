"""Generated token ids → the engine's chunk stream (deltas, then one `Finished`).

Stops at an end-of-turn token, a stop string, `max_tokens` or the cancel flag, which is read
between tokens: the decode step for the next token only runs when this asks for it. With
banned phrases, a token that completes one sends the decode loop back to where the phrase
began (banned_phrases.py, request_sampler.Rewind); without, the guard lets every token's text
through as it comes.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator

from pictale_server.engine.banned_phrases import MAX_REWINDS, PhraseGuard
from pictale_server.engine.base import Cancel, Chunk, Delta, Finished, FinishReason
from pictale_server.engine.request_sampler import Rewind
from pictale_server.engine.text_stream import StopStringFilter


def stream_chunks(
    tokens: Iterator[int] | Generator[int, Rewind | None, None],
    *,
    tokenizer,
    end_ids: Collection[int],
    stop: tuple[str, ...],
    input_tokens: int,
    cancel: Cancel,
    banned_phrases: tuple[str, ...] = (),
) -> Iterator[Chunk]:
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
                    token = next(tokens) if command is None else tokens.send(command)  # type: ignore[union-attr]
                except StopIteration:
                    # No token at all and the flag set: the model's batch withdrew the request
                    # from its line before admitting it (BatchDecoder.withdraw).
                    if cancel.is_set and not guard.ids:
                        finish = "cancelled"
                    break
                command = None
                if token in end_ids:
                    finish = "stop"
                    break
                rewind = guard.push(token)
                if rewind is not None:
                    if guard.rewinds > MAX_REWINDS:  # ends here rather than loop; never shows it
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
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
    tail = stops.push(guard.finish()) + stops.flush()
    if tail:
        yield Delta(tail)
    yield Finished(finish_reason=finish, input_tokens=input_tokens, output_tokens=len(guard.ids))

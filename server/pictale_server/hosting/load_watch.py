"""What a container does about its models' load: publish it, and on a failure ask for a fresh
container while the restart budget allows (`LoadHooks` for runtime/lifecycle.py).

A failed load is reported as `failed` like any other (health, 503s, stream errors), with a
message that says what happens next: a fresh container is starting, or the budget is spent and
this one stays up to report it. Then, when replacing, the host is asked to stop sending this
container inputs (`modal.experimental.stop_fetching_inputs` on Modal): requests already in it
finish with that error, the container exits, and Modal starts a fresh one for the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pictale_server.hosting.restart_budget import RestartBudget, Verdict
from pictale_server.hosting.status_publisher import StatusPublisher
from pictale_server.runtime.lifecycle import FailedLoad, LoadHooks, ModelState

logger = logging.getLogger("pictale.server")


class LoadWatch:
    def __init__(self, publisher: StatusPublisher, budget: RestartBudget, replace: Callable[[], None]) -> None:
        self._publisher = publisher
        self._budget = budget
        self._replace = replace
        self._verdict: Verdict | None = None

    def hooks(self) -> LoadHooks:
        return LoadHooks(review_failure=self.review_failure, settled=self.settled)

    def review_failure(self, failure: FailedLoad) -> FailedLoad:
        try:
            self._verdict = self._budget.spend()
        except Exception:  # uncounted, a replacement could loop: stay up and say so
            logger.warning("could not count failed loads; this container stays up", exc_info=True)
            self._verdict = None
            return FailedLoad(failure.reason, f"{failure.message} This container stays up to report it.")
        return FailedLoad(failure.reason, f"{failure.message} {_next_step(self._verdict)}")

    def settled(self, state: ModelState, failure: FailedLoad | None) -> None:
        self._publisher.set(state, failure)
        if state == "ready":
            self.models_ready()
            return
        if self._verdict is not None and self._verdict.replace:
            logger.error("model loading failed; asking for a fresh container (failed load %d of %d)", self._verdict.failures, self._verdict.limit + 1)
            self._replace()
        else:
            logger.error("model loading failed; no fresh container (restart budget spent): fix the cause and redeploy")


    def models_ready(self) -> None:
        """The models are resident: failed loads before this one no longer count."""
        try:
            self._budget.clear()
        except Exception:
            logger.warning("could not clear the count of failed loads", exc_info=True)


def _next_step(verdict: Verdict) -> str:
    if verdict.replace:
        return f"A fresh container is starting (attempt {verdict.failures + 1} of {verdict.limit + 1}): retry in a minute or two."
    minutes = round(verdict.window_s / 60)
    return (
        f"{verdict.failures} loads failed within {minutes} minutes, so no fresh container is started and this "
        "one stays up to report it: fix the cause (the server log says more) and redeploy."
    )

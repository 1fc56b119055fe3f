"""What a container does about its models' load: publish it, and on a failure ask for a fresh
container while the restart budget allows (`LoadHooks` for runtime/lifecycle.py).

A failed load is reported as `failed` like any other (health, 503s, stream errors), with a
message that says what happens next: the next request starts a fresh container, or the budget
is spent and this one stays up to report it. Then, when replacing, the host is asked to stop
sending this container inputs (`modal.experimental.stop_fetching_inputs` on Modal): requests
already in it finish with that error, the container exits, and Modal starts a fresh one for the
next request. Only a container that stays up publishes `failed` to the status endpoint; one on
its way out keeps `loading` there, since the deployment is still trying.
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
        if state == "ready":
            self._publisher.set(state, failure)
            self.models_ready()
            return
        verdict = self._verdict
        if verdict is not None and verdict.replace and self._stop_taking_requests(verdict):
            return
        if verdict is not None and not verdict.replace:
            logger.error("model loading failed; no fresh container (restart budget spent): fix the cause and redeploy")
        self._publisher.set(state, failure)

    def models_ready(self) -> None:
        """The models are resident: failed loads before this one no longer count."""
        try:
            self._budget.clear()
        except Exception:
            logger.warning("could not clear the count of failed loads", exc_info=True)

    def _stop_taking_requests(self, verdict: Verdict) -> bool:
        """Ask the host to send this container no more requests, so it exits and the next request
        starts a fresh one. False when the host refused: this container then stays up."""
        logger.error(
            "model loading failed (failed load %d of %d); this container takes no more requests, "
            "a fresh one starts with the next request",
            verdict.failures,
            verdict.limit + 1,
        )
        try:
            self._replace()
        except Exception:
            logger.exception("could not stop taking requests; this container stays up to report the failed load")
            return False
        return True


def _next_step(verdict: Verdict) -> str:
    if verdict.replace:
        attempt = f"attempt {verdict.failures + 1} of {verdict.limit + 1}"
        return f"The next request starts a fresh container ({attempt}): retry."
    minutes = round(verdict.window_s / 60)
    return (
        f"{verdict.failures} loads failed within {minutes} minutes, so no fresh container is started and this "
        "one stays up to report it: fix the cause (the server log says more) and redeploy."
    )

"""`python -m pictale_server`: serve the app with uvicorn on Settings' host and port."""

from __future__ import annotations

import uvicorn

from pictale_server.app import create_app
from pictale_server.engine.loader import load_engine
from pictale_server.log import configure_logging
from pictale_server.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging()
    engine = load_engine(settings)  # returns at once; the app loads the models in the background
    app = create_app(engine, settings)
    print(f"pictale server: http://{settings.host}:{settings.port}", flush=True)
    print(
        f"  profile {engine.profile}: vision {engine.vision_id}, writer {engine.writer_id}",
        flush=True,
    )
    if engine.profile == "dev":
        print(
            "  dev profile: tiny random-weight models, so every output is random text;"
            " everything around the models is the real code path.",
            flush=True,
        )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # pictale.access logs each request without its content
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

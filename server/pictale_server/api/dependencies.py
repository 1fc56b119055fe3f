"""FastAPI dependencies through which routes reach what the app owns.

`create_app` attaches the app's `Services` once (`attach_services`); routes declare
`services: Services = Depends(get_services)` and `context: RequestContext =
Depends(get_request_context)` instead of reading `request.app.state` or `request.state`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from pictale_server.api.request_context import RequestContext, get_request_context
from pictale_server.runtime.services import Services

__all__ = ["RequestContext", "attach_services", "get_request_context", "get_services"]


def attach_services(app: FastAPI, services: Services) -> None:
    app.state.services = services


def get_services(request: Request) -> Services:
    return request.app.state.services

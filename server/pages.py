"""The browser side: the pages people open, and the modules they load.

Everything is in the package (``server/web``), served as files: no build step,
no CDN, nothing fetched from elsewhere, so the pages work offline. Three pages:

    /monitor   the Live Monitor (supervisors)
    /events    Eventos de conexión: a user's or the company's log, with its CSV export
    /console   a small agent console, for trying the product

Each is a static HTML file whose script (``/ui/*.js``) talks to the HTTP API
and the WebSockets with the token the user gives it; the server renders no
data into a page. Every response carries a Content-Security-Policy that allows
only this origin's own scripts, styles and connections (no inline script, so
data that slips into markup can't run), and tells browsers not to sniff types,
frame the page, or send a referrer.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["SECURITY_HEADERS", "routes"]

# 'self' covers ws:/wss: to this host and port (CSP Level 3), which the pages' sockets use.
_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The pages change with the server's version, and are small: always revalidate.
    "Cache-Control": "no-cache",
}

_PAGES = ("monitor.html", "events.html", "console.html")


class _WebFiles(StaticFiles):
    """Package files, with the security headers (and ``extra``) on every response."""

    def __init__(self, directory: str, extra: dict[str, str] | None = None) -> None:
        super().__init__(packages=[("server", directory)])
        self.headers = {**SECURITY_HEADERS, **(extra or {})}

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(self.headers)
        return response


_ui = _WebFiles("web/ui")


def _page(name: str) -> Route:
    async def endpoint(request: Request) -> Response:
        path, _ = _ui.lookup_path(name)
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    return Route(f"/{name.removesuffix('.html')}", endpoint, methods=["GET", "HEAD"])


async def _home(request: Request) -> Response:
    return RedirectResponse("/monitor", headers=SECURITY_HEADERS)


routes: list[BaseRoute] = [
    Route("/", _home, methods=["GET", "HEAD"]),
    *(_page(name) for name in _PAGES),
    Mount("/ui", app=_ui, name="ui"),
    # The browser client's modules: public code, which consoles of other origins may import
    # (a module script of another origin needs CORS). What it may do there is the WebSocket
    # Origin allowlist's and the token's to decide.
    Mount("/sdk", app=_WebFiles("web/sdk", {"Access-Control-Allow-Origin": "*"}), name="sdk"),
]

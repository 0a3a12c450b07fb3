"""The call distributor's side of the HTTP API (spec §6), over ``httpx``.

::

    async with AcdClient("http://presence:8000", token) as acd:
        change = await acd.claim(segment="sales")      # the longest-idle routable agent
        try:
            await ring(change.agent)
        except Abandoned:
            await acd.release(change.agent, reason="client-abandoned")

Each method is one request, not retried: a refusal raises
:exc:`~client_sdk.errors.RequestError` with the spec's code and the HTTP status,
a failed transport :exc:`~client_sdk.errors.ConnectionLost`, no answer in time
the built-in :exc:`TimeoutError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from client_sdk._wire import ClosesOnExit, TokenSource, request_error, resolve_token
from client_sdk.errors import ConnectionLost, ProtocolError, RequestError
from presence_protocol import IDENTIFIER, ErrorCode

__all__ = ["AcdClient", "Change"]

#: The code of an error answer without the spec's body (a proxy's page, say).
_CODE_OF_STATUS: Final = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.STORE_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Change:
    """What a claim or an ACD change did, as the server answered it."""

    #: The last event recorded (``occupying``, ``releasing``, ``timeout``), or
    #: ``None`` when nothing changed.
    event: dict[str, Any] | None
    #: Every event recorded, in log order: a ``timeout`` may be followed by the
    #: company's ``timeout_status``.
    events: list[dict[str, Any]]
    #: The agent's state after them (spec §2).
    state: dict[str, Any]

    @property
    def agent(self) -> str:
        """The agent changed: the one claimed, for :meth:`AcdClient.claim`."""
        agent: str = self.state["agent"]
        return agent


class AcdClient(ClosesOnExit):
    """The ACD's requests: who is available, claim, occupy, release, time out.

    ``base_url`` is the server's root (``http://host:port``). ``token`` (role
    acd or admin; supervisor reads only) is a string, or a callable (sync or
    async) called before each request. ``timeout`` bounds each request, also
    with a ``client`` of your own, which is then neither opened nor closed here.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be http:// or https://, not {base_url!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._owns_client = client is None
        self._http = httpx.AsyncClient() if client is None else client

    async def close(self) -> None:
        """Close the HTTP client, unless it was given. Idempotent."""
        if self._owns_client:
            await self._http.aclose()

    # Reads.

    async def available(
        self, segment: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The routable agents (of ``segment``, if given), longest idle first."""
        params: dict[str, str | int] = {"routable": "true", "order": "idle"}
        if segment is not None:
            params["segment"] = segment
        if limit is not None:
            params["limit"] = limit
        body = await self._call("GET", "/v1/agents", params=params)
        agents = body.get("agents")
        if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
            raise ProtocolError(f"an agent list needs 'agents': {body!r}")
        return agents

    async def agent(self, agent: str) -> dict[str, Any]:
        """One agent's state; :exc:`RequestError` ``not-found`` if never seen."""
        return await self._call("GET", _agent_path(agent))

    async def stats(self, segment: str | None = None) -> dict[str, Any]:
        """Counts by connection, status, activity and routable, and the longest idle."""
        params: dict[str, str | int] = {} if segment is None else {"segment": segment}
        return await self._call("GET", "/v1/stats", params=params)

    # Changes.

    async def claim(self, segment: str | None = None, exclude: Iterable[str] = ()) -> Change:
        """Occupy the longest-idle routable agent (of ``segment``, not in ``exclude``).

        Atomic on the server: two claims never get the same agent. Raises
        :exc:`RequestError` ``no-agent-available`` (404) when there is none,
        ``acd-mode`` (409) when the company distributes by broadcast.
        """
        if isinstance(exclude, str):
            # A str is an iterable of characters: surely one agent id was meant.
            raise TypeError("exclude takes agent ids, not one string")
        body: dict[str, Any] = {}
        if segment is not None:
            body["segment"] = segment
        excluded = list(exclude)
        if excluded:
            body["exclude"] = excluded
        return _change(await self._call("POST", "/v1/acd/claim", json=body))

    async def occupy(self, agent: str) -> Change:
        """Occupy a routable agent chosen elsewhere (``occupying``)."""
        return await self._acd(agent, "occupying")

    async def release(self, agent: str, reason: str | None = None) -> Change:
        """Give an occupied agent back (``releasing``); ``reason`` is a slug such as
        ``client-abandoned``, ``assignment-conflict``, ``transfer``."""
        return await self._acd(agent, "releasing", reason)

    async def timeout(self, agent: str) -> Change:
        """The agent didn't answer (``timeout``): idle again, then the company's
        ``timeout_status`` if it sets one."""
        return await self._acd(agent, "timeout")

    # Requests.

    async def _acd(self, agent: str, value: str, reason: str | None = None) -> Change:
        body = {"value": value} if reason is None else {"value": value, "reason": reason}
        return _change(await self._call("POST", _agent_path(agent) + "/acd", json=body))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request; its JSON object, or the error it stands for."""
        headers = {"Authorization": f"Bearer {await resolve_token(self._token)}"}
        try:
            response = await self._http.request(
                method,
                self._base_url + path,
                params=params,
                json=json,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"{method} {path}: no answer within {self._timeout} s") from exc
        except httpx.TransportError as exc:
            raise ConnectionLost(f"{method} {path}: {exc!r}") from exc
        if response.is_error:
            raise _http_error(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProtocolError(f"{method} {path}: {response.status_code} without a JSON object")
        return body


def _agent_path(agent: str) -> str:
    # The id goes into the path: one that isn't an identifier could point elsewhere.
    if not IDENTIFIER.fullmatch(agent):
        raise ValueError(f"{agent!r} is not an agent id")
    return f"/v1/agents/{agent}"


def _http_error(response: httpx.Response) -> RequestError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "code" in error:
        return request_error(error["code"], error.get("message"), response.status_code)
    code = _CODE_OF_STATUS.get(response.status_code, ErrorCode.INTERNAL)
    return RequestError(
        code, f"HTTP {response.status_code}: {response.text[:200]}", response.status_code
    )


def _change(body: dict[str, Any]) -> Change:
    event, events, state = body.get("event"), body.get("events"), body.get("state")
    if (
        not (event is None or isinstance(event, dict))
        or not isinstance(events, list)
        or not isinstance(state, dict)
    ):
        raise ProtocolError(f"a change needs an event or null, events and a state: {body!r}")
    return Change(event=event, events=events, state=state)

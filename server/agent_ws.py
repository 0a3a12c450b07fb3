"""``/v1/agent``: one console's WebSocket (spec §4).

A connection lives in three steps: ``hello`` (within ``hello_timeout``, with a
token) opens or resumes the session; frames are answered in order, each
``ack`` sent only once its event is in the stream; when the socket ends, the
reason is recorded — unless another party already recorded it (a replacement,
a kick), in which case this connection no longer holds the session and the
store would refuse it anyway.

Why a socket ended, and what is recorded:

=====================================  ===================================
the socket                             ``disconnected`` reason
=====================================  ===================================
``bye``                                ``client-closed``; the session ends
close frame from the console           ``client-closed``; resumable
no close frame (TCP lost)              ``transport-closed``
no pong within ``ping_timeout``        ``heartbeat-timeout``
oversize frame (1009), bad framing     ``protocol-error``
token expired during the session       ``token-expired`` (close 4511)
sustained flooding                     ``rate-limited`` (close 4129)
=====================================  ===================================
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Final

from starlette.websockets import WebSocket

from presence_protocol import ACTIVITY_VALUES, IDENTIFIER, STATUS_VALUE, CloseCode, ErrorCode
from presence_protocol.codec import FrameError, decode
from server.auth import Identity
from server.connection import Connection, ServerClosed, admitted, valid_ref
from server.deferred import Disconnection
from server.errors import Refused, StaleConnection, StoreUnavailable
from server.instances import PROBE_PATIENCE, STORE_ERRORS, instance_of
from server.ratelimit import RateLimiter, Verdict
from server.runtime import Runtime
from server.state import AgentState, Event
from server.store import Outcome, now_ms
from server.websocket_protocol import HEARTBEAT_TIMEOUT

__all__ = ["agent_endpoint"]

log = logging.getLogger("presence.agent")


def disconnect_reason(code: int, reason: str) -> str:
    """The log's reason for a socket the console (or the network) ended."""
    if (code, reason) == HEARTBEAT_TIMEOUT:
        return "heartbeat-timeout"
    if code == CloseCode.ABNORMAL:
        return "transport-closed"
    if code in (1002, 1003, 1007, CloseCode.MESSAGE_TOO_BIG):  # RFC 6455's protocol errors
        return "protocol-error"
    return "client-closed"


AGENT_ROLES: Final = frozenset({"agent"})


class AgentConnection(Connection):
    """One console's socket, from ``hello`` to the recorded disconnection."""

    def __init__(self, websocket: WebSocket, runtime: Runtime, subprotocol: str) -> None:
        super().__init__(websocket, runtime, subprotocol)
        self.conn_id = f"{runtime.instance}/{secrets.token_hex(6)}"
        self.company = ""
        self.agent = ""
        self.limiter = RateLimiter(self.settings.rate_limit, self.settings.rate_burst)
        #: Cleared once its disconnection is recorded, or being recorded, by
        #: something other than the socket's end: a replacement or a kick (by
        #: the party that ended the hold), the drain, token expiry, ``bye``.
        self.record_when_socket_ends = True
        #: Set when its disconnection waits for the store (it stays listed until written).
        self.deferred = False
        #: What the store said last of this session: put back if Redis loses it.
        self.session: str | None = None
        self.segments: tuple[str, ...] = ()
        self.status: str | None = None
        #: Pushes that arrive between registering and the welcome: a console
        #: must see its welcome first.
        self._before_welcome: list[dict[str, Any]] | None = []

    # What the hub calls (hub.LocalConnection).

    def push_state(self, event: Event, state: AgentState) -> None:
        self.status = state.status
        frame = {"t": "state", "state": state.to_wire(), "event": event.to_wire()}
        if self._before_welcome is not None:
            self._before_welcome.append(frame)
        else:
            self.spawn(self.send(frame))

    def end(self, code: int, reason: str) -> None:
        self.record_when_socket_ends = False
        self.spawn(self.close(code, reason))

    async def restore(self) -> None:
        runtime = self.runtime
        if self.session is None or await runtime.store.state(self.company, self.agent):
            return  # not ours yet, or already back
        await self.hello_again(restore=True)

    async def hello_again(self, *, restore: bool) -> Outcome:
        """``hello`` for the session this connection already had: to take it back
        (resumed) or, after Redis lost its data, to put it back (``restore``)."""
        await self.runtime.liveness.hold(self.conn_id, self.company, self.agent)
        return await self.runtime.store.hello(
            self.company,
            self.agent,
            conn=self.conn_id,
            now=now_ms(),
            session=self.session,
            segments=self.segments,
            status=self.status if restore else None,
            restore=restore,
        )

    async def drain(self) -> None:
        self.record_when_socket_ends = False  # recorded here, not when the socket ends
        await self.record_disconnect("server-shutdown", end_session=False)
        await self.close_or_drop(CloseCode.GOING_AWAY, "server-shutdown")

    # The connection's life.

    async def run(self) -> None:
        try:
            identity, hello = await self.read_hello(AGENT_ROLES)
        except ServerClosed as closed:
            await self.close(closed.code, closed.reason)
            return
        self.company, self.agent = identity.company, identity.sub
        runtime = self.runtime
        try:
            # Listed before the session is ours, so it is never held unlisted.
            await runtime.liveness.hold(self.conn_id, self.company, self.agent)
            holder, lost = await self.holder_verdict()
            if runtime.draining:
                raise StaleConnection("draining")  # too late to start here: retry elsewhere
            # Read before the hello, so that a store failing here refuses the
            # console (1013) rather than ending a session just begun.
            statuses = await runtime.store.status_list(identity.company)
            outcome = await runtime.store.hello(
                identity.company,
                identity.sub,
                conn=self.conn_id,
                now=now_ms(),
                session=hello.get("session"),
                segments=identity.segments,
                status=hello.get("status"),
                lost_conn=holder if lost else None,
                expected_holder=holder,
            )
        except Refused as refused:
            await self.release()
            await self.error(None, refused.code, refused.message)
            await self.close(CloseCode.PROTOCOL_ERROR, refused.code.value)
            return
        except STORE_ERRORS:
            await self.release()
            await self.error(None, ErrorCode.STORE_UNAVAILABLE, "the store is unavailable")
            await self.close(CloseCode.TRY_AGAIN_LATER, "store-unavailable")
            return
        except StaleConnection:
            # The session changed hands while we looked (or we are draining):
            # nothing was applied; the console tries again.
            await self.release()
            await self.close(CloseCode.TRY_AGAIN_LATER, "retry")
            return
        self.session, self.segments = outcome.session, identity.segments
        self.status = outcome.state.status if outcome.state else None
        hub = runtime.hub
        hub.register(self)
        await hub.listening(self.company)
        if runtime.draining:
            # It got in as the drain began: drained like the others, not dropped.
            await self.drain()
            hub.unregister(self)
            await self.release()
            return
        # Counted while it holds a session: a socket still in hello is not a console yet.
        connections = runtime.metrics.connections.labels("agent")
        connections.inc()
        try:
            await self.send(self.welcome(outcome, statuses))
            early, self._before_welcome = self._before_welcome or [], None
            for frame in early:
                await self.send(frame)
            # This frame lives as long as the socket: letting the script's result
            # and the status list go took an idle agent from 37 to 29 KiB (bench idle).
            del outcome, statuses, hello
            await self.serve(identity)
        finally:
            connections.dec()
            hub.unregister(self)
            self.cancel_tasks()
            if not self.deferred:
                await self.release()

    async def holder_verdict(self) -> tuple[str | None, bool]:
        """The connection holding this agent's session, and whether it was lost
        with its instance (rather than about to be replaced)."""
        runtime = self.runtime
        holder = await runtime.store.holder(self.company, self.agent)
        if holder is None or instance_of(holder) == runtime.instance:
            return holder, False
        owner = instance_of(holder)
        # Wait for a verdict: the instance answers (alive: the session is taken
        # over), or its alive key lapses (dead: lost). A killed instance stops
        # answering at once but its key lives on up to instance_ttl; a loaded one
        # may answer late. Past the TTL without a verdict, take it as alive.
        deadline = time.monotonic() + runtime.settings.instance_ttl + PROBE_PATIENCE
        while time.monotonic() < deadline:
            if not await runtime.liveness.is_alive(owner):
                return holder, True
            if await runtime.hub.holds(owner, holder, patience=PROBE_PATIENCE) is not None:
                return holder, False
            await asyncio.sleep(PROBE_PATIENCE / 4)  # nobody listening yet: look again
        return holder, False

    async def release(self) -> None:
        await self.runtime.liveness.release(self.conn_id)

    def check_hello(self, hello: dict[str, Any]) -> None:
        session, status = hello.get("session"), hello.get("status")
        if session is not None and not isinstance(session, str):
            raise ServerClosed(CloseCode.PROTOCOL_ERROR, "session must be a string")
        if session is not None and not IDENTIFIER.fullmatch(session):
            # No session id this server made: unknown, so a new session (spec §4).
            hello["session"] = None
        if status is not None and not (isinstance(status, str) and STATUS_VALUE.fullmatch(status)):
            raise ServerClosed(CloseCode.PROTOCOL_ERROR, "status must be a status value")

    def welcome(self, outcome: Outcome, statuses: list[dict[str, str]]) -> dict[str, Any]:
        state = outcome.state
        assert state is not None  # hello always records connected or reconnected
        return {
            "t": "welcome",
            "session": outcome.session,
            "resumed": outcome.resumed,
            "state": state.to_wire(),
            "statuses": statuses,
            "heartbeat": {
                "interval": self.settings.ping_interval,
                "timeout": self.settings.ping_timeout,
            },
        }

    async def serve(self, identity: Identity) -> None:
        """Answer frames until the socket ends; then record why, if it is ours to."""
        record: str | None = None
        end_session = False
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, identity.exp - time.time()),
            lambda: self.spawn(self._expire()),
        )
        try:
            while True:
                frame = await self.receive()
                if isinstance(frame, dict):
                    record = disconnect_reason(
                        frame.get("code", CloseCode.ABNORMAL), frame.get("reason") or ""
                    )
                    break
                try:
                    said_bye = await self.handle(frame)
                except (ServerClosed, asyncio.CancelledError):
                    raise
                except Exception:
                    # A bug must cost one frame its answer, not the agent its session.
                    log.exception("frame from %s/%s failed", self.company, self.agent)
                    await self.error(None, ErrorCode.INTERNAL, "internal error")
                    continue
                if said_bye:
                    record, end_session = "client-closed", True
                    break
        except ServerClosed as closed:
            record = closed.record
            await self.close(closed.code, closed.reason)
        finally:
            expiry.cancel()
            if record is not None and self.record_when_socket_ends:
                await self.record_disconnect(record, end_session)

    async def _expire(self) -> None:
        # Record first, so the console never sees 4511 before the log does.
        self.record_when_socket_ends = False
        await self.record_disconnect("token-expired", end_session=False)
        await self.close(CloseCode.TOKEN_EXPIRED, "token-expired")

    async def record_disconnect(self, reason: str, end_session: bool) -> Outcome | None:
        now = now_ms()  # when it happened, even if it is written later
        try:
            outcome = await self.runtime.store.disconnect(
                self.company,
                self.agent,
                reason=reason,
                now=now,
                conn=self.conn_id,
                end_session=end_session,
                session_ttl=self.settings.session_ttl,
            )
        except (StaleConnection, Refused):
            return None  # someone else ended the session first, and recorded it
        except StoreUnavailable:
            self.deferred = True
            self.runtime.deferred.add(
                Disconnection(
                    self.company,
                    self.agent,
                    self.conn_id,
                    reason,
                    now,
                    end_session,
                    self.settings.session_ttl,
                )
            )
            return None
        return outcome

    async def handle(self, payload: str | bytes) -> bool:
        """Answer one frame; True when it was ``bye``."""
        verdict = self.limiter.check(time.monotonic())
        if verdict is Verdict.CLOSE:
            raise ServerClosed(CloseCode.RATE_LIMITED, "rate-limited", "rate-limited")
        try:
            message = decode(payload)
        except FrameError as exc:
            await self.error(None, ErrorCode.BAD_REQUEST, str(exc))
            return False
        ref = message.get("ref")
        if not valid_ref(ref):
            await self.error(None, ErrorCode.BAD_REQUEST, "ref must be a 64-bit integer")
            return False
        if verdict is Verdict.REFUSE:
            await self.error(ref, ErrorCode.RATE_LIMITED, "too many frames; slow down")
            return False
        kind = message["t"]
        if kind == "ping":
            await self.send({"t": "pong", "ref": ref})
        elif kind == "bye":
            outcome = await self.record_disconnect("client-closed", end_session=True)
            self.record_when_socket_ends = False  # recorded here; nothing left to record
            await self.ack(ref, outcome)
            await self.close(CloseCode.NORMAL, "bye")
            return True
        elif kind in ("status", "activity"):
            await self.change(kind, message, ref)
        elif kind == "hello":
            await self.error(ref, ErrorCode.BAD_REQUEST, "hello was already sent")
        else:
            await self.error(ref, ErrorCode.BAD_REQUEST, f"unknown frame type {kind!r}")
        return False

    async def change(self, kind: str, message: dict[str, Any], ref: Any) -> None:
        value = message.get("value")
        try:
            if kind == "status" and not (isinstance(value, str) and STATUS_VALUE.fullmatch(value)):
                raise Refused(ErrorCode.BAD_REQUEST, "value must be a status value")
            if kind == "activity" and not (isinstance(value, str) and value in ACTIVITY_VALUES):
                raise Refused(
                    ErrorCode.BAD_REQUEST, f"value must be one of {sorted(ACTIVITY_VALUES)}"
                )
            try:
                outcome = await self.apply(kind, str(value))
            except StaleConnection:
                if not await self.reclaim():
                    raise ServerClosed(CloseCode.REPLACED, "replaced", None) from None
                outcome = await self.apply(kind, str(value))
        except Refused as refused:
            await self.error(ref, refused.code, refused.message)
            return
        except StoreUnavailable:
            await self.error(ref, ErrorCode.STORE_UNAVAILABLE, "the store is unavailable; retry")
            return
        except StaleConnection:
            raise ServerClosed(CloseCode.REPLACED, "replaced", None) from None
        await self.ack(ref, outcome)

    async def apply(self, kind: str, value: str) -> Outcome:
        store, now = self.runtime.store, now_ms()
        if kind == "status":
            return await store.set_status(
                self.company, self.agent, value, by_user=True, now=now, conn=self.conn_id
            )
        return await store.activity(self.company, self.agent, value, now=now, conn=self.conn_id)

    async def reclaim(self) -> bool:
        """This connection is alive, but its session was ended for it: declared
        lost with this instance (cut off from Redis longer than ``instance_ttl``).
        Unless another connection took it over since, resume it right here — the
        log reads ``disconnected``/``server-lost`` then ``reconnected``."""
        runtime = self.runtime
        if self.session is None or await runtime.store.holder(self.company, self.agent):
            return False
        if not await runtime.store.session_resumable(self.company, self.session):
            return False
        outcome = await self.hello_again(restore=False)
        if not outcome.resumed:
            # It ended between the check and now: undo the session just made for us.
            await self.record_disconnect("session-replaced", end_session=True)
            return False
        log.warning("%s/%s: resumed a session declared lost", self.company, self.agent)
        return True

    async def ack(self, ref: Any, outcome: Outcome | None) -> None:
        if outcome is None:
            await self.send({"t": "ack", "ref": ref, "event": None, "state": None})
            return
        state = outcome.state or await self.runtime.store.state(self.company, self.agent)
        if state is not None:
            self.status = state.status
        event = outcome.changes[-1][0].to_wire() if outcome.changes else None
        await self.send(
            {"t": "ack", "ref": ref, "event": event, "state": state.to_wire() if state else None}
        )


async def agent_endpoint(websocket: WebSocket) -> None:
    async with admitted(websocket) as subprotocol:
        if subprotocol is not None:
            await AgentConnection(websocket, websocket.app.state.runtime, subprotocol).run()

// presence.js — the browser client of the presence protocol, version 1 (spec §4–§5).
//
// Plain ES module, no build step, no dependencies: served by the server at /sdk/presence.js.
// Two clients over the JSON subprotocol, each one WebSocket kept open across drops:
//
//   ConsoleClient  an agent's console: hello/welcome, status and activity acked through
//                  promises, the agent's state as events, reconnecting with the same session.
//   MonitorClient  a supervisor's live monitor: a snapshot, then every event folded into a
//                  Map of agents, resuming from the last cursor after a drop.
//
// The fold (applySnapshot, applyEvent) is pure and has the semantics of the Python SDK's
// client_sdk.monitor.apply_snapshot/apply_event; tests/browser runs both on the same sequences.
// Types: presence.d.ts beside this file.

import { CloseCode, ErrorCode, JSON_SUBPROTOCOL, isTerminal } from "./vocabulary.js";

export * from "./vocabulary.js";

/**
 * A refused request or a failed connection. `code` is the spec's error code (`unknown-status`,
 * `invalid-transition`, …) when the server answered, or one of the client's own:
 * `connection-lost` (the socket dropped before the answer: the change may or may not have been
 * applied; the `state` event tells), `timeout`, `closed` (the client was closed for good).
 * `closeCode` is the WebSocket close code where one ended the connection.
 */
export class PresenceError extends Error {
  constructor(code, message, closeCode = null) {
    super(message || code);
    this.name = "PresenceError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

/**
 * Delays in seconds before each reconnect attempt: exponential backoff with full jitter (attempt
 * n waits a uniform time in [0, min(cap, initial·factorⁿ))), as the Python SDK's, so that the
 * consoles of a failed instance don't all come back in the same instant.
 */
export function* exponentialBackoff({ initial = 0.5, factor = 2, cap = 30, random = Math.random } = {}) {
  if (!(initial > 0 && initial <= cap && factor >= 1)) {
    throw new RangeError("need 0 < initial <= cap and factor >= 1");
  }
  let ceiling = initial;
  for (;;) {
    yield random() * ceiling;
    ceiling = Math.min(cap, ceiling * factor);
  }
}

/** Whether a connection that closed with `code` (null: no close frame) should be reopened. */
export function shouldReconnect(code) {
  return code == null || !isTerminal(code);
}

// ---------------------------------------------------------------------------------------------
// The fold.

/** The view of a snapshot: a Map of each state under its agent's id. */
export function applySnapshot(agents) {
  const view = new Map();
  for (const state of agents) view.set(agentOf(state), state);
  return view;
}

/**
 * The view after one change, as a new Map; `view` is left as it was. `change` is an `event`
 * frame ({event, state, cursor}) or [event, state]. With `segment` (one segment's subscription),
 * an agent whose new state is not in that segment leaves the view, or stays out of it.
 */
export function applyEvent(view, change, { segment = null } = {}) {
  const folded = new Map(view);
  foldInto(folded, stateOf(change), segment);
  return folded;
}

// The in-place fold behind applyEvent: a monitor of 2,000 agents folds hundreds of events a
// second, and copying its Map for each would be most of its work.
function foldInto(view, state, segment) {
  const agent = agentOf(state);
  const segments = state.segments;
  if (segment == null || (Array.isArray(segments) && segments.includes(segment))) {
    view.set(agent, state);
  } else {
    view.delete(agent);
  }
}

function stateOf(change) {
  const state = Array.isArray(change) ? change[1] : change && change.state;
  if (state === null || typeof state !== "object" || Array.isArray(state)) {
    throw new TypeError("a change needs the agent's state after the event");
  }
  return state;
}

function agentOf(state) {
  const agent = state !== null && typeof state === "object" ? state.agent : undefined;
  if (typeof agent !== "string") throw new TypeError(`an agent state needs an agent id: ${JSON.stringify(state)}`);
  return agent;
}

/** Entry ids compare as numbers (ms, seq): "5-10" follows "5-9", which string order gets wrong. */
export function compareIds(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

// ---------------------------------------------------------------------------------------------
// One WebSocket, reopened after each drop that the policy allows, until closed for good.

const STATE_IDLE = "idle";

/**
 * What ConsoleClient and MonitorClient share. Its `connection` event says how the socket is:
 * `connecting`, `open` (detail.resumed tells whether what was held before the drop carried
 * over), `reconnecting` (detail.delay, in seconds, before the next attempt), `closed` (for
 * good; detail.code and detail.reason).
 */
class ReconnectingSocket extends EventTarget {
  constructor(url, options) {
    super();
    const { token, getToken, backoff = exponentialBackoff, requestTimeout = 10, WebSocket: Socket } = options;
    if (token == null && getToken == null) throw new TypeError("need a token or getToken");
    this.url = url;
    this._getToken = getToken || (async () => token);
    this._backoff = backoff;
    this._timeoutMs = requestTimeout * 1000;
    this._Socket = Socket || globalThis.WebSocket;
    this._ws = null;
    this._status = STATE_IDLE;
    this._closeCode = null;
    this._closeReason = "";
    this._delays = null;
    this._wake = null; // cuts the current reconnect wait short
    this._paused = false; // offline: don't spend attempts on a network that isn't there
    this._listeners = [];
    // The server's own defaults (ping_interval, ping_timeout); a console takes its welcome's.
    this._defaultHeartbeat = options.heartbeat ?? { interval: 10, timeout: 10 };
  }

  /** `idle`, `connecting`, `open`, `reconnecting` or `closed`. */
  get status() {
    return this._status;
  }

  /** The close code that closed the client for good; null until then. */
  get closeCode() {
    return this._closeCode;
  }

  // The first connect: it rejects rather than retries, so a bad token or URL shows at once.
  async _start() {
    if (this._status !== STATE_IDLE) throw new PresenceError("closed", "connect() was already called");
    this._watchPage();
    this._setStatus("connecting");
    try {
      await this._open(false);
    } catch (error) {
      this._finish(error.closeCode ?? null, error.message);
      throw error;
    }
  }

  async _open(reconnected) {
    const token = await this._getToken();
    if (this._status === "closed") throw new PresenceError("closed", "closed while connecting");
    const ws = new this._Socket(this.url, [JSON_SUBPROTOCOL]);
    ws.waiters = new Map(); // frame type → what the handshake waits for
    this._ws = ws;
    ws.onmessage = (message) => this._frame(ws, message.data);
    let timer;
    const opened = await new Promise((resolve, reject) => {
      timer = setTimeout(() => {
        reject(new PresenceError("timeout", "no answer to hello in time"));
        ws.close(CloseCode.NORMAL);
      }, this._timeoutMs);
      ws.onopen = () => this._handshake(ws, token).then(resolve, reject);
      ws.onclose = (close) => {
        const code = closeCodeOf(close);
        const detail = `closed with ${close.code}${close.reason ? ` (${close.reason})` : ""}`;
        reject(new PresenceError(isTerminal(close.code) ? reasonOf(close) : "connection-lost", detail, code));
      };
    }).finally(() => clearTimeout(timer));
    // Set before any close event can run: those are tasks, and this runs in the same microtask.
    ws.onclose = (close) => {
      if (ws === this._ws) this._dropped(close);
    };
    if (this._status === "closed" || ws !== this._ws) {
      ws.close(CloseCode.NORMAL);
      throw new PresenceError("closed", "closed while connecting");
    }
    this._delays = null;
    this._adopt(opened, reconnected);
    this._watch(ws, this._heartbeat(opened));
    this._setStatus("open", { resumed: reconnected && this._resumed(opened) });
    return opened;
  }

  // Browsers answer the server's pings but tell the page nothing of them, and a socket over a
  // network that died quietly stays "open" until TCP gives up, minutes later. So: after
  // `interval` seconds of silence, ping; no frame within `timeout` of that ping, and the socket
  // is given up and reopened. Judged from the ping's own time, not the timer's: a background
  // tab's timers may run a minute late, and lateness must not read as silence.
  _watch(ws, { interval, timeout }) {
    ws.heard = performance.now();
    let pinged = null;
    const timer = setInterval(() => {
      if (ws !== this._ws) {
        clearInterval(timer);
        return;
      }
      const now = performance.now();
      if (pinged !== null && ws.heard < pinged && now - pinged > timeout * 1000) {
        clearInterval(timer);
        ws.onclose = null;
        ws.close(CloseCode.NORMAL, "no answer to ping");
        this._dropped({ code: CloseCode.ABNORMAL, reason: "no answer to ping" });
      } else if (now - ws.heard >= interval * 1000 && (pinged === null || ws.heard >= pinged)) {
        pinged = now;
        ws.send(JSON.stringify({ t: "ping" }));
      }
    }, (interval * 1000) / 2);
  }

  // Frames that the handshake waits for go to it; the others, once open, to _dispatch.
  _frame(ws, data) {
    ws.heard = performance.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      ws.close(CloseCode.NORMAL, "undecodable frame");
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    const waiter = ws.waiters.get(frame.t);
    if (waiter) {
      ws.waiters.clear();
      waiter(frame);
    } else if (ws === this._ws && this._status === "open") {
      this._dispatch(frame);
    }
  }

  // The next frame of `kind` on this socket, or a rejection with the server's error code.
  _await(ws, kind) {
    return new Promise((resolve, reject) => {
      ws.waiters.set(kind, resolve);
      ws.waiters.set("error", (frame) => reject(new PresenceError(frame.code, frame.message)));
    });
  }

  _dropped(close) {
    this._ws = null;
    const code = closeCodeOf(close);
    this._lost(code);
    if (this._status === "closed") return;
    if (this._shouldReconnect(code)) {
      this._reconnect(code, close.reason);
    } else {
      this._finish(code, close.reason);
    }
  }

  async _reconnect(code, reason) {
    this._delays ??= this._backoff();
    while (this._status !== "closed") {
      const { value: delay, done } = this._delays.next();
      if (done) {
        this._finish(code, "reconnect attempts spent");
        return;
      }
      this._setStatus("reconnecting", { delay, code, reason });
      await this._sleep(delay * 1000);
      if (this._status === "closed") return;
      try {
        await this._open(true);
        return;
      } catch (error) {
        if (this._status === "closed") return;
        code = error.closeCode ?? null;
        reason = error.message;
        if (!this._shouldReconnect(code)) {
          this._finish(code, reason);
          return;
        }
      }
    }
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self._wake === done) self._wake = null;
        // Offline: wait on until the network is back (online wakes it), spending no attempts.
        if (self._paused && self._status !== "closed") {
          self._wake = () => {
            self._wake = null;
            resolve();
          };
          return;
        }
        resolve();
      }
      this._wake = done;
    });
  }

  // pagehide closes with 1000, which leaves a console's session resumable; pageshow of a page
  // restored from the back/forward cache reconnects; online cuts a reconnect wait short.
  _watchPage() {
    if (typeof window === "undefined") return;
    const on = (target, type, handler) => {
      target.addEventListener(type, handler);
      this._listeners.push(() => target.removeEventListener(type, handler));
    };
    on(window, "pagehide", () => {
      if (this._status === "closed") return;
      this._suspended = true;
      const ws = this._ws;
      this._ws = null;
      if (ws) ws.close(CloseCode.NORMAL, "page hidden");
      this._lost(null);
      this._setStatus("reconnecting", { delay: null, code: CloseCode.NORMAL, reason: "page hidden" });
    });
    on(window, "pageshow", (event) => {
      if (!event.persisted || !this._suspended || this._status === "closed") return;
      this._suspended = false;
      // Back from the back/forward cache: try at once, then back off as after any drop.
      this._open(true).catch((error) => {
        if (this._status !== "closed") this._reconnect(error.closeCode ?? null, error.message);
      });
    });
    on(window, "offline", () => {
      this._paused = true;
    });
    on(window, "online", () => {
      this._paused = false;
      if (this._wake) this._wake();
    });
  }

  _finish(code, reason) {
    if (this._status === "closed") return;
    this._closeCode = code;
    this._closeReason = reason || "";
    for (const remove of this._listeners.splice(0)) remove();
    const ws = this._ws;
    this._ws = null;
    this._setStatus("closed", { code, reason: this._closeReason });
    if (this._wake) this._wake();
    this._ended(code, this._closeReason);
    if (ws && ws.readyState <= 1) ws.close(CloseCode.NORMAL);
  }

  _setStatus(status, detail = {}) {
    this._status = status;
    this.dispatchEvent(new CustomEvent("connection", { detail: { status, ...detail } }));
  }

  _send(frame) {
    this._ws.send(JSON.stringify(frame));
  }

  // Hooks.
  _shouldReconnect(code) {
    return shouldReconnect(code);
  }
  _lost(_code) {}
  _ended(_code, _reason) {}
  _resumed(_opened) {
    return true;
  }
  _heartbeat(_opened) {
    return this._defaultHeartbeat;
  }
}

// 1006 is the browser's word for "no close frame": the protocol's null.
function closeCodeOf(close) {
  return close.code === CloseCode.ABNORMAL ? null : close.code;
}

function reasonOf(close) {
  switch (close.code) {
    case CloseCode.UNAUTHORIZED:
      return ErrorCode.UNAUTHORIZED;
    case CloseCode.FORBIDDEN:
      return ErrorCode.FORBIDDEN;
    case CloseCode.TOKEN_EXPIRED:
      return "token-expired";
    case CloseCode.KICKED:
      return "kicked";
    case CloseCode.REPLACED:
      return "replaced";
    default:
      return "protocol-error";
  }
}

// ---------------------------------------------------------------------------------------------
// The console.

const SESSION_KEY = "presence.session";

/**
 * An agent's console. Events: `connection` (see above), `welcome` (detail: the welcome frame),
 * `state` (detail: {state, event}; event is null for the state a welcome brings), and `closed`.
 *
 * The session id is kept in sessionStorage (per tab), so a reload of the page resumes it and the
 * log reads `reconnected`, not a new session. A terminal close (4500–4999) stops it, but for 4511
 * (token expired): getToken is asked for a fresh token and the session resumes with it.
 */
export class ConsoleClient extends ReconnectingSocket {
  constructor(url, options = {}) {
    super(url, options);
    this._status0 = options.status ?? null;
    this._client = options.client ?? "presence.js";
    this._storage = options.storage === undefined ? globalThis.sessionStorage ?? null : options.storage;
    this._storageKey = options.storageKey ?? `${SESSION_KEY}:${url}`;
    this._refreshesToken = options.getToken != null;
    this._session = this._storage?.getItem(this._storageKey) ?? null;
    this._state = null;
    this._statuses = [];
    this._nextRef = 1;
    this._pending = new Map(); // ref → {resolve, reject, timer}
  }

  /** The session id; null before the first welcome. */
  get session() {
    return this._session;
  }
  /** The agent's state (spec §2) as last heard. */
  get state() {
    return this._state;
  }
  /** The company's custom statuses, [{value, label}], from the welcome. */
  get statuses() {
    return this._statuses;
  }

  /** Open the connection and say hello: resolves with the welcome frame. */
  async connect() {
    await this._start();
    return this._welcome;
  }

  /** Set the agent's status; resolves with the ack {ref, event, state}. */
  setStatus(value) {
    return this._request({ t: "status", value });
  }

  /** Report an activity (in-call, end-call, dismiss, meeting, meeting-end). */
  report(value) {
    return this._request({ t: "activity", value });
  }

  /** Round trip to the server; resolves with the time it took, in milliseconds. */
  async ping() {
    const sent = performance.now();
    await this._request({ t: "ping" }, "pong");
    return performance.now() - sent;
  }

  /** Say bye (the session ends: `disconnected`/`client-closed`) and close for good. */
  async bye() {
    if (this._status === "closed") return;
    const ws = this._ws;
    this._forget();
    if (ws && ws.readyState === 1) {
      const closed = new Promise((resolve) => ws.addEventListener("close", resolve, { once: true }));
      this._finishing = true;
      this._send({ t: "bye", ref: this._nextRef++ });
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, this._timeoutMs))]);
    }
    this._finish(CloseCode.NORMAL, "bye");
  }

  /** Close the socket with 1000 without ending the session: it stays resumable for a while. */
  close() {
    this._finish(CloseCode.NORMAL, "closed by the page");
  }

  async _handshake(ws, token) {
    const hello = { t: "hello", token, client: this._client };
    if (this._session) hello.session = this._session;
    else if (this._status0) hello.status = this._status0;
    const welcome = this._await(ws, "welcome");
    ws.send(JSON.stringify(hello));
    const frame = await welcome;
    return frame;
  }

  _adopt(welcome, _reconnected) {
    this._welcome = welcome;
    this._session = welcome.session;
    this._storage?.setItem(this._storageKey, welcome.session);
    this._statuses = welcome.statuses || [];
    this.dispatchEvent(new CustomEvent("welcome", { detail: welcome }));
    this._setState(welcome.state, null);
  }

  _resumed(welcome) {
    return welcome.resumed === true;
  }

  _heartbeat(welcome) {
    return welcome.heartbeat ?? this._defaultHeartbeat;
  }

  _dispatch(frame) {
    switch (frame.t) {
      case "ack":
      case "pong":
      case "error": {
        const pending = this._pending.get(frame.ref);
        if (!pending) return;
        this._pending.delete(frame.ref);
        clearTimeout(pending.timer);
        if (frame.t === "error") {
          pending.reject(new PresenceError(frame.code, frame.message));
        } else {
          if (frame.state) this._setState(frame.state, frame.event ?? null);
          pending.resolve(frame);
        }
        return;
      }
      case "state":
        this._setState(frame.state, frame.event ?? null);
        return;
      default:
        return;
    }
  }

  _setState(state, event) {
    if (!state) return;
    this._state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, event } }));
  }

  // A request made while reconnecting waits for the connection (up to the request timeout),
  // so that a click during a blip of a second goes through rather than fails.
  async _request(frame, answer = "ack") {
    await this._whenOpen();
    const ref = this._nextRef++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new PresenceError("timeout", `no ${answer} in time`));
      }, this._timeoutMs);
      this._pending.set(ref, { resolve, reject, timer });
      this._send({ ...frame, ref });
    });
  }

  async _whenOpen() {
    if (this._status === "connecting" || this._status === "reconnecting") {
      await new Promise((resolve) => {
        const timer = setTimeout(settled, this._timeoutMs);
        const self = this;
        function settled() {
          clearTimeout(timer);
          self.removeEventListener("connection", changed);
          resolve();
        }
        function changed(event) {
          if (event.detail.status === "open" || event.detail.status === "closed") settled();
        }
        this.addEventListener("connection", changed);
      });
    }
    if (this._status === "closed") {
      throw new PresenceError("closed", "the console is closed", this._closeCode);
    }
    if (this._status !== "open" || !this._ws) {
      throw new PresenceError("connection-lost", "not connected: still reconnecting");
    }
  }

  _shouldReconnect(code) {
    if (this._finishing) return false;
    if (code === CloseCode.TOKEN_EXPIRED) return this._refreshesToken;
    if (code === CloseCode.NORMAL) return false; // the server's answer to our bye
    return shouldReconnect(code);
  }

  _lost(code) {
    for (const [ref, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new PresenceError("connection-lost", `connection lost (close code ${code})`, code));
      this._pending.delete(ref);
    }
  }

  _ended(code, reason) {
    this._lost(code);
    // These end the session on the server: a later page must start a new one.
    if (code === CloseCode.KICKED || code === CloseCode.REPLACED) this._forget();
    this.dispatchEvent(new CustomEvent("closed", { detail: { code, reason } }));
  }

  _forget() {
    this._storage?.removeItem(this._storageKey);
  }
}

// ---------------------------------------------------------------------------------------------
// The monitor.

/**
 * A supervisor's live monitor of a company (or one segment). `agents` is a Map agent → state.
 * Events: `snapshot` (detail: {agents, cursor}; redraw everything), `change` (detail: {event,
 * state, cursor}; one agent changed), `connection` (detail.status `open` with detail.resumed
 * true when the missed events followed, false when a snapshot replaced the view) and `closed`.
 *
 * After a drop it resubscribes from its last cursor, so that only the missed events come. After
 * 4100 (too slow) or 1012 (service restart), or an event of another epoch, it asks for a fresh
 * snapshot instead: replaying a backlog it could not keep up with would only repeat the 4100.
 */
export class MonitorClient extends ReconnectingSocket {
  constructor(url, options = {}) {
    super(url, options);
    this.segment = options.segment ?? null;
    this._cursor = options.cursor ?? null;
    this._view = new Map();
    this._fresh = false; // the next subscribe asks for a snapshot
  }

  get agents() {
    return this._view;
  }
  /** The last cursor folded: {epoch, id}. Store it to resume a later monitor from it. */
  get cursor() {
    return this._cursor;
  }

  async connect() {
    await this._start();
  }

  close() {
    this._finish(CloseCode.NORMAL, "closed by the page");
  }

  async _handshake(ws, token) {
    const welcome = this._await(ws, "welcome");
    ws.send(JSON.stringify({ t: "hello", token }));
    await welcome;
    const subscribe = { t: "subscribe", ref: 1 };
    if (this.segment != null) subscribe.segment = this.segment;
    if (this._cursor != null && !this._fresh) subscribe.cursor = this._cursor;
    const subscribed = this._await(ws, "subscribed");
    ws.send(JSON.stringify(subscribe));
    const frame = await subscribed;
    if (frame.recovered !== true && !Array.isArray(frame.agents)) {
      throw new PresenceError("protocol-error", "malformed subscribed frame");
    }
    return frame;
  }

  _adopt(subscribed) {
    this._fresh = false;
    if (subscribed.recovered === true) return; // the missed events follow, from our cursor on
    this._view = applySnapshot(subscribed.agents);
    this._cursor = subscribed.cursor;
    this.dispatchEvent(new CustomEvent("snapshot", { detail: { agents: this._view, cursor: this._cursor } }));
  }

  _resumed(subscribed) {
    return subscribed.recovered === true;
  }

  _dispatch(frame) {
    if (frame.t !== "event") return;
    const { event, state, cursor } = frame;
    const last = this._cursor;
    if (!cursor || !last || cursor.epoch !== last.epoch) {
      // The stream was recreated under us: only a new snapshot is right.
      this._fresh = true;
      this._ws?.close(CloseCode.NORMAL, "out of sync");
      return;
    }
    if (compareIds(cursor.id, last.id) <= 0) return; // already folded
    const agent = agentOf(state);
    const known = this._view.has(agent);
    foldInto(this._view, state, this.segment);
    this._cursor = cursor;
    // A segment's monitor also hears of agents outside it (that is how one joins or leaves).
    if (known || this._view.has(agent)) {
      this.dispatchEvent(new CustomEvent("change", { detail: { event, state, cursor } }));
    }
  }

  _shouldReconnect(code) {
    if (code === CloseCode.TOO_SLOW || code === CloseCode.SERVICE_RESTART) this._fresh = true;
    // A monitor never says bye: a 1000 from the server answers nothing of ours.
    return code == null || !isTerminal(code);
  }

  _ended(code, reason) {
    this.dispatchEvent(new CustomEvent("closed", { detail: { code, reason } }));
  }
}

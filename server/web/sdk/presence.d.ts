// Types of presence.js, the browser client of the presence protocol, version 1.
// Hand-written beside the module (there is no build step); docs/sdk.md shows it in use.

export * from "./vocabulary.js";

/** An agent's state (spec §2). */
export interface AgentState {
  agent: string;
  session: string | null;
  connection: "online" | "offline";
  status: string;
  activity: "idle" | "occupying" | "in-call" | "meeting";
  routable: boolean;
  segments: string[];
  since: { connection: number; status: number; activity: number };
  idle_since: number | null;
  version: string;
}

/** One entry of the company's log (spec §3). */
export interface PresenceEvent {
  id: string;
  ts: number;
  agent: string;
  session: string | null;
  type: "status-changed" | "status-changed-user" | "acd";
  value: string;
  reason: string | null;
}

/** A position in a company's log (spec §5). */
export interface Cursor {
  epoch: string;
  id: string;
}

export interface Welcome {
  t: "welcome";
  session: string;
  resumed: boolean;
  state: AgentState;
  statuses: { value: string; label: string }[];
  heartbeat: { interval: number; timeout: number };
}

export interface Ack {
  t: "ack";
  ref: number;
  event: PresenceEvent | null;
  state: AgentState;
}

/** The spec's error codes, and the client's own for a request that got no answer. */
export type PresenceErrorCode =
  | "bad-request"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "unknown-status"
  | "invalid-transition"
  | "acd-mode"
  | "no-agent-available"
  | "rate-limited"
  | "store-unavailable"
  | "internal"
  | "connection-lost"
  | "timeout"
  | "closed"
  | "kicked"
  | "replaced"
  | "token-expired"
  | "protocol-error";

export class PresenceError extends Error {
  readonly code: PresenceErrorCode;
  /** The WebSocket close code where one ended the connection. */
  readonly closeCode: number | null;
}

export interface BackoffOptions {
  initial?: number;
  factor?: number;
  cap?: number;
  random?: () => number;
}
/** Delays in seconds: exponential backoff with full jitter. */
export function exponentialBackoff(options?: BackoffOptions): Generator<number, never>;
export function shouldReconnect(code: number | null): boolean;
/** Compares two stream entry ids as numbers: negative, zero or positive. */
export function compareIds(a: string, b: string): number;

export type View = Map<string, AgentState>;
export type Change = { event?: PresenceEvent; state: AgentState; cursor?: Cursor } | [PresenceEvent, AgentState];
export function applySnapshot(agents: Iterable<AgentState>): View;
export function applyEvent(view: View, change: Change, options?: { segment?: string | null }): View;

export interface ClientOptions {
  /** A token, or getToken: called before every connect (and after a 4511). */
  token?: string;
  getToken?: () => Promise<string> | string;
  /** Delays before reconnect attempts; a finite series gives up when spent. */
  backoff?: () => Iterator<number>;
  /** Seconds to wait for an answer. Default 10. */
  requestTimeout?: number;
  WebSocket?: typeof WebSocket;
}

export type ConnectionStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";
export interface ConnectionDetail {
  status: ConnectionStatus;
  /** open: whether what was held before a drop carried over (session resumed, events recovered). */
  resumed?: boolean;
  /** reconnecting: seconds before the next attempt; null while the page is hidden. */
  delay?: number | null;
  code?: number | null;
  reason?: string;
}

export interface ConsoleOptions extends ClientOptions {
  /** The status a new session starts in (hello's `status`). */
  status?: string;
  /** hello's `client`, for the server's log. */
  client?: string;
  /** Where the session id is kept; default sessionStorage; null keeps none. */
  storage?: Storage | null;
  storageKey?: string;
}

export interface ConsoleEvents {
  connection: ConnectionDetail;
  welcome: Welcome;
  state: { state: AgentState; event: PresenceEvent | null };
  closed: { code: number | null; reason: string };
}

export class ConsoleClient extends EventTarget {
  constructor(url: string, options: ConsoleOptions);
  readonly url: string;
  readonly status: ConnectionStatus;
  readonly closeCode: number | null;
  readonly session: string | null;
  readonly state: AgentState | null;
  readonly statuses: { value: string; label: string }[];
  connect(): Promise<Welcome>;
  setStatus(value: string): Promise<Ack>;
  report(value: "in-call" | "end-call" | "dismiss" | "meeting" | "meeting-end"): Promise<Ack>;
  ping(): Promise<number>;
  bye(): Promise<void>;
  close(): void;
  addEventListener<K extends keyof ConsoleEvents>(type: K, listener: (event: CustomEvent<ConsoleEvents[K]>) => void, options?: AddEventListenerOptions | boolean): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: AddEventListenerOptions | boolean): void;
  removeEventListener<K extends keyof ConsoleEvents>(type: K, listener: (event: CustomEvent<ConsoleEvents[K]>) => void): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: EventListenerOptions | boolean): void;
}

export interface MonitorOptions extends ClientOptions {
  segment?: string | null;
  /** Resume from a cursor stored earlier. */
  cursor?: Cursor | null;
}

export interface MonitorEvents {
  connection: ConnectionDetail;
  snapshot: { agents: View; cursor: Cursor };
  change: { event: PresenceEvent; state: AgentState; cursor: Cursor };
  closed: { code: number | null; reason: string };
}

export class MonitorClient extends EventTarget {
  constructor(url: string, options: MonitorOptions);
  readonly url: string;
  readonly segment: string | null;
  readonly status: ConnectionStatus;
  readonly closeCode: number | null;
  readonly agents: View;
  readonly cursor: Cursor | null;
  connect(): Promise<void>;
  close(): void;
  addEventListener<K extends keyof MonitorEvents>(type: K, listener: (event: CustomEvent<MonitorEvents[K]>) => void, options?: AddEventListenerOptions | boolean): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: AddEventListenerOptions | boolean): void;
  removeEventListener<K extends keyof MonitorEvents>(type: K, listener: (event: CustomEvent<MonitorEvents[K]>) => void): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: EventListenerOptions | boolean): void;
}

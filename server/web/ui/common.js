// What the pages share: the token, the HTTP API, building elements (always as text: agent ids
// and labels are data, never markup), the page's header, durations and times.

const TOKEN_KEY = "presence.token";

/**
 * The tab's token. One passed in the URL fragment (#token=…, never the query string, so it never
 * reaches a server's log) is kept in sessionStorage and taken out of the address bar, so that a
 * copied link or a screenshot doesn't carry it.
 */
export function currentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given.trim());
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims, unverified: for display only; the server checks every request. */
export function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(payload), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The WebSocket URL of a path on this server. */
export function socketUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/** An HTTP API error: the spec's code and message, and the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Calls the HTTP API with the tab's token: the JSON answer, or an ApiError. */
export async function api(path, { method = "GET", body, token = currentToken(), raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "connection-lost", `the server could not be reached (${error.message})`);
  }
  if (!response.ok) {
    let code = "internal";
    let message = `HTTP ${response.status}`;
    try {
      const answer = await response.json();
      code = answer.error?.code ?? code;
      message = answer.error?.message ?? message;
    } catch {
      // not the API's error body (a proxy's page, say): the status says enough
    }
    throw new ApiError(response.status, code, message);
  }
  return raw ? response : response.json();
}

/**
 * An element: h("td", {class: "x", title: t}, "text", child…). Children are nodes or text;
 * text is set as text, so nothing rendered from data is ever parsed as HTML.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/**
 * The colour class of a value, a status or a state, by contact-center convention (ui.css's
 * .pill and .counter): available green, breaks amber, offline grey, in a call blue.
 */
export function tone(value) {
  switch (value) {
    case "connected":
    case "reconnected":
      return "online";
    case "available":
      return "available";
    case "offline":
    case "disconnected":
      return "offline";
    case "in-call":
      return "in-call";
    case "occupying":
      return "occupying";
    case "meeting":
      return "meeting";
    case "busy":
      return "busy";
    case "break":
    case "meal":
    case "bath":
    case "training":
    case "gathering":
      return "amber";
    default:
      return "other";
  }
}

/** "4 s", "12 min", "3 h 05 min". */
export function duration(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// toLocaleTimeString builds a formatter at each call (90 µs in Chromium 156, against 6 µs for
// one built once), and the monitor formats a time for every routable row in sight each frame.
const CLOCK = new Intl.DateTimeFormat([], { hour: "numeric", minute: "numeric", second: "numeric", hour12: false });

/** A clock time in the browser's zone: "14:03:27". */
export function clock(ms) {
  return ms == null ? "" : CLOCK.format(ms);
}

/**
 * The page's frame: fills the header (the pages' links, who is signed in) and, without a token,
 * shows the form to paste one. Resolves with the token and its claims once there is one.
 */
export function signIn({ title, roles }) {
  const header = document.querySelector("header.top");
  const main = document.querySelector("main");
  const nav = h(
    "nav",
    {},
    ...[
      ["/monitor", "Live Monitor"],
      ["/events", "Eventos de conexión"],
      ["/console", "Consola"],
    ].map(([href, label]) => h("a", { href, class: location.pathname === href ? "current" : null }, label)),
  );
  header.replaceChildren(h("span", { class: "brand" }, "presence"), nav);
  document.title = `${title} · presence`;
  const token = currentToken();
  const claims = token ? claimsOf(token) : null;
  if (token && claims) {
    const who = h(
      "span",
      { class: "who", title: `company ${claims.company} · role ${claims.role}` },
      h("b", {}, claims.sub),
      ` · ${claims.company} · ${claims.role}`,
      h("button", { type: "button", class: "link", onclick: () => { forgetToken(); location.reload(); } }, "salir"),
    );
    header.append(who);
    if (roles && !roles.includes(claims.role)) {
      main.prepend(h("p", { class: "notice bad" }, `This page needs a ${roles.join(" or ")} token; this one is ${claims.role}.`));
    }
    return Promise.resolve({ token, claims });
  }
  return new Promise((resolve) => {
    const input = h("textarea", { name: "token", rows: 4, placeholder: "eyJhbGciOi…", required: true, spellcheck: "false" });
    const form = h(
      "form",
      { class: "signin" },
      h("h1", {}, title),
      h("p", {}, `Paste a ${roles.join(" or ")} token. It stays in this tab only.`),
      input,
      h("p", { class: "hint" }, "For development: ", h("code", {}, "presence-server token --company acme --sub ana --role supervisor --url")),
      h("button", { type: "submit" }, "Open"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const pasted = input.value.trim();
      if (!claimsOf(pasted)) {
        input.setCustomValidity("not a token");
        input.reportValidity();
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, pasted);
      location.reload();
    });
    input.addEventListener("input", () => input.setCustomValidity(""));
    main.replaceChildren(form);
  });
}

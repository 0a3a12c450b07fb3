// The Live Monitor: every agent of the company, live, from the monitor WebSocket.
//
// The view is the MonitorClient's Map of agents. Changes only mark rows dirty; one animation
// frame applies them (a row's cells are rewritten only where their text changed), recounts and,
// when the order may have changed, re-sorts. A 2,000-agent company changing 200 times a second
// stays interactive this way: bench/scenarios/monitor_page.py measures it in Chromium.
//
// Forcing a status and disconnecting go through the HTTP API; the rows change only when the
// feed brings the events, never optimistically.
//
// "State", on this page, is the one thing a row shows an agent doing: offline, else the
// activity when it is not idle (in a call, occupied, in a meeting), else the status. Its time
// is the time since that thing began, and the thresholds are per state.

import { MonitorClient } from "/sdk/presence.js";
import { ApiError, api, clock, duration, h, signIn, socketUrl } from "./common.js";

const ACTIVITY_LABELS = { idle: "Libre", occupying: "Asignado por ACD", "in-call": "En llamada", meeting: "En reunión" };
const STATE_LABELS = { offline: "Desconectado", available: "Disponible", ...ACTIVITY_LABELS };
// Minutes in a state before its row stands out; the page's settings dialog changes them.
const DEFAULT_THRESHOLDS = { break: 15, bath: 10, meal: 60, training: 90, gathering: 60, busy: 30, occupying: 1, "in-call": 30, meeting: 60 };
const THRESHOLDS_KEY = "presence.monitor.thresholds";
const SORTS = {
  time: { label: "Tiempo en estado", compare: (a, b) => a.stateSince - b.stateSince || byAgent(a, b) },
  status: { label: "Estado", compare: (a, b) => a.rank - b.rank || a.stateSince - b.stateSince || byAgent(a, b) },
  agent: { label: "Ejecutivo", compare: byAgent },
};

function byAgent(a, b) {
  return a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0;
}

/** The one state a row shows, and the moment it began. */
function stateOf(agent) {
  if (agent.connection === "offline") return ["offline", agent.since?.connection];
  if (agent.activity && agent.activity !== "idle") return [agent.activity, agent.since?.activity];
  return [agent.status, agent.since?.status];
}

/** The colour class of a state. */
function tone(state) {
  switch (state) {
    case "available":
      return "available";
    case "offline":
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

class LiveMonitorPage {
  constructor(token, claims) {
    this.token = token;
    this.claims = claims;
    this.rows = new Map(); // agent → Row
    this.dirty = new Set();
    this.labels = new Map([["available", "Disponible"]]);
    this.statuses = ["available"];
    this.filter = { text: "", segment: "", state: "" };
    this.sort = "time";
    this.thresholds = { ...DEFAULT_THRESHOLDS, ...JSON.parse(sessionStorage.getItem(THRESHOLDS_KEY) || "{}") };
    this.frame = 0;
    this.resort = true;
    this.snapshots = 0;
    this.changes = 0;
    this.canAct = ["supervisor", "admin"].includes(claims.role);
  }

  async start() {
    this.layout();
    try {
      const config = await api("/v1/config");
      this.statuses = ["available", ...config.statuses.map((s) => s.value)];
      for (const { value, label } of config.statuses) this.labels.set(value, label);
    } catch (error) {
      this.notify(error);
    }
    this.fillStatusFilter();
    this.client = new MonitorClient(socketUrl("/v1/monitor"), { getToken: async () => this.token });
    this.client.addEventListener("snapshot", (event) => this.onSnapshot(event.detail.agents));
    this.client.addEventListener("change", (event) => this.onChange(event.detail.state));
    this.client.addEventListener("connection", (event) => this.onConnection(event.detail));
    try {
      await this.client.connect();
    } catch (error) {
      this.notify(error);
    }
    setInterval(() => this.tick(), 1000);
  }

  // Layout, built once.

  layout() {
    this.link = h("span", { id: "link-state", class: "link-state", "data-state": "connecting" }, "Conectando…");
    this.counters = h("section", { class: "counters", id: "counters" });
    this.search = h("input", { type: "search", id: "search", placeholder: "Buscar ejecutivo o segmento", oninput: () => this.setFilter("text", this.search.value.trim().toLowerCase()) });
    this.segmentFilter = h("select", { id: "segment", onchange: () => this.setFilter("segment", this.segmentFilter.value) }, h("option", { value: "" }, "Todos los segmentos"));
    this.stateFilter = h("select", { id: "state-filter", onchange: () => this.setFilter("state", this.stateFilter.value) });
    this.sortSelect = h(
      "select",
      { id: "sort", onchange: () => this.setSort(this.sortSelect.value) },
      ...Object.entries(SORTS).map(([key, { label }]) => h("option", { value: key }, `Ordenar: ${label}`)),
    );
    const settings = h("button", { type: "button", class: "secondary", id: "thresholds", onclick: () => this.editThresholds() }, "Umbrales");
    this.notice = h("div", { id: "notice" });
    this.body = h("tbody", { id: "agents" });
    this.empty = h("p", { class: "empty", id: "empty" }, "Esperando la primera instantánea…");
    const head = h(
      "tr",
      {},
      h("th", {}, this.sortButton("agent", "Ejecutivo")),
      h("th", {}, "Conexión"),
      h("th", {}, this.sortButton("status", "Estado")),
      h("th", {}, "Actividad"),
      h("th", {}, this.sortButton("time", "Tiempo en estado")),
      h("th", {}, "Segmentos"),
      h("th", {}, "Enrutable / libre desde"),
      h("th", {}, this.canAct ? "Acciones" : ""),
    );
    this.table = h("table", { class: "grid", id: "monitor" }, h("thead", {}, head), this.body);
    document.querySelector("main").replaceChildren(
      h("div", { class: "toolbar" }, h("h1", {}, "Live Monitor"), this.link, h("span", { class: "grow" }), h("span", { class: "muted" }, this.claims.company)),
      this.counters,
      h("div", { class: "toolbar" }, this.search, this.segmentFilter, this.stateFilter, this.sortSelect, h("span", { class: "grow" }), settings),
      this.notice,
      this.table,
      this.empty,
    );
  }

  sortButton(key, label) {
    const button = h("button", { type: "button", "data-sort": key, onclick: () => this.setSort(key) }, label);
    return button;
  }

  fillStatusFilter() {
    this.stateFilter.replaceChildren(
      h("option", { value: "" }, "Todos los estados"),
      h("option", { value: "online" }, "Conectados"),
      h("option", { value: "routable" }, "Enrutables"),
      ...this.statuses.map((value) => h("option", { value: `status:${value}` }, this.label(value))),
      ...Object.keys(ACTIVITY_LABELS).filter((a) => a !== "idle").map((a) => h("option", { value: `state:${a}` }, ACTIVITY_LABELS[a])),
      h("option", { value: "state:offline" }, "Desconectados"),
    );
  }

  label(value) {
    return this.labels.get(value) ?? STATE_LABELS[value] ?? value;
  }

  // The feed.

  onSnapshot(agents) {
    this.snapshots += 1;
    document.body.dataset.snapshots = String(this.snapshots);
    for (const row of this.rows.values()) row.tr.remove();
    this.rows.clear();
    this.dirty.clear();
    for (const agent of agents.values()) this.dirty.add(agent.agent);
    this.resort = true;
    this.schedule();
  }

  onChange(state) {
    this.changes += 1;
    this.dirty.add(state.agent);
    this.schedule();
  }

  onConnection({ status, resumed }) {
    const [state, text] =
      status === "open"
        ? resumed
          ? ["resumed", `En vivo · reanudado a las ${clock(Date.now())}`]
          : ["live", "En vivo"]
        : status === "reconnecting"
          ? ["reconnecting", "Reconectando…"]
          : status === "closed"
            ? ["closed", `Desconectado (${this.client?.closeCode ?? "sin código"})`]
            : ["connecting", "Conectando…"];
    this.link.dataset.state = state;
    this.link.textContent = text;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  // Rendering.

  render() {
    this.frame = 0;
    const view = this.client.agents;
    const now = Date.now();
    let segmentsChanged = false;
    for (const agent of this.dirty) {
      const state = view.get(agent);
      let row = this.rows.get(agent);
      if (!state) {
        // Left the view (a segment's monitor): its row goes.
        row?.tr.remove();
        this.rows.delete(agent);
        continue;
      }
      if (!row) {
        row = new Row(this, agent);
        this.rows.set(agent, row);
        this.body.append(row.tr);
        segmentsChanged = true;
      }
      const before = row.key;
      segmentsChanged = row.update(state, now) || segmentsChanged;
      if (row.key !== before) this.resort = true;
    }
    this.dirty.clear();
    if (segmentsChanged) this.fillSegments();
    if (this.resort) this.order();
    this.count();
    this.empty.hidden = this.rows.size > 0;
    this.empty.textContent = this.snapshots ? "Ningún ejecutivo todavía." : "Esperando la primera instantánea…";
    document.body.dataset.rendered = String(this.changes);
  }

  order() {
    this.resort = false;
    const compare = SORTS[this.sort].compare;
    const rows = [...this.rows.values()].sort(compare);
    // Move only what is out of place: a re-sort after one change moves one row.
    let previous = null;
    for (const row of rows) {
      const expected = previous ? previous.tr.nextSibling : this.body.firstChild;
      if (row.tr !== expected) this.body.insertBefore(row.tr, expected);
      previous = row;
    }
    for (const button of this.table.querySelectorAll("th button")) {
      if (button.dataset.sort === this.sort) button.setAttribute("aria-sort", this.sort === "agent" ? "ascending" : "descending");
      else button.removeAttribute("aria-sort");
    }
  }

  count() {
    const counts = { online: 0, available: 0, routable: 0, "in-call": 0 };
    const byStatus = new Map(this.statuses.map((s) => [s, 0]));
    for (const row of this.rows.values()) {
      const state = row.state;
      if (state.connection !== "online") continue;
      counts.online += 1;
      if (state.status === "available") counts.available += 1;
      if (state.routable) counts.routable += 1;
      if (state.activity === "in-call") counts["in-call"] += 1;
      byStatus.set(state.status, (byStatus.get(state.status) ?? 0) + 1);
    }
    const tiles = [
      ["online", "En línea", counts.online, "online"],
      ["routable", "Enrutables", counts.routable, "routable"],
      ["in-call", "En llamada", counts["in-call"], "in-call"],
      ...[...byStatus].map(([status, n]) => [`status-${status}`, this.label(status), n, tone(status)]),
    ];
    const text = tiles.map((t) => `${t[0]}=${t[2]}`).join(",");
    if (text === this.countersText) return;
    this.countersText = text;
    this.counters.replaceChildren(
      ...tiles.map(([key, label, n, cls]) => h("div", { class: `counter ${cls}`, "data-counter": key }, h("b", {}, n), h("span", {}, label))),
    );
  }

  fillSegments() {
    const segments = new Set();
    for (const row of this.rows.values()) for (const s of row.state.segments || []) segments.add(s);
    const chosen = this.segmentFilter.value;
    this.segmentFilter.replaceChildren(
      h("option", { value: "" }, "Todos los segmentos"),
      ...[...segments].sort().map((s) => h("option", { value: s, selected: s === chosen }, s)),
    );
  }

  // Once a second: the ticking times, and the thresholds they cross.
  tick() {
    const now = Date.now();
    for (const row of this.rows.values()) row.tick(now);
  }

  setFilter(name, value) {
    this.filter[name] = value;
    for (const row of this.rows.values()) row.applyFilter();
  }

  setSort(key) {
    this.sort = key;
    this.sortSelect.value = key;
    this.order();
  }

  matches(state) {
    const { text, segment, state: wanted } = this.filter;
    if (segment && !(state.segments || []).includes(segment)) return false;
    if (text && !state.agent.toLowerCase().includes(text) && !(state.segments || []).some((s) => s.toLowerCase().includes(text))) return false;
    if (!wanted) return true;
    if (wanted === "online") return state.connection === "online";
    if (wanted === "routable") return state.routable;
    if (wanted.startsWith("status:")) return state.connection === "online" && state.status === wanted.slice(7);
    return stateOf(state)[0] === wanted.slice(6);
  }

  // Actions, confirmed first; the rows follow the feed.

  async act(agent, action, value) {
    const what =
      action === "kick"
        ? `¿Desconectar a ${agent}? Su sesión termina (kicked) y su consola no se reconecta sola.`
        : `¿Cambiar el estado de ${agent} a «${this.label(value)}»?`;
    if (!(await confirmDialog(what, action === "kick" ? "Desconectar" : "Cambiar estado"))) return;
    const path = `/v1/agents/${encodeURIComponent(agent)}/${action === "kick" ? "disconnect" : "status"}`;
    try {
      await api(path, { method: "POST", body: action === "kick" ? {} : { value } });
      this.notify(null);
    } catch (error) {
      this.notify(error);
    }
  }

  editThresholds() {
    const states = [...new Set([...this.statuses.filter((s) => s !== "available"), "occupying", "in-call", "meeting"])];
    const inputs = states.map((state) =>
      h("input", { type: "number", min: 0, step: 1, name: state, value: this.thresholds[state] ?? "", placeholder: "—" }),
    );
    const dialog = h(
      "dialog",
      { id: "thresholds-dialog" },
      h("form", { method: "dialog" },
        h("h1", {}, "Umbrales (minutos)"),
        h("p", { class: "muted" }, "Una fila resalta cuando el ejecutivo lleva más que esto en el estado. Vacío: sin umbral."),
        h("div", { class: "filters" }, ...states.map((state, i) => h("label", {}, this.label(state), inputs[i]))),
        h("menu", {}, h("button", { value: "cancel", class: "secondary" }, "Cancelar"), h("button", { value: "ok", class: "primary" }, "Guardar")),
      ),
    );
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "ok") {
        for (const input of inputs) {
          if (input.value === "") delete this.thresholds[input.name];
          else this.thresholds[input.name] = Number(input.value);
        }
        sessionStorage.setItem(THRESHOLDS_KEY, JSON.stringify(this.thresholds));
        this.tick();
      }
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  }

  notify(error) {
    if (!error) {
      this.notice.replaceChildren();
      return;
    }
    const code = error instanceof ApiError || error.code ? ` (${error.code})` : "";
    this.notice.replaceChildren(h("p", { class: "notice bad", role: "alert" }, `${error.message}${code}`));
  }
}

/** One agent's row: its cells, rewritten only where their text changes. */
class Row {
  constructor(page, agent) {
    this.page = page;
    this.agent = agent;
    this.cells = {};
    const cell = (name, cls) => (this.cells[name] = h("td", { class: cls ?? name }));
    this.tr = h(
      "tr",
      { "data-agent": agent },
      cell("agent"),
      cell("connection"),
      cell("status"),
      cell("activity"),
      cell("time"),
      cell("segments"),
      cell("routable"),
      cell("actions"),
    );
    this.cells.agent.textContent = agent;
    if (page.canAct) this.cells.actions.append(...this.actions());
    this.shown = {};
    this.state = null;
    this.key = "";
  }

  actions() {
    const force = h(
      "select",
      { "aria-label": `Forzar estado de ${this.agent}`, class: "force" },
      h("option", { value: "" }, "Forzar estado…"),
      ...this.page.statuses.map((value) => h("option", { value }, this.page.label(value))),
    );
    force.addEventListener("change", () => {
      const value = force.value;
      force.value = "";
      if (value) this.page.act(this.agent, "status", value);
    });
    const kick = h("button", { type: "button", class: "danger kick", onclick: () => this.page.act(this.agent, "kick") }, "Desconectar");
    return [force, " ", kick];
  }

  /** Takes the agent's new state; whether its segments changed. */
  update(state, now) {
    const previous = this.state;
    this.state = state;
    const [current, since] = stateOf(state);
    this.stateName = current;
    this.stateSince = since ?? now;
    this.rank = this.page.statuses.indexOf(state.status) + (state.connection === "offline" ? 1000 : 0);
    this.key = `${current}|${this.stateSince}|${state.status}`;
    const online = state.connection === "online";
    this.set("connection", online ? "En línea" : "Desconectado", `pill ${online ? "online" : "offline"}`);
    this.set("status", this.page.label(state.status), `pill ${online ? tone(state.status) : "offline"}`);
    this.set("activity", online ? ACTIVITY_LABELS[state.activity] ?? state.activity : "—", `pill ${online ? tone(state.activity) : "offline"}`);
    this.set("routable", state.routable ? `Sí · desde ${clock(state.idle_since)}` : "No");
    this.tr.className = online ? "" : "offline";
    const segments = (state.segments || []).join(",");
    const changed = !previous || segments !== (previous.segments || []).join(",");
    if (changed) this.cells.segments.replaceChildren(...(state.segments || []).map((s) => h("span", { class: "pill other" }, s)));
    this.tick(now);
    this.applyFilter();
    return changed;
  }

  tick(now) {
    const elapsed = now - this.stateSince;
    this.set("time", duration(elapsed));
    const limit = this.page.thresholds[this.stateName];
    const over = limit !== undefined && limit !== null && elapsed > limit * 60_000;
    this.tr.classList.toggle("over", over);
  }

  // Text into a cell (as a pill when `pill` names its classes), only when it changed.
  set(name, text, pill) {
    const shown = `${text}|${pill ?? ""}`;
    if (this.shown[name] === shown) return;
    this.shown[name] = shown;
    const cell = this.cells[name];
    if (pill) cell.replaceChildren(h("span", { class: pill }, text));
    else cell.textContent = text;
  }

  applyFilter() {
    this.tr.hidden = !this.page.matches(this.state);
  }
}

function confirmDialog(question, action) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { id: "confirm" },
      h("form", { method: "dialog" },
        h("p", {}, question),
        h("menu", {}, h("button", { value: "cancel", class: "secondary" }, "Cancelar"), h("button", { value: "ok", class: "danger", id: "confirm-ok" }, action)),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

const { token, claims } = await signIn({ title: "Live Monitor", roles: ["supervisor", "admin"] });
new LiveMonitorPage(token, claims).start();

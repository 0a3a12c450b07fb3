// The Live Monitor: every agent of the company, live, from the monitor WebSocket.
//
// The view is the MonitorClient's Map of agents, and each agent's Row is a model, not markup.
// Only the rows in sight exist in the DOM: a pool of <tr> (RowView) bound, at each animation
// frame, to the rows that the scroll position shows, between two spacers that give the table
// its full height. A change only marks its row dirty; the next render (at most every 100 ms for
// the feed's changes, at the next frame for scrolling and typing) folds the dirty rows, re-sorts
// when an order key moved, recounts, and rewrites the cells in sight whose text changed. With
// every row in the DOM, each change and each second's tick restyled and laid out a 2,000-row
// table (about a second a frame on this machine); this way a frame touches some 40 rows,
// whatever the company's size. bench/scenarios/monitor_page.py measures it in Chromium.
//
// Forcing a status and disconnecting go through the HTTP API; the rows change only when the
// feed brings the events, never optimistically.
//
// "State", on this page, is the one thing a row shows an agent doing: offline, else the
// activity when it is not idle (in a call, occupied, in a meeting), else the status. Its time
// is the time since that thing began, and the thresholds are per state.

import { MonitorClient } from "/sdk/presence.js";
import { ApiError, api, clock, duration, h, signIn, socketUrl, tone } from "./common.js";

const ACTIVITY_LABELS = { idle: "Libre", occupying: "Asignado por ACD", "in-call": "En llamada", meeting: "En reunión" };
const STATE_LABELS = { offline: "Desconectado", available: "Disponible", ...ACTIVITY_LABELS };
// Minutes in a state before its row stands out; the page's settings dialog changes them.
const DEFAULT_THRESHOLDS = { break: 15, bath: 10, meal: 60, training: 90, gathering: 60, busy: 30, occupying: 1, "in-call": 30, meeting: 60 };
const THRESHOLDS_KEY = "presence.monitor.thresholds";
// Every row is this tall (ui.css sets it), so that the scroll position says which are in sight.
const ROW_HEIGHT = 44;
// Rows bound above and below those in sight, so that scrolling shows rows already filled.
const OVERSCAN = 8;
// The feed's changes render at most this often (ms).
const CHANGES_EVERY = 100;
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
    this.changesTimer = 0;
    this.rendered = 0; // when the last render ran (performance.now())
    this.resort = true;
    this.shown = []; // the rows that pass the filters, in order
    this.pool = []; // RowViews, bound to the rows in sight
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
    // Spacers: the height of the rows above and below those in sight.
    const spacer = () => h("td", { colspan: 8 });
    this.above = spacer();
    this.below = spacer();
    this.body.append(h("tr", { class: "spacer", "aria-hidden": "true" }, this.above), h("tr", { class: "spacer", "aria-hidden": "true" }, this.below));
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
    this.scroller = h("div", { class: "scroller", onscroll: () => this.schedule() }, this.table);
    window.addEventListener("resize", () => this.schedule());
    const main = document.querySelector("main");
    main.classList.add("fill"); // the table's scroller takes the rest of the window
    main.replaceChildren(
      h("div", { class: "toolbar" }, h("h1", {}, "Live Monitor"), this.link, h("span", { class: "grow" }), h("span", { class: "muted" }, this.claims.company)),
      this.counters,
      h("div", { class: "toolbar" }, this.search, this.segmentFilter, this.stateFilter, this.sortSelect, h("span", { class: "grow" }), settings),
      this.notice,
      this.scroller,
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
    this.rows.clear();
    this.dirty.clear();
    for (const agent of agents.values()) this.dirty.add(agent.agent);
    this.resort = true;
    this.schedule();
  }

  onChange(state) {
    this.changes += 1;
    this.dirty.add(state.agent);
    this.scheduleChanges();
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

  // Scrolling, typing and the snapshot render at the next frame; the feed's changes at most
  // every CHANGES_EVERY ms, folded together: a company changing 200 times a second then costs
  // ten renders a second, not sixty, and a tenth of a second is nothing on a wallboard.
  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  scheduleChanges() {
    if (this.frame || this.changesTimer) return;
    const wait = this.rendered + CHANGES_EVERY - performance.now();
    if (wait <= 0) {
      this.schedule();
      return;
    }
    this.changesTimer = setTimeout(() => {
      this.changesTimer = 0;
      this.schedule();
    }, wait);
  }

  // Rendering.

  render() {
    this.frame = 0;
    this.rendered = performance.now();
    const view = this.client.agents;
    const now = Date.now();
    let segmentsChanged = false;
    for (const agent of this.dirty) {
      const state = view.get(agent);
      let row = this.rows.get(agent);
      if (!state) {
        // Left the view (a segment's monitor): its row goes.
        if (this.rows.delete(agent)) this.resort = true;
        continue;
      }
      if (!row) {
        row = new Row(agent);
        this.rows.set(agent, row);
        segmentsChanged = true;
      }
      const before = row.key;
      segmentsChanged = row.update(state, now, this.statuses) || segmentsChanged;
      // Where it stands in the order, or whether it passes the filters, may have changed.
      if (row.key !== before) this.resort = true;
    }
    this.dirty.clear();
    if (segmentsChanged) this.fillSegments();
    if (this.resort) this.order();
    this.paint(now);
    this.count();
    this.empty.hidden = this.shown.length > 0;
    this.empty.textContent = !this.snapshots
      ? "Esperando la primera instantánea…"
      : this.rows.size
        ? "Ningún ejecutivo pasa los filtros."
        : "Ningún ejecutivo todavía.";
    document.body.dataset.agents = String(this.rows.size);
    document.body.dataset.rendered = String(this.changes);
  }

  // The rows that pass the filters, sorted: a few milliseconds for thousands, and only when a
  // change moved an order key, or the filters or the sort changed.
  order() {
    this.resort = false;
    const compare = SORTS[this.sort].compare;
    this.shown = [...this.rows.values()].filter((row) => this.matches(row.state)).sort(compare);
    for (const button of this.table.querySelectorAll("th button")) {
      if (button.dataset.sort === this.sort) button.setAttribute("aria-sort", this.sort === "agent" ? "ascending" : "descending");
      else button.removeAttribute("aria-sort");
    }
  }

  // Binds the pool's <tr> to the rows in sight, with some above and below to scroll into.
  paint(now) {
    const height = ROW_HEIGHT;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / height) - OVERSCAN);
    const inSight = Math.ceil((this.scroller.clientHeight || window.innerHeight) / height) + 2 * OVERSCAN;
    const last = Math.min(this.shown.length, first + inSight);
    while (this.pool.length < last - first) {
      const view = new RowView(this);
      this.pool.push(view);
      this.below.parentElement.before(view.tr);
    }
    for (let i = 0; i < this.pool.length; i += 1) {
      const view = this.pool[i];
      const row = this.shown[first + i];
      if (first + i < last) view.bind(row, now, this.thresholds);
      else view.unbind();
    }
    this.above.style.height = `${first * height}px`;
    this.below.style.height = `${(this.shown.length - last) * height}px`;
  }

  count() {
    const counts = new Map([["online", 0], ["routable", 0], ["in-call", 0], ...this.statuses.map((s) => [`status-${s}`, 0])]);
    for (const row of this.rows.values()) {
      const state = row.state;
      if (state.connection !== "online") continue;
      counts.set("online", counts.get("online") + 1);
      if (state.routable) counts.set("routable", counts.get("routable") + 1);
      if (state.activity === "in-call") counts.set("in-call", counts.get("in-call") + 1);
      const key = `status-${state.status}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const keys = [...counts.keys()].join(",");
    if (keys !== this.counterKeys) {
      // The tiles, built again only when the set of statuses changes.
      this.counterKeys = keys;
      this.tiles = new Map();
      const labels = { online: ["En línea", "online"], routable: ["Enrutables", "routable"], "in-call": ["En llamada", "in-call"] };
      this.counters.replaceChildren(
        ...[...counts.keys()].map((key) => {
          const status = key.startsWith("status-") ? key.slice(7) : null;
          const [label, cls] = status ? [this.label(status), tone(status)] : labels[key];
          const number = h("b", {}, "0");
          this.tiles.set(key, number);
          return h("div", { class: `counter ${cls}`, "data-counter": key }, number, h("span", {}, label));
        }),
      );
    }
    for (const [key, n] of counts) {
      const number = this.tiles.get(key);
      if (number.textContent !== String(n)) number.textContent = String(n);
    }
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

  // Once a second: the ticking times in sight, and the thresholds they cross. A row's "over"
  // changes nothing in the order, so no re-sort.
  tick() {
    this.schedule();
  }

  setFilter(name, value) {
    this.filter[name] = value;
    this.resort = true;
    this.render();
  }

  setSort(key) {
    this.sort = key;
    this.sortSelect.value = key;
    this.resort = true;
    this.render();
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

/** One agent's row, as data: its state, the state it shows, and what orders it. */
class Row {
  constructor(agent) {
    this.agent = agent;
    this.state = null;
    this.key = "";
  }

  /** Takes the agent's new state; whether its segments changed. */
  update(state, now, statuses) {
    const previous = this.state;
    this.state = state;
    const [current, since] = stateOf(state);
    this.stateName = current;
    this.stateSince = since ?? now;
    this.rank = statuses.indexOf(state.status) + (state.connection === "offline" ? 1000 : 0);
    const segments = (state.segments || []).join(",");
    this.key = `${current}|${this.stateSince}|${state.status}|${state.routable}|${segments}`;
    return !previous || segments !== (previous.segments || []).join(",");
  }
}

/** A <tr> of the pool, showing whichever row it is bound to; cells are rewritten only where
 * their text changes. */
class RowView {
  constructor(page) {
    this.page = page;
    this.row = null;
    this.cells = {};
    this.shown = {};
    const cell = (name) => (this.cells[name] = h("td", { class: name }));
    this.tr = h(
      "tr",
      {},
      cell("agent"),
      cell("connection"),
      cell("status"),
      cell("activity"),
      cell("time"),
      cell("segments"),
      cell("routable"),
      cell("actions"),
    );
    if (page.canAct) this.cells.actions.append(...this.actions());
  }

  actions() {
    const page = this.page;
    this.force = h("select", { class: "force" });
    this.fillForce();
    this.force.addEventListener("change", () => {
      const value = this.force.value;
      this.force.value = "";
      if (value && this.row) page.act(this.row.agent, "status", value);
    });
    const kick = h("button", { type: "button", class: "danger kick", onclick: () => this.row && page.act(this.row.agent, "kick") }, "Desconectar");
    return [this.force, " ", kick];
  }

  fillForce() {
    const page = this.page;
    this.forceStatuses = page.statuses;
    this.force.replaceChildren(
      h("option", { value: "" }, "Forzar estado…"),
      ...page.statuses.map((value) => h("option", { value }, page.label(value))),
    );
  }

  bind(row, now, thresholds) {
    const state = row.state;
    if (this.row !== row) {
      this.row = row;
      this.tr.dataset.agent = row.agent;
      this.set("agent", row.agent);
      if (this.force) this.force.setAttribute("aria-label", `Forzar estado de ${row.agent}`);
    }
    this.tr.hidden = false;
    if (this.force && this.forceStatuses !== this.page.statuses) this.fillForce();
    const online = state.connection === "online";
    const page = this.page;
    this.set("connection", online ? "En línea" : "Desconectado", `pill ${online ? "online" : "offline"}`);
    this.set("status", page.label(state.status), `pill ${online ? tone(state.status) : "offline"}`);
    this.set("activity", online ? ACTIVITY_LABELS[state.activity] ?? state.activity : "—", `pill ${online ? tone(state.activity) : "offline"}`);
    this.set("routable", state.routable ? `Sí · desde ${clock(state.idle_since)}` : "No");
    const segments = (state.segments || []).join(",");
    if (this.shown.segments !== segments) {
      this.shown.segments = segments;
      this.cells.segments.title = (state.segments || []).join(", ");
      this.cells.segments.replaceChildren(...(state.segments || []).map((s) => h("span", { class: "pill other" }, s)));
    }
    const elapsed = now - row.stateSince;
    this.set("time", duration(elapsed));
    const limit = thresholds[row.stateName];
    const over = limit !== undefined && limit !== null && elapsed > limit * 60_000;
    const className = `${online ? "" : "offline"}${over ? " over" : ""}`;
    if (this.tr.className !== className) this.tr.className = className;
  }

  unbind() {
    if (this.row === null) return;
    this.row = null;
    delete this.tr.dataset.agent;
    this.tr.hidden = true;
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

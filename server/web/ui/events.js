// Eventos de conexión: the company's or one agent's event log (spec §3, §6), as the seed's table
// — Fecha, Tipo, Valor, Razón de desconexión, ID sesión, with Ejecutivo first for the company —
// paged by the API's `next`, with the API's own CSV export, in Spanish or English.
//
// Which filter is whose (the server is not changed for this page):
//   - the API's: the agent (it picks the endpoint, /v1/agents/{agent}/events or /v1/events),
//     `from`/`to` (datetime-local values sent as they are, with `tz`: the server reads a time
//     without an offset in that zone; `to` is exclusive) and `session`. They select what is
//     fetched, page by page, and what the CSV download contains.
//   - the page's: `type` and `value`. The API has no parameter for them, so they only hide rows
//     of the pages already loaded: a page may show fewer rows than its size (or none) while
//     "Cargar más" still finds matches further on, and the CSV holds every type and value.
//
// Everything shown is built with h() or textContent: agent ids, values, reasons and the company's
// status labels are data, never markup.

import { api, currentToken, h, signIn, tone } from "./common.js";
import { GLOSSARY, reasonDescription, typeDescription, typeShort, valueDescription } from "./glossary.js";

const LANG_KEY = "presence.events.lang";
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10000; // the API's largest page
const API_FILTERS = ["agent", "from", "to", "tz", "session"];
const PAGE_FILTERS = ["type", "value"];

const TEXT = {
  es: {
    title: "Eventos de conexión",
    lede: "Cada cambio de conexión y de estado de los ejecutivos, en el orden en que ocurrió.",
    wholeCompany: "Todos los ejecutivos",
    oneAgent: "Ejecutivo",
    showCompany: "Ver toda la empresa",
    columns: { agent: "Ejecutivo", date: "Fecha", type: "Tipo", value: "Valor", reason: "Razón de desconexión", session: "ID sesión" },
    agent: "Ejecutivo",
    everyAgent: "Todos",
    from: "Desde",
    to: "Hasta",
    toHint: "Hasta este instante, sin incluirlo",
    tz: "Zona horaria",
    session: "ID sesión",
    anySession: "Cualquiera",
    type: "Tipo",
    value: "Valor",
    any: "Todos",
    systemValues: "Valores del sistema",
    statusValues: "Estados",
    apply: "Aplicar",
    clear: "Limpiar",
    quickRange: "Rango rápido",
    pageFilterNote: "Tipo y Valor filtran las filas ya cargadas; el resto lo filtra el servidor (y el CSV).",
    today: "Hoy",
    yesterday: "Ayer",
    week: "Últimos 7 días",
    always: "Todo",
    more: (size) => `Cargar ${size} más`,
    loading: "Cargando…",
    end: "Fin del registro para estos filtros.",
    moreLeft: "Hay más eventos.",
    download: "Descargar CSV",
    downloading: "Preparando…",
    csvNote: "El CSV trae todos los tipos y valores de este rango y zona horaria.",
    shown: (shown, loaded, more) =>
      shown === loaded ? `${loaded} ${loaded === 1 ? "evento" : "eventos"}${more ? " cargados" : ""}` : `${shown} de ${loaded} eventos cargados`,
    pageFiltered: "Tipo y Valor filtran lo ya cargado",
    empty: "No hay eventos para estos filtros.",
    emptyFiltered: "Ninguno de los eventos cargados coincide con Tipo y Valor.",
    emptyFilteredMore: "Ninguno de los eventos cargados coincide con Tipo y Valor; cargue más para seguir buscando.",
    onlyAgent: (agent) => `Ver sólo los eventos de ${agent}`,
    onlySession: "Ver sólo esta sesión",
    legend: "Glosario",
    legendTypes: "Tipo — quién hizo el cambio",
    legendSystem: "Valor — valores del sistema",
    legendStatuses: "Valor — estados",
    legendReasons: "Razón de desconexión",
    legendRelease: "Razón de liberación (releasing)",
    companyStatus: "estado de la empresa",
    errors: { events: "No se pudieron cargar los eventos", config: "No se pudo leer la configuración de la empresa", agents: "No se pudo leer la lista de ejecutivos", download: "No se pudo descargar el CSV" },
  },
  en: {
    title: "Connection events",
    lede: "Every change of the agents' connection and status, in the order it happened.",
    wholeCompany: "All agents",
    oneAgent: "Agent",
    showCompany: "Show the whole company",
    columns: { agent: "Agent", date: "Date", type: "Type", value: "Value", reason: "Disconnect reason", session: "Session ID" },
    agent: "Agent",
    everyAgent: "All",
    from: "From",
    to: "To",
    toHint: "Up to this instant, excluding it",
    tz: "Time zone",
    session: "Session ID",
    anySession: "Any",
    type: "Type",
    value: "Value",
    any: "All",
    systemValues: "System values",
    statusValues: "Statuses",
    apply: "Apply",
    clear: "Clear",
    quickRange: "Quick range",
    pageFilterNote: "Type and Value filter the rows already loaded; the server filters the rest (and the CSV).",
    today: "Today",
    yesterday: "Yesterday",
    week: "Last 7 days",
    always: "All time",
    more: (size) => `Load ${size} more`,
    loading: "Loading…",
    end: "End of the log for these filters.",
    moreLeft: "There are more events.",
    download: "Download CSV",
    downloading: "Preparing…",
    csvNote: "The CSV holds every type and value of this range and time zone.",
    shown: (shown, loaded, more) =>
      shown === loaded ? `${loaded}${more ? " loaded" : ""} ${loaded === 1 ? "event" : "events"}` : `${shown} of ${loaded} loaded events`,
    pageFiltered: "Type and Value filter what is loaded",
    empty: "No events for these filters.",
    emptyFiltered: "None of the loaded events matches Type and Value.",
    emptyFilteredMore: "None of the loaded events matches Type and Value; load more to keep looking.",
    onlyAgent: (agent) => `Show only ${agent}'s events`,
    onlySession: "Show only this session",
    legend: "Legend",
    legendTypes: "Type — who made the change",
    legendSystem: "Value — system values",
    legendStatuses: "Value — statuses",
    legendReasons: "Disconnect reason",
    legendRelease: "Release reason (releasing)",
    companyStatus: "the company's status",
    errors: { events: "Could not load the events", config: "Could not read the company's settings", agents: "Could not read the list of agents", download: "Could not download the CSV" },
  },
};

// ---- time zones and dates ------------------------------------------------------------------

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

function isZone(name) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

function zones(current) {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    // an older browser: the usual ones still work
  }
  return [...new Set([...names, "UTC", BROWSER_ZONE, current])].sort();
}

const formatters = new Map();
function formatter(zone) {
  if (!formatters.has(zone)) {
    formatters.set(
      zone,
      new Intl.DateTimeFormat("en-CA", {
        timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      }),
    );
  }
  return formatters.get(zone);
}

/** `YYYY-MM-DD HH:MM:SS` in `zone`, as the CSV export writes it. */
function stamp(ms, zone) {
  const part = Object.fromEntries(formatter(zone).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}`;
}

/** A day's heading: "lunes, 25 de noviembre de 2024". */
function dayHeading(ms, zone, lang) {
  return new Intl.DateTimeFormat(lang, { timeZone: zone, weekday: "long", day: "numeric", month: "long", year: "numeric" }).format(new Date(ms));
}

/** The calendar date `days` after today in `zone`, as a datetime-local value at midnight. */
function midnight(zone, days) {
  const [y, m, d] = stamp(Date.now(), zone).slice(0, 10).split("-").map(Number);
  return `${new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10)}T00:00`;
}

// ---- state ---------------------------------------------------------------------------------

function blankFilters() {
  return { agent: "", from: "", to: "", tz: BROWSER_ZONE, session: "", type: "", value: "" };
}

function fragmentFilters() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const filters = blankFilters();
  for (const name of [...API_FILTERS, ...PAGE_FILTERS]) {
    const given = fragment.get(name);
    if (given) filters[name] = given.trim();
  }
  if (!isZone(filters.tz)) filters.tz = BROWSER_ZONE;
  const limit = Number(fragment.get("limit"));
  const lang = fragment.get("lang");
  return {
    filters,
    limit: Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT ? limit : null,
    lang: lang === "es" || lang === "en" ? lang : null,
  };
}

const initial = fragmentFilters();
if (initial.lang) sessionStorage.setItem(LANG_KEY, initial.lang);

const state = {
  lang: sessionStorage.getItem(LANG_KEY) === "en" ? "en" : "es",
  claims: null,
  filters: initial.filters, // applied: what the table shows
  draft: { ...initial.filters }, // the form's values, applied or not
  limit: initial.limit, // from the fragment, else DEFAULT_LIMIT
  events: [],
  next: null,
  loading: false,
  downloading: false,
  generation: 0,
  statuses: [], // the company's, from GET /v1/config: [{value, label}]
  agents: [], // for the agent field's suggestions
  errors: new Map(), // source → ApiError
};

const t = () => TEXT[state.lang];
const pageSize = () => state.limit ?? DEFAULT_LIMIT;

function statusLabel(value) {
  return state.statuses.find((status) => status.value === value)?.label ?? null;
}

/** The description of a value: the glossary's, else the company's label for its own status. */
function describeValue(value) {
  return valueDescription(value, state.lang) ?? statusLabel(value);
}

function visibleEvents() {
  const { type, value } = state.filters;
  return state.events.filter((event) => (!type || event.type === type) && (!value || event.value === value));
}

function writeFragment() {
  const fragment = new URLSearchParams();
  for (const name of [...API_FILTERS, ...PAGE_FILTERS]) {
    const value = state.filters[name];
    if (value && !(name === "tz" && value === BROWSER_ZONE)) fragment.set(name, value);
  }
  if (state.limit) fragment.set("limit", String(state.limit));
  const rest = fragment.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
}

// ---- the API -------------------------------------------------------------------------------

function endpoint(filters) {
  return filters.agent ? `/v1/agents/${encodeURIComponent(filters.agent)}/events` : "/v1/events";
}

/** The API's own filters as query parameters, plus `extra`. */
function apiQuery(filters, extra = {}) {
  const query = new URLSearchParams();
  for (const name of ["from", "to", "session", "tz"]) if (filters[name]) query.set(name, filters[name]);
  for (const [name, value] of Object.entries(extra)) if (value != null) query.set(name, String(value));
  return query.toString();
}

async function load({ append = false } = {}) {
  if (append && (state.loading || !state.next)) return;
  const generation = append ? state.generation : ++state.generation;
  const filters = state.filters;
  const after = append ? state.next : null;
  if (!append) {
    state.events = [];
    state.next = null;
  }
  state.loading = true;
  renderRows();
  renderPager();
  try {
    const answer = await api(`${endpoint(filters)}?${apiQuery(filters, { limit: pageSize(), after })}`);
    if (generation !== state.generation) return;
    state.events = state.events.concat(answer.events);
    state.next = answer.next;
    state.errors.delete("events");
  } catch (error) {
    if (generation !== state.generation) return;
    state.errors.set("events", error);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      renderNotices();
      renderRows();
      renderPager();
    }
  }
}

async function loadConfig() {
  try {
    const config = await api("/v1/config");
    state.statuses = Array.isArray(config.statuses) ? config.statuses : [];
    state.errors.delete("config");
  } catch (error) {
    state.errors.set("config", error);
  }
  renderNotices();
  renderValueOptions();
  renderRows();
  renderLegend();
}

async function loadAgents() {
  try {
    const answer = await api("/v1/agents?order=agent");
    state.agents = answer.agents.map((agent) => agent.agent);
    state.errors.delete("agents");
  } catch (error) {
    state.errors.set("agents", error);
  }
  renderNotices();
  parts.agents.replaceChildren(...state.agents.map((agent) => h("option", { value: agent })));
}

/** The API's CSV of the applied API filters, saved through an object URL: the server's bytes. */
async function download() {
  if (state.downloading) return;
  state.downloading = true;
  renderSummary();
  try {
    const path = `${endpoint(state.filters)}?${apiQuery(state.filters, { format: "csv", lang: state.lang })}`;
    const response = await api(path, { raw: true });
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? "eventos-de-conexion.csv";
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    state.errors.delete("download");
  } catch (error) {
    state.errors.set("download", error);
  } finally {
    state.downloading = false;
    renderNotices();
    renderSummary();
  }
}

// ---- the page ------------------------------------------------------------------------------

const parts = {
  root: h("div", { class: "events-page" }),
  head: h("div", { class: "page-head" }),
  form: h("form", { id: "filters", class: "filters card", novalidate: true }),
  summary: h("div", { id: "summary", class: "summary" }),
  notices: h("div", { id: "notices", class: "notices" }),
  table: h("table", { id: "events", class: "grid events" }),
  pager: h("div", { id: "pager", class: "pager" }),
  legend: h("section", { id: "legend", class: "legend card" }),
  agents: h("datalist", { id: "agent-list" }),
  valueSelect: null,
};

function setLang(lang) {
  if (lang === state.lang) return;
  state.lang = lang;
  sessionStorage.setItem(LANG_KEY, lang);
  renderAll();
}

function apply(filters) {
  state.filters = { ...filters };
  state.draft = { ...filters };
  writeFragment();
  renderAll();
  load();
}

function renderAll() {
  document.documentElement.lang = state.lang;
  document.title = `${t().title} · presence`;
  renderHead();
  renderForm();
  renderSummary();
  renderNotices();
  renderRows();
  renderPager();
  renderLegend();
}

function renderHead() {
  const text = t();
  const agent = state.filters.agent;
  const scope = agent
    ? [h("span", { class: "scope-agent" }, `${text.oneAgent} `, h("b", { class: "mono" }, agent)),
       h("button", { type: "button", class: "cell-link", id: "whole-company", onclick: () => apply({ ...state.filters, agent: "" }) }, text.showCompany)]
    : [h("span", {}, text.wholeCompany)];
  const company = state.claims?.company;
  const lang = h(
    "div",
    { id: "lang", class: "segmented", role: "group", "aria-label": "Idioma / Language" },
    ...[["es", "Español"], ["en", "English"]].map(([code, name]) =>
      h("button", { type: "button", "data-lang": code, "aria-pressed": String(code === state.lang), title: name, onclick: () => setLang(code) }, code.toUpperCase()),
    ),
  );
  parts.head.replaceChildren(
    h(
      "div",
      {},
      h("h1", {}, text.title),
      h("p", { class: "scope" }, company ? h("span", { class: "company" }, company) : null, ...scope),
      h("p", { class: "muted lede" }, text.lede),
    ),
    lang,
  );
}

/** `element`'s children, the absent (null, false) left out: replaceChildren would write "null". */
function fill(element, ...children) {
  element.replaceChildren(...children.filter((child) => child !== null && child !== undefined && child !== false));
}

function field(caption, control, extra = {}) {
  return h("label", extra, h("span", {}, caption), control);
}

function renderForm() {
  const text = t();
  const draft = state.draft;
  const track = (name) => (event) => {
    draft[name] = event.target.value;
  };
  const input = (name, attributes = {}) =>
    h("input", { name, value: draft[name], oninput: track(name), onchange: track(name), ...attributes });

  const zone = h("select", { name: "tz", onchange: track("tz") }, ...zones(draft.tz).map((name) => h("option", { value: name, selected: name === draft.tz }, name)));
  const type = h(
    "select",
    { name: "type", onchange: (event) => applyPageFilter("type", event.target.value) },
    h("option", { value: "" }, text.any),
    ...Object.keys(GLOSSARY.types).map((name) => h("option", { value: name, selected: name === draft.type }, `${name} · ${typeShort(name, state.lang)}`)),
  );
  parts.valueSelect = h("select", { name: "value", onchange: (event) => applyPageFilter("value", event.target.value) });
  renderValueOptions();

  const preset = (label, from, to) =>
    h("button", { type: "button", class: "chip", onclick: () => apply({ ...draft, from: from === null ? "" : midnight(draft.tz, from), to: to === null ? "" : midnight(draft.tz, to) }) }, label);

  parts.form.replaceChildren(
    field(text.agent, input("agent", { list: "agent-list", placeholder: text.everyAgent, autocomplete: "off", spellcheck: "false" })),
    field(text.session, input("session", { placeholder: text.anySession, autocomplete: "off", spellcheck: "false", class: "mono" })),
    field(text.type, type, { class: "page-filter", title: text.pageFiltered }),
    field(text.value, parts.valueSelect, { class: "page-filter", title: text.pageFiltered }),
    field(text.from, input("from", { type: "datetime-local", step: 1 })),
    field(text.to, input("to", { type: "datetime-local", step: 1 }), { title: text.toHint }),
    field(text.tz, zone),
    h(
      "div",
      { class: "presets", role: "group", "aria-label": text.quickRange },
      h("span", {}, text.quickRange),
      h(
        "div",
        { class: "chips" },
        preset(text.today, 0, null),
        preset(text.yesterday, -1, 0),
        preset(text.week, -6, null),
        preset(text.always, null, null),
      ),
    ),
    h(
      "div",
      { class: "form-foot" },
      h("span", { class: "muted note" }, h("span", { class: "mark" }, "⁎"), ` ${text.pageFilterNote}`),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", class: "secondary", id: "clear", onclick: () => apply({ ...blankFilters(), tz: draft.tz }) }, text.clear),
        h("button", { type: "submit", class: "primary", id: "apply" }, text.apply),
      ),
    ),
    parts.agents,
  );
  parts.form.onsubmit = (event) => {
    event.preventDefault();
    apply({ ...draft, agent: draft.agent.trim(), session: draft.session.trim() });
  };
}

/** The Valor filter's choices: the system's values, then the statuses (defaults and the company's). */
function renderValueOptions() {
  const select = parts.valueSelect;
  if (!select) return;
  const text = t();
  const chosen = state.draft.value;
  const statuses = [...Object.keys(GLOSSARY.statuses)];
  for (const status of state.statuses) if (!statuses.includes(status.value)) statuses.push(status.value);
  const known = [...Object.keys(GLOSSARY.values), ...statuses];
  if (chosen && !known.includes(chosen)) statuses.push(chosen);
  const option = (value) => {
    const label = describeValue(value);
    return h("option", { value, selected: value === chosen }, label ? `${value} · ${label}` : value);
  };
  select.replaceChildren(
    h("option", { value: "" }, text.any),
    h("optgroup", { label: text.systemValues }, ...Object.keys(GLOSSARY.values).map(option)),
    h("optgroup", { label: text.statusValues }, ...statuses.map(option)),
  );
}

function applyPageFilter(name, value) {
  state.draft[name] = value;
  state.filters = { ...state.filters, [name]: value };
  writeFragment();
  renderSummary();
  renderRows();
}

function renderSummary() {
  const text = t();
  const loaded = state.events.length;
  const shown = visibleEvents().length;
  const pageFiltered = Boolean(state.filters.type || state.filters.value);
  fill(
    parts.summary,
    h("span", { class: "count", id: "count" }, state.loading && !loaded ? text.loading : text.shown(shown, loaded, Boolean(state.next))),
    pageFiltered ? h("span", { class: "muted" }, `· ${text.pageFiltered}`) : null,
    h("span", { class: "grow" }),
    h("span", { class: "muted csv-note" }, text.csvNote),
    h(
      "button",
      { type: "button", class: "secondary download", id: "download", disabled: state.downloading, onclick: download },
      h("span", { class: "icon", "aria-hidden": "true" }, "⤓"),
      state.downloading ? text.downloading : text.download,
    ),
  );
}

function renderNotices() {
  const text = t();
  parts.notices.replaceChildren(
    ...[...state.errors].map(([source, error]) =>
      h(
        "p",
        { class: "notice bad", "data-source": source, role: "alert" },
        h("b", {}, `${text.errors[source]}: `),
        error.message,
        error.code ? h("span", { class: "mono muted" }, ` (${error.status ? `${error.status} ` : ""}${error.code})`) : null,
      ),
    ),
  );
}

function columns() {
  const names = ["date", "type", "value", "reason", "session"];
  return state.filters.agent ? names : ["agent", ...names];
}

/** One event's row; `repeat`: the same agent as the row above, shown quieter. */
function row(event, repeat) {
  const text = t();
  const lang = state.lang;
  const cells = {
    agent: () =>
      h("td", { class: repeat ? "agent repeat" : "agent" }, h("button", { type: "button", class: "cell-link", title: text.onlyAgent(event.agent), onclick: () => apply({ ...state.filters, agent: event.agent }) }, event.agent)),
    date: () => h("td", { class: "time mono" }, stamp(event.ts, state.filters.tz)),
    type: () => h("td", { class: "type", title: typeDescription(event.type, lang), "data-short": typeShort(event.type, lang) }, event.type),
    value: () => h("td", { class: "value", title: describeValue(event.value) }, h("span", { class: `pill ${tone(event.value)}` }, event.value)),
    reason: () => h("td", { class: "reason mono", title: reasonDescription(event.reason, event.value, lang) }, event.reason ?? ""),
    session: () =>
      h(
        "td",
        { class: "session mono" },
        event.session
          ? h("button", { type: "button", class: "cell-link", title: text.onlySession, onclick: () => apply({ ...state.filters, session: event.session }) }, event.session)
          : "",
      ),
  };
  return h("tr", { class: "event", "data-id": event.id, "data-value": event.value }, ...columns().map((name) => cells[name]()));
}

function renderRows() {
  const text = t();
  const names = columns();
  const head = h("thead", {}, h("tr", {}, ...names.map((name) => h("th", { class: name, scope: "col" }, text.columns[name]))));
  const body = h("tbody", {});
  const shown = visibleEvents();
  let day = null;
  let agent = null;
  for (const event of shown) {
    const today = stamp(event.ts, state.filters.tz).slice(0, 10);
    if (today !== day) {
      day = today;
      agent = null;
      body.append(h("tr", { class: "day" }, h("td", { colspan: names.length }, dayHeading(event.ts, state.filters.tz, state.lang))));
    }
    body.append(row(event, event.agent === agent));
    agent = event.agent;
  }
  if (!shown.length) {
    let message = text.empty;
    if (state.loading) message = text.loading;
    else if (state.errors.has("events")) message = "—";
    else if (state.events.length) message = state.next ? text.emptyFilteredMore : text.emptyFiltered;
    body.append(h("tr", { class: "none" }, h("td", { class: "empty", colspan: names.length }, message)));
  }
  parts.table.replaceChildren(head, body);
  parts.table.classList.toggle("company", !state.filters.agent);
  parts.table.setAttribute("aria-busy", String(state.loading));
  renderSummary();
}

function renderPager() {
  const text = t();
  const more = h(
    "button",
    { type: "button", class: "primary", id: "more", hidden: !state.next, disabled: state.loading, onclick: () => load({ append: true }) },
    state.loading && state.events.length ? text.loading : text.more(pageSize()),
  );
  const status = state.loading ? "" : state.next ? text.moreLeft : state.events.length ? text.end : "";
  parts.pager.replaceChildren(more, h("span", { class: "muted", id: "pager-status" }, status));
}

function legendList(entries) {
  return h("dl", {}, ...entries.flatMap(([term, description]) => [h("dt", {}, term), h("dd", {}, description)]));
}

function renderLegend() {
  const text = t();
  const lang = state.lang;
  const pill = (value) => h("span", { class: `pill ${tone(value)}` }, value);
  const statuses = Object.keys(GLOSSARY.statuses).map((value) => [pill(value), valueDescription(value, lang)]);
  for (const status of state.statuses) {
    if (status.value in GLOSSARY.statuses || status.value in GLOSSARY.values) continue;
    statuses.push([pill(status.value), h("span", {}, status.label ?? status.value, h("span", { class: "muted tag" }, ` · ${text.companyStatus}`))]);
  }
  const section = (title, entries, extra = {}) => h("div", { class: "legend-section", ...extra }, h("h3", {}, title), legendList(entries));
  parts.legend.replaceChildren(
    h("h2", {}, text.legend),
    h(
      "div",
      { class: "legend-sections" },
      section(text.legendTypes, Object.keys(GLOSSARY.types).map((type) => [h("code", {}, type), typeDescription(type, lang)]), { id: "legend-types" }),
      section(text.legendSystem, Object.keys(GLOSSARY.values).map((value) => [pill(value), valueDescription(value, lang)]), { id: "legend-values" }),
      section(text.legendStatuses, statuses, { id: "legend-statuses" }),
      section(text.legendReasons, Object.keys(GLOSSARY.reasons).map((reason) => [h("code", {}, reason), GLOSSARY.reasons[reason][lang]]), { id: "legend-reasons" }),
      section(text.legendRelease, Object.keys(GLOSSARY.releaseReasons).map((reason) => [h("code", {}, reason), GLOSSARY.releaseReasons[reason][lang]]), { id: "legend-release" }),
    ),
  );
}

async function main() {
  const { claims } = await signIn({ title: TEXT.es.title, roles: ["supervisor", "admin"] });
  state.claims = claims;
  parts.root.replaceChildren(
    parts.head,
    parts.form,
    parts.notices,
    parts.summary,
    h("div", { class: "table-wrap" }, parts.table),
    parts.pager,
    parts.legend,
  );
  document.querySelector("main").append(parts.root);
  writeFragment();
  renderAll();
  window.addEventListener("hashchange", () => {
    if (new URLSearchParams(location.hash.slice(1)).has("token")) {
      currentToken(); // keeps the new token, takes it out of the address bar
      location.reload(); // and signs in again with it, the rest of the fragment kept
      return;
    }
    const given = fragmentFilters();
    if (given.lang) {
      state.lang = given.lang;
      sessionStorage.setItem(LANG_KEY, given.lang);
    }
    state.limit = given.limit;
    apply(given.filters);
  });
  await Promise.all([load(), loadConfig(), loadAgents()]);
}

main();

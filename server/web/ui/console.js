// A small agent console: connect with an agent token, pick a status, watch your own state and
// session, and see reconnection happen (restart the server and the session carries on).

import { ConsoleClient, PresenceError } from "/sdk/presence.js";
import { clock, h, signIn, socketUrl } from "./common.js";

const ACTIVITY_LABELS = { idle: "Libre", occupying: "Asignado por ACD", "in-call": "En llamada", meeting: "En reunión" };
const LINK_LABELS = {
  connecting: "Conectando…",
  open: "En línea",
  reconnecting: "Reconectando…",
  closed: "Desconectado",
};

const { token } = await signIn({ title: "Consola", roles: ["agent"] });

const link = h("span", { id: "link-state", class: "link-state", "data-state": "connecting" }, LINK_LABELS.connecting);
const big = h("div", { class: "big", id: "status" }, "—");
const statuses = h("div", { class: "statuses", id: "statuses" });
const fields = {};
const field = (name, label) => [h("dt", {}, label), (fields[name] = h("dd", { id: name }, "—"))];
const notice = h("div", { id: "notice" });
const log = h("ol", { class: "log", id: "log" });
const activity = (value, label) => h("button", { type: "button", class: "secondary", "data-activity": value, onclick: () => run(() => client.report(value)) }, label);
const bye = h("button", { type: "button", class: "danger", id: "bye", onclick: () => run(() => client.bye()) }, "Terminar sesión (bye)");

document.querySelector("main").replaceChildren(
  h("div", { class: "toolbar" }, h("h1", {}, "Consola"), link),
  notice,
  h(
    "div",
    { class: "console" },
    h(
      "section",
      { class: "card" },
      h("span", { class: "muted" }, "Tu estado"),
      big,
      statuses,
      h("dl", {}, ...field("agent", "Ejecutivo"), ...field("connection", "Conexión"), ...field("activity", "Actividad"), ...field("session", "Sesión"), ...field("resumed", "Reanudada")),
      h("p", {}, activity("in-call", "En llamada"), " ", activity("end-call", "Terminar llamada"), " ", activity("dismiss", "Rechazar")),
      h("p", {}, bye),
    ),
    h("section", { class: "card" }, h("span", { class: "muted" }, "Lo que pasó en esta pestaña"), log),
  ),
);

const client = new ConsoleClient(socketUrl("/v1/agent"), { getToken: async () => token, client: "presence console page" });
let labels = new Map([["available", "Disponible"]]);

function note(text) {
  log.prepend(h("li", {}, h("time", {}, clock(Date.now())), h("span", {}, text)));
}

async function run(action) {
  try {
    await action();
    notice.replaceChildren();
  } catch (error) {
    const code = error instanceof PresenceError ? ` (${error.code})` : "";
    notice.replaceChildren(h("p", { class: "notice bad", role: "alert" }, `${error.message}${code}`));
  }
}

client.addEventListener("welcome", ({ detail }) => {
  labels = new Map([["available", "Disponible"], ...detail.statuses.map((s) => [s.value, s.label])]);
  statuses.replaceChildren(
    ...[...labels].map(([value, label]) => h("button", { type: "button", "data-status": value, onclick: () => run(() => client.setStatus(value)) }, label)),
  );
  fields.session.textContent = detail.session;
  fields.resumed.textContent = detail.resumed ? "sí" : "no";
  document.body.dataset.session = detail.session;
  document.body.dataset.resumed = String(detail.resumed);
  note(detail.resumed ? `Sesión ${detail.session} reanudada (reconnected)` : `Sesión nueva ${detail.session} (connected)`);
});

client.addEventListener("state", ({ detail: { state, event } }) => {
  big.textContent = labels.get(state.status) ?? state.status;
  fields.agent.textContent = state.agent;
  fields.connection.textContent = state.connection === "online" ? "En línea" : "Desconectado";
  fields.activity.textContent = ACTIVITY_LABELS[state.activity] ?? state.activity;
  for (const button of statuses.querySelectorAll("button")) button.setAttribute("aria-pressed", String(button.dataset.status === state.status));
  document.body.dataset.status = state.status;
  if (event) note(`${event.value}${event.reason ? ` (${event.reason})` : ""} · ${event.type}`);
});

client.addEventListener("connection", ({ detail }) => {
  link.dataset.state = detail.status === "open" ? "live" : detail.status;
  link.textContent = LINK_LABELS[detail.status] ?? detail.status;
  if (detail.status === "reconnecting" && detail.delay != null) note(`Conexión perdida (${detail.code ?? "sin cierre"}); reintento en ${detail.delay.toFixed(1)} s`);
});

client.addEventListener("closed", ({ detail }) => {
  document.body.dataset.closeCode = String(detail.code);
  note(`Cerrada: ${detail.code ?? "sin código"}${detail.reason ? ` · ${detail.reason}` : ""}`);
  fields.connection.textContent = "Desconectado";
});

run(() => client.connect());

// What each word of the event log means, in Spanish (the seed's own words) and English: the
// descriptions of README.md's "Event vocabulary" tables, for the Eventos de conexión page's
// tooltips and legend.
//
// The data between the two markers below is strict JSON, so that tests/test_glossary.py can read
// it with Python and check it against the README's tables: the two cannot drift apart. Keep it
// JSON (double quotes, no trailing commas, no comments) when you edit it.

const DATA = /* glossary-json */ {
  "types": {
    "status-changed": {
      "es": "Estado cambiado por sistema",
      "en": "changed by the system (also a supervisor's forced status, the initial status and timeout_status)",
      "short": {"es": "sistema", "en": "system"}
    },
    "acd": {
      "es": "Estado cambiado por ACD (distribuidor automatico de llamada)",
      "en": "changed by the ACD (automatic call distributor)",
      "short": {"es": "ACD", "en": "ACD"}
    },
    "status-changed-user": {
      "es": "Estado cambiado manualmente por el usuario",
      "en": "changed by the agent by hand",
      "short": {"es": "usuario", "en": "agent"}
    }
  },
  "values": {
    "connected": {"types": ["status-changed"], "es": "Ejecutivo conectado", "en": "agent connected: a new session"},
    "reconnected": {"types": ["status-changed"], "es": "Ejecutivo reconectado", "en": "agent reconnected: the same session resumed"},
    "disconnected": {"types": ["status-changed"], "es": "Ejecutivo desconectado", "en": "agent disconnected; the reason says why"},
    "available": {"types": ["status-changed-user", "status-changed"], "es": "Ejecutivo disponible", "en": "agent available for calls"},
    "occupying": {"types": ["acd"], "es": "Ejecutivo ocupado por ACD (fila asignada)", "en": "occupied by the ACD (a queue assigned a call)"},
    "releasing": {"types": ["acd"], "es": "Ejecutivo liberado por ACD", "en": "released by the ACD for future calls"},
    "timeout": {"types": ["acd"], "es": "Ejecutivo no contestó en el tiempo máximo de respuesta (ACD)", "en": "the agent did not answer within the ACD's maximum response time"},
    "in-call": {"types": ["status-changed"], "es": "Ejecutivo en llamada", "en": "in a call"},
    "end-call": {"types": ["status-changed"], "es": "Ejecutivo terminó la llamada", "en": "ended the call"},
    "dismiss": {"types": ["status-changed"], "es": "Ejecutivo ha rechazado una llamada", "en": "rejected a call"},
    "meeting": {"types": ["status-changed"], "es": "Ejecutivo ha entrado a una reunión agendada", "en": "entered a scheduled meeting"},
    "meeting-end": {"types": ["status-changed"], "es": "Ejecutivo ha terminado una reunión agendada", "en": "ended a scheduled meeting"}
  },
  "statuses": {
    "busy": {"es": "Ocupado", "en": "busy (the default initial status)"},
    "break": {"es": "Descanso", "en": "on a break"},
    "bath": {"es": "Baño", "en": "at the restroom"},
    "meal": {"es": "Comida", "en": "at a meal"},
    "gathering": {"es": "Reunión (externa no en Videsk)", "en": "in a meeting outside the platform"},
    "training": {"es": "Capacitación", "en": "in training"}
  },
  "reasons": {
    "client-closed": {
      "es": "La consola se despidió (bye: la sesión termina) o cerró normalmente (1000/1001: la sesión sigue reanudable, p. ej. al recargar la página)",
      "en": "the console said bye (the session ends) or closed normally (1000/1001: the session stays resumable, e.g. across a page reload)"
    },
    "transport-closed": {"es": "La conexión se perdió sin trama de cierre", "en": "the socket was lost without a close frame"},
    "heartbeat-timeout": {"es": "No respondió al ping (pong) dentro de ping_timeout", "en": "no pong within ping_timeout"},
    "session-replaced": {"es": "Una nueva sesión del mismo ejecutivo tomó su lugar", "en": "a new session of the same agent took over"},
    "connection-replaced": {"es": "La misma sesión se reconectó mientras su conexión anterior aún parecía abierta", "en": "the same session reconnected while its old connection still looked open"},
    "kicked": {"es": "Un supervisor desconectó al ejecutivo", "en": "a supervisor disconnected the agent"},
    "server-shutdown": {"es": "La instancia del servidor se detuvo ordenadamente", "en": "the instance drained"},
    "server-lost": {"es": "La instancia del servidor cayó; lo registró otra instancia", "en": "the instance died; recorded by another instance"},
    "protocol-error": {"es": "La consola rompió el protocolo (una trama inválida o demasiado grande)", "en": "the console broke the protocol (a bad or oversized frame)"},
    "token-expired": {"es": "El token expiró durante la sesión", "en": "the token expired during the session"},
    "rate-limited": {"es": "La consola envió tramas más rápido de lo permitido", "en": "the console sent frames faster than allowed"}
  },
  "releaseReasons": {
    "client-abandoned": {"es": "Abandono del cliente", "en": "the client abandoned the call"},
    "assignment-conflict": {"es": "Conflicto de asignación", "en": "assignment conflict"},
    "transfer": {"es": "Transferencia", "en": "transfer"},
    "invitation-rejected": {"es": "Invitación rechazada", "en": "invitation rejected"}
  }
} /* end-glossary-json */;

function frozen(value) {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) frozen(inner);
    Object.freeze(value);
  }
  return value;
}

/** The whole glossary: types, values (system), statuses (default custom), reasons, releaseReasons. */
export const GLOSSARY = frozen(DATA);

/** The languages the glossary speaks. */
export const LANGUAGES = Object.freeze(["es", "en"]);

/** A type's description in `lang`, or null for a type the glossary doesn't know. */
export function typeDescription(type, lang) {
  return DATA.types[type]?.[lang] ?? null;
}

/** A type's one-word name ("sistema", "ACD", "usuario"), or null. */
export function typeShort(type, lang) {
  return DATA.types[type]?.short?.[lang] ?? null;
}

/** A value's description (a system value or a default status) in `lang`, or null. */
export function valueDescription(value, lang) {
  return (DATA.values[value] ?? DATA.statuses[value])?.[lang] ?? null;
}

/**
 * A reason's description in `lang`, or null: a disconnect reason on `disconnected`, a release
 * reason on `releasing` (any slug may be one; the known ones are described).
 */
export function reasonDescription(reason, value, lang) {
  if (reason == null || reason === "") return null;
  const first = value === "releasing" ? DATA.releaseReasons : DATA.reasons;
  const second = value === "releasing" ? DATA.reasons : DATA.releaseReasons;
  return (first[reason] ?? second[reason])?.[lang] ?? null;
}

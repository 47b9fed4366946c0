// How the screen writes ages, rates, sizes and times: one place, so every view reads alike.

export function age(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

/** Seconds since `iso` (an RFC 3339 time) at `nowMillis`. */
export const secondsSince = (iso, nowMillis) => (iso ? (nowMillis - Date.parse(iso)) / 1000 : null);

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function bytes(count) {
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${UNITS[unit]}`;
}

export const rate = (bytesPerSecond) => `${bytes(bytesPerSecond)}/s`;

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export const shortKey = (key) => (key ? `${key.slice(0, 10)}…` : "");

/** `handshake_age_s` → `handshake age s`, values without needless decimals. */
export const evidence = (facts) =>
  facts.map(({ name, value }) => `${name.replaceAll("_", " ")}: ${Number.isInteger(value) ? value : value.toFixed(1)}`).join(" · ");

/** One element with attributes and children (text or elements): no HTML strings, no injection. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null) element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A CSV document (RFC 4180): every field quoted, quotes doubled. */
export const csv = (rows) => rows.map((row) => row.map((field) => `"${String(field ?? "").replaceAll('"', '""')}"`).join(",")).join("\r\n") + "\r\n";

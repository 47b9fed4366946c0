// The fleet view: counts, gateways and every peer in one sortable, filterable table that renders
// only the rows in sight, so ten thousand peers cost the page what forty do.
import { age, h, rate, shortKey } from "./format.js";

export const FLEET_QUERY = `query Fleet($first: Int, $after: String) {
  wireguardPeers(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { publicKey host interface status endpoint handshakeAgeSeconds rxBytesPerSecond txBytesPerSecond displayName }
  }
  wireguardHosts { host interface status lastHeartbeatAt peerCount scanIntervalSeconds }
}`;

const STATUS_ORDER = { STALE: 0, NEVER_CONNECTED: 1, ACTIVE: 2, REMOVED: 3 };
const STATUSES = ["ACTIVE", "STALE", "NEVER_CONNECTED", "REMOVED"];
const words = (constant) => (constant ?? "").toLowerCase().replaceAll("_", " ");

/** Each column once: its heading, the value it sorts by and how its cell reads. */
const COLUMNS = [
  { id: "status", label: "Status", sort: (p) => STATUS_ORDER[p.status] ?? 9,
    cell: (p) => h("span", { class: `status ${p.status}` }, words(p.status)) },
  { id: "site", label: "Site", sort: (p) => (p.displayName ?? p.publicKey).toLowerCase(),
    cell: (p) => h("span", { title: p.publicKey }, p.displayName ?? shortKey(p.publicKey)) },
  { id: "gateway", label: "Gateway", sort: (p) => `${p.host}\u0000${p.interface}`, cell: (p) => `${p.host} ${p.interface}` },
  { id: "cause", label: "Probable cause", sort: (p) => p.cause ?? "~", cell: (p) => words(p.cause) },
  { id: "endpoint", label: "Endpoint", sort: (p) => p.endpoint ?? "~", cell: (p) => p.endpoint ?? "none" },
  { id: "handshake", label: "Handshake", sort: (p) => p.handshakeAgeSeconds ?? Infinity,
    cell: (p) => h("span", { class: "num", "data-handshake": "" }, age(p.ageAt?.(performance.now()))) },
  { id: "rx", label: "Receive", sort: (p) => -p.rxBytesPerSecond, cell: (p) => h("span", { class: "num" }, rate(p.rxBytesPerSecond)) },
  { id: "tx", label: "Send", sort: (p) => -p.txBytesPerSecond, cell: (p) => h("span", { class: "num" }, rate(p.txBytesPerSecond)) },
];

export class Fleet {
  constructor({ onOpen, interactive }) {
    this.onOpen = onOpen;
    this.interactive = interactive;
    this.peers = [];
    this.shown = [];
    this.causes = new Map();
    this.sortBy = { id: "status", direction: 1 };
    this.rowHeight = 38;
    this.scroll = document.getElementById("peer-scroll");
    this.rows = document.getElementById("peer-rows");
    this.filters = {
      host: document.getElementById("filter-host"),
      status: document.getElementById("filter-status"),
      text: document.getElementById("filter-text"),
    };
    for (const input of Object.values(this.filters)) input.addEventListener("input", () => this.apply());
    document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
    this.scroll.addEventListener("scroll", () => this.paint(), { passive: true });
    new ResizeObserver(() => this.paint()).observe(this.scroll);
    this.heading();
  }

  heading() {
    const head = document.getElementById("peer-head");
    head.replaceChildren(...COLUMNS.map((column) => h("span", { role: "columnheader" }, !this.interactive ? column.label :
      h("button", {
        type: "button",
        "aria-sort": this.sortBy.id === column.id ? (this.sortBy.direction > 0 ? "ascending" : "descending") : null,
        onclick: () => {
          this.sortBy = { id: column.id, direction: this.sortBy.id === column.id ? -this.sortBy.direction : 1 };
          this.heading();
          this.apply();
        },
      }, column.label))));
    this.rowHeight = head.getBoundingClientRect().height || this.rowHeight;
  }

  /** New peers and gateways from FLEET_QUERY's answers, read at `fetchedAt` (performance.now()). */
  update(peers, hosts, fetchedAt) {
    for (const peer of peers) {
      const base = peer.handshakeAgeSeconds;
      peer.ageAt = (now) => (base == null ? null : base + (now - fetchedAt) / 1000);
    }
    this.peers = peers;
    this.hosts = hosts;
    this.annotate();
    this.counts();
    this.gateways();
    this.apply();
  }

  /** Probable causes of open PEER_STALE alerts, by `host interface key`. */
  setCauses(causes) {
    this.causes = causes;
    this.annotate();
    this.counts();
    this.apply();
  }

  /** Each peer's probable cause; an open stale alert is news the next refresh of the projection
   * would bring, so its peer shows as stale now. */
  annotate() {
    for (const peer of this.peers) {
      const key = `${peer.host} ${peer.interface} ${peer.publicKey}`;
      peer.cause = this.causes.get(key);
      if (this.causes.has(key) && peer.status === "ACTIVE") peer.status = "STALE";
    }
  }

  counts() {
    const counts = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const peer of this.peers) counts[peer.status] = (counts[peer.status] ?? 0) + 1;
    document.getElementById("counts").replaceChildren(
      h("div", { class: "count" }, h("b", {}, this.peers.length), "peers"),
      ...STATUSES.map((status) => h("div", { class: `count ${status.toLowerCase()}`, "data-status": status },
        h("b", {}, counts[status]), words(status))),
    );
  }

  gateways() {
    const now = Date.now();
    document.getElementById("gateways").replaceChildren(...this.hosts.map((gateway) =>
      h("span", { class: `gateway ${gateway.status}`, title: `last heard ${new Date(gateway.lastHeartbeatAt).toLocaleString()}` },
        `${gateway.host} ${gateway.interface}: ${words(gateway.status)}, ${gateway.peerCount} peers, heard ${age((now - Date.parse(gateway.lastHeartbeatAt)) / 1000)} ago`)));
    const select = this.filters.host;
    const chosen = select.value;
    const names = [...new Set(this.hosts.map((gateway) => gateway.host))].sort();
    select.replaceChildren(h("option", { value: "" }, "all"), ...names.map((name) => h("option", { selected: name === chosen }, name)));
  }

  /** Filters and sorts, then paints. */
  apply() {
    const host = this.filters.host.value;
    const status = this.filters.status.value;
    const text = this.filters.text.value.trim().toLowerCase();
    const column = COLUMNS.find((c) => c.id === this.sortBy.id);
    this.shown = this.peers.filter((peer) =>
      (!host || peer.host === host) && (!status || peer.status === status) &&
      (!text || [peer.displayName, peer.publicKey, peer.endpoint, peer.host].some((field) => field?.toLowerCase().includes(text))));
    const direction = this.sortBy.direction;
    this.shown.sort((a, b) => {
      const x = column.sort(a), y = column.sort(b);
      return (x < y ? -1 : x > y ? 1 : 0) * direction || (a.publicKey < b.publicKey ? -1 : 1);
    });
    document.getElementById("shown").textContent =
      this.shown.length === this.peers.length ? "" : `${this.shown.length} of ${this.peers.length} shown`;
    this.paint();
  }

  /** The rows in sight (and a few around them), positioned in a container as tall as all rows. */
  paint() {
    const height = this.rowHeight;
    this.rows.style.height = `${this.shown.length * height}px`;
    const first = Math.max(0, Math.floor(this.scroll.scrollTop / height) - 5);
    const last = Math.min(this.shown.length, Math.ceil((this.scroll.scrollTop + this.scroll.clientHeight) / height) + 5);
    const rows = [];
    for (let index = first; index < last; index += 1) {
      const peer = this.shown[index];
      const open = () => this.onOpen(peer);
      rows.push(h("div", {
        class: "row", role: "row", style: `top:${index * height}px`, "data-index": index, "data-key": peer.publicKey, "data-status": peer.status,
        tabindex: this.interactive ? "0" : null,
        onclick: this.interactive ? open : null,
        onkeydown: this.interactive ? (event) => event.key === "Enter" && open() : null,
      }, COLUMNS.map((column) => h("span", { role: "cell" }, column.cell(peer)))));
    }
    this.rows.replaceChildren(...rows);
  }

  /** Handshake ages tick every second, in the painted rows only. */
  tick() {
    const now = performance.now();
    for (const row of this.rows.children) {
      const peer = this.shown[Number(row.dataset.index)];
      const cell = row.querySelector("[data-handshake]");
      if (peer && cell) cell.textContent = age(peer.ageAt(now));
    }
  }

  /** The refresh interval: the gateways' scan interval, between 2 s and 60 s. */
  interval() {
    const scans = (this.hosts ?? []).map((gateway) => gateway.scanIntervalSeconds).filter((s) => s > 0);
    return Math.min(60, Math.max(2, scans.length ? Math.min(...scans) : 10)) * 1000;
  }
}

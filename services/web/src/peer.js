// A peer's detail: its gateways' facts, rx/tx rate and handshake age charts over the last hour,
// day or week, its endpoint moves and its alerts.
import uPlot from "uplot";
import { age, bytes, h, rate, time } from "./format.js";

const PEER_QUERY = `query Peer($key: String!, $from: DateTime!, $to: DateTime!) {
  wireguardPeer(publicKey: $key) { host interface status endpoint allowedIps handshakeAgeSeconds transferRx transferTx
    rxBytesPerSecond txBytesPerSecond displayName owner tags clearance persistentKeepalive source }
  wireguardEndpointChanges(publicKey: $key, from: $from, to: $to) { host interface previousEndpoint endpoint changedAt newNetwork }
}`;

const HISTORY_QUERY = `query History($key: String!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String) {
  wireguardPeerHistory(publicKey: $key, from: $from, to: $to, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { host interface observedAt handshakeAgeSeconds rxBytesPerSecond txBytesPerSecond }
  }
}`;

/** Longer ranges are drawn from one observation per window: a week of 10 s scans is 60,000. */
const SAMPLED_WINDOWS = 120;

export class PeerDetail {
  constructor(api) {
    this.api = api;
    this.charts = [];
    this.range = 3600;
    for (const button of document.querySelectorAll("[data-range]")) {
      button.addEventListener("click", () => {
        this.range = Number(button.dataset.range);
        this.show(this.target, this.alerts);
      });
    }
  }

  /** Shows `target` ({host, interface, key}) with `alerts` (the screen's alerts of that key). */
  async show(target, alerts) {
    this.target = target;
    this.alerts = alerts;
    for (const button of document.querySelectorAll("[data-range]")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.range) === this.range));
    }
    const to = new Date();
    const from = new Date(to.getTime() - this.range * 1000);
    const { wireguardPeer: gateways, wireguardEndpointChanges: moves } =
      await this.api.query(PEER_QUERY, { key: target.key, from: from.toISOString(), to: to.toISOString() });
    const here = gateways.find((g) => g.host === target.host && g.interface === target.interface) ?? gateways[0];
    document.getElementById("peer-title").textContent = here?.displayName ?? target.key;
    document.getElementById("peer-facts").replaceChildren(...facts(target.key, here, gateways));
    document.getElementById("peer-moves").replaceChildren(...(moves.length ? moves.map((move) =>
      h("li", {}, `${time(move.changedAt)} on ${move.host} ${move.interface}: ${move.previousEndpoint ?? "none"} → ${move.endpoint}`,
        move.newNetwork ? " (a network never seen for this key)" : "")) : [h("li", { class: "muted" }, "none in this range")]));
    document.getElementById("peer-alerts").replaceChildren(...(alerts.length ? alerts
      : [h("li", { class: "muted" }, "none open or recently resolved")]));
    const points = await this.history(target, from, to);
    this.draw(points, from, to);
  }

  /** The observations of this gateway's view of the key, all of them or one per window. */
  async history(target, from, to) {
    const key = target.key;
    const mine = (node) => node.host === target.host && node.interface === target.interface;
    if (this.range <= 3600) {
      const nodes = await this.api.all(HISTORY_QUERY, { key, from: from.toISOString(), to: to.toISOString() }, "wireguardPeerHistory");
      return nodes.filter(mine);
    }
    const step = (to - from) / SAMPLED_WINDOWS;
    const windows = Array.from({ length: SAMPLED_WINDOWS }, (_, i) => [new Date(from.getTime() + i * step), new Date(from.getTime() + (i + 1) * step)]);
    const points = [];
    for (let i = 0; i < windows.length; i += 8) {
      const pages = await Promise.all(windows.slice(i, i + 8).map(([start, end]) =>
        this.api.query(HISTORY_QUERY, { key, from: start.toISOString(), to: end.toISOString(), first: 8 })));
      for (const page of pages) {
        const first = page.wireguardPeerHistory.nodes.find(mine);
        if (first) points.push(first);
      }
    }
    return points;
  }

  draw(points, from, to) {
    for (const chart of this.charts) chart.destroy();
    const note = document.getElementById("chart-note");
    note.textContent = points.length === 0 ? "No observations in this range." : this.range <= 3600
      ? `${points.length} observations` : `${points.length} observations, one per ${age((to - from) / 1000 / SAMPLED_WINDOWS)}`;
    const x = points.map((p) => Date.parse(p.observedAt) / 1000);
    const width = Math.max(400, document.getElementById("view-peer").clientWidth - 40);
    const axes = (unit) => [{ stroke: "#9da7b3", grid: { stroke: "#30363d" } },
      { stroke: "#9da7b3", grid: { stroke: "#30363d" }, size: 80, values: (_, ticks) => ticks.map(unit) }];
    const scales = { x: { time: true, min: from / 1000, max: to / 1000 } };
    this.charts = [
      new uPlot({ width, height: 220, title: "Throughput", scales, axes: axes(rate),
        series: [{}, { label: "receive", stroke: "#3fb950", value: (_, v) => (v == null ? "" : rate(v)) },
          { label: "send", stroke: "#58a6ff", value: (_, v) => (v == null ? "" : rate(v)) }] },
        [x, points.map((p) => p.rxBytesPerSecond), points.map((p) => p.txBytesPerSecond)], document.getElementById("rate-chart")),
      new uPlot({ width, height: 180, title: "Handshake age", scales, axes: axes(age),
        series: [{}, { label: "handshake age", stroke: "#d29922", value: (_, v) => (v == null ? "" : age(v)) }] },
        [x, points.map((p) => p.handshakeAgeSeconds)], document.getElementById("age-chart")),
    ];
  }
}

function facts(key, here, gateways) {
  const rows = [["Public key", key]];
  if (here) {
    rows.push(["Status", here.status.toLowerCase().replaceAll("_", " ")], ["Endpoint", here.endpoint ?? "none"],
      ["Handshake", age(here.handshakeAgeSeconds)], ["Allowed IPs", here.allowedIps.join(", ")],
      ["Throughput", `receive ${rate(here.rxBytesPerSecond)}, send ${rate(here.txBytesPerSecond)}`],
      ["Transferred", `received ${bytes(here.transferRx)}, sent ${bytes(here.transferTx)}`],
      ["Owner", here.owner ?? ""], ["Tags", here.tags.join(", ")], ["Clearance", here.clearance]);
  }
  rows.push(["Gateways", gateways.map((g) => `${g.host} ${g.interface} (${g.status.toLowerCase()})`).join(", ")]);
  return rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]);
}

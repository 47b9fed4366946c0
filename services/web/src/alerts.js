// Open alerts, newest first, live over the subscription; acknowledging (operators and admins);
// resolved ones fade into a short history.
import { age, evidence, h, time } from "./format.js";

const FIELDS = `alertId kind severity state host interface publicKey probableCause causeExplanation
  evidence { name value } summary raisedAt resolvedAt revisedAt silenced incidentId acknowledgedBy acknowledgedAt`;

export const ALERTS_QUERY = `query Alerts($open: WireguardAlertFilter, $resolved: WireguardAlertFilter) {
  open: wireguardAlerts(filter: $open, first: 500) { nodes { ${FIELDS} } }
  resolved: wireguardAlerts(filter: $resolved, first: 50) { nodes { ${FIELDS} } }
}`;

export const ALERTS_SUBSCRIPTION = `subscription { wireguardAlerts(includeSilenced: true) { ${FIELDS} } }`;

const ACKNOWLEDGE = `mutation Acknowledge($id: String!) { acknowledgeAlert(alertId: $id) { eventId } }`;

const HISTORY_LENGTH = 50;
const words = (constant) => (constant ?? "").toLowerCase().replaceAll("_", " ");
const newestFirst = (a, b) => Date.parse(b.raisedAt) - Date.parse(a.raisedAt);

export class Alerts {
  constructor(api, { canAcknowledge, onChange }) {
    this.api = api;
    this.canAcknowledge = canAcknowledge;
    this.onChange = onChange;
    this.open = new Map();
    this.resolved = [];
  }

  /** Everything open, and the last day's resolutions, from the projections. */
  async load() {
    const now = Date.now();
    const data = await this.api.query(ALERTS_QUERY, {
      open: { state: "RAISED", from: new Date(now - 31 * 86400_000).toISOString() },
      resolved: { state: "RESOLVED", from: new Date(now - 86400_000).toISOString() },
    });
    this.open = new Map(data.open.nodes.map((alert) => [alert.alertId, alert]));
    this.resolved = data.resolved.nodes.sort((a, b) => Date.parse(b.resolvedAt) - Date.parse(a.resolvedAt)).slice(0, HISTORY_LENGTH);
    this.render();
  }

  /** One transition from the subscription: a raise or revision replaces, a resolution moves on. */
  receive(alert) {
    if (alert.state === "RAISED") {
      const known = this.open.get(alert.alertId);
      this.open.set(alert.alertId, { ...alert, acknowledgedBy: alert.acknowledgedBy ?? known?.acknowledgedBy });
      this.render();
      return;
    }
    const card = document.querySelector(`#open-alerts [data-alert="${CSS.escape(alert.alertId)}"]`);
    this.open.delete(alert.alertId);
    this.resolved = [alert, ...this.resolved.filter((a) => a.alertId !== alert.alertId)].slice(0, HISTORY_LENGTH);
    if (card) {
      card.classList.add("fading");
      setTimeout(() => this.render(), 1500);
    } else {
      this.render();
    }
  }

  /** Alerts of one key, open ones first. */
  of(key) {
    return [...this.open.values(), ...this.resolved].filter((alert) => alert.publicKey === key).map((alert) => this.card(alert));
  }

  /** Probable causes of open stale alerts, by `host interface key`, for the fleet's rows. */
  causes() {
    const causes = new Map();
    for (const alert of this.open.values()) {
      if (alert.kind === "PEER_STALE" && alert.publicKey) causes.set(`${alert.host} ${alert.interface} ${alert.publicKey}`, alert.probableCause ?? "UNKNOWN");
    }
    return causes;
  }

  render() {
    const open = [...this.open.values()].sort(newestFirst);
    document.getElementById("open-count").textContent = open.length ? String(open.length) : "";
    document.getElementById("open-alerts").replaceChildren(...(open.length ? open.map((alert) => this.card(alert))
      : [h("li", { class: "muted" }, "No open alerts.")]));
    document.getElementById("resolved-alerts").replaceChildren(...this.resolved.map((alert) => this.card(alert)));
    this.onChange();
  }

  card(alert) {
    const open = alert.state === "RAISED";
    const acknowledge = open && this.canAcknowledge && !alert.acknowledgedBy
      ? h("button", { type: "button", class: "acknowledge controls", onclick: (event) => this.acknowledge(alert, event.target) }, "Acknowledge")
      : null;
    return h("li", { class: `alert ${alert.severity}`, "data-alert": alert.alertId, "data-kind": alert.kind, "data-key": alert.publicKey ?? "" },
      h("div", { class: "what" }, `${words(alert.severity)} · ${words(alert.kind)}${alert.silenced ? " · silenced" : ""}`),
      h("div", {}, alert.summary),
      alert.causeExplanation ? h("div", { class: "cause" }, `Probable cause: ${words(alert.probableCause)}: ${alert.causeExplanation}`) : null,
      alert.evidence.length ? h("div", { class: "evidence" }, `Evidence: ${evidence(alert.evidence)}`) : null,
      h("div", { class: "when" }, open
        ? `raised ${time(alert.raisedAt)} (${age((Date.now() - Date.parse(alert.raisedAt)) / 1000)} ago)${alert.revisedAt ? `, revised ${time(alert.revisedAt)}` : ""}`
        : `resolved ${time(alert.resolvedAt)}`),
      alert.acknowledgedBy ? h("div", { class: "acked" }, `acknowledged by ${alert.acknowledgedBy}`) : null,
      acknowledge,
    );
  }

  async acknowledge(alert, button) {
    button.disabled = true;
    try {
      await this.api.query(ACKNOWLEDGE, { id: alert.alertId });
      button.replaceWith(h("div", { class: "acked" }, "acknowledged"));
      setTimeout(() => this.load().catch(() => {}), 1000);
    } catch (failure) {
      button.disabled = false;
      button.after(h("div", { class: "error", role: "alert" }, `not acknowledged: ${failure.message}`));
    }
  }
}

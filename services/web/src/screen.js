// The NOC screen: signs in with a pasted token, then shows the fleet and the alerts live, a
// peer's history, the shift audit and key rotation. It uses only the public GraphQL API, so it
// can do nothing the token could not.
import { Alerts, ALERTS_SUBSCRIPTION } from "./alerts.js";
import { Api, TokenRefused, forgetToken, saveToken, savedToken } from "./api.js";
import { FLEET_QUERY, Fleet } from "./fleet.js";
import { bytes, csv, h, time } from "./format.js";
import { PeerDetail } from "./peer.js";

const CALLER_QUERY = `{ wireguardCaller { subject organisation clearance role expiresAt } }`;
const ACTIVE_QUERY = `query Active($from: DateTime!, $to: DateTime!, $first: Int, $after: String) {
  wireguardActivePeers(from: $from, to: $to, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { host interface displayName publicKey firstSeenActive lastSeenActive rxBytes txBytes }
  }
}`;
const ROTATION_QUERY = `{ wireguardRotationStatus { host interface label expectedKey state retiredKeysLive } }`;

const MESSAGE_KEY = "argus.signin-message";
const kiosk = new URLSearchParams(location.search).get("kiosk") === "1";
const $ = (id) => document.getElementById(id);

/** Signs out: forgets the token and starts the page afresh, so nothing of the last token's view
 * (its data, its refreshes, its socket) outlives it. */
function signOut(message = "") {
  forgetToken();
  sessionStorage.setItem(MESSAGE_KEY, message);
  location.replace(`${location.pathname}${location.search}`);
}

function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = sessionStorage.getItem(MESSAGE_KEY) ?? "";
  sessionStorage.removeItem(MESSAGE_KEY);
  $("token").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  try {
    const { wireguardCaller } = await new Api(token).query(CALLER_QUERY);
    saveToken(token);
    $("token").value = "";
    start(token, wireguardCaller);
  } catch (failure) {
    $("signin-error").textContent = failure instanceof TokenRefused
      ? `The server refused this token: ${failure.message}` : `Could not sign in: ${failure.message}`;
  }
});

async function resume() {
  if (kiosk) document.body.classList.add("kiosk");
  const token = savedToken();
  if (!token) return showSignIn();
  try {
    const { wireguardCaller } = await new Api(token).query(CALLER_QUERY);
    start(token, wireguardCaller);
  } catch (failure) {
    if (failure instanceof TokenRefused) return signOut(`Signed out: ${failure.message}`);
    // a wall screen outlives a restart of the server: keep the token and try again
    showSignIn();
    $("signin-error").textContent = `Could not reach the server (${failure.message}); trying again…`;
    setTimeout(() => location.reload(), 5000);
  }
}

function start(token, caller) {
  const api = new Api(token);
  const canAcknowledge = !kiosk && (caller.role === "OPERATOR" || caller.role === "ADMIN");
  $("signin").hidden = true;
  $("app").hidden = false;
  $("caller").textContent = `${caller.subject} · ${caller.organisation} · ${caller.clearance.toLowerCase()} · ${caller.role.toLowerCase()}`;
  $("signout").onclick = () => signOut();
  const expired = () => signOut(`Your token expired at ${time(caller.expiresAt)}: paste a new one.`);
  setTimeout(expired, Math.max(0, Math.min(2 ** 31 - 1, Date.parse(caller.expiresAt) - Date.now())));
  const refused = (failure) => (failure instanceof TokenRefused ? signOut(`Signed out: ${failure.message}`) : null);

  const fleet = new Fleet({ interactive: !kiosk, onOpen: (peer) => { location.hash = `#/peer/${encodeURIComponent(peer.host)}/${encodeURIComponent(peer.interface)}/${encodeURIComponent(peer.publicKey)}`; } });
  const alerts = new Alerts(api, { canAcknowledge, onChange: () => fleet.setCauses(alerts.causes()) });
  const detail = new PeerDetail(api);

  let firstPaint = true;
  async function refresh() {
    try {
      const fetchedAt = performance.now();
      const pages = [];
      let after = null;
      for (;;) {
        const data = await api.query(FLEET_QUERY, { first: 500, after });
        pages.push(data);
        if (!data.wireguardPeers.pageInfo.hasNextPage) break;
        after = data.wireguardPeers.pageInfo.endCursor;
      }
      fleet.update(pages.flatMap((page) => page.wireguardPeers.nodes), pages.at(-1).wireguardHosts, fetchedAt);
      if (firstPaint) {
        firstPaint = false;
        performance.mark("argus-fleet-rendered");
        document.body.dataset.fleetRendered = "true";
      }
      $("counts").title = `as of ${new Date().toLocaleTimeString()}`;
    } catch (failure) {
      refused(failure);
      $("counts").title = `refresh failed: ${failure.message}`;
    }
    setTimeout(refresh, fleet.interval());
  }
  refresh();
  setInterval(() => fleet.tick(), 1000);

  const reload = () => alerts.load().catch(refused);
  reload();
  api.subscribe(ALERTS_SUBSCRIPTION, (data) => alerts.receive(data.wireguardAlerts), {
    onConnected: () => {
      $("live").textContent = "live";
      $("live").className = "live up";
      $("live").title = "alerts arrive as they happen";
      reload(); // what happened while the socket was down
    },
    onClosed: (event) => {
      $("live").textContent = "reconnecting…";
      $("live").className = "live down";
      $("live").title = `live alerts closed (${event?.code ?? "no code"}${event?.reason ? `: ${event.reason}` : ""}); reconnecting`;
    },
    onRefused: () => signOut("Signed out: the server closed the live alerts (token expired or refused)."),
  });

  const audit = shiftAudit(api, refused);
  function route() {
    const [, view = "fleet", ...rest] = (kiosk ? "#/fleet" : location.hash || "#/fleet").split("/");
    for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
    for (const link of document.querySelectorAll("[data-view]")) {
      link.setAttribute("aria-current", link.dataset.view === view ? "page" : "false");
    }
    if (view === "peer" && rest.length === 3) {
      const [host, iface, key] = rest.map(decodeURIComponent);
      detail.show({ host, interface: iface, key }, alerts.of(key)).catch(refused);
    } else if (view === "audit") {
      audit.prepare();
    } else if (view === "rotation") {
      rotation(api).catch(refused);
    } else {
      fleet.paint();
    }
  }
  window.onhashchange = route;
  route();
}

function shiftAudit(api, refused) {
  let rows = [];
  const local = (date) => new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const prepare = () => {
    if ($("audit-from").value) return;
    const now = new Date();
    $("audit-to").value = local(now);
    $("audit-from").value = local(new Date(now.getTime() - 8 * 3600_000));
  };
  $("audit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("audit-note").textContent = "loading…";
    try {
      const from = new Date($("audit-from").value).toISOString();
      const to = new Date($("audit-to").value).toISOString();
      rows = await api.all(ACTIVE_QUERY, { from, to }, "wireguardActivePeers", 200);
      $("audit-rows").replaceChildren(...rows.map((peer) => h("tr", {},
        [peer.host, peer.interface, peer.displayName ?? "", peer.publicKey, time(peer.firstSeenActive), time(peer.lastSeenActive),
          bytes(peer.rxBytes), bytes(peer.txBytes)].map((value) => h("td", {}, value)))));
      $("audit-note").textContent = `${rows.length} peers active between ${time(from)} and ${time(to)}`;
      $("audit-csv").disabled = false;
      $("audit-csv").onclick = () => {
        const table = [["host", "interface", "display_name", "public_key", "first_seen_active", "last_seen_active", "rx_bytes", "tx_bytes"],
          ...rows.map((p) => [p.host, p.interface, p.displayName, p.publicKey, p.firstSeenActive, p.lastSeenActive, p.rxBytes, p.txBytes])];
        const link = h("a", { href: URL.createObjectURL(new Blob([csv(table)], { type: "text/csv" })), download: `argus-shift-audit-${from}-${to}.csv` });
        document.body.append(link);
        link.click();
        link.remove();
      };
    } catch (failure) {
      refused(failure);
      $("audit-note").textContent = `failed: ${failure.message}`;
    }
  });
  return { prepare };
}

async function rotation(api) {
  const { wireguardRotationStatus: entries } = await api.query(ROTATION_QUERY);
  $("rotation-rows").replaceChildren(...entries.map((entry) => h("tr", { "data-state": entry.state },
    [entry.host, entry.interface, entry.label ?? "", entry.expectedKey, entry.state.toLowerCase().replaceAll("_", " "),
      entry.retiredKeysLive.join(", ") || "none"].map((value) => h("td", {}, value)))));
  $("rotation-note").textContent = entries.length ? "" : "No rotation manifest is set for any interface you may see.";
}

resume();

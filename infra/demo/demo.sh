#!/usr/bin/env bash
# `make demo`: a hub and 12 forward sites on wireguard-go (infra/lab/wg-lab.sh), then `argus run`
# watching the hub. Prints the NOC screen's URL, a development token and example queries; Ctrl-C stops
# argus and tears the lab down. Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/../.."
# the binary is an argument: every ARGUS_* environment variable is a configuration key to argus
ARGUS="${1:?usage: demo.sh path/to/argus}"
CONFIG=infra/demo/argus.toml
SCREEN="http://127.0.0.1:8080/"
URL="http://127.0.0.1:8080/graphql"

bash infra/lab/wg-lab.sh up demo 12
trap 'bash infra/lab/wg-lab.sh down demo' EXIT
rm -rf /tmp/argus-demo
TOKEN="$("$ARGUS" --config "$CONFIG" token --org demo --clearance TOP_SECRET --role operator)"

cat <<TEXT

  Argus WireGuard demo — the NOC screen: $SCREEN
  Sign in there with this development token (org demo, TOP_SECRET, operator):

  $TOKEN

  GraphQL at $URL (GraphiQL in a browser). For the shell:

  export TOKEN=$TOKEN

  Example queries (in another shell, after a scan or two):

  curl -s $URL -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"query":"{ wireguardPeers(first: 20) { edges { node { publicKey endpoint status latestHandshake transferRx transferTx } } } }"}'

  curl -s $URL -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"query":"{ wireguardStats { peers { total active stale neverConnected } transferRx transferTx } }"}'

  curl -s $URL -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"query":"{ wireguardHosts { host interface status lastHeartbeatAt peerCount } }"}'

  Fail a site and watch it go STALE (after the 210 s window; WireGuard renews handshakes only
  every 120 s, so shorter windows flap), and another whose link is cut; the probes from the hub
  tell them apart (WIREGUARD_DOWN: the site answers pings; PATH_DOWN: nothing answers):
    bash infra/lab/wg-lab.sh fail demo 7
    bash infra/lab/wg-lab.sh fail demo 8 --link
  then ask for the alerts, their causes and evidence:

  curl -s $URL -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
    -d '{"query":"{ wireguardAlerts(first: 20) { edges { node { kind probableCause summary evidence { name value } } } } }"}'

  Two sites with one key pair raise CLONED_KEY: bash infra/lab/wg-lab.sh clone demo 3 2

TEXT
"$ARGUS" --config "$CONFIG" run

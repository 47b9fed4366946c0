#!/usr/bin/env bash
# A real WireGuard lab on one machine: a hub and N forward sites, each a network namespace running
# wireguard-go (configured with `wg`), joined to the hub by its own veth pair, with traffic flowing.
# Needs root. Every command is idempotent; `down` leaves no namespace, process, socket or file.
#
#   wg-lab.sh up ID [SITES] [--psk] [--keepalive SECONDS]   build lab ID (default 3 sites)
#   wg-lab.sh fail ID SITE [--link]    stop SITE's wireguard-go (or, with --link, cut its veth)
#   wg-lab.sh restore ID SITE          undo `fail`
#   wg-lab.sh rotate ID SITE [KEYFILE] give SITE a new private key (generated, or read from
#                                      KEYFILE); the hub is told the new public key
#   wg-lab.sh clone ID SITE FROM       give SITE the key pair of site FROM (a cloned key: the hub
#                                      then hears one key from two networks); SITE's own peer
#                                      entry leaves the hub
#   wg-lab.sh roam ID SITE             move SITE's underlay to a new network (198.19.NN.0/24):
#                                      the hub sees its endpoint move once
#   wg-lab.sh burst ID SITE SECONDS    flood the hub with large pings from SITE for SECONDS
#   wg-lab.sh quiet ID                 stop the background traffic (counters then stand still)
#   wg-lab.sh traffic ID               start it again for every running site
#   wg-lab.sh status ID                namespaces, interfaces, the hub's `wg show`
#   wg-lab.sh down ID                  tear everything down
#   wg-lab.sh list                     lab ids with state on this machine
#
# ID: 1-4 of [a-z0-9] (names must stay within the kernel's 15-byte interface names). Names:
# namespaces argus-ID-hub and argus-ID-sNN; WireGuard interfaces agID-hub (hub, UAPI socket
# /var/run/wireguard/agID-hub.sock, visible from the root namespace) and agID-sNN. Underlay:
# 198.18.NN.1 (hub side) and 198.18.NN.2 (site) — the benchmarking range, inside the lab's own
# namespaces only. Overlay: hub 100.64.0.1, site NN 100.64.NN.1; each site also routes
# fd42:a:NN::/64 for an IPv6 allowed-IP.
set -euo pipefail
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

STATE_ROOT="${ARGUS_LAB_STATE:-/run/argus-lab}"
HUB_PORT=51820

die() { echo "wg-lab: $*" >&2; exit 1; }

check_id() {
  [[ "$1" =~ ^[a-z0-9]{1,4}$ ]] || die "lab id '$1' must be 1-4 of [a-z0-9]"
}
check_site() {
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 99 ] || die "site '$1' must be 1-99"
}

site_name() { printf 's%02d' "$1"; }
hub_ns() { echo "argus-$1-hub"; }
site_ns() { echo "argus-$1-$(site_name "$2")"; }
hub_if() { echo "ag$1-hub"; }
site_if() { echo "ag$1-$(site_name "$2")"; }
state_dir() { echo "$STATE_ROOT/$1"; }

# Starts wireguard-go for interface $2 in namespace $1, waiting for its UAPI socket.
start_wireguard() {
  local ns="$1" ifname="$2" state="$3"
  rm -f "/var/run/wireguard/$ifname.sock"
  ip netns exec "$ns" wireguard-go -f "$ifname" >"$state/$ifname.log" 2>&1 &
  echo $! >"$state/$ifname.pid"
  for _ in $(seq 100); do
    [ -S "/var/run/wireguard/$ifname.sock" ] && return 0
    sleep 0.05
  done
  die "wireguard-go for $ifname did not open its UAPI socket (see $state/$ifname.log)"
}

stop_pid_file() {
  local file="$1"
  if [ -f "$file" ]; then
    kill "$(cat "$file")" 2>/dev/null || true
    rm -f "$file"
  fi
}

configure_hub() {
  local id="$1" state ns ifname
  state="$(state_dir "$id")"
  ns="$(hub_ns "$id")"
  ifname="$(hub_if "$id")"
  start_wireguard "$ns" "$ifname" "$state"
  wg set "$ifname" listen-port "$HUB_PORT" private-key "$state/hub.key"
  ip -n "$ns" address add 100.64.0.1/16 dev "$ifname"
  ip -n "$ns" link set "$ifname" up
}

# Adds (or re-adds) site $2 as a peer of the hub.
hub_peer() {
  local id="$1" site="$2" state nn psk_args=()
  state="$(state_dir "$id")"
  nn="$((10#$site))"
  [ -f "$state/psk" ] && psk_args=(preshared-key "$state/$(site_name "$site").psk")
  wg set "$(hub_if "$id")" peer "$(cat "$state/$(site_name "$site").pub")" "${psk_args[@]}" \
    allowed-ips "100.64.$nn.0/24,fd42:a:$nn::/64"
}

configure_site() {
  local id="$1" site="$2" state ns ifname nn psk_args=() keepalive
  state="$(state_dir "$id")"
  ns="$(site_ns "$id" "$site")"
  ifname="$(site_if "$id" "$site")"
  nn="$((10#$site))"
  keepalive="$(cat "$state/keepalive")"
  start_wireguard "$ns" "$ifname" "$state"
  [ -f "$state/psk" ] && psk_args=(preshared-key "$state/$(site_name "$site").psk")
  wg set "$ifname" private-key "$state/$(site_name "$site").key" \
    peer "$(cat "$state/hub.pub")" "${psk_args[@]}" endpoint "198.18.$nn.1:$HUB_PORT" \
    allowed-ips 100.64.0.0/24 persistent-keepalive "$keepalive"
  ip -n "$ns" address add "100.64.$nn.1/16" dev "$ifname"
  ip -n "$ns" link set "$ifname" up
}

# Keeps a ping running from site $2 to the hub, so handshakes renew as they would in service.
start_traffic() {
  local id="$1" site="$2" state
  state="$(state_dir "$id")"
  stop_pid_file "$state/$(site_name "$site").ping.pid"
  ip netns exec "$(site_ns "$id" "$site")" ping -q -i 0.5 100.64.0.1 >/dev/null 2>&1 &
  echo $! >"$state/$(site_name "$site").ping.pid"
}

cmd_up() {
  local id="" sites=3 psk=0 keepalive=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --psk) psk=1 ;;
      --keepalive) shift; keepalive="${1:?--keepalive needs seconds}" ;;
      *) if [ -z "$id" ]; then id="$1"; else sites="$1"; fi ;;
    esac
    shift
  done
  check_id "$id"
  [[ "$sites" =~ ^[0-9]+$ ]] && [ "$sites" -ge 1 ] && [ "$sites" -le 99 ] || die "sites must be 1-99"
  bash "$(dirname "$0")/../scripts/install-lab-deps.sh"
  cmd_down "$id"
  local state hns
  state="$(state_dir "$id")"
  mkdir -p "$state" /var/run/wireguard
  chmod 700 "$state"
  echo "$sites" >"$state/sites"
  echo "$keepalive" >"$state/keepalive"
  [ "$psk" -eq 1 ] && touch "$state/psk"
  (umask 077; wg genkey >"$state/hub.key")
  wg pubkey <"$state/hub.key" >"$state/hub.pub"
  hns="$(hub_ns "$id")"
  ip netns add "$hns"
  ip -n "$hns" link set lo up
  for site in $(seq "$sites"); do
    local sns nn name
    sns="$(site_ns "$id" "$site")"
    nn="$site"
    name="$(site_name "$site")"
    ip netns add "$sns"
    ip -n "$sns" link set lo up
    ip link add "ag$id-h$nn" netns "$hns" type veth peer name "ag$id-u$nn" netns "$sns"
    ip -n "$hns" address add "198.18.$nn.1/24" dev "ag$id-h$nn"
    ip -n "$sns" address add "198.18.$nn.2/24" dev "ag$id-u$nn"
    ip -n "$hns" link set "ag$id-h$nn" up
    ip -n "$sns" link set "ag$id-u$nn" up
    (umask 077; wg genkey >"$state/$name.key"; [ "$psk" -eq 1 ] && wg genpsk >"$state/$name.psk" || true)
    wg pubkey <"$state/$name.key" >"$state/$name.pub"
  done
  configure_hub "$id"
  for site in $(seq "$sites"); do
    hub_peer "$id" "$site"
    configure_site "$id" "$site"
    start_traffic "$id" "$site"
  done
  # wait for every site's first handshake
  for _ in $(seq 100); do
    local connected
    connected="$(wg show "$(hub_if "$id")" latest-handshakes | awk '$2 != 0' | wc -l)"
    [ "$connected" -eq "$sites" ] && { echo "lab $id: hub $(hub_if "$id") and $sites sites up"; return 0; }
    sleep 0.1
  done
  die "lab $id: not every site completed a handshake within 10 s"
}

cmd_fail() {
  local id="$1" site="$2" mode="${3:-}" state
  check_id "$id"; check_site "$site"; site="$((10#$site))"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  if [ "$mode" = "--link" ]; then
    ip -n "$(hub_ns "$id")" link set "ag$id-h$site" down
  else
    stop_pid_file "$state/$(site_if "$id" "$site").pid"
    for _ in $(seq 100); do
      [ -S "/var/run/wireguard/$(site_if "$id" "$site").sock" ] || break
      sleep 0.05
    done
    rm -f "/var/run/wireguard/$(site_if "$id" "$site").sock"
  fi
}

cmd_restore() {
  local id="$1" site="$2" state
  check_id "$id"; check_site "$site"; site="$((10#$site))"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  ip -n "$(hub_ns "$id")" link set "ag$id-h$site" up
  if [ ! -f "$state/$(site_if "$id" "$site").pid" ]; then
    configure_site "$id" "$site"
  fi
  start_traffic "$id" "$site"
}

cmd_rotate() {
  local id="$1" site="$2" keyfile="${3:-}" state name old
  check_id "$id"; check_site "$site"; site="$((10#$site))"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  name="$(site_name "$site")"
  old="$(cat "$state/$name.pub")"
  if [ -n "$keyfile" ]; then
    (umask 077; cat "$keyfile" >"$state/$name.key")
  else
    (umask 077; wg genkey >"$state/$name.key")
  fi
  wg pubkey <"$state/$name.key" >"$state/$name.pub"
  wg set "$(hub_if "$id")" peer "$old" remove
  hub_peer "$id" "$site"
  wg set "$(site_if "$id" "$site")" private-key "$state/$name.key"
  cat "$state/$name.pub"
}

cmd_clone() {
  local id="$1" site="$2" from="$3" state
  check_id "$id"; check_site "$site"; check_site "$from"; site="$((10#$site))"; from="$((10#$from))"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  wg set "$(hub_if "$id")" peer "$(cat "$state/$(site_name "$site").pub")" remove
  wg set "$(site_if "$id" "$site")" private-key "$state/$(site_name "$from").key"
}

cmd_roam() {
  local id="$1" site="$2" hns sns
  check_id "$id"; check_site "$site"; site="$((10#$site))"
  [ -d "$(state_dir "$id")" ] || die "no lab $id"
  hns="$(hub_ns "$id")"
  sns="$(site_ns "$id" "$site")"
  ip -n "$hns" address replace "198.19.$site.1/24" dev "ag$id-h$site"
  ip -n "$sns" address replace "198.19.$site.2/24" dev "ag$id-u$site"
  wg set "$(site_if "$id" "$site")" peer "$(cat "$(state_dir "$id")/hub.pub")" endpoint "198.19.$site.1:$HUB_PORT"
}

cmd_burst() {
  local id="$1" site="$2" seconds="$3"
  check_id "$id"; check_site "$site"; site="$((10#$site))"
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "seconds must be a whole number"
  timeout "$seconds" ip netns exec "$(site_ns "$id" "$site")" ping -q -f -s 1400 100.64.0.1 >/dev/null 2>&1 || true
}

cmd_quiet() {
  local id="$1" state
  check_id "$id"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  for file in "$state"/*.ping.pid; do [ -e "$file" ] && stop_pid_file "$file"; done
  return 0
}

cmd_traffic() {
  local id="$1" state
  check_id "$id"
  state="$(state_dir "$id")"
  [ -d "$state" ] || die "no lab $id"
  for site in $(seq "$(cat "$state/sites")"); do
    [ -f "$state/$(site_if "$id" "$site").pid" ] && start_traffic "$id" "$site"
  done
  return 0
}

cmd_status() {
  local id="$1"
  check_id "$id"
  [ -d "$(state_dir "$id")" ] || die "no lab $id"
  ip netns list | grep "^argus-$id-" || true
  wg show "$(hub_if "$id")"
}

cmd_down() {
  local id="$1" state
  check_id "$id"
  state="$(state_dir "$id")"
  for ns in $(ip netns list | awk '{print $1}' | grep "^argus-$id-" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  done
  if [ -d "$state" ]; then
    for file in "$state"/*.pid; do [ -e "$file" ] && stop_pid_file "$file"; done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^argus-$id-" || true); do
    for _ in $(seq 40); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.05; done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns"
  done
  rm -f /var/run/wireguard/ag"$id"-*.sock
  rm -rf "$state"
}

cmd_list() {
  [ -d "$STATE_ROOT" ] && ls "$STATE_ROOT" || true
}

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
command="${1:-}"
shift || true
case "$command" in
  up) cmd_up "$@" ;;
  fail) cmd_fail "${1:?lab id}" "${2:?site}" "${3:-}" ;;
  restore) cmd_restore "${1:?lab id}" "${2:?site}" ;;
  rotate) cmd_rotate "${1:?lab id}" "${2:?site}" "${3:-}" ;;
  clone) cmd_clone "${1:?lab id}" "${2:?site}" "${3:?site to copy the key from}" ;;
  roam) cmd_roam "${1:?lab id}" "${2:?site}" ;;
  burst) cmd_burst "${1:?lab id}" "${2:?site}" "${3:?seconds}" ;;
  quiet) cmd_quiet "${1:?lab id}" ;;
  traffic) cmd_traffic "${1:?lab id}" ;;
  status) cmd_status "${1:?lab id}" ;;
  down) cmd_down "${1:?lab id}" ;;
  list) cmd_list ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs what the WireGuard lab needs (wireguard-go, wg, ip, ping), what the build links
# (OpenSSL's headers for librdkafka), the API benchmark's load generator (wrk) and the sinks' real
# receivers (rsyslog, Prometheus Alertmanager), Node.js for building the NOC screen and Chromium
# with its WebDriver for the screen's browser tests, from Debian's packages,
# idempotently: nothing is fetched when every command is already there. Needs root.
set -euo pipefail
missing=()
command -v wireguard-go >/dev/null 2>&1 || missing+=(wireguard-go)
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
# the build: librdkafka links OpenSSL (TLS and SCRAM to Kafka); the tests start OpenSSL's TLS server
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# the API load benchmark (api-load) drives the API with wrk
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# the alert sinks' tests deliver to real receivers: rsyslog (syslog over UDP, TCP and TLS) and
# Prometheus Alertmanager
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog rsyslog-gnutls)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# the NOC screen is built with npm packages (install-web.sh) and tested in headless Chromium
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-lab-deps: need root to install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

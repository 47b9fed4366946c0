#!/usr/bin/env bash
# Installs the pinned `tansu` Kafka-API broker for the integration tests, idempotently: an existing
# binary of the pinned version (on PATH or in the project's tool cache) is reused.
set -euo pipefail
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TOOLS="${ARGUS_TOOLS:-$HOME/.cache/argus-wireguard/tools}"
for candidate in "$(command -v tansu 2>/dev/null || true)" "$TOOLS/bin/tansu"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "$candidate"
    exit 0
  fi
done
echo "installing tansu $TANSU_VERSION into $TOOLS (about 10 minutes on 2 cores)" >&2
cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$TOOLS" >&2
echo "$TOOLS/bin/tansu"

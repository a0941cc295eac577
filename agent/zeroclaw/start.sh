#!/bin/sh
# Starts ZeroClaw's gateway as the shim's agent (AGENT_COMMAND of the ZeroClaw image). The shim
# gives every agent PORT (where to listen) and WORKSPACE (where brain.db was restored:
# <workspace>/memory/brain.db); ZeroClaw reads its own names for them and its config under HOME.
set -eu
: "${PORT:?the shim sets PORT}" "${WORKSPACE:?the shim sets WORKSPACE}"
export HOME="$WORKSPACE/.home"
mkdir -p "$HOME/.zeroclaw"
[ -f "$HOME/.zeroclaw/config.toml" ] || sed "s|@WORKSPACE@|$WORKSPACE|g" /app/zeroclaw-config.toml > "$HOME/.zeroclaw/config.toml"
export ZEROCLAW_WORKSPACE="$WORKSPACE" ZEROCLAW_GATEWAY_PORT="$PORT"
exec zeroclaw gateway

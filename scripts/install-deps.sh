#!/bin/sh
# Install what weft needs to build and test on Debian 12, then the pinned
# npm packages (MCP reference servers) the examples and tests use.
set -e
cd "$(dirname "$0")/.."
pkgs="build-essential autoconf automake pkg-config libevent-dev liblua5.4-dev
libjansson-dev libnng-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
libseccomp-dev libcmocka-dev sqlite3 python3 nodejs npm procps openssl
curl chromium"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
# Node from elsewhere (e.g. /usr/local) counts: skip Debian's nodejs/npm.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "installing:$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
if [ ! -x node_modules/.bin/mcp-server-everything ] ||
    [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

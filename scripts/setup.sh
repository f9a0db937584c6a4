#!/usr/bin/env bash
# Makes a machine ready for `make test`, or says exactly what is missing.
# As root on Debian it installs what it can: the network-namespace testbed's
# tools (iproute2, ethtool, nftables, tcpdump), unshare for the p2pd suite,
# Debian's Chromium for the browser interop tests (never a browser download
# by a test tool), Node.js with npm for js-libp2p, and Debian's Prometheus
# for the dashboard tests (test/dashboards; without its recommended node
# exporter and disk tools, which the tests do not use) and redis-server for
# the transport-interop contract (cmd/tachyon, interop/matrix). It then downloads the
# Go modules of the three modules here and the Go toolchain of the fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A pkg=([ip]=iproute2 [ethtool]=ethtool [nft]=nftables [tcpdump]=tcpdump
	[unshare]=util-linux [chromium]=chromium [node]=nodejs [npm]=npm [prometheus]=prometheus
	[redis-server]=redis-server)
missing=()
for tool in ip ethtool nft tcpdump unshare chromium node npm prometheus redis-server; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
# Installed without their recommended packages.
norec=(prometheus redis-server)
root=false
[ "$(id -u)" = 0 ] && root=true
if [ "${#missing[@]}" -gt 0 ]; then
	if $root && command -v apt-get >/dev/null 2>&1; then
		echo "setup: installing ${missing[*]}"
		apt-get update -qq
		rec=() bare=()
		for p in "${missing[@]}"; do
			if [[ " ${norec[*]} " == *" $p "* ]]; then bare+=("$p"); else rec+=("$p"); fi
		done
		if [ "${#rec[@]}" -gt 0 ]; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${rec[@]}" >/dev/null
		fi
		if [ "${#bare[@]}" -gt 0 ]; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
		fi
	else
		echo "setup: missing packages: ${missing[*]}" >&2
		echo "setup: install them with: sudo apt-get install -y ${missing[*]}" >&2
		echo "setup: (or run make test as root on Debian, which installs them)" >&2
		exit 1
	fi
fi
if ! $root && [ -z "${TACHYON_SKIP_NETNS:-}" ]; then
	echo "setup: the testbed and round-trip tests need root (network namespaces)." >&2
	echo "setup: run make test as root, or set TACHYON_SKIP_NETNS=1 to skip them." >&2
	exit 1
fi

go version
go mod download
(cd interop/golibp2p && go mod download)
(cd bench && go mod download)
# The fuzz runs use Go 1.27 (scripts/fuzz.sh says why); fetch it up front.
GOTOOLCHAIN=go1.27.3 go version

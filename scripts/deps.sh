#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages vshm's build, tests, fuzzing and benchmarks
# need.  Idempotent: packages already present are not touched.
#   scripts/deps.sh           install what is missing (needs root or sudo)
#   scripts/deps.sh --check   exit 0 if nothing is missing, 1 otherwise
set -eu
PKGS="build-essential clang libclang-rt-14-dev llvm bc valgrind"
PKGS="$PKGS liburing-dev util-linux procps iproute2 python3"
PKGS="$PKGS qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static kmod cpio xz-utils"
PKGS="$PKGS gnuplot-nox linux-source-6.1"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
		|| missing="$missing $p"
done

if [ "${1:-}" = "--check" ]; then
	[ -z "$missing" ]
	exit
fi
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps: need root to install:$missing (run: sudo scripts/deps.sh)" >&2
		exit 1
	}
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

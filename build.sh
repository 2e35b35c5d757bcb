#!/bin/sh
# build.sh - set up, build, run and test ringmq on Debian 12.
#
#   ./build.sh run    install build dependencies, build, run the broker
#   ./build.sh test   install build and test dependencies, build, run every test
#                     (unit, integration, fuzz-corpus replay), then again under
#                     AddressSanitizer + UndefinedBehaviorSanitizer, then run
#                     each fuzz target under libFuzzer for 20 s
#
# Package installation is idempotent and skipped when everything is present.
set -eu
cd "$(dirname "$0")"

BUILD_DEPS="meson ninja-build gcc pkg-config liburing-dev libjemalloc-dev liburcu-dev libcriterion-dev libwolfssl-dev liblmdb-dev"
TEST_DEPS="mosquitto mosquitto-clients python3-paho-mqtt clang libclang-rt-14-dev prometheus prometheus-mqtt-exporter lmdb-utils chromium"

install_deps() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "installing:$missing"
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
}

# Node.js and npm for the browser test (tests/browser): Debian's nodejs and
# npm, unless a node and an npm are already there (a Node.js package that
# bundles npm conflicts with Debian's npm package).
node_deps() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && return 0
	install_deps nodejs npm
}

configure() { # dir [meson options...]
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@"
	fi
	ninja -C "$dir"
}

case "${1:-}" in
run)
	install_deps $BUILD_DEPS
	configure build
	shift
	exec ./build/src/ringmq "$@"
	;;
test)
	install_deps $BUILD_DEPS $TEST_DEPS
	node_deps
	# MQTT.js and playwright-core for the browser test, as package-lock.json pins them.
	(cd tests/browser && npm ci --no-audit --no-fund)
	# The mosquitto package starts a system broker on 1883; tests use
	# ephemeral ports, so it does not matter whether it runs.
	configure build
	meson test -C build --print-errorlogs --num-processes 2
	configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Djemalloc=disabled
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C build-asan --print-errorlogs --num-processes 2
	# Every fuzz target under libFuzzer (clang) for a short, bounded time.
	(CC=clang && export CC && configure build-fuzz -Dlibfuzzer=true -Db_sanitize=address,undefined \
		-Djemalloc=disabled -Db_lundef=false)
	meson test -C build-fuzz --suite fuzz-run --print-errorlogs --num-processes 2
	;;
*)
	echo "usage: $0 run|test" >&2
	exit 2
	;;
esac

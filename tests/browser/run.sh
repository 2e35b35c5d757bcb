#!/bin/sh
# run.sh - the browser test as meson runs it (tests/integration/meson.build).
# A missing Node.js, Chromium or npm module is a failure with a message,
# never a skip; build.sh test installs all three.
set -eu
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1; then
	echo "browser test: node is not installed (apt-get install nodejs npm)" >&2
	exit 1
fi
if [ ! -x "${RMQ_CHROMIUM:-/usr/bin/chromium}" ]; then
	echo "browser test: ${RMQ_CHROMIUM:-/usr/bin/chromium} is missing (apt-get install chromium)" >&2
	exit 1
fi
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/mqtt ]; then
	echo "browser test: node modules are missing: run 'npm ci' in tests/browser" >&2
	exit 1
fi
exec node --test browser_test.mjs

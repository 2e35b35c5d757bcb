#!/usr/bin/env bash
# mosquitto_clients_test.sh - interoperability with mosquitto_pub and
# mosquitto_sub (Debian's mosquitto-clients 2.0).
#
# For MQTT 3.1.1 and 5 (-V mqttv311 / mqttv5): live delivery at QoS 0, 1
# and 2 (the published QoS, the delivered QoS and the retain flag are read
# back with -F), a retained message picked up by a later mosquitto_sub -C 1,
# its removal with an empty retained message, and the -v and -N output
# formats.  Each test starts its own broker the way the C harness does:
# ringmq from RMQ_BINARY with --shards RMQ_SHARDS on an ephemeral port,
# waiting for its "listening on 127.0.0.1:PORT" line, or with
# RMQ_TEST_BROKER=mosquitto Debian's mosquitto as the oracle.  A live
# subscriber is ready when its -d output shows the SUBACK; waiting for log
# lines uses tail -f (inotify), never sleep.  Every client runs under
# timeout.  A failing test prints the broker log.
set -u

WAIT=5 # seconds for anything that must happen
shards=${RMQ_SHARDS:-1}
logdir=${RMQ_TEST_LOGDIR:-${TMPDIR:-/tmp}}
kind=ringmq
[ "${RMQ_TEST_BROKER:-}" = mosquitto ] && kind=mosquitto
mkdir -p "$logdir"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${broker_pid:-}" ] && kill -KILL "$broker_pid" 2>/dev/null' EXIT

for tool in mosquitto_pub mosquitto_sub timeout tail stdbuf; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (mosquitto-clients)"; exit 1; }
done

# wait_for FILE PATTERN [PID]: until a line of FILE matches PATTERN (grep -E),
# at most WAIT seconds; prints the first match.  With PID, stops when PID exits.
wait_for() {
	local pid_opt=()
	[ -n "${3:-}" ] && pid_opt=(--pid="$3")
	timeout "$WAIT" grep -m1 -o -E "$2" < <(tail -n +1 -f "${pid_opt[@]}" "$1" 2>/dev/null)
}

# start_broker NAME: starts the broker, sets broker_pid, port, broker_log.
start_broker() {
	local base="$logdir/$kind-s$shards-clients.$1" conf
	conf="$base.conf"
	broker_log="$base.log"
	: > "$broker_log"
	if [ "$kind" = mosquitto ]; then
		port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type all\n' \
			"$port" > "$conf"
		[ "$(id -u)" -eq 0 ] && echo 'user root' >> "$conf" # stay in reach of our signals
		/usr/sbin/mosquitto -c "$conf" < /dev/null >> "$broker_log" 2>&1 &
		broker_pid=$!
		# "Opening ... listen socket" comes before the listen(2); "running" after.
		wait_for "$broker_log" 'mosquitto version [^ ]+ running' "$broker_pid" > /dev/null || return 1
	else
		[ -n "${RMQ_BINARY:-}" ] || { echo "RMQ_BINARY is not set (meson sets it)"; return 1; }
		printf 'listener 0 127.0.0.1\nallow_anonymous true\npersistence false\n' > "$conf"
		"$RMQ_BINARY" -c "$conf" --shards "$shards" < /dev/null >> "$broker_log" 2>&1 &
		broker_pid=$!
		port=$(wait_for "$broker_log" 'listening on 127\.0\.0\.1:[0-9]+' "$broker_pid") || return 1
		port=${port##*:}
	fi
}

# stop_broker: SIGTERM, then the exit status must be 0 within WAIT seconds.
# The watchdog's sleep only bounds the wait (its output goes to /dev/null so
# it holds no pipe of the test runner); wait returns at the exit.
stop_broker() {
	local status watchdog
	kill -TERM "$broker_pid" || return 1
	(sleep "$WAIT" && kill -KILL "$broker_pid") > /dev/null 2>&1 &
	watchdog=$!
	wait "$broker_pid"
	status=$?
	kill "$watchdog" 2>/dev/null
	wait "$watchdog" 2>/dev/null
	broker_pid=
	[ "$status" -eq 0 ] && return 0
	echo "broker exited with status $status (137: still running $WAIT s after SIGTERM)"
	return 1
}

pub() { timeout "$WAIT" mosquitto_pub -h 127.0.0.1 -p "$port" "$@"; }
sub() { timeout "$WAIT" mosquitto_sub -h 127.0.0.1 -p "$port" "$@"; }

# expect WHAT GOT WANT
expect() {
	[ "$2" = "$3" ] && return 0
	printf '%s: got %q, expected %q\n' "$1" "$2" "$3"
	return 1
}

# live V QOS: a subscriber at QOS gets a QOS publish with retain 0.
test_live() {
	local v=$1 q=$2 out="$work/live-$1-$2.out" spid got
	: > "$out" # exists (and is empty) before tail follows it
	# Line-buffered, or the SUBACK line would sit in stdio's buffer.
	stdbuf -oL timeout "$WAIT" mosquitto_sub -h 127.0.0.1 -p "$port" -V "$v" -d -q "$q" -t "live/$q" -C 1 \
		-F 'msg %t|%p|%q|%r' > "$out" &
	spid=$!
	wait_for "$out" 'received SUBACK' "$spid" > /dev/null || { echo "no SUBACK for mosquitto_sub"; return 1; }
	pub -V "$v" -q "$q" -t "live/$q" -m "hello $q" || { echo "mosquitto_pub -q $q failed"; return 1; }
	wait "$spid" || { echo "mosquitto_sub exited with $? before a message"; return 1; }
	got=$(grep '^msg ' "$out")
	expect "QoS $q delivery" "$got" "msg live/$q|hello $q|$q|0"
}

# retained V: a later subscriber gets the retained message with retain 1,
# at the lower of the two QoS; an empty retained message removes it.
test_retained() {
	local v=$1 got
	pub -V "$v" -q 1 -r -t ret/t -m kept || { echo "mosquitto_pub -r failed"; return 1; }
	got=$(sub -V "$v" -q 2 -t 'ret/#' -C 1 -F '%t|%p|%q|%r') || { echo "no retained message"; return 1; }
	expect "retained delivery" "$got" "ret/t|kept|1|1" || return 1
	got=$(sub -V "$v" -t ret/t -C 1 -v) || { echo "no retained message for -v"; return 1; }
	expect "-v format" "$got" "ret/t kept" || return 1
	sub -V "$v" -t ret/t -C 1 -N > "$work/n.out" || { echo "no retained message for -N"; return 1; }
	expect "-N format" "$(od -An -c "$work/n.out" | tr -s ' ')" " k e p t" || return 1
	pub -V "$v" -q 1 -r -t ret/t -n || { echo "mosquitto_pub -r -n failed"; return 1; }
	# Absence is the point: -W 1 bounds the wait; exit 27 means it timed out.
	got=$(timeout "$WAIT" mosquitto_sub -h 127.0.0.1 -p "$port" -V "$v" -t ret/t -C 1 -W 1 -v)
	expect "retained message after removal" "$got" ""
}

failures=0
run() {
	local name=$1 out
	shift
	out="$work/test.out"
	if start_broker "$name" > "$out" 2>&1 && "$@" >> "$out" 2>&1 && stop_broker >> "$out" 2>&1; then
		echo "PASS $name"
		rm -f "$logdir/$kind-s$shards-clients.$name".{log,conf}
	else
		echo "FAIL $name"
		cat "$out"
		echo "---- broker log $broker_log ----"
		cat "$broker_log"
		echo "---- end of broker log ----"
		[ -n "${broker_pid:-}" ] && kill -KILL "$broker_pid" 2>/dev/null
		broker_pid=
		failures=$((failures + 1))
	fi
}

for v in mqttv311 mqttv5; do
	for q in 0 1 2; do
		run "$v-live-qos$q" test_live "$v" "$q"
	done
	run "$v-retained" test_retained "$v"
done

[ "$failures" -eq 0 ] || { echo "$failures failed"; exit 1; }
echo "all passed"

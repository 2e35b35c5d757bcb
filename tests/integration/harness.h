/*
 * harness.h - start and stop the broker under test for integration tests.
 *
 * Every test starts its own broker on an ephemeral port with an inline
 * config (STYLE 9).  The broker is ringmq (RMQ_BINARY, with --shards
 * RMQ_SHARDS) or, for the oracle run RMQ_TEST_BROKER=mosquitto, Debian's
 * mosquitto with the same directives translated.  The broker's stderr goes
 * to a log file named after the test; a report hook in harness.c prints
 * that file when the test fails, and deletes it when the test passes.
 *
 * Environment:
 *   RMQ_BINARY       path of the ringmq executable (required for ringmq)
 *   RMQ_SHARDS       --shards value (default 1)
 *   RMQ_TEST_BROKER  "ringmq" (default) or "mosquitto"
 *   RMQ_TEST_LOGDIR  where broker logs and configs go (default /tmp)
 *
 * Owner:    the test process (one Criterion worker = one test).
 * Lifetime: broker_start() .. broker_stop(); a broker still running when
 *           the test process dies is killed by PR_SET_PDEATHSIG.
 * Shared:   never.
 */
#ifndef RINGMQ_TEST_HARNESS_H
#define RINGMQ_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How long the broker may take to start listening, and to exit after
 * SIGTERM.  Generous: two cores run many brokers at once under meson. */
#define BROKER_START_MS 10000
#define BROKER_STOP_MS 10000

struct broker {
	pid_t pid;
	int pidfd;
	uint16_t port;
	bool mosquitto;
	unsigned shards;
	char log_path[PATH_MAX];
	char conf_path[PATH_MAX];
};

/** harness_is_mosquitto() - true under the RMQ_TEST_BROKER=mosquitto oracle run. */
bool harness_is_mosquitto(void);

/** harness_shards() - the RMQ_SHARDS value (1 when unset). */
unsigned harness_shards(void);

/**
 * harness_ringmq_only() - mark the running test as needing ringmq: under the
 * mosquitto oracle run it is skipped with @why as the (printed) reason;
 * under ringmq it does nothing.  Call it first in the test.
 */
void harness_ringmq_only(const char *why);

/**
 * harness_mosquitto_deviates() - mark the running test as one mosquitto
 * 2.0 fails because it deviates from the specification: skipped, with
 * @why (which names the spec id) printed, under the oracle run only.
 */
void harness_mosquitto_deviates(const char *why);

/**
 * broker_start() - start a broker and wait until it listens.
 * @directives: extra config lines ("max_inflight_messages 2\n..."), may be
 *              NULL.  The harness adds the listener (ephemeral port on
 *              127.0.0.1), allow_anonymous true and persistence false.
 * Fails the test (cr_assert) when the broker does not start in time, exits
 * early, or a directive has no mosquitto equivalent in the oracle run.
 */
void broker_start(struct broker *b, const char *directives);

/**
 * broker_stop() - SIGTERM, wait for the exit (BROKER_STOP_MS) and assert
 * that the broker exited with status 0.
 */
void broker_stop(struct broker *b);

/**
 * broker_wait_exit() - wait up to @timeout_ms for the broker to exit after
 * a signal was sent by the test; returns the waitpid status, or -1 on
 * timeout.  broker_stop() must not be called afterwards.
 */
int broker_wait_exit(struct broker *b, int timeout_ms);

/** broker_log_contains() - whether the broker's log holds @needle now. */
bool broker_log_contains(const struct broker *b, const char *needle);

/**
 * broker_log_wait() - wait up to @timeout_ms for @needle to appear in the
 * broker's log (inotify, no polling sleeps).  Returns true when it did.
 */
bool broker_log_wait(const struct broker *b, const char *needle, int timeout_ms);

/** harness_now_ms() - a monotonic clock in milliseconds. */
int64_t harness_now_ms(void);

/**
 * broker_rss_kb() - the broker's resident set size (VmRSS of
 * /proc/PID/status) in KiB; fails the test when it cannot be read.
 */
long broker_rss_kb(const struct broker *b);

#endif

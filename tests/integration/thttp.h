/*
 * thttp.h - a plain HTTP/1.1 client for the integration tests of the
 * broker's HTTP listener (/metrics, /healthz, /readyz), and readers for
 * the Prometheus text it returns.
 *
 * One request per connection, as the broker answers: connect to
 * 127.0.0.1, send the request, read until the broker closes.  Helpers that
 * return nothing fail the test (cr_assert) with what went wrong.
 *
 * Owner:    the test process.
 * Lifetime: returned strings are malloc'ed; the caller frees them.
 * Shared:   never.
 */
#ifndef RINGMQ_TEST_THTTP_H
#define RINGMQ_TEST_THTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/**
 * thttp_port() - the HTTP listener's port: waits (up to BROKER_START_MS)
 * for the broker's "http listening on 127.0.0.1:PORT" line.
 */
uint16_t thttp_port(const struct broker *b);

/**
 * thttp_request() - send @len bytes of @req to @port, read the whole
 * answer (until the broker closes, at most @timeout_ms) and return its
 * status code (0 when the connection closed without a status line).  The
 * answer's body goes to *@ret_body (NUL-terminated, caller frees) when
 * @ret_body is not NULL, its headers to *@ret_head likewise.
 */
int thttp_request(uint16_t port, const void *req, size_t len, int timeout_ms, char **ret_head, char **ret_body);

/** thttp_port_open() - whether something accepts connections on 127.0.0.1:@port now. */
bool thttp_port_open(uint16_t port);

/** thttp_get() - GET @path; the status code, the body in *@ret_body (may be NULL). */
int thttp_get(uint16_t port, const char *path, char **ret_body);

/**
 * thttp_value() - the value of the sample @series (a name with its labels
 * exactly as the page writes them, e.g. ringmq_connections{shard="0"}) on
 * @page.  Fails the test when the sample is missing.
 */
double thttp_value(const char *page, const char *series);

/** thttp_sum() - the sum of every sample of metric @name, whatever its labels; -1 if none. */
double thttp_sum(const char *page, const char *name);

/**
 * thttp_promtool() - run `promtool check metrics` on @page; returns its exit
 * status and its output in *@ret_output (caller frees).  Fails the test
 * with a clear message when promtool cannot be run at all (Debian package
 * prometheus; build.sh installs it).
 */
int thttp_promtool(const char *page, char **ret_output);

#endif

/*
 * http.h - the HTTP listener for Prometheus and Kubernetes probes.
 *
 *   GET /metrics   the Prometheus text format (metrics.h), 200
 *   GET /healthz   200 while every shard's loop turns (none stalled for
 *                  HTTP_HEALTH_STALL_MS), else 503 naming the shard
 *   GET /readyz    200 once every shard listens, while the broker is
 *                  neither draining (SIGUSR1) nor stopping, else 503
 * HEAD is answered like GET without the body; other methods get 405,
 * other paths 404.  One request per connection (the answer closes it).
 *
 * It runs on its own thread, never a shard's: a scraper that is slow or
 * hostile can delay other scrapers (requests are served one at a time,
 * each bounded by HTTP_REQUEST_BYTES_MAX and HTTP_IO_TIMEOUT_MS) but can
 * never take time from MQTT traffic.  It only reads the shards' atomics
 * (stats.h).
 *
 * Owner:    main starts and stops it; the thread owns its sockets.
 * Lifetime: http_start() after broker_start() .. http_stop() after
 *           broker_stop() and before broker_free() (it reads the broker).
 * Shared:   the broker is read through atomics only.
 */
#ifndef RINGMQ_HTTP_H
#define RINGMQ_HTTP_H

#include <stdint.h>

struct broker;
struct http;

/**
 * http_start() - listen on @addr:@port ("" = every address, port 0 = an
 * ephemeral one) and serve @b from a new thread.  Logs "http listening on
 * ADDR:PORT".  Returns 0 with the server in *@ret, or a negative errno
 * (the reason is logged).
 */
int http_start(struct broker *b, const char *addr, uint16_t port, struct http **ret);

/** http_stop() - stop the thread, close the socket, free @h; NULL-safe; returns NULL. */
struct http *http_stop(struct http *h);

#endif

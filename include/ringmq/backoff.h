/*
 * backoff.h - failed-login back-off per client address.
 *
 * After AUTH_BACKOFF_FREE_FAILURES failed logins from one address, further
 * CONNECTs from it are refused without checking any password for a time
 * that doubles with each failure, from 1 s up to auth_backoff_max seconds;
 * a successful login clears the address.  A password guesser gets a few
 * tries per minute instead of thousands per second, and the broker spends
 * no PBKDF2 time on it while it waits.
 *
 * The table is a fixed array of slots indexed by a hash of the address
 * (no allocation per address, bounded memory whatever the attacker does);
 * two addresses sharing a slot take it from each other, which only ever
 * shortens a back-off.  Slots are updated with relaxed atomics: races
 * between shards can lose a count, never corrupt memory.
 *
 * Owner:    the process; created by broker_new().
 * Lifetime: backoff_new() .. backoff_free() after the shards stopped.
 * Shared:   every shard, through atomics only.
 */
#ifndef RINGMQ_BACKOFF_H
#define RINGMQ_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/* Slots in the table (power of two): bounds its memory (24 bytes each). */
#define AUTH_BACKOFF_SLOTS 4096u
/* Failures allowed before the back-off starts (typos happen). */
#define AUTH_BACKOFF_FREE_FAILURES 3u
/* Longest back-off, seconds.  Directive: auth_backoff_max (0 disables). */
#define AUTH_BACKOFF_S_MAX_DEFAULT 60u

struct backoff;

struct backoff *backoff_new(void);
struct backoff *backoff_free(struct backoff *b);

/** backoff_blocked() - true if @addr must wait (refuse without checking). */
bool backoff_blocked(struct backoff *b, const char *addr, uint64_t now_ms);
/** backoff_failed() - a login from @addr failed. */
void backoff_failed(struct backoff *b, const char *addr, uint64_t now_ms, uint32_t max_s);
/** backoff_ok() - a login from @addr succeeded: forget its failures. */
void backoff_ok(struct backoff *b, const char *addr);

#endif

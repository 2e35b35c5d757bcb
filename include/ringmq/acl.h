/*
 * acl.h - access control lists in mosquitto's acl_file syntax.
 *
 *   # comment
 *   topic [read|write|readwrite|deny] TOPIC   before any "user": anonymous clients
 *   user NAME                                 following "topic" lines are NAME's
 *   topic [read|write|readwrite|deny] TOPIC
 *   pattern [read|write|readwrite|deny] PAT   every client; %c = client id, %u = user name
 *
 * TOPIC and PAT are topic filters ('+', '#').  A missing access word means
 * readwrite.  A matching "deny" wins over any grant; otherwise access needs
 * a matching grant: no rule, no access (never fail open).
 *
 * Owner:    main; loaded before the shards start, replaced as a whole on
 *           SIGHUP (like the password file, read by shards under QSBR).
 * Lifetime: acl_load() .. acl_free().
 * Shared:   read-only by every shard.
 */
#ifndef RINGMQ_ACL_H
#define RINGMQ_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum acl_access {
	ACL_READ = 1,
	ACL_WRITE = 2,
};

struct acl;

/**
 * acl_load() - read @path.  Unreadable, empty or garbled files are errors
 * ("FILE:LINE: what is wrong" in @err, 512 bytes).  Returns 0 or -errno.
 */
int acl_load(const char *path, struct acl **ret, char *err);
/** acl_free() - NULL-safe; returns NULL. */
struct acl *acl_free(struct acl *a);

/**
 * acl_check() - may client @client_id, logged in as @user (NULL:
 * anonymous), have @access to topic name @topic?
 */
bool acl_check(const struct acl *a, const char *user, const char *client_id, const uint8_t *topic, size_t len,
	       enum acl_access access);

/**
 * acl_may_subscribe() - true if filter @f can match at least one topic the
 * client may read (SUBSCRIBE is refused otherwise); what is delivered is
 * still checked message by message with acl_check(ACL_READ).
 */
bool acl_may_subscribe(const struct acl *a, const char *user, const char *client_id, const uint8_t *f,
		       size_t len);

/** acl_rules() - number of rules loaded. */
size_t acl_rules(const struct acl *a);

#endif

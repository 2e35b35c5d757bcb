/*
 * test_share.c - shared subscriptions (share.c): the process-wide registry
 * and each shard's local groups.
 *
 * share_join() and share_leave() need a shard, but only its id, its broker
 * (for the registry) and its local groups: no io_uring, no connections.  So
 * the rig here is a zeroed struct broker with a few zeroed struct shards and
 * bare sessions that carry just owner_shard.  The tests check the registry
 * through share_groups(): one entry per (group, filter), alive while at
 * least one shard has a member, gone when the last member of the last shard
 * leaves; a second join by the same session updates its options instead of
 * adding a member; and a join from a shard that does not own the session is
 * a programmer error that aborts (STYLE 6).
 *
 * Delivery to members (share_route, share_deliver with members) goes through
 * sess_deliver() and shard_send(), which need configured sessions and real
 * shard rings; the integration tests cover it.  Only the path that needs
 * neither is tested here: a message for a group with no member on this
 * shard and no forwards left is dropped and counted, and the caller's
 * reference is untouched.
 *
 * The test thread is a registered QSBR thread, as shards are; removed
 * registry entries are freed by call_rcu(), so it goes offline around
 * rcu_barrier() before freeing the registry.  In the threaded case each
 * thread plays one shard; threads never call Criterion asserts: they count
 * failures, and the main thread checks the counts.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "ringmq/msg.h"
#include "ringmq/sess.h"
#include "ringmq/shard.h"
#include "ringmq/share.h"

#define S(x) (const uint8_t *)(x), strlen(x)
#define NSHARDS 4

struct rig {
	struct broker b;
	struct shard s[NSHARDS];
	struct sess se[NSHARDS][4]; /* se[i][k] lives on shard i */
};

static struct rig *rig_new(void)
{
	struct rig *g = calloc(1, sizeof(*g));

	cr_assert_not_null(g);
	rcu_register_thread();
	g->b.nshards = NSHARDS;
	g->b.shards = g->s;
	g->b.shares = share_registry_new();
	cr_assert_not_null(g->b.shares);
	for (unsigned i = 0; i < NSHARDS; i++) {
		g->s[i].id = i;
		g->s[i].b = &g->b;
		g->s[i].shares = share_local_new();
		cr_assert_not_null(g->s[i].shares);
		for (unsigned k = 0; k < 4; k++)
			g->se[i][k].owner_shard = i;
	}
	return g;
}

static void grace(void)
{
	rcu_thread_offline();
	rcu_barrier();
	rcu_thread_online();
}

static void rig_free(struct rig *g)
{
	for (unsigned i = 0; i < NSHARDS; i++)
		cr_expect_null(share_local_free(g->s[i].shares));
	grace();
	cr_expect_null(share_registry_free(g->b.shares));
	rcu_unregister_thread();
	free(g);
}

static int join(struct rig *g, unsigned shard, unsigned k, const char *group, const char *filter)
{
	return share_join(&g->s[shard], S(group), S(filter), &g->se[shard][k], 1, 0);
}

static int leave(struct rig *g, unsigned shard, unsigned k, const char *group, const char *filter)
{
	return share_leave(&g->s[shard], S(group), S(filter), &g->se[shard][k]);
}

Test(share, join_registers_one_entry_per_group_and_filter)
{
	struct rig *g = rig_new();

	cr_assert_eq(share_groups(g->b.shares), 0);
	cr_assert_eq(join(g, 0, 0, "g1", "a/+"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1);
	cr_assert_eq(join(g, 0, 1, "g1", "a/+"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1, "a second member is not a second entry");
	cr_assert_eq(join(g, 1, 0, "g1", "a/+"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1, "nor is a member on another shard");
	cr_assert_eq(join(g, 0, 0, "g2", "a/+"), 0);
	cr_assert_eq(share_groups(g->b.shares), 2, "same filter, another group");
	cr_assert_eq(join(g, 0, 0, "g1", "b/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 3, "same group, another filter");
	rig_free(g);
}

Test(share, group_and_filter_are_kept_apart_in_the_key)
{
	struct rig *g = rig_new();

	/* "ab" + "c" and "a" + "bc" share the bytes "abc"; the key must not. */
	cr_assert_eq(join(g, 0, 0, "ab", "c"), 0);
	cr_assert_eq(join(g, 0, 0, "a", "bc"), 0);
	cr_assert_eq(share_groups(g->b.shares), 2);
	cr_assert_eq(leave(g, 0, 0, "ab", "c"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1);
	cr_assert_eq(leave(g, 0, 0, "ab", "c"), -ENOENT);
	cr_assert_eq(leave(g, 0, 0, "a", "bc"), 0);
	cr_assert_eq(share_groups(g->b.shares), 0);
	rig_free(g);
}

Test(share, entry_lives_while_any_shard_has_members)
{
	struct rig *g = rig_new();

	cr_assert_eq(join(g, 0, 0, "g", "t/#"), 0);
	cr_assert_eq(join(g, 0, 1, "g", "t/#"), 0);
	cr_assert_eq(join(g, 2, 0, "g", "t/#"), 0);
	cr_assert_eq(leave(g, 0, 0, "g", "t/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1);
	cr_assert_eq(leave(g, 0, 1, "g", "t/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1, "shard 2 still has a member");
	cr_assert_eq(leave(g, 2, 0, "g", "t/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 0, "the last member of the last shard left");

	/* The group can be formed again afterwards. */
	cr_assert_eq(join(g, 3, 0, "g", "t/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 1);
	cr_assert_eq(leave(g, 3, 0, "g", "t/#"), 0);
	cr_assert_eq(share_groups(g->b.shares), 0);
	rig_free(g);
}

Test(share, second_join_by_a_member_updates_it_instead_of_adding_one)
{
	struct rig *g = rig_new();
	struct sess *se = &g->se[1][0];

	/* [MQTT-3.8.4-3] a repeated subscription replaces the existing one. */
	cr_assert_eq(share_join(&g->s[1], S("g"), S("x"), se, 0, 0), 0);
	cr_assert_eq(share_join(&g->s[1], S("g"), S("x"), se, 2, 7), 0);
	cr_assert_eq(share_groups(g->b.shares), 1);
	/* One leave removes the one member, and with it the group. */
	cr_assert_eq(share_leave(&g->s[1], S("g"), S("x"), se), 0);
	cr_assert_eq(share_groups(g->b.shares), 0);
	cr_assert_eq(share_leave(&g->s[1], S("g"), S("x"), se), -ENOENT);
	rig_free(g);
}

Test(share, leave_without_membership_is_enoent)
{
	struct rig *g = rig_new();

	cr_assert_eq(leave(g, 0, 0, "nobody", "here"), -ENOENT, "unknown group");
	cr_assert_eq(join(g, 0, 0, "g", "f"), 0);
	cr_assert_eq(leave(g, 0, 1, "g", "f"), -ENOENT, "a session that never joined");
	cr_assert_eq(leave(g, 0, 0, "g", "other"), -ENOENT, "another filter");
	cr_assert_eq(leave(g, 1, 0, "g", "f"), -ENOENT, "a shard with no members");
	cr_assert_eq(share_groups(g->b.shares), 1, "failed leaves change nothing");
	cr_assert_eq(leave(g, 0, 0, "g", "f"), 0);
	cr_assert_eq(share_groups(g->b.shares), 0);
	rig_free(g);
}

Test(share, join_for_a_session_owned_by_another_shard_aborts, .signal = SIGABRT)
{
	struct rig *g = rig_new();

	/* Shard 0 touching shard 1's session breaks the ownership rule (STYLE 4). */
	(void)share_join(&g->s[0], S("g"), S("f"), &g->se[1][0], 1, 0);
}

Test(share, message_for_a_group_without_members_here_is_dropped_and_counted)
{
	struct rig *g = rig_new();
	struct mqtt_str t = {(const uint8_t *)"t/1", 3}, p = {(const uint8_t *)"x", 1};
	struct msg *m = msg_new(&t, &p, 1, false, NULL, NULL, 0, 0);

	cr_assert_not_null(m);
	/* An id that was never registered: nowhere to forward, whatever the hops. */
	share_deliver(&g->s[0], 12345, 2, m);
	cr_assert_eq(atomic_load(&g->s[0].stats.dropped), 1);
	share_deliver(&g->s[0], 12345, 0, m);
	cr_assert_eq(atomic_load(&g->s[0].stats.dropped), 2);
	/* A registered group whose members are all on shard 1: with no forwards
	 * left, shard 0 drops it rather than deliver to nobody. */
	cr_assert_eq(join(g, 1, 0, "g", "t/+"), 0);
	for (uint32_t id = 1; id <= 4; id++)
		share_deliver(&g->s[0], id, 0, m);
	cr_assert_eq(atomic_load(&g->s[0].stats.dropped), 6);
	cr_assert_eq(atomic_load(&m->refs), 1, "share_deliver borrows the caller's reference");
	msg_unref(m);
	rig_free(g);
}

/* ------------------------------------------------------------ threads */

#define ROUNDS 20000
#define GROUPS 4

struct player {
	pthread_t thread;
	struct rig *g;
	unsigned shard;
	unsigned errors;
};

static void *shard_loop(void *arg)
{
	struct player *pl = arg;
	char group[16];

	rcu_register_thread();
	for (int j = 0; j < ROUNDS; j++) {
		unsigned k = (unsigned)j % 4;

		(void)snprintf(group, sizeof(group), "g%d", j % GROUPS); /* always fits */
		if (join(pl->g, pl->shard, k, group, "t/#") != 0)
			pl->errors++;
		if (join(pl->g, pl->shard, (k + 1) % 4, group, "t/#") != 0)
			pl->errors++;
		if (share_groups(pl->g->b.shares) == 0)
			pl->errors++; /* this shard has a member right now */
		if (leave(pl->g, pl->shard, k, group, "t/#") != 0)
			pl->errors++;
		if (leave(pl->g, pl->shard, (k + 1) % 4, group, "t/#") != 0)
			pl->errors++;
		if (j % 64 == 0)
			rcu_quiescent_state();
	}
	if (join(pl->g, pl->shard, 0, "keep", "t/#") != 0)
		pl->errors++;
	rcu_unregister_thread();
	return NULL;
}

Test(share, shards_joining_and_leaving_at_once_keep_the_registry_exact, .timeout = 60)
{
	struct rig *g = rig_new();
	struct player pl[NSHARDS];

	rcu_thread_offline(); /* the players' grace periods must not wait for this thread */
	for (unsigned i = 0; i < NSHARDS; i++) {
		pl[i] = (struct player){.g = g, .shard = i};
		cr_assert_eq(pthread_create(&pl[i].thread, NULL, shard_loop, &pl[i]), 0);
	}
	for (unsigned i = 0; i < NSHARDS; i++)
		cr_assert_eq(pthread_join(pl[i].thread, NULL), 0);
	rcu_thread_online();

	for (unsigned i = 0; i < NSHARDS; i++)
		cr_expect_eq(pl[i].errors, 0, "shard %u: %u errors", i, pl[i].errors);
	cr_assert_eq(share_groups(g->b.shares), 1, "only \"keep\" is left, once");
	/* The players have exited, so their shards' local groups are free to
	 * touch from here. */
	for (unsigned i = 0; i < NSHARDS; i++) {
		cr_assert_eq(share_groups(g->b.shares), 1);
		cr_assert_eq(leave(g, i, 0, "keep", "t/#"), 0);
	}
	cr_assert_eq(share_groups(g->b.shares), 0);
	rig_free(g);
}

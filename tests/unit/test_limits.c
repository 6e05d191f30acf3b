/* test_limits.c - rate buckets and in-flight counts (SPEC section 9) with
 * an injected clock: many clients, reloads that keep and drop clients,
 * fail-closed when a client is not held. */
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "limits.h"
#include "unit.h"

/* A conf of n clients "c0".."c<n-1>" with burst b and rate r per second
 * and max_inflight m; serial s. Only what limits.c reads is set. */
static struct conf *
mkconf(size_t n, double r, double b, long m, unsigned long s)
{
	struct conf *c = calloc(1, sizeof(*c));
	size_t i;

	c->clients = calloc(n, sizeof(*c->clients));
	c->nclients = n;
	c->serial = s;
	for (i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "c%zu", i);
		c->clients[i].id = strdup(id);
		c->clients[i].has_rate = 1;
		c->clients[i].rate_per_second = r;
		c->clients[i].rate_burst = b;
		c->clients[i].max_inflight = m;
	}
	return c;
}

static void
freeconf(struct conf *c)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		free(c->clients[i].id);
	free(c->clients);
	free(c);
}

/* The case: 1100 clients of burst 1 (the old table of 1024 let
 * clients past the 1024th through). */
static void
test_many_clients(void)
{
	struct conf *c = mkconf(1100, 0.001, 1, 1, 1);
	size_t i, first_ok = 0, second_429 = 0, third_429 = 0;
	double w;

	limits_reset();
	for (i = 0; i < c->nclients; i++)
		first_ok += limits_rate_take(c, &c->clients[i], 10.0, &w) ==
		    LIMITS_OK;
	for (i = 0; i < c->nclients; i++) {
		second_429 += limits_rate_take(c, &c->clients[i], 10.1, &w) ==
		    LIMITS_OVER && w > 0;
		third_429 += limits_rate_take(c, &c->clients[i], 10.2, &w) ==
		    LIMITS_OVER;
	}
	CHECK(first_ok == 1100);
	CHECK(second_429 == 1100);
	CHECK(third_429 == 1100);
	/* in flight: one each, the second refused */
	for (i = 0, first_ok = second_429 = 0; i < c->nclients; i++) {
		first_ok += limits_inflight_take(c, &c->clients[i]) == LIMITS_OK;
		second_429 += limits_inflight_take(c, &c->clients[i]) ==
		    LIMITS_OVER;
	}
	CHECK(first_ok == 1100);
	CHECK(second_429 == 1100);
	freeconf(c);
}

static void
test_bucket_refill(void)
{
	struct conf *c = mkconf(1, 2, 4, 0, 1);
	const struct client *cl = &c->clients[0];
	double w, tokens;
	long infl;
	int i, ok = 0;

	limits_reset();
	CHECK(limits_peek("c0", &tokens, &infl) == -1);
	for (i = 0; i < 6; i++)
		ok += limits_rate_take(c, cl, 100.0, &w) == LIMITS_OK;
	CHECK(ok == 4);                     /* the burst */
	CHECK(w > 0.49 && w < 0.51);        /* 1 token at 2/s */
	CHECK(limits_rate_take(c, cl, 100.4, &w) == LIMITS_OVER);
	CHECK(limits_rate_take(c, cl, 100.6, &w) == LIMITS_OK);
	/* a clock that goes back adds nothing */
	CHECK(limits_rate_take(c, cl, 50.0, &w) == LIMITS_OVER);
	/* long idle: capped at the burst */
	for (i = 0, ok = 0; i < 10; i++)
		ok += limits_rate_take(c, cl, 1000.0, &w) == LIMITS_OK;
	CHECK(ok == 4);
	CHECK(limits_peek("c0", &tokens, &infl) == 0 && tokens < 1);
	freeconf(c);
}

/* Reloads: state survives for clients that remain, goes for the others;
 * a call of a client the table does not hold is refused. */
static void
test_reload(void)
{
	struct conf *a = mkconf(3, 0.001, 1, 2, 1);
	struct conf *b = mkconf(2, 0.001, 1, 2, 2);   /* c0, c1: c2 is gone */
	double w, tokens;
	long infl;

	limits_reset();
	CHECK(limits_rate_take(a, &a->clients[0], 1, &w) == LIMITS_OK);
	CHECK(limits_rate_take(a, &a->clients[2], 1, &w) == LIMITS_OK);
	CHECK(limits_inflight_take(a, &a->clients[1]) == LIMITS_OK);
	CHECK(limits_inflight_take(a, &a->clients[1]) == LIMITS_OK);
	/* the first call under b rebuilds: c0's bucket stays empty */
	CHECK(limits_rate_take(b, &b->clients[0], 2, &w) == LIMITS_OVER);
	CHECK(limits_inflight_take(b, &b->clients[1]) == LIMITS_OVER);
	CHECK(limits_peek("c2", &tokens, &infl) == -1);
	/* a request still on the old conf, of the dropped client: refused */
	CHECK(limits_rate_take(a, &a->clients[2], 3, &w) == LIMITS_UNKNOWN);
	CHECK(limits_inflight_take(a, &a->clients[2]) == LIMITS_UNKNOWN);
	/* old-conf requests of remaining clients are still counted */
	limits_inflight_put(&a->clients[1]);
	CHECK(limits_peek("c1", &tokens, &infl) == 0 && infl == 1);
	CHECK(limits_inflight_take(b, &b->clients[1]) == LIMITS_OK);
	/* a put of a dropped client, or one too many, changes nothing */
	limits_inflight_put(&a->clients[2]);
	limits_inflight_put(&b->clients[0]);
	CHECK(limits_peek("c0", &tokens, &infl) == 0 && infl == 0);
	freeconf(a);
	freeconf(b);
}

/* An id too long for the table is not held: refused, not allowed. */
static void
test_fail_closed(void)
{
	struct conf *c = mkconf(1, 1, 1, 1, 1);
	double w;

	limits_reset();
	free(c->clients[0].id);
	c->clients[0].id = calloc(1, 100);
	memset(c->clients[0].id, 'x', 99);
	CHECK(limits_rate_take(c, &c->clients[0], 1, &w) == LIMITS_UNKNOWN);
	CHECK(limits_inflight_take(c, &c->clients[0]) == LIMITS_UNKNOWN);
	freeconf(c);
}

int
main(void)
{
	test_many_clients();
	test_bucket_refill();
	test_reload();
	test_fail_closed();
	limits_reset();
	return unit_report();
}

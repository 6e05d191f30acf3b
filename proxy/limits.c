/* limits.c - per-client rate buckets and in-flight counts.
 *
 * Ownership: the table (tab) is the module's; its entries hold copies of
 * the client ids, never pointers into a conf, so a conf may go away while
 * the table lives on. Every look-up and update holds mu.
 *
 * The table is an open-addressing hash of at least twice as many slots as
 * the conf has clients: a look-up is a hash and a short probe, whatever the
 * number of clients (the old fixed array of 1024 was scanned linearly and,
 * once full, let every new client through). */
#include "limits.h"
#include "conf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct slot {
	char id[65];          /* "" when free; client ids are at most 64 */
	double tokens;        /* < 0: not yet used (a full bucket) */
	double last;
	long inflight;
};

struct table {
	struct slot *v;
	size_t cap;           /* a power of two */
	unsigned long serial; /* the conf it was built for */
};

static struct table tab;
static uv_mutex_t mu;
static uv_once_t once = UV_ONCE_INIT;

static void
init_mu(void)
{
	if (uv_mutex_init(&mu) != 0)
		abort();        /* a broken invariant: no lock, no limits */
}

static uint64_t
hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* The slot of id in t, or the free slot where it would go (NULL if t is
 * full, which the sizing rules out). */
static struct slot *
probe(const struct table *t, const char *id)
{
	size_t i, n, mask;

	if (t->cap == 0)
		return NULL;
	mask = t->cap - 1;
	for (i = (size_t)hash_id(id) & mask, n = 0; n < t->cap;
	    i = (i + 1) & mask, n++) {
		if (t->v[i].id[0] == '\0' || strcmp(t->v[i].id, id) == 0)
			return &t->v[i];
	}
	return NULL;
}

static struct slot *
find(const char *id)
{
	struct slot *s = probe(&tab, id);

	return s && s->id[0] ? s : NULL;
}

/* Builds the table for c's clients, carrying over the state of those
 * already held. On failure the old table stays (calls of clients it does
 * not hold are then refused). Under mu. */
static void
rebuild(const struct conf *c)
{
	struct table nt;
	struct slot *s, *old;
	size_t i;

	nt.cap = 16;
	while (nt.cap < 2 * c->nclients + 1)
		nt.cap *= 2;
	if ((nt.v = calloc(nt.cap, sizeof(*nt.v))) == NULL)
		return;
	nt.serial = c->serial;
	for (i = 0; i < c->nclients; i++) {
		const char *id = c->clients[i].id;
		if (strlen(id) >= sizeof(nt.v[0].id) ||
		    (s = probe(&nt, id)) == NULL)
			continue;        /* not held: its calls are refused */
		memcpy(s->id, id, strlen(id) + 1);
		if ((old = find(id)) != NULL) {
			s->tokens = old->tokens;
			s->last = old->last;
			s->inflight = old->inflight;
		} else {
			s->tokens = -1;
		}
	}
	free(tab.v);
	tab = nt;
}

/* The slot of cl under mu, after bringing the table up to c. */
static struct slot *
slot_for(const struct conf *c, const struct client *cl)
{
	if (c->serial > tab.serial)
		rebuild(c);
	return find(cl->id);
}

enum limits_verdict
limits_rate_take(const struct conf *c, const struct client *cl, double now,
    double *wait)
{
	enum limits_verdict v = LIMITS_OK;
	struct slot *s;

	*wait = 1;
	uv_once(&once, init_mu);
	uv_mutex_lock(&mu);
	if ((s = slot_for(c, cl)) == NULL) {
		v = LIMITS_UNKNOWN;
		goto out;
	}
	if (s->tokens < 0) {
		s->tokens = cl->rate_burst;
		s->last = now;
	}
	if (now > s->last)
		s->tokens += (now - s->last) * cl->rate_per_second;
	if (s->tokens > cl->rate_burst)
		s->tokens = cl->rate_burst;   /* also when a reload lowered it */
	s->last = now;
	if (s->tokens >= 1) {
		s->tokens -= 1;
		*wait = 0;
	} else {
		v = LIMITS_OVER;
		*wait = cl->rate_per_second > 0 ?
		    (1 - s->tokens) / cl->rate_per_second : 1;
	}
out:
	uv_mutex_unlock(&mu);
	return v;
}

enum limits_verdict
limits_inflight_take(const struct conf *c, const struct client *cl)
{
	enum limits_verdict v = LIMITS_OK;
	struct slot *s;

	uv_once(&once, init_mu);
	uv_mutex_lock(&mu);
	if ((s = slot_for(c, cl)) == NULL)
		v = LIMITS_UNKNOWN;
	else if (s->inflight >= cl->max_inflight)
		v = LIMITS_OVER;
	else
		s->inflight++;
	uv_mutex_unlock(&mu);
	return v;
}

void
limits_inflight_put(const struct client *cl)
{
	struct slot *s;

	uv_once(&once, init_mu);
	uv_mutex_lock(&mu);
	/* A client dropped and added again by two reloads starts from 0:
	 * never count below it. */
	if ((s = find(cl->id)) != NULL && s->inflight > 0)
		s->inflight--;
	uv_mutex_unlock(&mu);
}

int
limits_peek(const char *id, double *tokens, long *inflight)
{
	struct slot *s;
	int rc = -1;

	uv_once(&once, init_mu);
	uv_mutex_lock(&mu);
	if ((s = find(id)) != NULL) {
		*tokens = s->tokens;
		*inflight = s->inflight;
		rc = 0;
	}
	uv_mutex_unlock(&mu);
	return rc;
}

void
limits_reset(void)
{
	uv_once(&once, init_mu);
	uv_mutex_lock(&mu);
	free(tab.v);
	memset(&tab, 0, sizeof(tab));
	uv_mutex_unlock(&mu);
}

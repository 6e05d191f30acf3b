/* audit.c - see audit.h.
 *
 * Ownership: a record's JSON is built on the caller's thread (with the
 * loop's own generator, audit_record.c) into an entry (malloc'd) and
 * queued: a loop's records wait in its sink until the end of the pass,
 * then go to the writer's queue with one lock. The writer thread
 * (audit_writer.c) owns the file, seq and the chain. Entries with a
 * callback come back to their loop through the sink's done list and a
 * uv_async; the loop runs the callback and frees them.
 *
 * While the trail is faulted, records someone waits on are refused at
 * once (the request answers 503); the others wait in memory, bounded by
 * AUDIT_QUEUE_MAX and AUDIT_QUEUE_BYTES (overflow counted as dropped). */
#define _GNU_SOURCE
#include "audit_int.h"
#include "log.h"
#include "syslog.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Copies the generated map (still open: the writer closes it with seq and
 * prev) into a new entry. */
static struct entry *
entry_new(const struct audit_gen *gn, audit_cb cb, void *arg)
{
	size_t len;
	const char *out = audit_gen_bytes(gn, &len);
	struct entry *e;

	if (len == 0)
		return NULL;
	if ((e = malloc(sizeof(*e) + len)) == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->body = (char *)(e + 1);
	memcpy(e->body, out, len);
	e->len = len;
	e->cb = cb;
	e->arg = arg;
	return e;
}

/* Appends e to the writer's queue (under mu). -1 when it cannot wait
 * there: stopping, a faulted trail for a record someone waits on, or the
 * bound reached; the caller then owns e. */
static int
queue_locked(struct audit *a, struct entry *e)
{
	/* A request waiting for durability cannot be served while the trail
	 * is faulted; other records wait, bounded. */
	if (a->stop || (a->faulted && e->cb) || a->nqueued >= AUDIT_QUEUE_MAX ||
	    a->qbytes + e->len >= AUDIT_QUEUE_BYTES) {
		a->failures++;
		if (!e->cb)
			a->dropped++;
		return -1;
	}
	/* The writer only waits on an empty queue; mid-write, it looks at
	 * the queue again before it waits. */
	if (a->head == NULL && !a->writing)
		uv_cond_signal(&a->cond);
	if (a->tail)
		a->tail->next = e;
	else
		a->head = e;
	a->tail = e;
	e->next = NULL;
	a->nqueued++;
	a->qbytes += e->len;
	return 0;
}

void
audit_entry_free(struct entry *e)
{
	free(e);
}

/* Straight to the writer's queue, from any thread; e is freed if it
 * cannot wait there. */
static int
queue_entry(struct audit *a, struct entry *e)
{
	int rc;

	uv_mutex_lock(&a->mu);
	rc = queue_locked(a, e);
	uv_mutex_unlock(&a->mu);
	if (rc)
		audit_entry_free(e);
	return rc;
}

/* System records. */
static int
enqueue(struct audit *a, const struct audit_gen *gn)
{
	struct entry *e = entry_new(gn, NULL, NULL);

	return e ? queue_entry(a, e) : -1;
}

/* On a sink's loop, once per pass: its records go to the writer with one
 * lock and at most one wake-up, however many the pass produced. */
static void
sink_flush(struct audit_sink *s)
{
	struct audit *a = s->a;
	struct entry *e, *next, *failed = NULL;

	if (s->phead == NULL)
		return;
	uv_mutex_lock(&a->mu);
	for (e = s->phead; e; e = next) {
		next = e->next;
		if (queue_locked(a, e) == -1) {
			if (e->cb) {
				e->next = failed;
				failed = e;
			} else {
				audit_entry_free(e);
			}
		}
	}
	uv_mutex_unlock(&a->mu);
	s->phead = s->ptail = NULL;
	/* Requests whose record could not be queued learn it now. */
	for (e = failed; e; e = next) {
		next = e->next;
		e->cb(e->arg, 0);
		audit_entry_free(e);
	}
}

static void
on_idle(uv_idle_t *h)
{
	uv_idle_stop(h);
	sink_flush(h->data);
}

int
audit_record(struct audit *a, struct audit_sink *sink,
    const struct audit_event *ev, audit_cb cb, void *arg)
{
	struct audit_gen *gn, *own = NULL;
	struct entry *e = NULL;

	/* Refused at once while the trail is faulted: the request answers
	 * 503 without waiting. */
	if (cb && atomic_load(&a->faulted_hint))
		return -1;
	/* The loop's own generator, or one for this record only. */
	if ((gn = sink ? sink->gen : NULL) == NULL &&
	    (gn = own = audit_gen_new()) == NULL)
		return -1;
	if (audit_gen_event(gn, &a->key, ev) == 0)
		e = entry_new(gn, cb, arg);
	audit_gen_free(own);
	if (e == NULL)
		return -1;
	e->sink = sink;
	if (sink == NULL || sink->stopped) {
		/* No loop to call back on: only records nobody waits on. */
		if (cb) {
			audit_entry_free(e);
			return -1;
		}
		return queue_entry(a, e);
	}
	if (sink->ptail)
		sink->ptail->next = e;
	else {
		sink->phead = e;
		uv_idle_start(&sink->idle, on_idle);
	}
	sink->ptail = e;
	return 0;
}

static struct audit_gen *
system_gen(struct audit *a, const char *event, va_list ap)
{
	struct audit_gen *gn = audit_gen_new();
	char instance[256];

	if (gn == NULL)
		return NULL;
	uv_mutex_lock(&a->mu);
	snprintf(instance, sizeof(instance), "%s", a->instance);
	uv_mutex_unlock(&a->mu);
	if (audit_gen_system(gn, instance, event, ap) == -1) {
		audit_gen_free(gn);
		return NULL;
	}
	return gn;
}

int
audit_system(struct audit *a, const char *event, ...)
{
	struct audit_gen *gn;
	va_list ap;
	int rc;

	va_start(ap, event);
	gn = system_gen(a, event, ap);
	va_end(ap);
	if (gn == NULL)
		return -1;
	rc = enqueue(a, gn);
	audit_gen_free(gn);
	return rc;
}

/* For the writer: a system record that goes first, not to the queue. */
struct entry *
audit_system_entry(struct audit *a, const char *event, ...)
{
	struct entry *e;
	struct audit_gen *gn;
	va_list ap;

	va_start(ap, event);
	gn = system_gen(a, event, ap);
	va_end(ap);
	if (gn == NULL)
		return NULL;
	e = entry_new(gn, NULL, NULL);
	audit_gen_free(gn);
	return e;
}

/* Runs the callbacks waiting in s; returns how many ran. */
static int
sink_drain(struct audit_sink *s)
{
	struct audit *a = s->a;
	struct entry *e, *next;
	int n = 0;

	uv_mutex_lock(&a->mu);
	e = s->head;
	s->head = s->tail = NULL;
	uv_mutex_unlock(&a->mu);
	for (; e; e = next, n++) {
		next = e->next;
		e->cb(e->arg, e->ok);
		audit_entry_free(e);
	}
	return n;
}

/* On the loop: run the callbacks of records that are durable or failed. */
static void
on_async(uv_async_t *h)
{
	sink_drain(h->data);
}

struct audit_sink *
audit_sink_new(struct audit *a, uv_loop_t *loop)
{
	struct audit_sink *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->a = a;
	if (uv_async_init(loop, &s->async, on_async) != 0) {
		free(s);
		return NULL;
	}
	s->async.data = s;
	s->gen = audit_gen_new();     /* without it, each record makes its own */
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	/* Completions never keep a loop alive on their own. */
	uv_unref((uv_handle_t *)&s->async);
	uv_mutex_lock(&a->mu);
	s->next = a->sinks;
	a->sinks = s;
	uv_mutex_unlock(&a->mu);
	return s;
}

void
audit_sink_stop(struct audit_sink *s)
{
	/* Stopped first: a record added by a callback that sink_flush runs
	 * goes straight to the queue, not to a pending list nobody flushes. */
	uv_mutex_lock(&s->a->mu);
	s->stopped = 1;
	uv_mutex_unlock(&s->a->mu);
	sink_flush(s);
	uv_close((uv_handle_t *)&s->idle, NULL);
	uv_close((uv_handle_t *)&s->async, NULL);
	audit_gen_free(s->gen);
	s->gen = NULL;
}

struct audit *
audit_open(const struct conf *c, struct buf *err)
{
	struct audit *a = calloc(1, sizeof(*a));
	char torn[65];

	if (a == NULL)
		return NULL;
	snprintf(a->instance, sizeof(a->instance), "%s", c->instance);
	a->fd = -1;
	a->path = xstrdup(c->audit.file);
	a->fsync = c->audit.fsync;
	if (c->audit.hmac_key_file && audit_key_read(&a->key,
	    c->audit.hmac_key_file, err) == -1)
		goto fail;
	if (audit_file_open(a, err) == -1 || audit_chain_continue(a, torn, err) == -1)
		goto fail;
	if (c->audit.syslog &&
	    (a->syslog = syslog_open(c->audit.syslog, c->instance)) == NULL) {
		buf_printf(err, "audit: cannot start the syslog copy to %s",
		    c->audit.syslog);
		goto fail;
	}
	if (uv_mutex_init(&a->mu) || uv_cond_init(&a->cond) ||
	    uv_cond_init(&a->idle)) {
		buf_printf(err, "audit: cannot create locks");
		goto fail;
	}
	a->last_sync = time_ms();
	if (uv_thread_create(&a->thread, audit_writer_main, a)) {
		buf_printf(err, "audit: cannot start the writer thread");
		goto fail;
	}
	audit_system(a, "start", "version", WHMGATE_VERSION, "config",
	    c->file, "config_digest", c->digest, "torn_line_sha256",
	    torn[0] ? torn : NULL, NULL);
	return a;
fail:
	if (a->fd != -1)
		close(a->fd);
	syslog_close(a->syslog);
	free(a->path);
	audit_key_fini(&a->key);
	free(a);
	return NULL;
}

void
audit_close(struct audit *a, const char *stop_reason)
{
	struct audit_sink *s, *next;
	int ran;

	if (a == NULL)
		return;
	/* Requests still waiting for their record get their callbacks (and
	 * write their last records) before the stop record closes the file.
	 * The loops have ended: the callbacks run here, on this thread. */
	do {
		uv_mutex_lock(&a->mu);
		while ((a->head || a->writing) && !a->faulted)
			uv_cond_wait(&a->idle, &a->mu);
		uv_mutex_unlock(&a->mu);
		ran = 0;
		for (s = a->sinks; s; s = s->next)
			ran += sink_drain(s);
	} while (ran);
	if (stop_reason)
		audit_system(a, "stop", "reason", stop_reason[0] ? stop_reason :
		    NULL, NULL);
	uv_mutex_lock(&a->mu);
	a->stop = 1;
	uv_cond_signal(&a->cond);
	uv_mutex_unlock(&a->mu);
	uv_thread_join(&a->thread);
	syslog_close(a->syslog);
	/* Stopping on a trail that cannot be written: what waits is lost,
	 * and said so. */
	if (a->head) {
		struct entry *e, *en;
		unsigned long long lost = 0;
		for (e = a->head; e; e = en, lost++) {
			en = e->next;
			if (e->cb)
				audit_done_push(e, 0);
			else {
				audit_entry_free(e);
			}
		}
		a->head = a->tail = NULL;
		log_err("audit: %llu records could not be written before the stop",
		    lost);
	}
	for (s = a->sinks; s; s = s->next)
		sink_drain(s);
	for (s = a->sinks; s; s = next) {
		next = s->next;
		free(s);
	}
	close(a->fd);
	uv_mutex_destroy(&a->mu);
	uv_cond_destroy(&a->cond);
	uv_cond_destroy(&a->idle);
	free(a->path);
	audit_key_fini(&a->key);
	free(a);
}

void
audit_set_conf(struct audit *a, const struct conf *c)
{
	uv_mutex_lock(&a->mu);
	snprintf(a->instance, sizeof(a->instance), "%s", c->instance);
	uv_mutex_unlock(&a->mu);
}

int
audit_writable(struct audit *a)
{
	int ok;

	uv_mutex_lock(&a->mu);
	ok = !a->faulted && !a->reopen_failed;
	uv_mutex_unlock(&a->mu);
	return ok;
}

void
audit_reopen(struct audit *a)
{
	uv_mutex_lock(&a->mu);
	a->reopen = 1;
	uv_cond_signal(&a->cond);
	uv_mutex_unlock(&a->mu);
}

unsigned long long
audit_records_total(struct audit *a)
{
	unsigned long long n;

	uv_mutex_lock(&a->mu);
	n = a->records;
	uv_mutex_unlock(&a->mu);
	return n;
}

unsigned long long
audit_failures_total(struct audit *a)
{
	unsigned long long n;

	uv_mutex_lock(&a->mu);
	n = a->failures;
	uv_mutex_unlock(&a->mu);
	return n;
}

void
audit_failure_kinds(struct audit *a, unsigned long long *write,
    unsigned long long *fsync, unsigned long long *reopen)
{
	uv_mutex_lock(&a->mu);
	*write = a->fail_write;
	*fsync = a->fail_fsync;
	*reopen = a->fail_reopen;
	uv_mutex_unlock(&a->mu);
}

unsigned long long
audit_syslog_dropped(struct audit *a)
{
	return a->syslog ? syslog_dropped(a->syslog) : 0;
}

void
audit_position(struct audit *a, unsigned long long *seq, double *since_sync_ms)
{
	unsigned long long t = atomic_load(&a->synced_ms);

	*seq = atomic_load(&a->seq_written);
	*since_sync_ms = t ? time_ms() - (double)t : -1;
}

/* audit_writer.c - the audit writer thread (see audit_int.h).
 *
 * Ownership: the writer owns the file, seq and the chain state (struct
 * audit's "writer thread only" fields): it alone closes each record with
 * ,"seq":N,"prev":"<hex>"}, so the order in the file is the order of the
 * chain. It takes batches off the queue under a->mu, writes them without
 * it (writev, one fdatasync per batch: group commit), and hands entries
 * with a callback back to their loop's sink.
 *
 * Faults: when a write or sync fails, the file is cut back to its last good
 * size (no torn line), the chain state is rewound, records that had a
 * waiting request are failed at once (the request answers 503 and writes a
 * deny record instead), and the rest wait in memory, bounded. Every second
 * the writer tries again, starting with an audit-fault recovery record. */
#define _GNU_SOURCE
#include "audit_int.h"
#include "audit_tail.h"
#include "log.h"
#include "syslog.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <unistd.h>

void
audit_done_push(struct entry *e, int ok)
{
	struct audit_sink *s = e->sink;

	e->ok = ok;
	e->next = NULL;
	if (e->cb == NULL) {
		audit_entry_free(e);
		return;
	}
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	if (!s->stopped)
		uv_async_send(&s->async);
}

/* The end of a line: ,"seq":N,"prev":"<64 hex>"}\n (at most 103 bytes). */
static size_t
tail_format(char *out, unsigned long long seq, const char *hex)
{
	size_t n = 7;

	memcpy(out, ",\"seq\":", 7);
	n += fmt_u64(out + n, seq);
	memcpy(out + n, ",\"prev\":\"", 9);
	memcpy(out + n + 9, hex, 64);
	memcpy(out + n + 73, "\"}\n", 3);
	return n + 76;
}

/* Closes each record with seq and prev and writes the batch. On failure
 * the file is cut back and the chain rewound; returns -1. */
static int
write_batch(struct audit *a, struct entry *batch, size_t n)
{
	struct iovec iov[AUDIT_BATCH * 2];
	struct tail { char s[112]; size_t n; } *tails;
	unsigned long long seq0 = a->seq;
	unsigned char last0[32];
	struct entry *e;
	struct buf line;
	size_t i = 0, total = 0, off;
	int waiting, sync_now;
	ssize_t w;
	char hex[65];
	int rc = 0;

	if ((tails = malloc(n * sizeof(*tails))) == NULL)
		return -1;
	memcpy(last0, a->last, 32);
	buf_init(&line);
	for (e = batch; e && i < n; e = e->next, i++) {
		hex_encode(a->last, 32, hex);
		a->seq++;
		tails[i].n = tail_format(tails[i].s, a->seq, hex);
		/* The chain covers the line's bytes without its newline. */
		line.len = 0;
		buf_add(&line, e->body, e->len);
		buf_add(&line, tails[i].s, tails[i].n - 1);
		audit_hash(&a->key, line.p, line.len, a->last);
		iov[2 * i].iov_base = e->body;
		iov[2 * i].iov_len = e->len;
		iov[2 * i + 1].iov_base = tails[i].s;
		iov[2 * i + 1].iov_len = tails[i].n;
		total += e->len + tails[i].n;
	}
	/* writev may write part: continue from where it stopped. */
	off = 0;
	i = 0;
	while (off < total) {
		w = writev(a->fd, iov + i, (int)(2 * n - i));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(a->fault_reason, sizeof(a->fault_reason),
			    "write: %s", w < 0 ? strerror(errno) : "no progress");
			rc = -1;
			break;
		}
		off += (size_t)w;
		while (i < 2 * n && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < 2 * n) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	/* fsync "always": a batch with a request waiting on it is synced
	 * before the request may go on (group commit: one fdatasync for the
	 * whole batch). A batch of only response/deny/system records holds
	 * no one up; it is synced with the next waiting batch or within
	 * 100 ms, like "interval", so one call costs one sync, not two. */
	for (e = batch, i = 0, waiting = 0; e && i < n; e = e->next, i++)
		waiting |= e->cb != NULL;
	sync_now = a->fsync == FSYNC_ALWAYS &&
	    (waiting || time_ms() - a->last_sync >= 100);
	if (rc == 0 && sync_now && fdatasync(a->fd) == -1) {
		snprintf(a->fault_reason, sizeof(a->fault_reason),
		    "fdatasync: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0) {
		a->good_size += (off_t)total;
		atomic_store(&a->seq_written, a->seq);
		if (sync_now) {
			a->last_sync = time_ms();
			atomic_store(&a->synced_ms, (unsigned long long)a->last_sync);
			a->dirty = 0;
		} else if (a->fsync != FSYNC_NEVER) {
			a->dirty = 1;
		}
		/* The copy goes out only once the file has the line. */
		for (e = batch, i = 0; a->syslog && e && i < n; e = e->next, i++) {
			line.len = 0;
			buf_add(&line, e->body, e->len);
			buf_add(&line, tails[i].s, tails[i].n - 1);
			syslog_send(a->syslog, line.p, line.len);
		}
	} else {
		/* No torn line may stay: cut back to the last good line. */
		if (ftruncate(a->fd, a->good_size) == -1)
			log_err("audit: ftruncate %s: %s", a->path, strerror(errno));
		a->seq = seq0;
		memcpy(a->last, last0, 32);
	}
	buf_fini(&line);
	free(tails);
	return rc;
}

/* Continues from the last line of an existing trail: seq and hash. A
 * torn last line (no newline) is cut; its hash is returned in torn_hex. */
int
audit_chain_continue(struct audit *a, char *torn_hex, struct buf *err)
{
	struct audit_tail t;

	torn_hex[0] = '\0';
	if (audit_tail_read(a->fd, a->path, &a->key, &t, err) == -1)
		return -1;
	a->good_size = t.size;
	memcpy(torn_hex, t.torn_hex, sizeof(t.torn_hex));
	if (t.have_last) {
		memcpy(a->last, t.last, sizeof(a->last));
		if (t.seq)
			a->seq = t.seq;
	}
	return 0;
}

int
audit_file_open(struct audit *a, struct buf *err)
{
	a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd == -1) {
		buf_printf(err, "audit: cannot open %s: %s", a->path,
		    strerror(errno));
		return -1;
	}
	/* One writer per trail: a second whmgate appending its own chain
	 * to the same file would break both. */
	if (flock(a->fd, LOCK_EX | LOCK_NB) == -1) {
		buf_printf(err, "audit: %s is in use by another process (%s)",
		    a->path, strerror(errno));
		close(a->fd);
		a->fd = -1;
		return -1;
	}
	return 0;
}

/* SIGUSR1: the old file was renamed; the new one chains from its last
 * line and counts seq from 1. */
static int
do_reopen(struct audit *a)
{
	unsigned char last[32];
	struct buf err;
	char torn[65];
	int old = a->fd;

	buf_init(&err);
	if (audit_file_open(a, &err) == -1) {
		log_err("%s (still writing the old file; trying again every "
		    "second)", err.p);
		a->fd = old;
		buf_fini(&err);
		return -1;
	}
	close(old);
	/* The chain goes on from our last line whatever the file holds; seq
	 * restarts at 1 in a new (empty) file and continues in one that was
	 * not rotated away. */
	memcpy(last, a->last, sizeof(last));
	a->seq = 0;
	if (audit_chain_continue(a, torn, &err) == -1)
		log_err("%s", err.p ? err.p : "audit: cannot read the reopened file");
	memcpy(a->last, last, sizeof(last));
	buf_fini(&err);
	log_info("audit: reopened %s", a->path);
	return 0;
}

/* Takes up to AUDIT_BATCH records off the queue (under mu). */
static struct entry *
take_batch(struct audit *a, size_t *n)
{
	struct entry *batch = a->head, *e, *last = NULL;

	*n = 0;
	for (e = a->head; e && *n < AUDIT_BATCH - 1; e = e->next) {
		last = e;
		(*n)++;
		a->nqueued--;
		a->qbytes -= e->len;
	}
	if (last) {
		a->head = last->next;
		last->next = NULL;
		if (a->head == NULL)
			a->tail = NULL;
	}
	return batch;
}

/* After a failed write: waiting requests fail now; the other records go
 * back to the front of the queue in their order (under mu). */
static void
requeue(struct audit *a, struct entry *batch)
{
	struct entry *keep = NULL, *last = NULL, *e, *next;

	for (e = batch; e; e = next) {
		next = e->next;
		e->next = NULL;
		if (e->cb) {
			audit_done_push(e, 0);
			continue;
		}
		if (last)
			last->next = e;
		else
			keep = e;
		last = e;
		a->nqueued++;
		a->qbytes += e->len;
	}
	if (keep) {
		last->next = a->head;
		if (a->head == NULL)
			a->tail = last;
		a->head = keep;
	}
}

void
audit_writer_main(void *arg)
{
	struct audit *a = arg;
	struct entry *batch, *rec, *e, *next;
	char dropped[24];
	size_t n;
	int rc, faulted;

	uv_mutex_lock(&a->mu);
	for (;;) {
		if (a->head == NULL && !a->stop && !a->reopen) {
			if (a->faulted || a->reopen_failed)
				uv_cond_timedwait(&a->cond, &a->mu, 1000000000ull);
			else if (a->dirty)
				uv_cond_timedwait(&a->cond, &a->mu, 100000000ull);
			else
				uv_cond_wait(&a->cond, &a->mu);
		}
		if (a->reopen || (a->reopen_failed &&
		    time_ms() - a->reopen_at >= 1000)) {
			a->reopen = 0;
			uv_mutex_unlock(&a->mu);
			rc = do_reopen(a);
			uv_mutex_lock(&a->mu);
			if (rc == -1 && !a->reopen_failed)
				a->fail_reopen++;
			if (rc == -1)
				a->failures += !a->reopen_failed;
			a->reopen_failed = rc == -1;
			a->reopen_at = time_ms();
		}
		/* interval: sync at least every 100 ms while there is news. */
		if (a->dirty && time_ms() - a->last_sync >= 100) {
			uv_mutex_unlock(&a->mu);
			if (fdatasync(a->fd) == -1)
				log_err("audit: fdatasync: %s", strerror(errno));
			a->last_sync = time_ms();
			atomic_store(&a->synced_ms, (unsigned long long)a->last_sync);
			uv_mutex_lock(&a->mu);
			a->dirty = 0;
		}
		if (a->head == NULL && (!a->faulted || a->stop))  {
			if (a->stop)
				break;
			continue;
		}
		if (a->faulted && a->stop) {
			a->dropped += a->nqueued;
			break;
		}
		/* While faulted, try again once a second, not per record. */
		if (a->faulted && time_ms() - a->fault_at < 1000) {
			uv_cond_timedwait(&a->cond, &a->mu, (uint64_t)((1000 -
			    (time_ms() - a->fault_at)) * 1e6) + 1);
			continue;
		}
		batch = take_batch(a, &n);
		rec = NULL;
		faulted = a->faulted;
		snprintf(dropped, sizeof(dropped), "%llu", a->dropped);
		a->writing = 1;
		uv_mutex_unlock(&a->mu);
		if (faulted) {
			/* Recovery starts with a record saying so; it also
			 * probes whether writing works again. (Built without
			 * mu: system records take it for the instance name.) */
			rec = audit_system_entry(a, "audit-fault", "state",
			    "recovered", "error", a->fault_reason, "dropped",
			    dropped, NULL);
			if (rec) {
				rec->next = batch;
				batch = rec;
				n++;
			}
		}
		rc = batch ? write_batch(a, batch, n) : -1;
		uv_mutex_lock(&a->mu);
		a->writing = 0;
		if (rc == 0) {
			if (a->faulted)
				log_info("audit: writing %s again", a->path);
			a->faulted = 0;
			atomic_store(&a->faulted_hint, 0);
			a->dropped = 0;
			a->records += n;
			for (e = batch; e; e = next) {
				next = e->next;
				audit_done_push(e, 1);
			}
		} else {
			if (!a->faulted)
				log_err("audit: %s: %s (refusing requests)",
				    a->path, a->fault_reason);
			a->faulted = 1;
			atomic_store(&a->faulted_hint, 1);
			a->fault_at = time_ms();
			a->failures++;
			if (strncmp(a->fault_reason, "fdatasync", 9) == 0)
				a->fail_fsync++;
			else
				a->fail_write++;
			if (rec) {
				batch = rec->next;
				audit_entry_free(rec);
			}
			requeue(a, batch);
		}
		if (a->head == NULL || a->faulted)
			uv_cond_broadcast(&a->idle);
	}
	uv_cond_broadcast(&a->idle);
	uv_mutex_unlock(&a->mu);
	if (a->dirty)
		fdatasync(a->fd);
}

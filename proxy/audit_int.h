/* audit_int.h - what audit.c (the loop side: records in, callbacks out,
 * open and close) and audit_writer.c (the writer thread: seq, chain,
 * write, sync, faults, reopen) share. Included by those two files only;
 * everyone else sees audit.h. */
#ifndef WHMGATE_AUDIT_INT_H
#define WHMGATE_AUDIT_INT_H

#include <stdatomic.h>
#include <sys/types.h>
#include <uv.h>

#include "audit.h"
#include "conf.h"

#define AUDIT_QUEUE_MAX 100000         /* records waiting during a fault */
#define AUDIT_QUEUE_BYTES (64u << 20)
#define AUDIT_BATCH 256

struct entry {
	struct entry *next;
	char *body;          /* the record without its closing brace; in the
	                      * same allocation, after the struct */
	size_t len;
	audit_cb cb;
	void *arg;
	struct audit_sink *sink;   /* the loop the callback runs on */
	int ok;
};

/* Where the callbacks of one event loop are handed back: the writer
 * appends to the list and wakes the loop. Owned by the audit; the async
 * handle is closed by its loop (audit_sink_stop) before the loop ends. */
struct audit_sink {
	struct audit *a;
	struct audit_sink *next;
	uv_async_t async;
	uv_idle_t idle;            /* hands pending records over once per pass */
	struct entry *phead, *ptail;  /* appended this pass; loop thread only */
	struct entry *head, *tail; /* done, callbacks to run; under a->mu */
	int stopped;               /* the handles are closed */
	struct audit_gen *gen;     /* reused for every record; loop thread only */
};

struct audit {
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	uv_cond_t idle;          /* signalled when the queue ran empty */
	char instance[256];      /* for system records; under mu */
	char *path;
	enum fsync_mode fsync;
	struct audit_key key;    /* hmac_key_file contents, or none */
	struct syslog_out *syslog;   /* optional copy */
	/* under mu */
	struct entry *head, *tail;
	size_t nqueued, qbytes;
	struct audit_sink *sinks;
	int stop, reopen, faulted, writing;
	atomic_int faulted_hint;   /* faulted, for lock-free readers */
	unsigned long long records, failures, dropped;
	/* Failures by kind (SPEC section 9), and a reopen that failed: the
	 * trail counts as not writable (/readyz) until one succeeds; the
	 * writer tries again every second. */
	unsigned long long fail_write, fail_fsync, fail_reopen;
	int reopen_failed;
	double reopen_at;
	/* For /metrics and /status, read without the lock: the last seq
	 * written and when the file was last synced (time_ms). */
	atomic_ullong seq_written, synced_ms;
	/* writer thread only */
	int fd;
	off_t good_size;
	unsigned long long seq;
	unsigned char last[32];
	int dirty;
	double last_sync;
	double fault_at;         /* when the last write attempt failed */
	char fault_reason[128];
};

/* Frees an entry (the record is in the same allocation). */
void audit_entry_free(struct entry *e);
/* A system record for the writer to put first, not on the queue; NULL
 * when out of memory. */
struct entry *audit_system_entry(struct audit *a, const char *event, ...);
/* Hands e back to its loop (under a->mu); a record nobody waits on is
 * freed. */
void audit_done_push(struct entry *e, int ok);
/* Opens a->path for appending and locks it (one writer per trail). */
int audit_file_open(struct audit *a, struct buf *err);
/* Continues seq and the chain from the file's last line; a torn last
 * line is cut and its SHA-256 put in torn_hex (else ""). */
int audit_chain_continue(struct audit *a, char *torn_hex, struct buf *err);
/* The writer thread (uv_thread_create's entry). */
void audit_writer_main(void *arg);

#endif

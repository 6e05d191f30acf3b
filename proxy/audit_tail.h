/* audit_tail.h - the end of an existing audit file (SPEC section 7): the
 * chain continues from its last line, however long that line is, and a
 * torn last line (a crash mid-write) is cut at its own start. */
#ifndef WHMGATE_AUDIT_TAIL_H
#define WHMGATE_AUDIT_TAIL_H

#include <sys/types.h>

struct audit_key;
struct buf;

/* A last line longer than this is not read back (no whmgate writes one:
 * records are bounded by AUDIT_RECORD_MAX); opening such a trail fails. */
#define AUDIT_TAIL_MAX (256u << 20)

struct audit_tail {
	off_t size;                /* the file's size, after any cut */
	int have_last;             /* the file holds a complete line */
	unsigned long long seq;    /* its seq (0: none readable) */
	unsigned char last[32];    /* its chain hash (SHA-256 or HMAC) */
	char torn_hex[65];         /* SHA-256 of the torn line cut, or "" */
};

/* Reads the end of the file open on fd (read and write) into t, cutting
 * a torn last line off the file. Returns 0, or -1 with a message in err
 * (path names the file in it). */
int audit_tail_read(int fd, const char *path, const struct audit_key *k,
    struct audit_tail *t, struct buf *err);

#endif

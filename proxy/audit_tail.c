/* audit_tail.c - see audit_tail.h.
 *
 * Ownership: the caller owns the file descriptor; everything read here
 * is freed before return. The file is read backwards from its end in
 * blocks until the start of the last line is found, so the cost is the
 * length of the last line (plus a torn one), never the file's.
 *
 * Why not "the last N bytes": a line longer than N was either taken for
 * torn (and a good record cut) or hashed from its middle, breaking the
 * chain on restart (issue 16). */
#define _GNU_SOURCE
#include "audit_tail.h"
#include "audit_record.h"
#include "util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define TAIL_BLOCK 65536

static int
pread_all(int fd, void *p, size_t n, off_t off)
{
	ssize_t r;
	size_t done = 0;

	while (done < n) {
		r = pread(fd, (char *)p + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* The start of the line that ends at end (exclusive): just after the
 * last '\n' before end, or 0. -1 on a read error. */
static off_t
line_start(int fd, off_t end)
{
	char buf[TAIL_BLOCK];
	off_t pos = end;
	size_t n;
	char *nl;

	while (pos > 0) {
		n = pos > TAIL_BLOCK ? TAIL_BLOCK : (size_t)pos;
		pos -= (off_t)n;
		if (pread_all(fd, buf, n, pos) == -1)
			return -1;
		if ((nl = memrchr(buf, '\n', n)) != NULL)
			return pos + (nl - buf) + 1;
	}
	return 0;
}

/* SHA-256 of the bytes [from, to), read in blocks. */
static int
hash_range(int fd, off_t from, off_t to, unsigned char out[32])
{
	char buf[TAIL_BLOCK];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 32;
	size_t n;
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while (from < to) {
		n = to - from > TAIL_BLOCK ? TAIL_BLOCK : (size_t)(to - from);
		if (pread_all(fd, buf, n, from) == -1 ||
		    EVP_DigestUpdate(ctx, buf, n) != 1)
			goto out;
		from += (off_t)n;
	}
	rc = EVP_DigestFinal_ex(ctx, out, &len) == 1 ? 0 : -1;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
audit_tail_read(int fd, const char *path, const struct audit_key *k,
    struct audit_tail *t, struct buf *err)
{
	unsigned char h[32];
	struct stat st;
	off_t start;
	char last, *line;
	size_t n;
	yajl_val v, s;

	memset(t, 0, sizeof(*t));
	if (fstat(fd, &st) == -1) {
		buf_printf(err, "audit: fstat %s: %s", path, strerror(errno));
		return -1;
	}
	t->size = st.st_size;
	if (t->size == 0)
		return 0;
	if (pread_all(fd, &last, 1, t->size - 1) == -1)
		goto unreadable;
	if (last != '\n') {
		/* A torn line from a crash: cut it at its own start, keep its
		 * hash for the start record. */
		if ((start = line_start(fd, t->size)) == -1 ||
		    hash_range(fd, start, t->size, h) == -1)
			goto unreadable;
		hex_encode(h, 32, t->torn_hex);
		if (ftruncate(fd, start) == -1) {
			buf_printf(err, "audit: ftruncate %s: %s", path,
			    strerror(errno));
			return -1;
		}
		t->size = start;
		if (t->size == 0)
			return 0;
	}
	/* The last complete line, without its newline. */
	if ((start = line_start(fd, t->size - 1)) == -1)
		goto unreadable;
	n = (size_t)(t->size - 1 - start);
	if (n > AUDIT_TAIL_MAX) {
		buf_printf(err, "audit: the last line of %s is %zu bytes, more "
		    "than %u", path, n, AUDIT_TAIL_MAX);
		return -1;
	}
	if ((line = malloc(n + 1)) == NULL) {
		buf_printf(err, "audit: out of memory reading %s", path);
		return -1;
	}
	if (pread_all(fd, line, n, start) == -1) {
		free(line);
		goto unreadable;
	}
	line[n] = '\0';
	audit_hash(k, line, n, t->last);
	t->have_last = 1;
	if ((v = yajl_tree_parse(line, NULL, 0)) != NULL) {
		s = yajl_tree_get(v, (const char *[]){ "seq", NULL },
		    yajl_t_number);
		if (s && YAJL_IS_INTEGER(s))
			t->seq = (unsigned long long)YAJL_GET_INTEGER(s);
		yajl_tree_free(v);
	}
	free(line);
	return 0;
unreadable:
	buf_printf(err, "audit: cannot read %s: %s", path,
	    errno ? strerror(errno) : "short read");
	return -1;
}

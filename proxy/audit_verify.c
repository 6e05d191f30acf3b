/* audit_verify.c - see audit_verify.h.
 *
 * Ownership: everything read is this function's own (one line at a time,
 * freed before it returns); the key is wiped. Only stdout and stderr are
 * written: the trail itself is never touched. */
#define _GNU_SOURCE
#include "audit_verify.h"
#include "audit_record.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* ---- verification ---- */

static int
verify_fail(const char *file, unsigned long line, const char *why)
{
	printf("BROKEN: %s:%lu: %s\n", file, line, why);
	return -1;
}

int
audit_verify(char **files, int nfiles, const char *keyfile)
{
	struct audit_key key;
	struct buf err;
	unsigned char last[32];
	char hex[65], *line = NULL;
	unsigned long long prev_seq = 0, total = 0;
	unsigned long lineno;
	size_t cap = 0;
	ssize_t n;
	int have_last = 0, i, rc = 0;
	FILE *f;

	memset(&key, 0, sizeof(key));
	buf_init(&err);
	if (keyfile && audit_key_read(&key, keyfile, &err) == -1) {
		fprintf(stderr, "%s\n", err.p ? err.p : "cannot read key");
		buf_fini(&err);
		return -1;
	}
	buf_fini(&err);
	for (i = 0; i < nfiles && rc == 0; i++) {
		if ((f = fopen(files[i], "r")) == NULL) {
			rc = verify_fail(files[i], 0, strerror(errno));
			break;
		}
		lineno = 0;
		while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
			yajl_val v, p, s;
			lineno++;
			if (n == 0 || line[n - 1] != '\n') {
				rc = verify_fail(files[i], lineno,
				    "incomplete last line (torn write)");
				break;
			}
			line[--n] = '\0';
			if (memchr(line, '\0', (size_t)n) ||
			    (v = yajl_tree_parse(line, NULL, 0)) == NULL) {
				rc = verify_fail(files[i], lineno, "not a JSON object");
				break;
			}
			p = yajl_tree_get(v, (const char *[]){ "prev", NULL },
			    yajl_t_string);
			s = yajl_tree_get(v, (const char *[]){ "seq", NULL },
			    yajl_t_number);
			if (p == NULL || s == NULL || !YAJL_IS_INTEGER(s))
				rc = verify_fail(files[i], lineno,
				    "no prev or seq field");
			else if (have_last && (hex_encode(last, 32, hex),
			    strcmp(hex, p->u.string) != 0))
				rc = verify_fail(files[i], lineno, "prev does not "
				    "match the previous line (edited, deleted, "
				    "inserted or reordered)");
			else if (lineno > 1 && (unsigned long long)
			    YAJL_GET_INTEGER(s) != prev_seq + 1)
				rc = verify_fail(files[i], lineno,
				    "seq is not the previous seq + 1");
			if (s && YAJL_IS_INTEGER(s))
				prev_seq = (unsigned long long)YAJL_GET_INTEGER(s);
			yajl_tree_free(v);
			audit_hash(&key, line, (size_t)n, last);
			have_last = 1;
			total++;
		}
		fclose(f);
	}
	free(line);
	audit_key_fini(&key);
	if (rc == 0) {
		hex_encode(last, 32, hex);
		printf("OK: %llu records in %d file(s), chain intact; last "
		    "line hash %s\n", total, nfiles, have_last ? hex : "-");
	}
	return rc;
}

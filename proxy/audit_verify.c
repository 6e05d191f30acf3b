/* audit_verify.c - see audit_verify.h.
 *
 * Ownership: one file is open at a time and one line of it in memory;
 * what is kept per file (its first line's prev, its last line's hash and
 * seq, its first break) is this function's and freed before it returns.
 * The key is wiped. Only stdout and stderr are written: the trail itself
 * is never touched.
 *
 * How files given in any order are checked as one chain: each file is
 * first checked on its own (every line a JSON object whose prev is the
 * hash of the line before and whose seq is one more); then the files are
 * put in order by their links - a file follows the one whose last line's
 * hash its first line's prev names (logrotate numbers rotations the
 * other way round from the shell's sort, so `audit.jsonl*` comes in the
 * wrong order). Files that follow no file given start a run; several runs
 * mean a file is missing between them (or was edited), and the first
 * file of every run after the oldest is reported broken at its line 1.
 * Every file is read through zlib, which reads plain files as they are,
 * so a `.gz` rotation needs no flag. */
#define _GNU_SOURCE
#include "audit_verify.h"
#include "audit_record.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

/* What one file says about the chain. */
struct vfile {
	const char *name;
	unsigned long long lines;
	int first_ok;                /* first line's prev is 64 hex */
	unsigned char first_prev[32];
	char first_ts[40];           /* for ordering runs */
	unsigned char last[32];      /* hash of the last line */
	unsigned long long last_seq;
	int seq_ok;                  /* the last line's seq was read */
	unsigned long bad_line;      /* first break inside the file (0: none) */
	char why[160];
	int pred, next;              /* links, -1: none */
	int placed;
	int loop;                    /* first of a run of links with no start */
};

/* A line reader over zlib (plain or gzip). */
struct reader {
	gzFile gz;
	char buf[65536];
	size_t pos, len;
	int eof;
};

static int
reader_open(struct reader *r, const char *name)
{
	int fd;

	memset(r, 0, sizeof(*r));
	fd = strcmp(name, "-") == 0 ? dup(0) : open(name, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if ((r->gz = gzdopen(fd, "rb")) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* The next line into b (without its newline). Returns 1 for a line, 0
 * at the end, -1 on a read error (message in *err). *complete says
 * whether the line ended with a newline. */
static int
reader_line(struct reader *r, struct buf *b, int *complete, const char **err)
{
	char *nl;
	int n, zerr;

	b->len = 0;
	buf_add(b, "", 0);
	for (;;) {
		if (r->pos < r->len) {
			nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
			if (nl) {
				if (buf_add(b, r->buf + r->pos,
				    (size_t)(nl - (r->buf + r->pos))) == -1)
					goto nomem;
				r->pos = (size_t)(nl - r->buf) + 1;
				*complete = 1;
				return 1;
			}
			if (buf_add(b, r->buf + r->pos, r->len - r->pos) == -1)
				goto nomem;
			r->pos = r->len;
		}
		if (r->eof) {
			*complete = 0;
			return b->len > 0 ? 1 : 0;
		}
		n = gzread(r->gz, r->buf, sizeof(r->buf));
		if (n < 0) {
			*err = gzerror(r->gz, &zerr);
			if (zerr == Z_ERRNO)
				*err = strerror(errno);
			return -1;
		}
		if (n == 0) {
			/* A gzip stream cut short reads as an end without
			 * an error from gzread; gzclose_r says so. */
			r->eof = 1;
		}
		r->pos = 0;
		r->len = (size_t)n;
	}
nomem:
	*err = "out of memory";
	return -1;
}

/* Closes r; -1 (with *err) if zlib found the stream damaged. */
static int
reader_close(struct reader *r, const char **err)
{
	int rc = gzclose_r(r->gz);

	if (rc == Z_BUF_ERROR) {
		*err = "compressed data cut short";
		return -1;
	}
	if (rc != Z_OK) {
		*err = rc == Z_ERRNO ? strerror(errno) : "damaged compressed data";
		return -1;
	}
	return 0;
}

static void
file_break(struct vfile *f, unsigned long line, const char *why)
{
	if (f->bad_line == 0) {
		f->bad_line = line;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
}

/* The anchor to look for (--anchor SEQ:HASH). */
struct anchor {
	int set;
	unsigned long long seq;
	unsigned char hash[32];
	const char *file;            /* where it was found */
	unsigned long line;
};

/* One line of f (the hash of the line before it in f->last). */
static void
check_line(struct vfile *f, const struct buf *line, int complete)
{
	unsigned long no = (unsigned long)f->lines;
	unsigned long long seq;
	yajl_val v, p, s, ts;
	char hex[65];

	f->seq_ok = 0;
	if (!complete) {
		file_break(f, no, "incomplete last line (torn write)");
		return;
	}
	v = memchr(line->p, '\0', line->len) ? NULL :
	    yajl_tree_parse(line->p, NULL, 0);
	if (v == NULL || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		file_break(f, no, "not a JSON object");
		return;
	}
	p = yajl_tree_get(v, (const char *[]){ "prev", NULL }, yajl_t_string);
	s = yajl_tree_get(v, (const char *[]){ "seq", NULL }, yajl_t_number);
	if (p == NULL || s == NULL || !YAJL_IS_INTEGER(s)) {
		file_break(f, no, "no prev or seq field");
		yajl_tree_free(v);
		return;
	}
	seq = (unsigned long long)YAJL_GET_INTEGER(s);
	if (no == 1) {
		f->first_ok = strlen(p->u.string) == 64 &&
		    hex_decode(p->u.string, f->first_prev, 32) == 0;
		ts = yajl_tree_get(v, (const char *[]){ "ts", NULL },
		    yajl_t_string);
		if (ts)
			snprintf(f->first_ts, sizeof(f->first_ts), "%s",
			    ts->u.string);
	} else if (hex_encode(f->last, 32, hex), strcmp(hex, p->u.string) != 0) {
		file_break(f, no, "prev does not match the previous line "
		    "(edited, deleted, inserted or reordered)");
	} else if (seq != f->last_seq + 1) {
		file_break(f, no, "seq is not the previous seq + 1");
	}
	yajl_tree_free(v);
	f->last_seq = seq;
	f->seq_ok = 1;
}

/* Checks one file on its own. Returns 0, or -1 when it cannot be read
 * (message printed). */
static int
check_file(struct vfile *f, const struct audit_key *k, struct anchor *an)
{
	struct reader r;
	struct buf line;
	const char *err = NULL;
	unsigned char h[32];
	int complete, rc;

	if (reader_open(&r, f->name) == -1) {
		fprintf(stderr, "whmgate: cannot read %s: %s\n", f->name,
		    strerror(errno));
		return -1;
	}
	buf_init(&line);
	while ((rc = reader_line(&r, &line, &complete, &err)) == 1) {
		f->lines++;
		audit_hash(k, line.p, line.len, h);
		/* After a break the file is read on (damage further on shows
		 * as unreadable) and hashed (its last line still links it). */
		if (f->bad_line == 0)
			check_line(f, &line, complete);
		memcpy(f->last, h, 32);
		if (an->set && an->file == NULL && f->seq_ok &&
		    f->last_seq == an->seq && memcmp(h, an->hash, 32) == 0) {
			an->file = f->name;
			an->line = (unsigned long)f->lines;
		}
	}
	buf_fini(&line);
	/* Closed in every case; a read error's message is zlib's, gone
	 * once the stream is closed, so it is printed first. */
	if (rc == -1)
		fprintf(stderr, "whmgate: cannot read %s: %s\n", f->name,
		    err ? err : "read error");
	if (reader_close(&r, &err) == -1 && rc != -1) {
		fprintf(stderr, "whmgate: cannot read %s: %s\n", f->name,
		    err ? err : "read error");
		rc = -1;
	}
	return rc == -1 ? -1 : 0;
}

/* Links the files: pred is the file whose last line the first line's
 * prev names. Returns the index of a file that follows the same file as
 * another (given twice?) or -1. */
static int
link_files(struct vfile *fs, int n, int *dup_of)
{
	int i, j;

	for (i = 0; i < n; i++)
		fs[i].pred = fs[i].next = -1;
	for (i = 0; i < n; i++) {
		if (fs[i].lines == 0 || !fs[i].first_ok)
			continue;
		for (j = 0; j < n; j++) {
			if (j == i || fs[j].lines == 0 ||
			    memcmp(fs[j].last, fs[i].first_prev, 32) != 0)
				continue;
			if (fs[j].next != -1) {
				*dup_of = fs[j].next;
				return i;
			}
			fs[i].pred = j;
			fs[j].next = i;
			break;
		}
	}
	return -1;
}

/* The chain order: runs (a file without a predecessor and the files
 * that follow it), oldest run first by its first record's time; then
 * files on a loop of links, then empty files. order[] gets n indexes;
 * returns how many runs there were. */
static int
order_files(struct vfile *fs, int n, int *order)
{
	int k = 0, runs = 0, i, best, j;

	for (;;) {
		best = -1;
		for (i = 0; i < n; i++)
			if (!fs[i].placed && fs[i].lines > 0 && fs[i].pred == -1 &&
			    (best == -1 || strcmp(fs[i].first_ts,
			    fs[best].first_ts) < 0))
				best = i;
		if (best == -1)
			break;
		runs++;
		for (j = best; j != -1 && !fs[j].placed; j = fs[j].next) {
			fs[j].placed = 1;
			order[k++] = j;
		}
	}
	for (i = 0; i < n; i++)          /* a loop has no start */
		if (!fs[i].placed && fs[i].lines > 0) {
			runs++;
			fs[i].loop = 1;
			for (j = i; j != -1 && !fs[j].placed; j = fs[j].next) {
				fs[j].placed = 1;
				order[k++] = j;
			}
		}
	for (i = 0; i < n; i++)
		if (!fs[i].placed) {
			fs[i].placed = 1;
			order[k++] = i;
		}
	return runs;
}

static int
parse_anchor(const char *s, struct anchor *an)
{
	const char *colon = strchr(s, ':');
	char *end;

	if (colon == NULL || colon == s || strlen(colon + 1) != 64)
		return -1;
	errno = 0;
	an->seq = strtoull(s, &end, 10);
	if (errno || end != colon || s[0] == '-' || s[0] == '+')
		return -1;
	if (hex_decode(colon + 1, an->hash, 32) == -1)
		return -1;
	an->set = 1;
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: whmgate audit verify FILE... [--key KEYFILE] "
	    "[--anchor SEQ:HASH]\n       (FILE - is standard input; .gz "
	    "files are read compressed)\n");
	return 2;
}

int
audit_verify_main(int argc, char **argv)
{
	struct audit_key key = { NULL, 0 };
	struct anchor an;
	struct vfile *fs;
	struct buf err;
	const char *keyfile = NULL;
	char hex[65];
	int *order, i, n = 0, rc = 0, runs, dup = -1, dup_of = -1, stdin_used = 0;
	unsigned long long total = 0;

	memset(&an, 0, sizeof(an));
	fs = calloc((size_t)argc + 1, sizeof(*fs));
	order = calloc((size_t)argc + 1, sizeof(*order));
	if (fs == NULL || order == NULL) {
		free(fs);
		free(order);
		return 2;
	}
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			keyfile = argv[++i];
		else if (strcmp(argv[i], "--anchor") == 0 && i + 1 < argc) {
			if (parse_anchor(argv[++i], &an) == -1) {
				fprintf(stderr, "whmgate: --anchor wants SEQ:HASH "
				    "(HASH: 64 hex digits), not %s\n", argv[i]);
				rc = 2;
			}
		} else if (strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
			rc = usage();
		} else {
			if (strcmp(argv[i], "-") == 0 && stdin_used++) {
				fprintf(stderr, "whmgate: - given twice\n");
				rc = 2;
			}
			fs[n++].name = argv[i];
		}
	}
	if (rc == 0 && n == 0)
		rc = usage();
	buf_init(&err);
	if (rc == 0 && keyfile && audit_key_read(&key, keyfile, &err) == -1) {
		fprintf(stderr, "whmgate: %s\n", err.p ? err.p : "cannot read the key");
		rc = 2;
	}
	buf_fini(&err);
	for (i = 0; rc == 0 && i < n; i++)
		if (check_file(&fs[i], &key, &an) == -1)
			rc = 2;
	audit_key_fini(&key);
	if (rc) {
		free(fs);
		free(order);
		return rc;
	}

	dup = link_files(fs, n, &dup_of);
	runs = order_files(fs, n, order);
	for (i = 0; i < n; i++)
		total += fs[i].lines;
	/* The first break in chain order: inside a file, or a file that
	 * does not follow the one before it. */
	for (i = 0; i < n && rc == 0; i++) {
		struct vfile *f = &fs[order[i]];

		if (f->lines == 0)
			continue;
		if (order[i] == dup) {
			printf("BROKEN: %s:1: continues from the same line as %s "
			    "(a file given twice, or a fork)\n", f->name,
			    fs[dup_of].name);
			rc = 1;
		} else if (f->loop) {
			printf("BROKEN: %s:1: the files' links form a loop\n",
			    f->name);
			rc = 1;
		} else if (i > 0 && runs > 1 && f->pred == -1) {
			printf("BROKEN: %s:1: prev does not match the last line "
			    "of any file given (a file missing before it, or "
			    "edited)\n", f->name);
			rc = 1;
		} else if (f->bad_line) {
			printf("BROKEN: %s:%lu: %s\n", f->name, f->bad_line,
			    f->why);
			rc = 1;
		}
	}
	if (rc == 0 && an.set && an.file == NULL) {
		hex_encode(an.hash, 32, hex);
		printf("BROKEN: anchor %llu:%s is not in the trail (lines cut "
		    "off its end, or another trail)\n", an.seq, hex);
		rc = 1;
	}
	if (rc == 0)
		printf("OK: %llu records in %d file(s), chain intact\n", total, n);
	if (n > 1) {
		printf("order:");
		for (i = 0; i < n; i++)
			printf(" %s%s", fs[order[i]].name,
			    fs[order[i]].lines ? "" : " (empty)");
		for (i = 0; i < n && order[i] == i; i++)
			;
		printf(i == n ? " (as given, by their links)\n" :
		    " (put in chain order by their links)\n");
	}
	if (an.set && an.file)
		printf("anchor: found at %s:%lu\n", an.file, an.line);
	/* The head: the last line of the last file in chain order. */
	for (i = n - 1; i >= 0 && fs[order[i]].lines == 0; i--)
		;
	if (i >= 0) {
		hex_encode(fs[order[i]].last, 32, hex);
		printf("head %llu:%s\n", fs[order[i]].last_seq, hex);
	} else {
		printf("head -\n");
	}
	free(fs);
	free(order);
	return rc;
}

int
audit_verify(char **files, int nfiles, const char *keyfile)
{
	char **argv = calloc((size_t)nfiles + 3, sizeof(char *));
	int i, argc = 0, rc;

	if (argv == NULL)
		return -1;
	for (i = 0; i < nfiles; i++)
		argv[argc++] = files[i];
	if (keyfile) {
		argv[argc++] = (char *)"--key";
		argv[argc++] = (char *)keyfile;
	}
	rc = audit_verify_main(argc, argv);
	free(argv);
	return rc == 0 ? 0 : -1;
}

/* test_audit_tail.c - reading back the end of an existing trail
 * (audit_tail.c): the last line of any length, a torn last line cut at
 * its own start, empty and one-line files. Hashes are recomputed here
 * with OpenSSL. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_record.h"
#include "audit_tail.h"
#include "unit.h"
#include "util.h"

static char dir[64], path[128];

static void
hex_sha(const void *p, size_t n, char out[65])
{
	unsigned char h[32];
	unsigned int hl = 32;

	EVP_Digest(p, n, h, &hl, EVP_sha256(), NULL);
	hex_encode(h, 32, out);
}

/* Writes text to the test file and reads its tail back; fd stays open
 * for the caller to close. */
static int
tail_of(const char *text, size_t len, struct audit_tail *t)
{
	struct buf err;
	int fd, rc;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1 && write(fd, text, len) == (ssize_t)len);
	buf_init(&err);
	rc = audit_tail_read(fd, path, NULL, t, &err);
	if (rc)
		printf("  audit_tail_read: %s\n", err.p ? err.p : "?");
	buf_fini(&err);
	close(fd);
	return rc;
}

static off_t
file_size(void)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* A line of n bytes (without newline): {"x":"aaa...","seq":SEQ,"prev":"..."} */
static char *
line_of(size_t n, unsigned long long seq)
{
	char tail[128], *s;
	int tl = snprintf(tail, sizeof(tail), "\",\"seq\":%llu,\"prev\":\""
	    "0000000000000000000000000000000000000000000000000000000000000000"
	    "\"}", seq);

	s = malloc(n + 1);
	memcpy(s, "{\"x\":\"", 6);
	memset(s + 6, 'a', n - 6 - (size_t)tl);
	memcpy(s + n - (size_t)tl, tail, (size_t)tl);
	s[n] = '\0';
	return s;
}

int
main(void)
{
	struct audit_tail t;
	struct buf text;
	char hex[65], want[65], *l1, *l2;
	size_t n2 = 3 * 1024 * 1024 + 17;

	snprintf(dir, sizeof(dir), "/tmp/whmgate-unit-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	buf_init(&text);

	/* Empty. */
	CHECK(tail_of("", 0, &t) == 0);
	CHECK(t.size == 0 && !t.have_last && t.torn_hex[0] == '\0');

	/* A 3 MB last line after a short one. */
	l1 = line_of(200, 7);
	l2 = line_of(n2, 8);
	buf_adds(&text, l1);
	buf_addc(&text, '\n');
	buf_adds(&text, l2);
	buf_addc(&text, '\n');
	CHECK(tail_of(text.p, text.len, &t) == 0);
	CHECK(t.have_last && t.seq == 8 && t.size == (off_t)text.len);
	hex_encode(t.last, 32, hex);
	hex_sha(l2, n2, want);
	CHECK_STR(hex, want);
	CHECK(t.torn_hex[0] == '\0');

	/* A 2 MB torn line after them: cut at its own start, hashed whole. */
	{
		size_t keep = text.len, tn = 2 * 1024 * 1024 + 5;
		char *torn = line_of(tn + 100, 9);

		buf_add(&text, torn, tn);
		CHECK(tail_of(text.p, text.len, &t) == 0);
		CHECK(t.size == (off_t)keep && file_size() == (off_t)keep);
		hex_sha(torn, tn, want);
		CHECK_STR(t.torn_hex, want);
		CHECK(t.have_last && t.seq == 8);
		hex_encode(t.last, 32, hex);
		hex_sha(l2, n2, want);
		CHECK_STR(hex, want);
		free(torn);
	}

	/* Only a torn line: the file ends empty. */
	CHECK(tail_of("{\"half", 6, &t) == 0);
	CHECK(t.size == 0 && file_size() == 0 && !t.have_last);
	hex_sha("{\"half", 6, want);
	CHECK_STR(t.torn_hex, want);

	/* One line, exactly 64 KiB with its newline (a block boundary). */
	free(l1);
	l1 = line_of(65535, 3);
	text.len = 0;
	buf_adds(&text, l1);
	buf_addc(&text, '\n');
	CHECK(tail_of(text.p, text.len, &t) == 0);
	CHECK(t.have_last && t.seq == 3);
	hex_encode(t.last, 32, hex);
	hex_sha(l1, 65535, want);
	CHECK_STR(hex, want);

	/* A last line that is not JSON: hashed, seq unknown. */
	CHECK(tail_of("garbage\n", 8, &t) == 0);
	CHECK(t.have_last && t.seq == 0);

	free(l1);
	free(l2);
	buf_fini(&text);
	unlink(path);
	rmdir(dir);
	return unit_report();
}

/* test_log.c - diagnostics lines: the journal's <N> priority prefix, one
 * line per piece of a multi-line message, the JOURNAL_STREAM check. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

static void
test_format(void)
{
	char out[256];
	const char *ts = "2026-12-04T18:00:00.000000Z";

	log_format(out, sizeof(out), LOG_ERR, 1, ts, "reload refused");
	CHECK_STR(out, "<3>reload refused\n");
	log_format(out, sizeof(out), LOG_WARN, 1, ts, "w");
	CHECK_STR(out, "<4>w\n");
	log_format(out, sizeof(out), LOG_INFO, 1, ts, "i");
	CHECK_STR(out, "<6>i\n");
	log_format(out, sizeof(out), LOG_DEBUG, 1, ts, "d");
	CHECK_STR(out, "<7>d\n");
	/* Each piece its own line, each with the prefix; no empty lines. */
	log_format(out, sizeof(out), LOG_ERR, 1, ts, "refused:\na: one\n\nb: two\n");
	CHECK_STR(out, "<3>refused:\n<3>a: one\n<3>b: two\n");
	log_format(out, sizeof(out), LOG_ERR, 0, ts, "x\ny");
	CHECK_STR(out, "2026-12-04T18:00:00.000000Z whmgate[error]: x\n"
	    "2026-12-04T18:00:00.000000Z whmgate[error]: y\n");
	log_format(out, sizeof(out), LOG_INFO, 0, ts, "");
	CHECK_STR(out, "2026-12-04T18:00:00.000000Z whmgate[info]: \n");
}

static void
test_cut(void)
{
	char small[8], big[64];
	size_t n;

	n = log_format(small, sizeof(small), LOG_ERR, 1, "", "abcdefghij");
	CHECK(n == sizeof(small) - 1);
	CHECK_STR(small, "<3>abc\n");
	n = log_format(big, sizeof(big), LOG_ERR, 1, "", "0123456789\n"
	    "0123456789\n0123456789\n0123456789\n0123456789\n0123456789");
	CHECK(n == sizeof(big) - 1);
	CHECK(big[n - 1] == '\n');
	CHECK(log_format(big, 0, LOG_ERR, 1, "", "x") == 0);
}

static void
test_journal_stream(void)
{
	char path[] = "/tmp/test_log_XXXXXX", js[64];
	struct stat st;
	int fd = mkstemp(path);

	CHECK(fd != -1);
	if (fd == -1)
		return;
	unlink(path);
	CHECK(fstat(fd, &st) == 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	CHECK(log_is_journal(js, fd) == 1);
	/* Another file (stderr redirected after systemd set the variable). */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino + 1);
	CHECK(log_is_journal(js, fd) == 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev + 1,
	    (unsigned long long)st.st_ino);
	CHECK(log_is_journal(js, fd) == 0);
	snprintf(js, sizeof(js), "%llu:%llux", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	CHECK(log_is_journal(js, fd) == 0);
	CHECK(log_is_journal(NULL, fd) == 0);
	CHECK(log_is_journal("", fd) == 0);
	CHECK(log_is_journal(":", fd) == 0);
	CHECK(log_is_journal("12", fd) == 0);
	CHECK(log_is_journal("12:", fd) == 0);
	CHECK(log_is_journal(":12", fd) == 0);
	CHECK(log_is_journal("1:2", -1) == 0);
	close(fd);
}

int
main(void)
{
	test_format();
	test_cut();
	test_journal_stream();
	return unit_report();
}

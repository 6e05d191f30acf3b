/* unit.h - a minimal test harness for the pure modules. Each test binary
 * prints one line per failed check and ends with "N passed, N failed". */
#ifndef WHMGATE_UNIT_H
#define WHMGATE_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond) do {                                                  \
	if (cond) unit_passed++;                                          \
	else { unit_failed++;                                             \
		printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); }  \
} while (0)

#define CHECK_STR(a, b) do {                                              \
	const char *a_ = (a), *b_ = (b);                                  \
	if (a_ && b_ && strcmp(a_, b_) == 0) unit_passed++;               \
	else { unit_failed++;                                             \
		printf("FAIL %s:%d: %s == \"%s\" (got \"%s\")\n", __FILE__, \
		    __LINE__, #a, b_ ? b_ : "(null)", a_ ? a_ : "(null)"); } \
} while (0)

static int
unit_report(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif

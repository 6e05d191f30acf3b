/* fuzz_outcome.c - the streaming verdict reader on any body, fed in two
 * pieces cut where the first byte says; with the skip of data on (odd
 * first byte), its verdict is compared with the same skip over the body
 * in one piece, and with a full parse of the body. */
#include "outcome.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome o, whole;
	size_t cut;

	if (size < 1)
		return 0;
	cut = data[0] % size;
	if (outcome_init(&o) == -1)
		return 0;
	o.skip_data = data[0] & 1;
	outcome_feed(&o, (const char *)data + 1, cut);
	outcome_feed(&o, (const char *)data + 1 + cut, size - 1 - cut);
	outcome_finish(&o);
	if (o.result < -1 || o.result > 1 || o.nsubs > OUTCOME_MAX_SUBS)
		abort();
	/* Where the body is cut must not change the verdict, valid JSON
	 * or not: the same skip over the body in one piece. */
	if (o.skip_data && outcome_init(&whole) == 0) {
		whole.skip_data = 1;
		outcome_feed(&whole, (const char *)data + 1, size - 1);
		outcome_finish(&whole);
		if (whole.failed != o.failed || whole.result != o.result ||
		    whole.has_reason != o.has_reason ||
		    (o.has_reason && strcmp(o.reason, whole.reason) != 0))
			abort();
		outcome_fini(&whole);
	}
	/* Differential: stepping over data must not change what a full
	 * parse in one piece reads from metadata, for any valid body. */
	if (o.skip_data && outcome_init(&whole) == 0) {
		outcome_feed(&whole, (const char *)data + 1, size - 1);
		outcome_finish(&whole);
		if (!whole.failed && (o.failed || o.result != whole.result ||
		    o.has_reason != whole.has_reason ||
		    (o.has_reason && strcmp(o.reason, whole.reason) != 0)))
			abort();
		outcome_fini(&whole);
	}
	outcome_fini(&o);
	return 0;
}

/* fuzz_outcome.c - the streaming verdict reader on any body, fed in two
 * pieces cut where the first byte says, as the kind of call its bits 1-2
 * say (plain, batch, cpanel, uapi_cpanel; bit 0 turns the skip of data off
 * for plain calls). The verdict is compared with the same reader over the
 * body in one piece, and for plain calls that skip data with a full parse
 * of the body. */
#include "outcome.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const struct outcome *a, const struct outcome *b)
{
	size_t i;

	if (a->failed != b->failed || a->result != b->result ||
	    a->uapi_status != b->uapi_status || a->has_reason != b->has_reason ||
	    (a->has_reason && strcmp(a->reason, b->reason) != 0) ||
	    a->nsubs != b->nsubs)
		return 0;
	for (i = 0; i < a->nsubs; i++)
		if (a->sub_result[i] != b->sub_result[i])
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum outcome_kind kinds[] = { OUTCOME_PLAIN,
		OUTCOME_BATCH, OUTCOME_CPANEL, OUTCOME_UAPI };
	struct outcome o, whole;
	enum outcome_kind kind;
	size_t cut;
	int skip;

	if (size < 1)
		return 0;
	cut = data[0] % size;
	kind = kinds[(data[0] >> 1) & 3];
	if (outcome_init(&o) == -1)
		return 0;
	outcome_set_kind(&o, kind);
	skip = o.skip_data = o.skip_data && !(data[0] & 1);
	outcome_feed(&o, (const char *)data + 1, cut);
	outcome_feed(&o, (const char *)data + 1 + cut, size - 1 - cut);
	outcome_finish(&o);
	if (o.result < -1 || o.result > 1 || o.nsubs > OUTCOME_MAX_SUBS ||
	    (o.has_reason && strlen(o.reason) >= OUTCOME_REASON) ||
	    (kind == OUTCOME_UAPI && o.uapi_status != o.result) ||
	    (kind != OUTCOME_UAPI && o.uapi_status != -1))
		abort();
	/* Where the body is cut must not change the verdict, valid JSON
	 * or not, for any kind: the same reader over the body in one piece. */
	if (outcome_init(&whole) == 0) {
		outcome_set_kind(&whole, kind);
		whole.skip_data = skip;
		outcome_feed(&whole, (const char *)data + 1, size - 1);
		outcome_finish(&whole);
		if (!same(&o, &whole))
			abort();
		outcome_fini(&whole);
	}
	/* Differential: stepping over data must not change what a full
	 * parse in one piece reads from metadata, for any valid body. */
	if (skip && outcome_init(&whole) == 0) {
		outcome_set_kind(&whole, OUTCOME_PLAIN);
		whole.skip_data = 0;
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

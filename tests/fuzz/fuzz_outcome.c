/* fuzz_outcome.c - the streaming verdict reader on any body, fed in two
 * pieces cut where the first byte says. */
#include "outcome.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome o;
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
	outcome_fini(&o);
	return 0;
}

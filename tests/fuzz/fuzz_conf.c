/* fuzz_conf.c - config loading: any text either loads or reports problems,
 * never crashes, leaks or loops. */
#include "conf.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf errs;
	struct conf *c;

	buf_init(&errs);
	c = conf_parse("fuzz.json", (const char *)data, size, 0, &errs);
	if (c == NULL && errs.len == 0)
		abort();              /* a refusal always says why */
	conf_unref(c);
	buf_fini(&errs);
	return 0;
}

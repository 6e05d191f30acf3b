/* fuzz_params.c - parameter decoding and the rebuilt encoding. Property:
 * whatever call_parse accepts, call_encode writes in a form that decodes
 * back to the same parameters (for plain calls), and contains no byte that
 * WHM could read differently (only unreserved characters and escapes). */
#include "params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const functions[] = {
	"listaccts", "batch", "cpanel", "uapi_cpanel", "createacct"
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a;
	struct call c, back;
	struct buf enc;
	const char *why = NULL, *fn;
	size_t i;

	if (size < 1)
		return 0;
	fn = functions[data[0] % 5];
	arena_init(&a);
	buf_init(&enc);
	memset(&c, 0, sizeof(c));
	if (params_parse(&a, &c.params, (const char *)data + 1, size - 1,
	    &why) == 0 && call_parse(&a, &c, fn, &why) == 0) {
		if (call_encode(&c, &enc) != 0)
			abort();
		for (i = 0; i < enc.len; i++)
			if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-._~%=&", enc.p[i]))
				abort();
		memset(&back, 0, sizeof(back));
		if (params_parse(&a, &back.params, enc.p ? enc.p : "", enc.len,
		    &why) != 0)
			abort();
		if (c.kind == CALL_PLAIN) {
			size_t off = c.add_api_version ? 1 : 0;
			if (back.params.n != c.params.n + off)
				abort();
			for (i = 0; i < c.params.n; i++)
				if (strcmp(back.params.v[i + off].name, c.params.v[i].name) ||
				    strcmp(back.params.v[i + off].value, c.params.v[i].value))
					abort();
		}
	}
	buf_fini(&enc);
	arena_fini(&a);
	return 0;
}

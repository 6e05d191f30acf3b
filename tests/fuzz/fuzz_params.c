/* fuzz_params.c - parameter decoding and the rebuilt encoding. Property:
 * whatever call_parse accepts, call_encode writes in a form that decodes
 * back to the same parameters (for plain calls), and contains no byte that
 * WHM could read differently (only unreserved characters and escapes);
 * and no accepted call holds more parameters or sub-calls than the
 * limits it was parsed with. */
#include "params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const functions[] = {
	"listaccts", "batch", "cpanel", "uapi_cpanel", "createacct"
};

/* The count limits hold for whatever call_parse_limited accepts, and a
 * refusal is a 400 or a 413. The limits come from the input's second
 * byte: 0 parameters to 31, 1 to 8 sub-calls, or the defaults. */
static void
check_limits(const uint8_t *data, size_t size)
{
	struct params_limits lim = params_limits_default;
	struct arena a;
	struct call c;
	const char *why = NULL;
	size_t i, total;
	int status = 0, rc;

	if (size < 2)
		return;
	if (data[1] & 0x80) {
		lim.max_params = data[1] & 31;
		lim.max_batch_calls = 1 + (data[1] >> 5 & 3) * 2;
	}
	arena_init(&a);
	memset(&c, 0, sizeof(c));
	rc = params_parse_limited(&a, &c.params, (const char *)data + 2,
	    size - 2, &lim, &status, &why);
	if (rc == 0)
		rc = call_parse_limited(&a, &c, functions[data[0] % 5], &lim,
		    &status, &why);
	if (rc == 0) {
		total = c.params.n;
		for (i = 0; i < c.nsubs; i++)
			total += c.subs[i].params.n;
		if (total > lim.max_params || c.nsubs > lim.max_batch_calls)
			abort();
	} else if ((status != 400 && status != 413) || why == NULL) {
		abort();
	}
	arena_fini(&a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena a;
	struct call c, back;
	struct buf enc;
	struct params_limits roomy = { 1u << 20, 1u << 16 };
	const char *why = NULL, *fn;
	size_t i;
	int status;

	if (size < 1)
		return 0;
	check_limits(data, size);
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
		/* Room for the api.version whmgate adds. */
		if (params_parse_limited(&a, &back.params, enc.p ? enc.p : "",
		    enc.len, &roomy, &status, &why) != 0)
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

/* fuzz_audit_record.c - the audit record builder over any call. Property:
 * whatever call_parse accepts, the record (closed with the brace the
 * writer adds) is one JSON object on one line - no raw newline, no raw
 * U+2028/U+2029 - within AUDIT_RECORD_MAX, and never holds the key of
 * the seed corpus as it is or with its first letter percent-escaped. */
#define _GNU_SOURCE             /* memmem */
#include "audit_record.h"
#include "params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const functions[] = {
	"listaccts", "batch", "cpanel", "uapi_cpanel", "createacct"
};

/* The part of a key that is never spelled differently in a record. */
#define KEY_BODY "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct audit_gen *gn;
	struct audit_event ev;
	struct arena a;
	struct call c;
	const char *why = NULL, *out;
	char *line;
	size_t len;
	yajl_val v;

	if (size < 1)
		return 0;
	if (gn == NULL && (gn = audit_gen_new()) == NULL)
		abort();
	arena_init(&a);
	memset(&c, 0, sizeof(c));
	if (params_parse(&a, &c.params, (const char *)data + 1, size - 1,
	    &why) == 0 && call_parse(&a, &c, functions[data[0] % 5], &why) == 0) {
		memset(&ev, 0, sizeof(ev));
		ev.type = "request";
		ev.id = "id";
		ev.function = c.function;
		ev.path = "/json-api/x";
		ev.call = &c;
		ev.with_params = 1;
		ev.decision = -1;
		ev.up_status = -1;
		ev.ms = -1;
		if (audit_gen_event(gn, NULL, &ev) != 0)
			abort();
		out = audit_gen_bytes(gn, &len);
		if (len + 104 > AUDIT_RECORD_MAX || memchr(out, '\n', len) ||
		    memmem(out, len, "\xe2\x80\xa8", 3) ||
		    memmem(out, len, "\xe2\x80\xa9", 3) ||
		    memmem(out, len, "whmg_" KEY_BODY, 48) ||
		    memmem(out, len, "%77hmg_" KEY_BODY, 50))
			abort();
		if ((line = malloc(len + 2)) == NULL)
			abort();
		memcpy(line, out, len);
		line[len] = '}';
		line[len + 1] = '\0';
		if ((v = yajl_tree_parse(line, NULL, 0)) == NULL || !YAJL_IS_OBJECT(v))
			abort();
		yajl_tree_free(v);
		free(line);
	}
	arena_fini(&a);
	return 0;
}

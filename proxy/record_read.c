/* record_read.c - see record_read.h. */
#include "record_read.h"
#include "params.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records are single lines of a few KB; a much longer one (a 1 MB body of
 * parameters) is still read, but nesting deeper than any record is not. */
#define RECORD_MAX_BYTES (64u << 20)

/* A record nests 4 deep; yajl_tree recurses as deep as the input does
 * (parse and free), so a hostile line of a million '[' would overflow the
 * stack. Depth counted outside strings. */
#define RECORD_MAX_DEPTH 32

static int
too_deep(const char *s, size_t n)
{
	size_t i;
	int depth = 0, in_str = 0;

	for (i = 0; i < n; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '[' || s[i] == '{') {
			if (++depth > RECORD_MAX_DEPTH)
				return 1;
		} else if (s[i] == ']' || s[i] == '}') {
			depth--;
		}
	}
	return 0;
}

static yajl_val
get(yajl_val v, const char *k)
{
	size_t i;

	if (!YAJL_IS_OBJECT(v))
		return NULL;
	/* The first copy of a repeated key, as yajl_tree_get would; a
	 * record whmgate wrote has none. */
	for (i = 0; i < v->u.object.len; i++)
		if (strcmp(v->u.object.keys[i], k) == 0)
			return v->u.object.values[i];
	return NULL;
}

static const char *
get_str(yajl_val v, const char *k)
{
	yajl_val x = get(v, k);

	return YAJL_IS_STRING(x) ? x->u.string : NULL;
}

static int
fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

int
record_parse(const char *line, size_t len, struct record *r, char *err,
    size_t errlen)
{
	char ebuf[128], *s;
	yajl_val v, w, d, x;

	memset(r, 0, sizeof(*r));
	r->decision = -1;
	r->result = -1;
	r->seq = -1;
	if (len > RECORD_MAX_BYTES)
		return fail(err, errlen, "line too long");
	if (memchr(line, '\0', len))
		return fail(err, errlen, "NUL byte in the line");
	if (too_deep(line, len))
		return fail(err, errlen, "nested deeper than any record");
	if ((s = malloc(len + 1)) == NULL)
		return fail(err, errlen, "out of memory");
	memcpy(s, line, len);
	s[len] = '\0';
	ebuf[0] = '\0';
	v = yajl_tree_parse(s, ebuf, sizeof(ebuf));
	free(s);
	if (v == NULL) {
		ebuf[strcspn(ebuf, "\n")] = '\0';
		snprintf(err, errlen, "not JSON: %s", ebuf[0] ? ebuf :
		    "parse error");
		return -1;
	}
	r->root = v;
	if (!YAJL_IS_OBJECT(v)) {
		record_fini(r);
		return fail(err, errlen, "not a JSON object");
	}
	r->type = get_str(v, "type");
	r->ts = get_str(v, "ts");
	if (r->type == NULL || r->ts == NULL) {
		record_fini(r);
		return fail(err, errlen, "no \"type\" or \"ts\": not an audit "
		    "record");
	}
	if (YAJL_IS_INTEGER(x = get(v, "seq")))
		r->seq = YAJL_GET_INTEGER(x);
	if (strcmp(r->type, "system") == 0)
		return 0;
	if (strcmp(r->type, "request") != 0 && strcmp(r->type, "response") != 0 &&
	    strcmp(r->type, "deny") != 0) {
		record_fini(r);
		return fail(err, errlen, "unknown record type");
	}
	if ((r->id = get_str(v, "id")) == NULL) {
		record_fini(r);
		return fail(err, errlen, "no \"id\"");
	}
	r->client = get_str(get(v, "client"), "id");
	w = get(v, "whm");
	if (w != NULL && !YAJL_IS_OBJECT(w)) {
		record_fini(r);
		return fail(err, errlen, "\"whm\" is not an object");
	}
	r->function = get_str(w, "function");
	if ((x = get(w, "params")) != NULL) {
		if (!YAJL_IS_OBJECT(x) || r->function == NULL) {
			record_fini(r);
			return fail(err, errlen, "\"whm.params\" is not an "
			    "object or has no function");
		}
		r->has_call = 1;
	}
	if ((x = get(w, "result")) != NULL && YAJL_IS_INTEGER(x))
		r->result = YAJL_GET_INTEGER(x) == 1 ? 1 : 0;
	if ((d = get(v, "decision")) != NULL) {
		x = get(d, "allow");
		if (!YAJL_IS_TRUE(x) && !YAJL_IS_FALSE(x)) {
			record_fini(r);
			return fail(err, errlen, "\"decision.allow\" is not a "
			    "boolean");
		}
		r->decision = YAJL_IS_TRUE(x);
		r->code = get_str(d, "code");
		r->cand = get(d, "candidate") != NULL;
	}
	return 0;
}

void
record_fini(struct record *r)
{
	if (r->root)
		yajl_tree_free(r->root);
	memset(r, 0, sizeof(*r));
}

int
record_policy_refusal(const char *code)
{
	return code && (strcmp(code, "function_not_allowed") == 0 ||
	    strcmp(code, "parameter_not_allowed") == 0);
}

/* name=value&... of a recorded params object; skip names "command". */
static int
encode_params(struct buf *b, yajl_val ps, int skip_command, const char **why)
{
	size_t i;
	int n = 0;

	for (i = 0; i < ps->u.object.len; i++) {
		const char *k = ps->u.object.keys[i];
		yajl_val x = ps->u.object.values[i];

		if (skip_command && strcmp(k, "command") == 0)
			continue;
		if (!YAJL_IS_STRING(x)) {
			*why = "a recorded parameter value is not a string";
			return -1;
		}
		if ((b->len && b->p[b->len - 1] != '?' && buf_addc(b, '&')) ||
		    form_escape(b, k) || buf_addc(b, '=') ||
		    form_escape(b, x->u.string)) {
			*why = "out of memory";
			return -1;
		}
		n++;
	}
	return n;
}

int
record_call(const struct record *r, struct arena *a,
    const struct params_limits *lim, struct call *c, const char **why)
{
	yajl_val w = get(r->root, "whm"), ps = get(w, "params"),
	    calls = get(w, "calls"), sub, sps;
	struct buf q, cmd;
	size_t i, k = 0;
	int status, rc = -1;

	memset(c, 0, sizeof(*c));
	if (!r->has_call || !YAJL_IS_OBJECT(ps)) {
		*why = "the record holds no parsed call";
		return -1;
	}
	if (!params_valid_function(r->function)) {
		*why = "the recorded function is not a function name";
		return -1;
	}
	buf_init(&q);
	buf_init(&cmd);
	if (encode_params(&q, ps, strcmp(r->function, "batch") == 0, why) < 0)
		goto out;
	if (strcmp(r->function, "batch") == 0 && calls != NULL) {
		if (!YAJL_IS_ARRAY(calls)) {
			*why = "\"whm.calls\" is not an array";
			goto out;
		}
		for (i = 0; i < calls->u.array.len; i++) {
			const char *fn;

			sub = calls->u.array.values[i];
			fn = get_str(sub, "function");
			sps = get(sub, "params");
			if (fn == NULL || !YAJL_IS_OBJECT(sps)) {
				*why = "a batch sub-call without function or "
				    "params";
				goto out;
			}
			cmd.len = 0;
			if (buf_adds(&cmd, fn) || buf_addc(&cmd, '?') ||
			    encode_params(&cmd, sps, 0, why) < 0 ||
			    (q.len && buf_addc(&q, '&')) ||
			    buf_printf(&q, "command-%zu=", k++) ||
			    buf_addc(&cmd, '\0') || form_escape(&q, cmd.p)) {
				if (*why == NULL)
					*why = "out of memory";
				goto out;
			}
		}
	}
	*why = NULL;
	if (params_parse_limited(a, &c->params, q.p ? q.p : "", q.len, lim,
	    &status, why) == -1 ||
	    call_parse_limited(a, c, r->function, lim, &status, why) == -1)
		goto out;
	rc = 0;
out:
	buf_fini(&q);
	buf_fini(&cmd);
	if (rc == -1 && *why == NULL)
		*why = "the recorded call cannot be rebuilt";
	return rc;
}

int
record_redacted(const char *v)
{
	size_t n;

	if (strcmp(v, "[REDACTED]") == 0)
		return 1;
	if (strncmp(v, "hmac-sha256:", 12) != 0)
		return 0;
	n = strspn(v + 12, "0123456789abcdef");
	return n == 64 && v[76] == '\0';
}

static int
params_redacted_name(const struct params *ps)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (strncmp(ps->v[i].name, "[REDACTED-NAME-", 15) == 0)
			return 1;
	return 0;
}

int
record_call_redacted_name(const struct call *c)
{
	size_t i;

	if (params_redacted_name(&c->params))
		return 1;
	for (i = 0; i < c->nsubs; i++)
		if (params_redacted_name(&c->subs[i].params))
			return 1;
	return 0;
}

/* params.c - see params.h.
 *
 * WHM merges query and body, keeps the first copy of a repeated name and
 * renames later ones to name-0, name-1...; it reads a list parameter from
 * name and every name-<digits>. whmgate therefore refuses any repeated name
 * (a later copy would be read under another name than the one checked) and
 * treats name-N as name for policy. Everything is decoded exactly once. */
#include "params.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define PARAMS_MAX 1024
#define BATCH_MAX 256

static int
hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one name or value: '+' is a space, %XX a byte. */
static char *
form_decode(struct arena *a, const char *s, size_t n, const char **why)
{
	char *out = arena_alloc(a, n + 1);
	size_t i, o = 0;
	int hi, lo;

	if (out == NULL) {
		*why = "out of memory";
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			if (n - i < 3 || (hi = hexv(s[i + 1])) < 0 ||
			    (lo = hexv(s[i + 2])) < 0) {
				*why = "bad percent escape";
				return NULL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	if (memchr(out, '\0', o) != NULL) {
		*why = "NUL in a parameter";
		return NULL;
	}
	if (!utf8_valid(out, o)) {
		*why = "parameter is not valid UTF-8";
		return NULL;
	}
	return out;
}

/* Length of the base name: "user-12" -> 4; no -N suffix -> strlen. */
static size_t
base_len(const char *name, int *indexed)
{
	const char *dash = strrchr(name, '-');
	const char *p;

	*indexed = 0;
	if (dash == NULL || dash == name || dash[1] == '\0')
		return strlen(name);
	for (p = dash + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return strlen(name);
	*indexed = 1;
	return (size_t)(dash - name);
}

static int
params_add(struct arena *a, struct params *ps, char *name, char *value)
{
	struct param *v;
	size_t cap, bl;
	int indexed;

	if (ps->n == PARAMS_MAX)
		return -1;
	if (ps->n == ps->cap) {
		cap = ps->cap ? ps->cap * 2 : 16;
		if ((v = arena_alloc(a, cap * sizeof(*v))) == NULL)
			return -1;
		if (ps->n)
			memcpy(v, ps->v, ps->n * sizeof(*v));
		ps->v = v;
		ps->cap = cap;
	}
	bl = base_len(name, &indexed);
	v = &ps->v[ps->n];
	v->name = name;
	v->value = value;
	v->indexed = indexed;
	v->base = indexed ? arena_strndup(a, name, bl) : name;
	if (v->base == NULL)
		return -1;
	ps->n++;
	return 0;
}

int
params_parse(struct arena *a, struct params *ps, const char *s, size_t len,
    const char **why)
{
	const char *end = s + len, *amp, *eq;
	char *name, *value;

	while (s < end) {
		amp = memchr(s, '&', (size_t)(end - s));
		if (amp == NULL)
			amp = end;
		if (amp == s) {     /* empty piece */
			s++;
			continue;
		}
		eq = memchr(s, '=', (size_t)(amp - s));
		if (eq == NULL)
			eq = amp;
		if (eq == s) {
			*why = "empty parameter name";
			return -1;
		}
		if ((name = form_decode(a, s, (size_t)(eq - s), why)) == NULL)
			return -1;
		value = eq < amp ? form_decode(a, eq + 1,
		    (size_t)(amp - eq - 1), why) : arena_strdup(a, "");
		if (value == NULL)
			return -1;
		if (params_add(a, ps, name, value) == -1) {
			*why = "too many parameters";
			return -1;
		}
		s = amp < end ? amp + 1 : end;
	}
	return 0;
}

size_t
params_count(const struct params *ps, const char *base, int plain_only)
{
	size_t i, n = 0;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i].base, base) == 0 &&
		    (!plain_only || !ps->v[i].indexed))
			n++;
	return n;
}

const char *
params_get(const struct params *ps, const char *name)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (!ps->v[i].indexed && strcmp(ps->v[i].name, name) == 0)
			return ps->v[i].value;
	return NULL;
}

int
params_body_ok(const char *body, size_t len)
{
	return memchr(body, '\r', len) == NULL &&
	    memchr(body, '\n', len) == NULL && memchr(body, '\0', len) == NULL;
}

int
params_valid_function(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
	    strlen(s);
}

static int
valid_target_name(const char *s)
{
	const char *p;

	if (*s == '\0')
		return 0;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return 1;
}

/* Repeated names, except 'command' where allowed (batch's list form). */
static int
check_duplicates(const struct params *ps, int allow_command, const char **why)
{
	size_t i, j;

	for (i = 0; i < ps->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(ps->v[i].name, ps->v[j].name) == 0 &&
			    !(allow_command &&
			    strcmp(ps->v[i].name, "command") == 0)) {
				*why = "a parameter name appears twice";
				return -1;
			}
	return 0;
}

/* Every copy of api.version, plain or -N, must be exactly "1": anything
 * else could run the call on WHM API 0. */
static int
check_api_version(const struct params *ps, const char **why)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i].base, "api.version") == 0 &&
		    strcmp(ps->v[i].value, "1") != 0) {
			*why = "api.version must be 1";
			return -1;
		}
	return 0;
}

/* A target-selecting parameter must be one plain copy: with a -N copy
 * beside it, whmgate and WHM might read different targets. */
static int
single_plain(const struct params *ps, const char *name, const char **why)
{
	if (params_count(ps, name, 0) > params_count(ps, name, 1) ||
	    params_count(ps, name, 1) > 1) {
		*why = "a target parameter appears more than once";
		return -1;
	}
	return 0;
}

static int
parse_cpanel(struct arena *a, struct call *c, const char **why)
{
	const struct params *ps = &c->params;
	const char *mod, *fn, *user;
	struct buf b;

	if (c->kind == CALL_CPANEL) {
		mod = "cpanel_jsonapi_module";
		fn = "cpanel_jsonapi_func";
		user = "cpanel_jsonapi_user";
	} else {
		mod = "cpanel.module";
		fn = "cpanel.function";
		user = "cpanel.user";
	}
	if (single_plain(ps, mod, why) || single_plain(ps, fn, why) ||
	    single_plain(ps, user, why) || single_plain(ps, "user", why))
		return -1;
	c->module = params_get(ps, mod);
	c->func = params_get(ps, fn);
	c->cuser = params_get(ps, user);
	/* cpanel falls back to 'user' when cpanel_jsonapi_user is absent. */
	if (c->cuser == NULL && c->kind == CALL_CPANEL)
		c->cuser = params_get(ps, "user");
	if (c->module == NULL || c->func == NULL) {
		*why = "missing cPanel module or function";
		return -1;
	}
	if (!valid_target_name(c->module) || !valid_target_name(c->func)) {
		*why = "bad cPanel module or function name";
		return -1;
	}
	buf_init(&b);
	buf_printf(&b, "%s:%s::%s", c->kind == CALL_CPANEL ? "cpanel" :
	    "uapi_cpanel", c->module, c->func);
	c->rule_name = arena_strndup(a, b.p ? b.p : "", b.len);
	buf_fini(&b);
	if (c->rule_name == NULL) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* Orders batch commands as WHM runs them: the plain 'command' copies in
 * the order sent, then command-N by numeric N. Two spellings of the same N
 * (command-1, command-01) would be ambiguous and are refused. */
static int
cmp_index(const char *a, const char *b)
{
	size_t la, lb;

	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a, b);
}

static int
parse_batch(struct arena *a, struct call *c, const char **why)
{
	const struct params *ps = &c->params;
	const struct param **cmds;
	size_t i, j, n = 0, nplain = 0, nindexed = 0;
	struct subcall *s;
	const char *q, *fn;

	cmds = arena_alloc(a, (ps->n + 1) * sizeof(*cmds));
	if (cmds == NULL) {
		*why = "out of memory";
		return -1;
	}
	for (i = 0; i < ps->n; i++) {
		if (strcmp(ps->v[i].base, "command") != 0)
			continue;
		if (ps->v[i].indexed)
			nindexed++;
		else
			nplain++;
		cmds[n++] = &ps->v[i];
	}
	if (nplain > 1 && nindexed) {
		*why = "repeated command and command-N mixed";
		return -1;
	}
	if (n == 0) {
		*why = "batch without commands";
		return -1;
	}
	if (n > BATCH_MAX) {
		*why = "too many batch commands";
		return -1;
	}
	/* Stable insertion sort: plain copies first, then by index. */
	for (i = 1; i < n; i++) {
		const struct param *x = cmds[i];
		for (j = i; j > 0; j--) {
			const struct param *y = cmds[j - 1];
			int before;
			if (!x->indexed)
				before = y->indexed;
			else if (!y->indexed)
				before = 0;
			else
				before = cmp_index(strrchr(x->name, '-') + 1,
				    strrchr(y->name, '-') + 1) < 0;
			if (!before)
				break;
			cmds[j] = y;
		}
		cmds[j] = x;
	}
	for (i = 1; i < n; i++)
		if (cmds[i]->indexed && cmds[i - 1]->indexed &&
		    cmp_index(strrchr(cmds[i]->name, '-') + 1,
		    strrchr(cmds[i - 1]->name, '-') + 1) == 0) {
			*why = "two batch commands with the same index";
			return -1;
		}
	c->subs = arena_alloc(a, n * sizeof(*c->subs));
	if (c->subs == NULL) {
		*why = "out of memory";
		return -1;
	}
	memset(c->subs, 0, n * sizeof(*c->subs));
	for (i = 0; i < n; i++) {
		s = &c->subs[i];
		q = strchr(cmds[i]->value, '?');
		fn = q ? arena_strndup(a, cmds[i]->value,
		    (size_t)(q - cmds[i]->value)) : cmds[i]->value;
		if (fn == NULL || !params_valid_function(fn)) {
			*why = "bad batch command function name";
			return -1;
		}
		s->function = (char *)fn;
		s->rule_name = fn;
		if (q && params_parse(a, &s->params, q + 1, strlen(q + 1),
		    why) == -1)
			return -1;
		if (check_duplicates(&s->params, 0, why) ||
		    check_api_version(&s->params, why))
			return -1;
		if (strcmp(fn, "cpanel") == 0 || strcmp(fn, "uapi_cpanel") == 0) {
			struct call inner;
			memset(&inner, 0, sizeof(inner));
			inner.kind = fn[0] == 'c' ? CALL_CPANEL : CALL_UAPI;
			inner.params = s->params;
			if (parse_cpanel(a, &inner, why) == -1)
				return -1;
			s->rule_name = inner.rule_name;
			s->cuser = inner.cuser;
		}
	}
	c->nsubs = n;
	return 0;
}

int
call_parse(struct arena *a, struct call *c, const char *function,
    const char **why)
{
	c->function = function;
	c->rule_name = function;
	if (strcmp(function, "batch") == 0)
		c->kind = CALL_BATCH;
	else if (strcmp(function, "cpanel") == 0)
		c->kind = CALL_CPANEL;
	else if (strcmp(function, "uapi_cpanel") == 0)
		c->kind = CALL_UAPI;
	else
		c->kind = CALL_PLAIN;
	if (check_duplicates(&c->params, c->kind == CALL_BATCH, why) ||
	    check_api_version(&c->params, why))
		return -1;
	/* WHM reads the plain name: add it unless it is there (a lone
	 * api.version-N copy does not select API 1). */
	c->add_api_version = params_count(&c->params, "api.version", 1) == 0;
	if (c->kind == CALL_BATCH)
		return parse_batch(a, c, why);
	if (c->kind == CALL_CPANEL || c->kind == CALL_UAPI)
		return parse_cpanel(a, c, why);
	return 0;
}

int
form_escape(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char esc[3];

	if (buf_reserve(out, strlen(s) * 3) == -1)
		return -1;
	for (p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			buf_addc(out, (char)*p);
		} else {
			esc[0] = '%';
			esc[1] = hex[*p >> 4];
			esc[2] = hex[*p & 15];
			buf_add(out, esc, 3);
		}
	}
	return 0;
}

static int
encode_pair(struct buf *out, const char *name, const char *value)
{
	if (out->len && out->p[out->len - 1] != '&' && buf_addc(out, '&') == -1)
		return -1;
	if (form_escape(out, name) == -1 || buf_addc(out, '=') == -1 ||
	    form_escape(out, value) == -1)
		return -1;
	return 0;
}

int
call_encode(const struct call *c, struct buf *out)
{
	size_t start = out->len, i, k, cmd = 0;
	struct buf sub, name;
	int rc = 0;

	buf_init(&sub);
	buf_init(&name);
	if (c->add_api_version && encode_pair(out, "api.version", "1") == -1)
		return -1;
	for (i = 0; i < c->params.n && rc == 0; i++) {
		const struct param *p = &c->params.v[i];
		if (c->kind == CALL_BATCH && strcmp(p->base, "command") == 0)
			continue;
		rc = encode_pair(out, p->name, p->value);
	}
	/* Sub-calls are re-encoded from what was checked, as command-0..N
	 * in the order WHM runs them. */
	for (i = 0; i < c->nsubs && rc == 0; i++, cmd++) {
		const struct subcall *s = &c->subs[i];
		sub.len = name.len = 0;
		rc |= buf_adds(&sub, s->function);
		for (k = 0; k < s->params.n && rc == 0; k++) {
			rc |= buf_addc(&sub, k ? '&' : '?');
			rc |= form_escape(&sub, s->params.v[k].name);
			rc |= buf_addc(&sub, '=');
			rc |= form_escape(&sub, s->params.v[k].value);
		}
		rc |= buf_printf(&name, "command-%zu", cmd);
		if (rc == 0)
			rc = encode_pair(out, name.p, sub.p);
	}
	buf_fini(&sub);
	buf_fini(&name);
	if (rc) {
		out->len = start;
		return -1;
	}
	return 0;
}

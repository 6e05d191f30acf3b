/* params.c - see params.h.
 *
 * WHM merges query and body, keeps the first copy of a repeated name and
 * renames later ones to name-0, name-1...; it reads a list parameter from
 * name and every name-<digits>. whmgate therefore refuses any repeated name
 * (a later copy would be read under another name than the one checked) and
 * treats name-N as name for policy. Everything is decoded exactly once. */
#include "params.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const struct params_limits params_limits_default = {
	PARAMS_MAX_DEFAULT, PARAMS_BATCH_MAX_DEFAULT
};

/* Decodes one name or value ('+' is a space, %XX a byte) into *out, which
 * has room for n + 1 bytes, and moves *out past the terminating NUL. */
static char *
form_decode(char **out, const char *s, size_t n, const char **why)
{
	char *d = *out;
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			d[o++] = ' ';
		} else if (s[i] == '%') {
			if (n - i < 3 || (hi = hex_value(s[i + 1])) < 0 ||
			    (lo = hex_value(s[i + 2])) < 0) {
				*why = "bad percent escape";
				return NULL;
			}
			d[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			d[o++] = s[i];
		}
	}
	d[o] = '\0';
	if (memchr(d, '\0', o) != NULL) {
		*why = "NUL in a parameter";
		return NULL;
	}
	if (!utf8_valid(d, o)) {
		*why = "parameter is not valid UTF-8";
		return NULL;
	}
	*out = d + o + 1;
	return d;
}

size_t
params_base_len(const char *name, int *indexed)
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

/* The non-empty pieces of a form: what params_parse would add. */
static size_t
count_pieces(const char *s, size_t len)
{
	const char *end = s + len, *amp;
	size_t n = 0;

	while (s < end) {
		amp = memchr(s, '&', (size_t)(end - s));
		if (amp == NULL)
			amp = end;
		if (amp > s)
			n++;
		s = amp + 1;
	}
	return n;
}

/* Room for extra more entries, in one step: the array is grown once per
 * parsed form, not doubled piece by piece (whose copies the arena would
 * keep until the request ends). */
static int
params_reserve(struct arena *a, struct params *ps, size_t extra)
{
	struct param *v;

	if (ps->cap - ps->n >= extra)
		return 0;
	if (extra > SIZE_MAX / sizeof(*v) - ps->n ||
	    (v = arena_alloc(a, (ps->n + extra) * sizeof(*v))) == NULL)
		return -1;
	if (ps->n)
		memcpy(v, ps->v, ps->n * sizeof(*v));
	ps->v = v;
	ps->cap = ps->n + extra;
	return 0;
}

static int
params_add(struct arena *a, struct params *ps, char *name, char *value)
{
	struct param *v;
	size_t bl;
	int indexed;

	bl = params_base_len(name, &indexed);
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
params_parse_limited(struct arena *a, struct params *ps, const char *s,
    size_t len, const struct params_limits *lim, int *status,
    const char **why)
{
	const char *end = s + len, *amp, *eq;
	char *name, *value, *blk;
	size_t pieces = count_pieces(s, len);

	*status = 413;
	if (pieces > lim->max_params || ps->n > lim->max_params - pieces) {
		*why = "too many parameters";
		return -1;
	}
	*status = 400;
	if (pieces == 0)
		return 0;
	/* Every decoded string goes into one block: a piece decodes to at
	 * most its own bytes plus two NULs (a name without '=' gets an empty
	 * value), so the block is len + 2 * pieces, whatever the input. */
	if (params_reserve(a, ps, pieces) == -1 ||
	    len > SIZE_MAX - 2 * pieces ||
	    (blk = arena_alloc(a, len + 2 * pieces)) == NULL) {
		*why = "out of memory";
		return -1;
	}
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
		if ((name = form_decode(&blk, s, (size_t)(eq - s), why)) == NULL)
			return -1;
		value = form_decode(&blk, eq < amp ? eq + 1 : amp,
		    eq < amp ? (size_t)(amp - eq - 1) : 0, why);
		if (value == NULL)
			return -1;
		if (params_add(a, ps, name, value) == -1) {
			*why = "out of memory";
			return -1;
		}
		s = amp < end ? amp + 1 : end;
	}
	return 0;
}

int
params_parse(struct arena *a, struct params *ps, const char *s, size_t len,
    const char **why)
{
	int status;

	return params_parse_limited(a, ps, s, len, &params_limits_default,
	    &status, why);
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

typedef int param_cmp(const struct param *, const struct param *);

/* A stable merge sort of n entries, bottom-up: O(n log n) comparisons
 * whatever the input (no quicksort worst case for a client to aim at).
 * tmp holds n entries. */
static void
sort_params(const struct param **v, const struct param **tmp, size_t n,
    param_cmp *cmp)
{
	const struct param **src = v, **dst = tmp, **t;
	size_t w, lo, mid, hi, x, y, k;

	for (w = 1; w < n; w *= 2) {
		for (lo = 0; lo < n; lo += 2 * w) {
			mid = n - lo > w ? lo + w : n;
			hi = n - mid > w ? mid + w : n;
			x = lo;
			y = mid;
			k = lo;
			while (x < mid && y < hi)
				dst[k++] = cmp(src[y], src[x]) < 0 ? src[y++] :
				    src[x++];
			while (x < mid)
				dst[k++] = src[x++];
			while (y < hi)
				dst[k++] = src[y++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
}

/* SipHash-1-3 with a key drawn once per process: the names are the
 * client's, so an unkeyed hash would let a client send names that all
 * land in one slot and make the table a quadratic scan again. */
static uint64_t sip_key[2];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void
sip_init(void)
{
	struct timespec ts;

	if (RAND_bytes((unsigned char *)sip_key, sizeof(sip_key)) == 1)
		return;
	/* No randomness: still correct, only no longer unpredictable. */
	clock_gettime(CLOCK_REALTIME, &ts);
	sip_key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL;
	sip_key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
}

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND do {                                                     \
	v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);  \
	v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                          \
	v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                          \
	v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);  \
} while (0)

static uint64_t
sip_hash(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint64_t v0 = 0x736f6d6570736575ULL ^ sip_key[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ sip_key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ sip_key[0];
	uint64_t v3 = 0x7465646279746573ULL ^ sip_key[1];
	uint64_t m, b = (uint64_t)n << 56;
	size_t i;

	for (; n >= 8; n -= 8, p += 8) {
		for (m = 0, i = 0; i < 8; i++)
			m |= (uint64_t)p[i] << (8 * i);
		v3 ^= m;
		SIP_ROUND;
		v0 ^= m;
	}
	for (i = 0; i < n; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIP_ROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIP_ROUND;
	SIP_ROUND;
	SIP_ROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Repeated names, except 'command' where allowed (batch's list form),
 * through a hash table: expected time linear in the names' bytes.
 * Comparing every pair cost 0.47 s for a 1 MB batch (issue 16). */
static int
check_duplicates(const struct params *ps, int allow_command, const char **why)
{
	size_t n = ps->n, cap = 16, i, j, k, len;
	uint32_t *slot;
	uint64_t *h;
	const char *name;
	int rc = 0;

	if (n < 2)
		return 0;
	while (cap < 2 * n)
		cap *= 2;
	pthread_once(&sip_once, sip_init);
	slot = n < UINT32_MAX ? calloc(cap, sizeof(*slot)) : NULL;
	h = malloc(n * sizeof(*h));
	if (slot == NULL || h == NULL) {
		*why = "out of memory";
		rc = -1;
		goto out;
	}
	for (i = 0; i < n && rc == 0; i++) {
		name = ps->v[i].name;
		if (allow_command && strcmp(name, "command") == 0)
			continue;
		len = strlen(name);
		h[i] = sip_hash(name, len);
		for (j = h[i] & (cap - 1); slot[j]; j = (j + 1) & (cap - 1)) {
			k = slot[j] - 1;
			if (h[k] == h[i] && strcmp(ps->v[k].name, name) == 0) {
				*why = "a parameter name appears twice";
				rc = -1;
				break;
			}
		}
		slot[j] = (uint32_t)(i + 1);
	}
out:
	free(slot);
	free(h);
	return rc;
}

/* WHM's other spellings of the cpanel selectors: whmgate checks the
 * cpanel_jsonapi_* ones and forwards only what it checked, so a second
 * spelling WHM might prefer (cpanel_xmlapi_user naming another account)
 * is refused wherever it appears, in any case and as a -N copy. */
static int
check_xmlapi(const struct params *ps, const char **why)
{
	static const char *const names[] = {
		"cpanel_xmlapi_module", "cpanel_xmlapi_func",
		"cpanel_xmlapi_user", "cpanel_xmlapi_apiversion"
	};
	size_t i, k;

	for (i = 0; i < ps->n; i++) {
		if (strncasecmp(ps->v[i].base, "cpanel_xmlapi_", 14) != 0)
			continue;
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (strcasecmp(ps->v[i].base, names[k]) == 0) {
				*why = "cpanel_xmlapi_* parameters are not "
				    "accepted: use cpanel_jsonapi_*";
				return -1;
			}
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
cmp_command(const struct param *x, const struct param *y)
{
	if (!x->indexed || !y->indexed)
		return x->indexed - y->indexed;
	return cmp_index(strrchr(x->name, '-') + 1, strrchr(y->name, '-') + 1);
}

/* The counts of a batch, taken before anything in it is decoded: its
 * sub-calls, and its parameters with every sub-call's arguments. */
static int
batch_counts(const struct call *c, const struct params_limits *lim,
    int *status, const char **why)
{
	const struct params *ps = &c->params;
	size_t i, n = 0, args = 0;
	const char *q;

	for (i = 0; i < ps->n; i++) {
		if (strcmp(ps->v[i].base, "command") != 0)
			continue;
		n++;
		if ((q = strchr(ps->v[i].value, '?')) != NULL)
			args += count_pieces(q + 1, strlen(q + 1));
	}
	if (n > lim->max_batch_calls) {
		*status = 413;
		*why = "too many batch calls";
		return -1;
	}
	if (args > lim->max_params - ps->n) {
		*status = 413;
		*why = "too many parameters";
		return -1;
	}
	return 0;
}

static int
parse_batch(struct arena *a, struct call *c, const struct params_limits *lim,
    int *status, const char **why)
{
	const struct params *ps = &c->params;
	const struct param **cmds;
	struct params_limits sublim = *lim;
	size_t i, n = 0, nplain = 0, nindexed = 0, used = ps->n;
	struct subcall *s;
	const char *q, *fn;
	int rc = -1;

	if ((cmds = malloc(2 * (ps->n + 1) * sizeof(*cmds))) == NULL) {
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
		goto out;
	}
	if (n == 0) {
		*why = "batch without commands";
		goto out;
	}
	/* Plain copies first in the order sent, then by index. */
	sort_params(cmds, cmds + n, n, cmp_command);
	for (i = 1; i < n; i++)
		if (cmds[i]->indexed && cmds[i - 1]->indexed &&
		    cmp_command(cmds[i], cmds[i - 1]) == 0) {
			*why = "two batch commands with the same index";
			goto out;
		}
	if ((c->subs = arena_alloc(a, n * sizeof(*c->subs))) == NULL) {
		*why = "out of memory";
		goto out;
	}
	memset(c->subs, 0, n * sizeof(*c->subs));
	for (i = 0; i < n; i++) {
		s = &c->subs[i];
		q = strchr(cmds[i]->value, '?');
		fn = q ? arena_strndup(a, cmds[i]->value,
		    (size_t)(q - cmds[i]->value)) : cmds[i]->value;
		if (fn == NULL || !params_valid_function(fn)) {
			*why = "bad batch command function name";
			goto out;
		}
		s->function = (char *)fn;
		s->rule_name = fn;
		/* What is left of the request's budget (batch_counts saw
		 * that it suffices; this keeps each parse bounded anyway). */
		sublim.max_params = lim->max_params - used;
		if (q && params_parse_limited(a, &s->params, q + 1,
		    strlen(q + 1), &sublim, status, why) == -1)
			goto out;
		used += s->params.n;
		if (check_duplicates(&s->params, 0, why) ||
		    check_api_version(&s->params, why) ||
		    check_xmlapi(&s->params, why))
			goto out;
		if (strcmp(fn, "cpanel") == 0 || strcmp(fn, "uapi_cpanel") == 0) {
			struct call inner;
			memset(&inner, 0, sizeof(inner));
			inner.kind = fn[0] == 'c' ? CALL_CPANEL : CALL_UAPI;
			inner.params = s->params;
			if (parse_cpanel(a, &inner, why) == -1)
				goto out;
			s->rule_name = inner.rule_name;
			s->cuser = inner.cuser;
		}
	}
	c->nsubs = n;
	rc = 0;
out:
	free(cmds);
	return rc;
}

int
call_parse_limited(struct arena *a, struct call *c, const char *function,
    const struct params_limits *lim, int *status, const char **why)
{
	*status = 400;
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
	/* Counts first: a request over a limit is refused before its
	 * sub-calls cost anything. */
	if (c->params.n > lim->max_params) {
		*status = 413;
		*why = "too many parameters";
		return -1;
	}
	if (c->kind == CALL_BATCH && batch_counts(c, lim, status, why) == -1)
		return -1;
	if (check_duplicates(&c->params, c->kind == CALL_BATCH, why) ||
	    check_api_version(&c->params, why) ||
	    check_xmlapi(&c->params, why))
		return -1;
	/* WHM reads the plain name: add it unless it is there (a lone
	 * api.version-N copy does not select API 1). */
	c->add_api_version = params_count(&c->params, "api.version", 1) == 0;
	if (c->kind == CALL_BATCH)
		return parse_batch(a, c, lim, status, why);
	if (c->kind == CALL_CPANEL || c->kind == CALL_UAPI)
		return parse_cpanel(a, c, why);
	return 0;
}

int
call_parse(struct arena *a, struct call *c, const char *function,
    const char **why)
{
	int status;

	return call_parse_limited(a, c, function, &params_limits_default,
	    &status, why);
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

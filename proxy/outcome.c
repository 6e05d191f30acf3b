/* outcome.c - see outcome.h.
 *
 * Depth is tracked so that decoys do not count: a "metadata" object nested
 * inside data (an account named "metadata", say) is not the envelope's. */
#include "outcome.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* A single token larger than this would make yajl buffer it whole. */
#define OUTCOME_MAX_TOKEN (4 * 1024 * 1024)

static struct outcome *
oc(void *ctx)
{
	struct outcome *o = ctx;

	o->since_event = 0;
	return o;
}

static int
key_is(const struct outcome *o, int d, const char *k)
{
	return d < o->depth && !o->f[d].is_array && strcmp(o->f[d].key, k) == 0;
}

static long
to_long(const char *s, size_t n)
{
	char tmp[24];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return strtol(tmp, NULL, 10);
}

/* Copies a reason, capped at a character boundary (yajl has checked the
 * string is UTF-8): a cut inside a character would make the record's
 * string invalid. */
static void
copy_reason(char *dst, const char *s, size_t n)
{
	if (n >= OUTCOME_REASON) {
		n = OUTCOME_REASON - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* The verdict from what is known so far; cheap, called on every change. */
static void
settle(struct outcome *o)
{
	o->result = o->meta_result;
	o->has_reason = o->has_meta_reason;
	o->reason = o->meta_reason;
	/* A wrapper that failed is the verdict: the inner call never ran
	 * (or WHM says so). Otherwise the call that ran decides. */
	if (o->meta_result != 0 && o->inner_result >= 0) {
		o->result = o->inner_result;
		if (o->inner_result == 0) {
			o->has_reason = o->has_inner_reason;
			o->reason = o->inner_reason;
		}
	}
	if (o->kind == OUTCOME_UAPI)
		o->uapi_status = o->result;
}

/* The inner call failed; a reason (s, n) of priority prio replaces one
 * of a lower priority (higher number): cpanelresult.error before a failed
 * item's reason before event.reason; the first of equals stays. */
static void
inner_fail(struct outcome *o, const char *s, size_t n, int prio)
{
	o->inner_result = 0;
	if (s != NULL && (!o->has_inner_reason || prio < o->inner_prio)) {
		copy_reason(o->inner_reason, s, n);
		o->has_inner_reason = 1;
		o->inner_prio = prio;
	}
	settle(o);
}

/* The object of frame d (just opened): one whose members make a verdict?
 * For cpanel, R is the cpanelresult object, or the top-level one when
 * the answer is bare (API 1, UAPI through cpanel, cpsrvd's own errors). */
static enum outcome_watch
watch_of(const struct outcome *o, int d)
{
	int b;

	if (o->kind == OUTCOME_UAPI)
		return d == 2 && key_is(o, 0, "data") && key_is(o, 1, "uapi") ?
		    WATCH_UAPI : WATCH_NONE;
	if (o->kind != OUTCOME_CPANEL || d == 0)
		return WATCH_NONE;
	b = key_is(o, 0, "cpanelresult");
	if (d == b + 1) {
		if (key_is(o, b, "event"))
			return WATCH_EVENT;
		if (key_is(o, b, "data"))
			return WATCH_DATA;
		if (key_is(o, b, "result"))
			return WATCH_URESULT;
	} else if (d == b + 2 && key_is(o, b, "data") && o->f[b + 1].is_array) {
		return WATCH_ITEM;
	}
	return WATCH_NONE;
}

/* The watched object closed: what it said. */
static void
watch_end(struct outcome *o)
{
	const char *why = o->w_has_reason ? o->w_reason : NULL;
	size_t n = why ? strlen(why) : 0;

	switch (o->watch) {
	case WATCH_DATA:
		/* cpsrvd's error shape is {"reason":..., "result":"0"}; an
		 * API 1 answer's data.result is the function's output (a
		 * "0" among them), so a result without a reason is no
		 * verdict. */
		if (o->w_result == 0 && why)
			inner_fail(o, why, n, 2);
		break;
	case WATCH_ITEM:
		if (o->w_result == 0)
			inner_fail(o, why, n, 2);
		break;
	case WATCH_EVENT:
	case WATCH_UAPI:
	case WATCH_URESULT:
		if (o->w_result == 0) {
			inner_fail(o, why, n, o->watch == WATCH_EVENT ? 3 : 2);
		} else if (o->w_result == 1 && o->inner_result == -1) {
			o->inner_result = 1;
			settle(o);
		}
		break;
	case WATCH_NONE:
		break;
	}
	o->watch = WATCH_NONE;
}

/* A scalar inside the watched object (depth > watch_frame). */
static void
watch_scalar(struct outcome *o, const char *s, size_t n, int is_string)
{
	int w = o->watch_frame;
	int uapi = o->watch == WATCH_UAPI || o->watch == WATCH_URESULT;

	if (o->depth == w + 1) {
		if (key_is(o, w, uapi ? "status" : "result"))
			o->w_result = to_long(s, n) ? 1 : 0;
		else if (!uapi && is_string && key_is(o, w, "reason") &&
		    !o->w_has_reason) {
			copy_reason(o->w_reason, s, n);
			o->w_has_reason = 1;
		}
	} else if (uapi && is_string && o->depth == w + 2 &&
	    key_is(o, w, "errors") && o->f[w + 1].is_array &&
	    o->f[w + 1].index == 0) {
		copy_reason(o->w_reason, s, n);
		o->w_has_reason = 1;
	}
}

/* Sub-call i said (s, n): in its metadata.result, or (uapi) in its
 * data.uapi.status. Its result is the UAPI call's verdict once known,
 * unless WHM failed the sub-call itself, as for a call on its own. */
static void
sub_verdict(struct outcome *o, size_t i, const char *s, size_t n, int uapi)
{
	/* sub-calls without a verdict before this one: unknown */
	while (o->nsubs <= i) {
		o->sub_meta[o->nsubs] = o->sub_uapi[o->nsubs] = -1;
		o->sub_result[o->nsubs++] = -1;
	}
	if (uapi)
		o->sub_uapi[i] = to_long(s, n) ? 1 : 0;
	else
		o->sub_meta[i] = to_long(s, n) ? 1 : 0;
	o->sub_result[i] = o->sub_meta[i] != 0 && o->sub_uapi[i] >= 0 ?
	    o->sub_uapi[i] : o->sub_meta[i];
}

/* A scalar arrived at the current depth: is it one we want? The depth is
 * tested first: most scalars of a large body are nothing to us. */
static void
scalar(struct outcome *o, const char *s, size_t n, int is_string)
{
	int b;

	/* Most scalars of a batch answer are in its sub-calls' data. */
	if (o->kind == OUTCOME_BATCH && o->depth != 2 && o->depth != 5 &&
	    o->depth != 6)
		return;
	/* metadata.result / metadata.reason */
	if (o->depth == 2 && key_is(o, 0, "metadata")) {
		if (key_is(o, 1, "result")) {
			o->meta_result = to_long(s, n) ? 1 : 0;
			settle(o);
		} else if (key_is(o, 1, "reason") && is_string) {
			copy_reason(o->meta_reason, s, n);
			o->has_meta_reason = 1;
			settle(o);
		}
		return;
	}
	switch (o->kind) {
	case OUTCOME_BATCH:
		/* data.result[i].metadata.result and, for uapi_cpanel,
		 * data.result[i].data.uapi.status */
		if ((o->depth == 5 || o->depth == 6) && key_is(o, 0, "data") &&
		    key_is(o, 1, "result") && o->f[2].is_array &&
		    o->f[2].index >= 0 && o->f[2].index < OUTCOME_MAX_SUBS) {
			if (o->depth == 5 && key_is(o, 3, "metadata") &&
			    key_is(o, 4, "result"))
				sub_verdict(o, (size_t)o->f[2].index, s, n, 0);
			else if (o->depth == 6 && key_is(o, 3, "data") &&
			    key_is(o, 4, "uapi") && key_is(o, 5, "status"))
				sub_verdict(o, (size_t)o->f[2].index, s, n, 1);
		}
		break;
	case OUTCOME_CPANEL:
		/* R.error: cPanel's own word that the call failed */
		b = o->depth >= 2 && key_is(o, 0, "cpanelresult");
		if (o->depth == b + 1 && is_string && n > 0 &&
		    key_is(o, b, "error"))
			inner_fail(o, s, n, 1);
		else if (o->watch != WATCH_NONE && o->depth > o->watch_frame)
			watch_scalar(o, s, n, is_string);
		break;
	case OUTCOME_UAPI:
		if (o->watch != WATCH_NONE && o->depth > o->watch_frame)
			watch_scalar(o, s, n, is_string);
		break;
	case OUTCOME_PLAIN:
		break;
	}
}

/* Every value in an array advances its index. */
static void
value_begins(struct outcome *o)
{
	if (o->depth > 0 && o->f[o->depth - 1].is_array)
		o->f[o->depth - 1].index++;
}

static int
on_null(void *ctx)
{
	struct outcome *o = oc(ctx);

	value_begins(o);
	return 1;
}

static int
on_bool(void *ctx, int b)
{
	struct outcome *o = oc(ctx);

	value_begins(o);
	scalar(o, b ? "1" : "0", 1, 0);
	return 1;
}

static int
on_number(void *ctx, const char *s, size_t n)
{
	struct outcome *o = oc(ctx);

	value_begins(o);
	scalar(o, s, n, 0);
	return 1;
}

static int
on_string(void *ctx, const unsigned char *s, size_t n)
{
	struct outcome *o = oc(ctx);

	value_begins(o);
	scalar(o, (const char *)s, n, 1);
	return 1;
}

static int
push(struct outcome *o, int is_array)
{
	value_begins(o);
	if (o->depth == OUTCOME_MAX_DEPTH)
		return 0;          /* cancels the parse: too deep to matter */
	o->f[o->depth].is_array = is_array;
	o->f[o->depth].index = -1;
	o->f[o->depth].key[0] = '\0';
	if (o->kind >= OUTCOME_CPANEL && o->watch == WATCH_NONE && !is_array &&
	    (o->watch = watch_of(o, o->depth)) != WATCH_NONE) {
		o->watch_frame = o->depth;
		o->w_result = -1;
		o->w_has_reason = 0;
	}
	o->depth++;
	return 1;
}

static int
on_start_map(void *ctx)
{
	return push(oc(ctx), 0);
}

static int
on_start_array(void *ctx)
{
	return push(oc(ctx), 1);
}

static int
on_end(void *ctx)
{
	struct outcome *o = oc(ctx);

	if (o->depth > 0)
		o->depth--;
	if (o->watch != WATCH_NONE && o->depth == o->watch_frame)
		watch_end(o);
	return 1;
}

static int
on_key(void *ctx, const unsigned char *k, size_t n)
{
	struct outcome *o = oc(ctx);
	char *key = o->f[o->depth - 1].key;

	/* A key with a NUL in it is no key we look for ("metadata\u0000"
	 * must not pass for "metadata"). */
	if (n < sizeof(o->f[0].key) && memchr(k, '\0', n) == NULL) {
		memcpy(key, k, n);
		key[n] = '\0';
	} else {
		strcpy(key, "~");
	}
	/* The envelope's data, when nothing in it is wanted: stop yajl here
	 * and let the skipper step over the value (see outcome_feed). */
	if (o->skip_data && o->skip == SKIP_NONE && o->depth == 1 &&
	    strcmp(key, "data") == 0) {
		o->skip = SKIP_COLON;
		return 0;
	}
	return 1;
}

static const yajl_callbacks callbacks = {
	on_null, on_bool, NULL, NULL, on_number, on_string,
	on_start_map, on_key, on_end, on_start_array, on_end
};

int
outcome_init(struct outcome *o)
{
	memset(o, 0, offsetof(struct outcome, f));
	o->kind = OUTCOME_PLAIN;
	o->result = -1;
	o->uapi_status = -1;
	o->meta_result = -1;
	o->inner_result = -1;
	o->reason = o->meta_reason;
	o->h = yajl_alloc(&callbacks, NULL, o);
	if (o->h == NULL)
		return -1;
	return 0;
}

void
outcome_set_kind(struct outcome *o, enum outcome_kind kind)
{
	o->kind = kind;
	o->skip_data = kind == OUTCOME_PLAIN;
	settle(o);
}

void
outcome_fini(struct outcome *o)
{
	if (o->h)
		yajl_free(o->h);
	o->h = NULL;
}

/* The bytes skip_bytes stops at: inside a string, the quote and the
 * backslash; between tokens, what opens or closes a string or a container,
 * the comma that ends a scalar, and a backslash (no JSON there). Everything
 * else is stepped over in a tight loop (this runs over every byte of a
 * large answer). */
static const unsigned char stop_in_string[256] = { ['"'] = 1, ['\\'] = 1 };
static const unsigned char stop_between[256] = {
	['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1, [','] = 1,
	['\\'] = 1,
};

/* Inside a container the skipper goes 64 bytes at a time, the way
 * simdjson finds JSON structure: one bit per byte for quotes, backslashes,
 * openers and closers; escapes and strings worked out on the bit masks;
 * brackets are counted one by one only in a block where the value may end.
 * Outside a container, and for the last bytes of a piece, the byte loop of
 * skip_bytes goes on. */
struct block {
	uint64_t quote, bslash, open, close;
};

#if defined(__SSE2__)
static void
block_masks(const unsigned char *p, struct block *b)
{
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
	const __m128i lo = _mm_set1_epi8(0x20);
	const __m128i op = _mm_set1_epi8('{'), cl = _mm_set1_epi8('}');
	__m128i v, f;
	int k;

	memset(b, 0, sizeof(*b));
	for (k = 0; k < 4; k++) {
		v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
		f = _mm_or_si128(v, lo);    /* '[' -> '{', ']' -> '}' */
		b->quote |= (uint64_t)(unsigned)_mm_movemask_epi8(
		    _mm_cmpeq_epi8(v, q)) << (16 * k);
		b->bslash |= (uint64_t)(unsigned)_mm_movemask_epi8(
		    _mm_cmpeq_epi8(v, bs)) << (16 * k);
		b->open |= (uint64_t)(unsigned)_mm_movemask_epi8(
		    _mm_cmpeq_epi8(f, op)) << (16 * k);
		b->close |= (uint64_t)(unsigned)_mm_movemask_epi8(
		    _mm_cmpeq_epi8(f, cl)) << (16 * k);
	}
}
#else
static void
block_masks(const unsigned char *p, struct block *b)
{
	int k;

	memset(b, 0, sizeof(*b));
	for (k = 0; k < 64; k++) {
		b->quote |= (uint64_t)(p[k] == '"') << k;
		b->bslash |= (uint64_t)(p[k] == '\\') << k;
		b->open |= (uint64_t)(p[k] == '{' || p[k] == '[') << k;
		b->close |= (uint64_t)(p[k] == '}' || p[k] == ']') << k;
	}
}
#endif

/* Bit i of the result is the XOR of bits 0..i of x: with x the string
 * quotes, the bytes from an opening quote up to its closing one. */
static uint64_t
prefix_xor(uint64_t x)
{
	x ^= x << 1;
	x ^= x << 2;
	x ^= x << 4;
	x ^= x << 8;
	x ^= x << 16;
	x ^= x << 32;
	return x;
}

/* Bits set in x. (__builtin_popcountll is a libgcc call on x86-64
 * without -mpopcnt, slower than this.) */
static int
popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (int)((x * 0x0101010101010101ULL) >> 56);
}

/* skip_block's answer for a backslash outside a string. */
#define BLOCK_NOT_JSON SIZE_MAX

/* One block of 64 bytes at p, inside the value (sdepth > 0). Returns 0
 * when the value goes on past it, BLOCK_NOT_JSON, else the offset just
 * after the byte that closes the value. */
static size_t
skip_block(const unsigned char *p, int *in_string, int *escaped, long *sdepth)
{
	struct block b;
	uint64_t esc = (uint64_t)*escaped, bs, instr, open, close, all, bit;
	uint64_t stray;
	int k, carry = 0;

	block_masks(p, &b);
	/* Escaped bytes: the one after each backslash not itself escaped.
	 * Backslashes are rare in WHM's answers; this loop runs per one. */
	for (bs = b.bslash; bs != 0; bs &= bs - 1) {
		k = __builtin_ctzll(bs);
		if (esc >> k & 1)
			continue;
		if (k == 63)
			carry = 1;
		else
			esc |= (uint64_t)1 << (k + 1);
	}
	instr = prefix_xor(b.quote & ~esc);
	if (*in_string)
		instr = ~instr;
	*in_string = (int)(instr >> 63);
	*escaped = carry && *in_string;
	open = b.open & ~instr;
	close = b.close & ~instr;
	/* Outside strings a backslash is no JSON (the byte loop would read
	 * on from it differently): the same verdict however the body is
	 * cut. Only bytes up to the value's end count: what follows is the
	 * envelope's, for yajl to judge. */
	stray = b.bslash & ~instr;
	/* Fewer closers than open containers: the value cannot end here. */
	if (popcount64(close) < *sdepth) {
		*sdepth += popcount64(open) - popcount64(close);
		return stray ? BLOCK_NOT_JSON : 0;
	}
	for (all = open | close; all != 0; all &= all - 1) {
		k = __builtin_ctzll(all);
		bit = (uint64_t)1 << k;
		if (open & bit)
			++*sdepth;
		else if (--*sdepth == 0)
			return stray & (bit - 1) ? BLOCK_NOT_JSON : (size_t)k + 1;
	}
	return stray ? BLOCK_NOT_JSON : 0;
}

/* Steps over the value of the top-level "data" without tokenising it:
 * strings (with escapes) and bracket depth are all that matter. Returns
 * how many bytes of p it took; o->skip is SKIP_DONE when the value ended. */
static size_t
skip_bytes(struct outcome *o, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	int in_string = o->in_string, escaped = o->escaped;
	long sdepth = o->sdepth;
	size_t i = 0, ret = n;
	unsigned char ch;

	/* Before the value: the colon, then blanks (yajl's blanks, which
	 * include form feed and vertical tab). */
	while (i < n && !in_string && o->skip != SKIP_IN) {
		ch = u[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		    ch == '\f' || ch == '\v') {
			i++;
		} else if (o->skip == SKIP_COLON) {
			if (ch != ':') {
				o->failed = 1;
				return n;
			}
			o->skip = SKIP_VALUE;
			i++;
		} else {
			o->skip = SKIP_IN;
		}
	}
	while (i < n) {
		if (sdepth > 0 && n - i >= 64) {
			size_t end = skip_block(u + i, &in_string, &escaped,
			    &sdepth);

			if (end == BLOCK_NOT_JSON) {
				o->failed = 1;
				return n;
			}
			if (end > 0) {
				o->skip = SKIP_DONE;
				ret = i + end;
				break;
			}
			i += 64;
			continue;
		}
		if (in_string) {
			if (escaped) {
				escaped = 0;
				i++;
				continue;
			}
			while (i < n && !stop_in_string[u[i]])
				i++;
			if (i == n)
				break;
			if (u[i++] == '\\') {
				escaped = 1;
				continue;
			}
			in_string = 0;
			if (sdepth == 0) {            /* a string value */
				o->skip = SKIP_DONE;
				ret = i;
				break;
			}
			continue;
		}
		while (i < n && !stop_between[u[i]])
			i++;
		if (i == n)
			break;
		ch = u[i];
		if (ch == '\\') {               /* outside a string: no JSON */
			o->failed = 1;
			return n;
		}
		if (ch == '"') {
			in_string = 1;
		} else if (ch == '{' || ch == '[') {
			sdepth++;
		} else if (sdepth == 0) {
			/* the end of a scalar: the delimiter is the
			 * envelope's, left for yajl */
			o->skip = SKIP_DONE;
			ret = i;
			break;
		} else if (ch != ',' && --sdepth == 0) {
			o->skip = SKIP_DONE;
			ret = i + 1;
			break;
		}
		i++;
	}
	o->in_string = in_string;
	o->escaped = escaped;
	o->sdepth = sdepth;
	return ret;
}

void
outcome_feed(struct outcome *o, const char *p, size_t n)
{
	static const unsigned char resume[] = "{\"data\":0";
	yajl_status st;
	size_t used;

	while (n > 0 && !o->failed && !o->done && o->h != NULL) {
		if (o->skip != SKIP_NONE && o->skip != SKIP_DONE &&
		    o->skip != SKIP_RESUMED) {
			used = skip_bytes(o, p, n);
			p += used;
			n -= used;
			if (o->skip != SKIP_DONE)
				return;
			/* A new parser takes the rest of the envelope, after
			 * a stand-in for the data it did not see. */
			yajl_free(o->h);
			o->depth = 0;
			o->skip = SKIP_RESUMED;
			if ((o->h = yajl_alloc(&callbacks, NULL, o)) == NULL ||
			    yajl_parse(o->h, resume, sizeof(resume) - 1) !=
			    yajl_status_ok) {
				o->failed = 1;
				return;
			}
			continue;
		}
		o->since_event += n;
		st = yajl_parse(o->h, (const unsigned char *)p, n);
		if (st == yajl_status_client_canceled && o->skip == SKIP_COLON) {
			used = yajl_get_bytes_consumed(o->h);
			p += used;
			n -= used;
			continue;
		}
		if (st != yajl_status_ok || o->since_event > OUTCOME_MAX_TOKEN)
			o->failed = 1;
		return;
	}
}

void
outcome_finish(struct outcome *o)
{
	if (o->failed || o->done || o->h == NULL)
		return;
	/* Ended inside the skipped data: not a complete document. */
	if (o->skip != SKIP_NONE && o->skip != SKIP_RESUMED)
		o->failed = 1;
	else if (yajl_complete_parse(o->h) != yajl_status_ok)
		o->failed = 1;
	o->done = 1;
}

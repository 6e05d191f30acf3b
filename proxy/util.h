/* util.h - small shared helpers: growable buffers, a per-request arena,
 * hex, SHA-256 and time formatting. Nothing here knows about HTTP or WHM. */
#ifndef WHMGATE_UTIL_H
#define WHMGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define WHMGATE_VERSION "0.1.0"

/* A growable byte buffer. Always NUL-terminated after the first append. */
struct buf {
	char *p;
	size_t len, cap;
};

void buf_init(struct buf *b);
void buf_fini(struct buf *b);          /* frees; b may be reused after buf_init */
int buf_reserve(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_addu(struct buf *b, unsigned long long v);  /* decimal */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Detaches the contents: the caller owns the returned string (never NULL
 * unless allocation failed). */
char *buf_take(struct buf *b);

/* A bump allocator for one request's strings: freed all at once. */
struct arena_chunk;
struct arena {
	struct arena_chunk *head;
};

void arena_init(struct arena *a);
void arena_fini(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);

void *xcalloc(size_t n, size_t size);  /* aborts on failure: start-up only */
char *xstrdup(const char *s);          /* aborts on failure: start-up only */

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
int utf8_valid(const void *s, size_t n);
/* v in decimal, NUL-terminated, into out (at least 21 bytes); returns
 * the length. For hot paths where printf costs more than the work. */
size_t fmt_u64(char *out, unsigned long long v);
void hex_encode(const unsigned char *in, size_t n, char *out); /* out: 2n+1 */
int hex_decode(const char *in, unsigned char *out, size_t n); /* exactly 2n hex digits */
int hex_value(int c);      /* 0..15 for a hex digit, else -1 */

/* SHA-256 of n bytes into out[32]. */
void sha256(const void *p, size_t n, unsigned char out[32]);

/* Wall clock as RFC 3339 UTC with microseconds: 2026-11-28T10:28:48.123456Z.
 * out must hold 32 bytes. */
void time_rfc3339(char *out, size_t outlen);
/* Monotonic milliseconds, as a double for sub-millisecond durations. */
double time_ms(void);
/* Parses "YYYY-MM-DDTHH:MM:SSZ" (optionally with fraction); -1 if bad. */
int time_parse_rfc3339(const char *s, int64_t *out);

/* Wipes and frees a secret string. */
void secret_free(char *s);

#endif

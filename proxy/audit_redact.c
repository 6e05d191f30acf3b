/* audit_redact.c - see audit_redact.h.
 *
 * Ownership: nothing is kept; a decoded copy of a long string is freed
 * before return. Safe from any thread: the conf is only read. */
#define _GNU_SOURCE
#include "audit_redact.h"
#include "conf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const secret_words[] = {
	"pass", "secret", "token", "key", "hash", "session", "private",
	"passphrase", "auth", NULL
};

int
audit_redacted_name(const struct conf *c, const char *base)
{
	char low[128];
	size_t i, n = strlen(base);

	/* Lowered once, then plain strstr: strcasestr sets up its two-way
	 * search for every word, which showed in profiles. */
	if (n < sizeof(low)) {
		for (i = 0; i <= n; i++)
			low[i] = base[i] >= 'A' && base[i] <= 'Z' ?
			    (char)(base[i] + 'a' - 'A') : base[i];
		for (i = 0; secret_words[i]; i++)
			if (strstr(low, secret_words[i]))
				return 1;
	} else {
		for (i = 0; secret_words[i]; i++)
			if (strcasestr(base, secret_words[i]))
				return 1;
	}
	for (i = 0; c && i < c->audit.nredact; i++)
		if (strcmp(base, c->audit.redact[i]) == 0)
			return 1;
	return 0;
}

/* The value rule on one spelling of a string. */
static int
secret_in(const struct conf *c, const char *v)
{
	const char *p = v;
	size_t i;

	while ((p = strstr(p, "whmg_")) != NULL) {
		if (strspn(p + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") >= 16)
			return 1;
		p += 5;
	}
	for (i = 0; c && i < c->nclients; i++)
		if (c->clients[i].whm_token && c->clients[i].whm_token[0] &&
		    strstr(v, c->clients[i].whm_token))
			return 1;
	return 0;
}

static int
hexdig(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* One round of %XX decoding in place ('+' stays: it never spells a key
 * character); returns 1 if anything was decoded. */
static int
pct_decode(char *s)
{
	char *r = s, *w = s;
	int hi, lo, any = 0;

	while (*r) {
		if (r[0] == '%' && (hi = hexdig((unsigned char)r[1])) >= 0 &&
		    (lo = hexdig((unsigned char)r[2])) >= 0 && (hi || lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
			any = 1;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return any;
}

/* A value holding something shaped like a whmgate key, or a configured
 * WHM token, is a secret whatever its name; so is one that holds it once
 * percent-decoded (a refused path is recorded as sent, and
 * /json-api/%77hmg_... names the key to whoever decodes it). Decoding is
 * repeated a few times so %2577 (an escaped escape) is caught too. */
int
audit_secret_value(const struct conf *c, const char *v)
{
	char small[512], *copy;
	size_t n;
	int i, found;

	if (secret_in(c, v))
		return 1;
	if (strchr(v, '%') == NULL)
		return 0;
	n = strlen(v);
	copy = n < sizeof(small) ? small : malloc(n + 1);
	if (copy == NULL)
		return 1;               /* cannot tell: keep it out */
	memcpy(copy, v, n + 1);
	found = 0;
	for (i = 0; i < 4 && !found && pct_decode(copy); i++)
		found = secret_in(c, copy);
	if (copy != small)
		free(copy);
	return found;
}

/* 1 if the allow entry pins this parameter with an enum that holds v:
 * then v is one of the config's own public values (showpass=n) and an
 * auditor may read it whatever the name says. A value outside the enum
 * (a refused call's) is not public. */
int
audit_pinned(const struct allow_rule *rule, const char *base, const char *v)
{
	const struct constraint *co;
	size_t i, k;

	for (i = 0; rule && i < rule->ncons; i++) {
		co = &rule->cons[i];
		if (!co->has_enum || strcmp(co->param, base) != 0)
			continue;
		for (k = 0; k < co->nenums; k++)
			if (strcmp(co->enums[k], v) == 0)
				return 1;
		return 0;
	}
	return 0;
}

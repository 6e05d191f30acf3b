/* unit_conf.h - helpers for the unit tests that need a loaded conf.
 * Header-only: each test binary is built from its one .c file. */
#ifndef WHMGATE_UNIT_CONF_H
#define WHMGATE_UNIT_CONF_H

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "util.h"

/* "sha256:<hex>" of s, computed here with OpenSSL rather than with the
 * code under test. */
static inline void
unit_sha256_line(const char *s, char out[72])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char h[32];
	unsigned int n = 32, i;

	EVP_Digest(s, strlen(s), h, &n, EVP_sha256(), NULL);
	memcpy(out, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[h[i] >> 4];
		out[8 + 2 * i] = hex[h[i] & 15];
	}
	out[71] = '\0';
}

/* Loads a config made of a listener, an upstream, the extra top-level
 * members (NULL: none) and the clients object, with read_secrets 0.
 * Prints the problems and returns NULL when it does not load. */
static inline struct conf *
unit_conf(const char *extra, const char *clients)
{
	struct buf text, errs;
	struct conf *c;

	buf_init(&text);
	buf_init(&errs);
	buf_printf(&text, "{\"listen\": [\"127.0.0.1:8080\"],\n"
	    "\"upstream\": {\"url\": \"https://whm.example.com\"},\n"
	    "%s%s\"clients\": %s}\n", extra ? extra : "", extra ? ",\n" : "",
	    clients);
	c = conf_parse("unit.json", text.p, text.len, 0, &errs);
	if (c == NULL)
		printf("unit_conf: config refused:\n%s", errs.p ? errs.p : "");
	buf_fini(&text);
	buf_fini(&errs);
	return c;
}

#endif

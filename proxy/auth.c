/* auth.c - see auth.h.
 *
 * Only SHA-256 hashes of keys are kept. Every configured hash is compared,
 * with CRYPTO_memcmp, whether or not an earlier one matched, so the time
 * taken says nothing about which key (or how much of it) was right. All
 * failures of identity answer the same 401. */
#include "auth.h"
#include "conf.h"
#include "util.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

const char *
auth_scheme_name(enum auth_scheme s)
{
	switch (s) {
	case AUTH_BEARER:
		return "bearer";
	case AUTH_WHM:
		return "whm";
	case AUTH_CERT:
		return "cert";
	default:
		return NULL;
	}
}

static int
deny(struct auth_result *out, int status, const char *code, const char *reason)
{
	out->status = status;
	out->code = code;
	out->reason = reason;
	return -1;
}

/* Index of the client whose key hash matches, scanning all of them. */
static const struct client *
match_key(const struct conf *c, const unsigned char h[32], const char *id,
    size_t idlen)
{
	const struct client *found = NULL;
	size_t i, k;
	int eq;

	for (i = 0; i < c->nclients; i++) {
		const struct client *cl = &c->clients[i];
		for (k = 0; k < cl->nkeys; k++) {
			eq = CRYPTO_memcmp(cl->keys[k], h, 32) == 0;
			if (eq && found == NULL && (id == NULL ||
			    (strlen(cl->id) == idlen &&
			    memcmp(cl->id, id, idlen) == 0)))
				found = cl;
		}
	}
	return found;
}

static const struct client *
match_cert(const struct conf *c, const unsigned char fp[32])
{
	const struct client *found = NULL;
	size_t i, k;

	for (i = 0; i < c->nclients; i++)
		for (k = 0; k < c->clients[i].ncerts; k++)
			if (CRYPTO_memcmp(c->clients[i].certs[k], fp, 32) == 0 &&
			    found == NULL)
				found = &c->clients[i];
	return found;
}

int
auth_check(const struct conf *c, const char *authorization,
    const unsigned char *cert_fp, int family, const unsigned char *addr,
    int64_t now, struct auth_result *out)
{
	const struct client *cl = NULL, *by_cert = NULL;
	const char *cred, *colon, *id = NULL;
	unsigned char h[32];
	size_t idlen = 0, i;
	int ok;

	memset(out, 0, sizeof(*out));
	if (cert_fp) {
		/* A verified certificate that names no client is refused
		 * even with a valid key. */
		if ((by_cert = match_cert(c, cert_fp)) == NULL)
			return deny(out, 401, "unauthenticated",
			    "unknown client certificate");
		out->scheme = AUTH_CERT;
		cl = by_cert;
	}
	if (authorization) {
		if (strncasecmp(authorization, "Bearer ", 7) == 0) {
			out->scheme = by_cert ? AUTH_CERT : AUTH_BEARER;
			cred = authorization + 7;
		} else if (strncasecmp(authorization, "whm ", 4) == 0) {
			out->scheme = by_cert ? AUTH_CERT : AUTH_WHM;
			cred = authorization + 4;
			if ((colon = strchr(cred, ':')) == NULL)
				return deny(out, 401, "unauthenticated",
				    "malformed credentials");
			id = cred;
			idlen = (size_t)(colon - cred);
			cred = colon + 1;
		} else {
			return deny(out, 401, "unauthenticated",
			    "unsupported authorization scheme");
		}
		while (*cred == ' ')
			cred++;
		sha256(cred, strlen(cred), h);
		cl = match_key(c, h, id, idlen);
		OPENSSL_cleanse(h, sizeof(h));
		if (cl == NULL)
			return deny(out, 401, "unauthenticated",
			    "invalid credentials");
		if (by_cert && by_cert != cl)
			return deny(out, 401, "unauthenticated",
			    "certificate and key name different clients");
	}
	if (cl == NULL)
		return deny(out, 401, "unauthenticated", "credentials required");
	if (cl->expires && now >= cl->expires)
		return deny(out, 401, "unauthenticated", "invalid credentials");
	out->client = cl;
	if (cl->has_source) {
		ok = 0;
		for (i = 0; i < cl->nsource && !ok; i++)
			ok = cidr_match(&cl->source[i], family, addr);
		if (!ok)
			return deny(out, 403, "source_not_allowed",
			    "source address not allowed for this client");
	}
	return 0;
}

int
auth_keygen(char key[49], char line[72])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[33], h[32];
	size_t i, o = 5;
	unsigned int v;

	/* 256 bits; a 33rd zero byte pads the last base64 group, of which
	 * only the first 43 characters are kept. */
	if (RAND_bytes(raw, 32) != 1)
		return -1;
	raw[32] = 0;
	memcpy(key, "whmg_", 5);
	for (i = 0; i < 33; i += 3) {
		v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		key[o++] = b64[v >> 18 & 63];
		key[o++] = b64[v >> 12 & 63];
		key[o++] = b64[v >> 6 & 63];
		key[o++] = b64[v & 63];
	}
	key[48] = '\0';
	sha256(key, 48, h);
	memcpy(line, "sha256:", 7);
	hex_encode(h, 32, line + 7);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

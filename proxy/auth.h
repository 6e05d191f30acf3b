/* auth.h - credentials to a client identity (SPEC section 3). Pure apart
 * from the clock the caller passes in. */
#ifndef WHMGATE_AUTH_H
#define WHMGATE_AUTH_H

#include <stdint.h>

struct conf;
struct client;

enum auth_scheme { AUTH_NONE, AUTH_BEARER, AUTH_WHM, AUTH_CERT };

struct auth_result {
	const struct client *client;  /* set when the client is identified */
	enum auth_scheme scheme;
	int status;                   /* 0 when authenticated, else 400/401/403 */
	const char *code;
	const char *reason;
};

/* Authenticates a request. authorization may be NULL; cert_fp is the
 * SHA-256 of a verified client certificate or NULL. family/addr is the
 * peer (AF_INET: 4 bytes, AF_INET6: 16). Returns 0 when authenticated. */
int auth_check(const struct conf *c, const char *authorization,
    const unsigned char *cert_fp, int family, const unsigned char *addr,
    int64_t now, struct auth_result *out);

const char *auth_scheme_name(enum auth_scheme s);

/* Writes a new key ("whmg_" + 43 base64url chars) and its config line
 * ("sha256:<hex>"). Returns 0 or -1. */
int auth_keygen(char key[49], char line[72]);

#endif

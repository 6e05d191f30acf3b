/* test_auth.c - client authentication (SPEC section 3), auth_keygen, and
 * the CIDR helpers auth relies on. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "auth.h"
#include "unit.h"
#include "unit_conf.h"

#define NOW 1700000000          /* 2023-11-14: before "expires" below */
#define LATER 1893456000        /* 2030-01-01 */

static char k_billing[49], k_ops[49], k_open[49], k_cert[49];
static unsigned char fp_cert[32], fp_unknown[32];

static struct conf *
make_conf(void)
{
	char l1[72], l2[72], l3[72], l4[72], fp[65], clients[4096];

	CHECK(auth_keygen(k_billing, l1) == 0);
	CHECK(auth_keygen(k_ops, l2) == 0);
	CHECK(auth_keygen(k_open, l3) == 0);
	CHECK(auth_keygen(k_cert, l4) == 0);
	memset(fp_cert, 0xab, 32);
	memset(fp_unknown, 0xcd, 32);
	hex_encode(fp_cert, 32, fp);
	snprintf(clients, sizeof(clients), "{"
	    "\"billing\": {\"keys\": [\"%s\"], \"source\": [\"10.0.0.0/8\","
	    " \"127.0.0.1/32\", \"2001:db8::/32\"], \"whm_user\": \"root\","
	    " \"whm_token\": {\"env\": \"T\"}, \"allow\": {\"listaccts\": {}}},"
	    "\"ops\": {\"keys\": [\"%s\"], \"source\": [\"10.0.0.0/8\"],"
	    " \"expires\": \"2027-06-30T00:00:00Z\", \"whm_user\": \"root\","
	    " \"whm_token\": {\"env\": \"T\"}, \"allow\": {}},"
	    "\"open\": {\"keys\": [\"%s\"], \"whm_user\": \"r1\","
	    " \"whm_token\": {\"file\": \"/nonexistent\"}, \"allow\": {}},"
	    "\"tls\": {\"keys\": [\"%s\"], \"certs\": [\"sha256:%s\"],"
	    " \"whm_user\": \"r2\", \"whm_token\": {\"env\": \"T\"},"
	    " \"allow\": {}}}", l1, l2, l3, l4, fp);
	return unit_conf(NULL, clients);
}

struct addr {
	int family;
	unsigned char b[16];
};

static struct addr
ip(const char *s)
{
	struct addr a;

	memset(&a, 0, sizeof(a));
	a.family = strchr(s, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(a.family, s, a.b) != 1)
		printf("bad test address %s\n", s);
	return a;
}

/* Runs auth_check with "<scheme> <cred>" (scheme NULL: no header). */
static int
try(const struct conf *c, const char *scheme, const char *cred,
    const unsigned char *fp, const char *from, long long now,
    struct auth_result *r)
{
	char hdr[256];
	struct addr a = ip(from);

	if (scheme)
		snprintf(hdr, sizeof(hdr), "%s %s", scheme, cred);
	return auth_check(c, scheme ? hdr : NULL, fp, a.family, a.b, now, r);
}

static void
test_schemes(const struct conf *c)
{
	const char *deny_reason = NULL;
	char cred[128];
	struct {
		const char *scheme, *cred, *from;
		long long now;
		const char *client;     /* NULL: refused */
		int status;
		enum auth_scheme how;
	} t[] = {
		{ "Bearer", k_billing, "10.1.2.3", NOW, "billing", 0, AUTH_BEARER },
		{ "bearer", k_billing, "10.1.2.3", NOW, "billing", 0, AUTH_BEARER },
		{ "BEARER", k_billing, "127.0.0.1", NOW, "billing", 0, AUTH_BEARER },
		{ "bEaReR", k_open, "192.0.2.1", NOW, "open", 0, AUTH_BEARER },
		{ "Bearer", k_ops, "10.9.9.9", NOW, "ops", 0, AUTH_BEARER },
		{ "Bearer", k_open, "2001:db8::5", LATER, "open", 0, AUTH_BEARER },
		/* unknown, wrong, expired: one 401 */
		{ "Bearer", "whmg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		  "10.1.2.3", NOW, NULL, 401, AUTH_NONE },
		{ "Bearer", "", "10.1.2.3", NOW, NULL, 401, AUTH_NONE },
		{ "Bearer", k_ops, "10.1.2.3", LATER, NULL, 401, AUTH_NONE },
		{ "Bearer", k_ops, "10.1.2.3", 1814313600LL, NULL, 401, AUTH_NONE },
		{ "Basic", k_billing, "10.1.2.3", NOW, NULL, 401, AUTH_NONE },
		{ "Token", k_billing, "10.1.2.3", NOW, NULL, 401, AUTH_NONE },
		/* the source is checked after the key, the clock before it */
		{ "Bearer", k_billing, "192.168.1.1", NOW, "billing", 403,
		  AUTH_BEARER },
		{ "Bearer", k_billing, "127.0.0.2", NOW, "billing", 403,
		  AUTH_BEARER },
		{ "Bearer", k_billing, "11.0.0.1", NOW, "billing", 403,
		  AUTH_BEARER },
		{ "Bearer", k_billing, "2001:db8:ffff::1", NOW, "billing", 0,
		  AUTH_BEARER },
		{ "Bearer", k_billing, "2001:db9::1", NOW, "billing", 403,
		  AUTH_BEARER },
		{ "Bearer", k_billing, "::1", NOW, "billing", 403, AUTH_BEARER },
		{ "Bearer", k_ops, "2001:db8::1", NOW, "ops", 403, AUTH_BEARER },
		{ "Bearer", k_ops, "192.168.1.1", LATER, NULL, 401, AUTH_NONE },
	};
	struct auth_result r;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = try(c, t[i].scheme, t[i].cred, NULL, t[i].from, t[i].now,
		    &r);
		CHECK(rc == (t[i].status ? -1 : 0));
		CHECK(r.status == t[i].status);
		if (r.status != t[i].status)
			printf("  case %zu: status %d (%s), want %d\n", i,
			    r.status, r.reason ? r.reason : "-", t[i].status);
		if (t[i].status == 403)
			CHECK_STR(r.code, "source_not_allowed");
		if (t[i].status == 0 || t[i].status == 403) {
			CHECK(r.client != NULL && strcmp(r.client->id,
			    t[i].client) == 0);
			CHECK(r.scheme == t[i].how);
		}
		if (t[i].status == 401) {
			CHECK_STR(r.code, "unauthenticated");
			CHECK(r.client == NULL || rc == -1);
		}
	}
	CHECK_STR(auth_scheme_name(AUTH_BEARER), "bearer");
	CHECK_STR(auth_scheme_name(AUTH_WHM), "whm");
	CHECK_STR(auth_scheme_name(AUTH_CERT), "cert");

	/* whm <client-id>:<key>, scheme case-insensitive. */
	snprintf(cred, sizeof(cred), "billing:%s", k_billing);
	CHECK(try(c, "whm", cred, NULL, "10.0.0.1", NOW, &r) == 0);
	CHECK(r.scheme == AUTH_WHM && r.client == conf_client(c, "billing"));
	CHECK(try(c, "WHM", cred, NULL, "10.0.0.1", NOW, &r) == 0);
	CHECK(try(c, "Whm", cred, NULL, "10.0.0.1", NOW, &r) == 0);
	static const char *const wrong_ids[] = { "ops", "billin", "billingx",
	    "Billing", "", "billing:" };
	for (i = 0; i < sizeof(wrong_ids) / sizeof(wrong_ids[0]); i++) {
		snprintf(cred, sizeof(cred), "%s:%s", wrong_ids[i], k_billing);
		CHECK(try(c, "whm", cred, NULL, "10.0.0.1", NOW, &r) == -1);
		CHECK(r.status == 401 && r.client == NULL);
		if (deny_reason == NULL)
			deny_reason = r.reason;
	}
	snprintf(cred, sizeof(cred), "ops:%s", k_billing);
	CHECK(try(c, "whm", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);
	CHECK(try(c, "whm", k_billing, NULL, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);
	snprintf(cred, sizeof(cred), "ops:%s", k_ops);
	CHECK(try(c, "whm", cred, NULL, "10.0.0.1", LATER, &r) == -1);
	CHECK(r.status == 401);

	/* A key with a byte more, a byte less or one byte changed. */
	snprintf(cred, sizeof(cred), "%sx", k_billing);
	CHECK(try(c, "Bearer", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	snprintf(cred, sizeof(cred), "%.47s", k_billing);
	CHECK(try(c, "Bearer", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	snprintf(cred, sizeof(cred), "%s", k_billing);
	cred[20] = cred[20] == 'A' ? 'B' : 'A';
	CHECK(try(c, "Bearer", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);

	/* Unknown client, wrong key, expired key: the same answer. */
	CHECK(try(c, "Bearer", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	deny_reason = r.reason;
	CHECK(try(c, "Bearer", k_ops, NULL, "10.0.0.1", LATER, &r) == -1);
	CHECK(r.status == 401 && deny_reason && r.reason &&
	    strcmp(deny_reason, r.reason) == 0);
	snprintf(cred, sizeof(cred), "ops:%s", k_billing);
	CHECK(try(c, "whm", cred, NULL, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401 && deny_reason && r.reason &&
	    strcmp(deny_reason, r.reason) == 0);

	/* No Authorization header at all. */
	CHECK(try(c, NULL, NULL, NULL, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401 && r.client == NULL);
	CHECK_STR(r.code, "unauthenticated");
}

static void
test_certs(const struct conf *c)
{
	struct auth_result r;
	char cred[128];

	CHECK(try(c, NULL, NULL, fp_cert, "10.0.0.1", NOW, &r) == 0);
	CHECK(r.scheme == AUTH_CERT && r.client == conf_client(c, "tls"));
	CHECK(try(c, "Bearer", k_cert, fp_cert, "10.0.0.1", NOW, &r) == 0);
	CHECK(r.client == conf_client(c, "tls"));
	/* Certificate and key of different clients. */
	CHECK(try(c, "Bearer", k_open, fp_cert, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);
	snprintf(cred, sizeof(cred), "open:%s", k_open);
	CHECK(try(c, "whm", cred, fp_cert, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);
	/* A verified certificate that names no client, even with a key. */
	CHECK(try(c, "Bearer", k_open, fp_unknown, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401 && r.client == NULL);
	CHECK(try(c, NULL, NULL, fp_unknown, "10.0.0.1", NOW, &r) == -1);
	CHECK(r.status == 401);
}

static int
b64url(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

static void
test_keygen(const struct conf *c)
{
	char keys[32][49], line[72], mine[72];
	struct auth_result r;
	int i, j, alphabet, dup = 0;

	(void)c;
	for (i = 0; i < 32; i++) {
		memset(keys[i], 0x7f, sizeof(keys[i]));
		memset(line, 0x7f, sizeof(line));
		CHECK(auth_keygen(keys[i], line) == 0);
		CHECK(strlen(keys[i]) == 48);
		CHECK(strncmp(keys[i], "whmg_", 5) == 0);
		for (j = 5, alphabet = 1; j < 48; j++)
			alphabet &= b64url(keys[i][j]);
		CHECK(alphabet);
		/* 43 characters carry 258 bits: the last one's low two bits
		 * are padding, so only canonical characters may end a key. */
		CHECK(strchr("AEIMQUYcgkosw048", keys[i][47]) != NULL);
		CHECK(strlen(line) == 71);
		unit_sha256_line(keys[i], mine);
		CHECK_STR(line, mine);
		for (j = 0; j < i; j++)
			dup |= strcmp(keys[i], keys[j]) == 0;
	}
	CHECK(!dup);
	/* The key authenticates against the keys of the client it is for. */
	CHECK(try(c, "Bearer", k_open, NULL, "10.0.0.1", NOW, &r) == 0);
}

static void
test_cidr(void)
{
	static const struct { const char *s; int ok, bits; } parse[] = {
		{ "10.0.0.0/8", 1, 8 }, { "10.0.0.1/8", 0, 0 },
		{ "0.0.0.0/0", 1, 0 }, { "1.2.3.4/0", 0, 0 },
		{ "1.2.3.4", 1, 32 }, { "1.2.3.4/32", 1, 32 },
		{ "1.2.3.4/33", 0, 0 }, { "1.2.3.4/", 0, 0 },
		{ "1.2.3.4/-1", 0, 0 }, { "1.2.3.4/+8", 0, 0 },
		{ "1.2.3.0/ 24", 0, 0 }, { "1.2.3.0/24x", 0, 0 },
		{ "192.168.1.128/25", 1, 25 }, { "192.168.1.64/25", 0, 0 },
		{ "2001:db8::/32", 1, 32 }, { "2001:db8::1/32", 0, 0 },
		{ "::/0", 1, 0 }, { "::1/0", 0, 0 }, { "::1", 1, 128 },
		{ "::1/128", 1, 128 }, { "::1/129", 0, 0 },
		{ "fe80::/10", 1, 10 }, { "fe80::/9", 1, 9 },
		{ "fe80::/8", 0, 0 },
		{ "10.0.0/8", 0, 0 }, { "abc", 0, 0 }, { "", 0, 0 },
		{ "/8", 0, 0 }, { "10.0.0.0/8/8", 0, 0 },
	};
	static const struct { const char *cidr, *ip; int in; } match[] = {
		{ "10.0.0.0/8", "10.255.1.1", 1 }, { "10.0.0.0/8", "11.0.0.0", 0 },
		{ "10.0.0.0/8", "9.255.255.255", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 }, { "0.0.0.0/0", "::1", 0 },
		{ "192.168.1.128/25", "192.168.1.200", 1 },
		{ "192.168.1.128/25", "192.168.1.100", 0 },
		{ "192.168.1.128/25", "192.168.1.128", 1 },
		{ "127.0.0.1/32", "127.0.0.1", 1 },
		{ "127.0.0.1/32", "127.0.0.2", 0 },
		{ "10.0.0.0/8", "::ffff:10.0.0.1", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::", 0 },
		{ "2001:db8::/33", "2001:db8:7fff::1", 1 },
		{ "2001:db8::/33", "2001:db8:8000::", 0 },
		{ "::/0", "fe80::1", 1 }, { "::/0", "10.0.0.1", 0 },
		{ "::1", "::1", 1 }, { "::1", "::2", 0 },
		{ "fe80::/10", "febf::1", 1 }, { "fe80::/10", "fec0::1", 0 },
	};
	struct cidr cd;
	struct addr a;
	const char *why;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(parse) / sizeof(parse[0]); i++) {
		why = NULL;
		rc = cidr_parse(parse[i].s, &cd, &why);
		CHECK(rc == (parse[i].ok ? 0 : -1));
		if (rc != (parse[i].ok ? 0 : -1))
			printf("  cidr_parse(\"%s\") = %d\n", parse[i].s, rc);
		if (parse[i].ok && rc == 0)
			CHECK(cd.bits == parse[i].bits);
		if (!parse[i].ok)
			CHECK(why != NULL);
	}
	CHECK(cidr_parse("10.0.0.1/8", &cd, &why) == -1);
	CHECK(why && strstr(why, "host bits") != NULL);
	for (i = 0; i < sizeof(match) / sizeof(match[0]); i++) {
		CHECK(cidr_parse(match[i].cidr, &cd, &why) == 0);
		a = ip(match[i].ip);
		CHECK(cidr_match(&cd, a.family, a.b) == match[i].in);
	}
}

int
main(void)
{
	struct conf *c = make_conf();

	CHECK(c != NULL);
	if (c) {
		test_schemes(c);
		test_certs(c);
		test_keygen(c);
	}
	test_cidr();
	conf_unref(c);
	return unit_report();
}

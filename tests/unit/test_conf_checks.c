/* test_conf_checks.c - the config checks of issue 12 (SPEC section 2): one
 * key hash or certificate fingerprint under two clients is an error; the
 * warnings for insecure_skip_verify, a source of 0.0.0.0/0 or ::/0 and an
 * expires in the past or within 14 days. */
#include <stdlib.h>

#include "unit.h"
#include "unit_conf.h"

#define NOW 1800000000LL        /* 2027-01-15T08:00:00Z */

static char h1[72], h2[72], h3[72];

/* Problems of a clients object: the text conf_parse reports, or "" when
 * the config loads. */
static char *
problems(const char *extra, const char *clients)
{
	struct buf text, errs;
	struct conf *c;
	char *out;

	buf_init(&text);
	buf_init(&errs);
	buf_printf(&text, "{\"listen\": [\"127.0.0.1:8080\"],\n"
	    "\"upstream\": {\"url\": \"https://whm.example.com\"%s},\n"
	    "\"clients\": %s}\n", extra ? extra : "", clients);
	c = conf_parse("u.json", text.p, text.len, 0, &errs);
	conf_unref(c);
	out = xstrdup(errs.p ? errs.p : "");
	buf_fini(&text);
	buf_fini(&errs);
	return out;
}

#define CLIENT(id, keys, more) "\"" id "\": {\"keys\": " keys ", \"whm_user\": " \
	"\"root\", \"whm_token\": {\"env\": \"T\"}, \"allow\": {}" more "}"

static void
test_shared_secrets(void)
{
	char clients[2048], want[512], *p;

	/* Distinct keys: fine. */
	snprintf(clients, sizeof(clients), "{" CLIENT("billing", "[\"%s\"]", "")
	    "," CLIENT("support", "[\"%s\"]", "") "}", h1, h2);
	p = problems(NULL, clients);
	CHECK_STR(p, "");
	free(p);
	/* The second key of support is billing's only key. */
	snprintf(clients, sizeof(clients), "{" CLIENT("billing", "[\"%s\"]", "")
	    "," CLIENT("support", "[\"%s\", \"%s\"]", "") "}", h1, h2, h1);
	p = problems(NULL, clients);
	CHECK_STR(p, "u.json: $.clients.support.keys[1]: the same key as "
	    "$.clients.billing.keys[0]: one secret must name one client\n");
	free(p);
	/* Three clients, ids that need brackets, one key thrice. */
	snprintf(clients, sizeof(clients), "{" CLIENT("a-1", "[\"%s\"]", "")
	    "," CLIENT("b", "[\"%s\"]", "") "," CLIENT("c.x", "[\"%s\", \"%s\"]", "")
	    "}", h3, h1, h2, h3);
	p = problems(NULL, clients);
	snprintf(want, sizeof(want), "u.json: $.clients[\"c.x\"].keys[1]: the same key "
	    "as $.clients[\"a-1\"].keys[0]: one secret must name one client\n");
	CHECK_STR(p, want);
	free(p);
	/* A certificate fingerprint under two clients. */
	snprintf(clients, sizeof(clients), "{" CLIENT("billing", "[\"%s\"]",
	    ", \"certs\": [\"%s\"]") "," CLIENT("support", "[\"%s\"]",
	    ", \"certs\": [\"%s\"]") "}", h1, h3, h2, h3);
	p = problems(NULL, clients);
	CHECK_STR(p, "u.json: $.clients.support.certs[0]: the same certificate as "
	    "$.clients.billing.certs[0]: one secret must name one client\n");
	free(p);
	/* A key hash equal to another client's certificate fingerprint is
	 * no clash: they are compared with different things. */
	snprintf(clients, sizeof(clients), "{" CLIENT("billing", "[\"%s\"]",
	    ", \"certs\": [\"%s\"]") "," CLIENT("support", "[\"%s\"]", "") "}",
	    h1, h2, h2);
	p = problems(NULL, clients);
	CHECK_STR(p, "");
	free(p);
}

static char *
warnings(const char *extra, const char *more_billing)
{
	char clients[2048];
	struct buf text, out;
	struct conf *c;
	char *r;

	snprintf(clients, sizeof(clients), "{\"billing\": {\"keys\": [\"%s\"], "
	    "\"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"}, \"allow\": {}%s}}",
	    h1, more_billing);
	buf_init(&text);
	buf_printf(&text, "{\"listen\": [\"127.0.0.1:8080\"],\n"
	    "\"upstream\": {\"url\": \"https://whm.example.com\"%s},\n"
	    "\"clients\": %s}\n", extra, clients);
	buf_init(&out);
	c = conf_parse("w.json", text.p, text.len, 0, &out);
	CHECK(c != NULL);
	if (c == NULL) {
		printf("%s", out.p);
		r = xstrdup("(refused)");
	} else {
		out.len = 0;
		conf_warnings(c, NOW, &out);
		r = xstrdup(out.p ? out.p : "");
	}
	conf_unref(c);
	buf_fini(&text);
	buf_fini(&out);
	return r;
}

static void
test_warnings(void)
{
	char *w;

	w = warnings("", "");
	CHECK_STR(w, "");
	free(w);
	w = warnings(", \"insecure_skip_verify\": true", "");
	CHECK_STR(w, "warning: w.json: $.upstream.insecure_skip_verify: WHM's certificate "
	    "is not verified: whoever is on the path reads the WHM tokens\n");
	free(w);
	w = warnings("", ", \"source\": [\"10.0.0.0/8\", \"0.0.0.0/0\", \"::/0\"]");
	CHECK_STR(w, "warning: w.json: $.clients.billing.source[1]: allows every IPv4 "
	    "address, as if there were no source\n"
	    "warning: w.json: $.clients.billing.source[2]: allows every IPv6 "
	    "address, as if there were no source\n");
	free(w);
	w = warnings("", ", \"source\": [\"0.0.0.0/1\", \"::/1\"]");
	CHECK_STR(w, "");
	free(w);
	/* NOW is 2027-01-15T08:00:00Z. */
	w = warnings("", ", \"expires\": \"2027-01-01T00:00:00Z\"");
	CHECK_STR(w, "warning: w.json: $.clients.billing.expires: expired at "
	    "2027-01-01T00:00:00Z: every call of this client is refused\n");
	free(w);
	w = warnings("", ", \"expires\": \"2027-01-20T08:00:00Z\"");
	CHECK_STR(w, "warning: w.json: $.clients.billing.expires: expires at "
	    "2027-01-20T08:00:00Z, in 120 hours\n");
	free(w);
	/* 14 days and a second ahead: no warning; 14 days less a second: one. */
	w = warnings("", ", \"expires\": \"2027-01-29T08:00:01Z\"");
	CHECK_STR(w, "");
	free(w);
	w = warnings("", ", \"expires\": \"2027-01-29T07:59:59Z\"");
	CHECK(strstr(w, "$.clients.billing.expires: expires at 2027-01-29T07:59:59Z") != NULL);
	free(w);
}

int
main(void)
{
	unit_sha256_line("key one", h1);
	unit_sha256_line("key two", h2);
	unit_sha256_line("key three", h3);
	test_shared_secrets();
	test_warnings();
	return unit_report();
}

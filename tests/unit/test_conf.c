/* test_conf.c - config parsing and validation (SPEC section 2): defaults,
 * comments, every problem reported with its JSON path in one run. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "unit_conf.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CLIENT_OK "\"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"}"

static struct conf *
parse(const char *text, struct buf *errs)
{
	buf_init(errs);
	return conf_parse("t.json", text, strlen(text), 0, errs);
}

/* Number of lines of errs that are exactly "t.json: <line>". */
static int
count_line(const struct buf *errs, const char *line)
{
	char want[1024];
	const char *p = errs->p;
	size_t n;
	int k = 0;

	n = (size_t)snprintf(want, sizeof(want), "t.json: %s\n", line);
	for (; p && (p = strstr(p, want)) != NULL; p += n)
		if (p == errs->p || p[-1] == '\n')
			k++;
	return k;
}

static int
count_lines(const struct buf *errs)
{
	const char *p;
	int k = 0;

	for (p = errs->p; p && *p; p++)
		k += *p == '\n';
	return k;
}

static void
test_valid(void)
{
	static const char text[] =
	    "// a comment before everything\n"
	    "{\n"
	    "  \"listen\": [\"127.0.0.1:8080\", \"[::1]:8081\"], /* two */\n"
	    "  \"upstream\": {\"url\": \"https://whm.example.com\"},\n"
	    "  \"clients\": {\n"
	    "    \"billing-2\": {\"keys\": [\"sha256:" H64 "\"], " CLIENT_OK ",\n"
	    "      // allow entries\n"
	    "      \"allow\": {\"listaccts\": {},\n"
	    "        \"uapi_cpanel:Email::list_pops\": {\"cpanel.user\":\n"
	    "          {\"pattern\": \"^cust[0-9]+$\"}}}}\n"
	    "  }\n"
	    "}\n";
	const struct client *cl;
	const struct allow_rule *r;
	unsigned char h[32];
	unsigned int hl = 32;
	char hex[65];
	struct buf errs;
	struct conf *c = parse(text, &errs);

	CHECK(c != NULL);
	if (c == NULL) {
		printf("%s", errs.p);
		buf_fini(&errs);
		return;
	}
	CHECK(errs.len == 0);
	CHECK(c->nlisten == 2);
	CHECK_STR(c->upstream.base, "https://whm.example.com:2087");
	CHECK(c->upstream.connect_timeout_ms == 5000);
	CHECK(c->upstream.timeout_ms == 300000);
	CHECK(c->upstream.max_connections == 64);
	CHECK(c->upstream.insecure_skip_verify == 0);
	CHECK(c->upstream.ca_file == NULL && c->upstream.pinned_pubkey == NULL);
	CHECK(c->limits.max_header_bytes == 16384);
	CHECK(c->limits.max_body_bytes == 1048576);
	CHECK(c->limits.header_timeout_ms == 10000);
	CHECK(c->limits.idle_timeout_ms == 60000);
	CHECK(c->limits.max_connections == 4096);
	CHECK(c->limits.shutdown_timeout_ms == 30000);
	CHECK_STR(c->audit.file, "logs/audit.jsonl");
	CHECK(c->audit.fsync == FSYNC_ALWAYS);
	CHECK(c->audit.hmac_key_file == NULL && c->audit.nredact == 0);
	CHECK(c->instance != NULL && c->instance[0] != '\0');
	EVP_Digest(text, strlen(text), h, &hl, EVP_sha256(), NULL);
	hex_encode(h, 32, hex);
	CHECK_STR(c->digest, hex);
	CHECK(c->nclients == 1);
	cl = conf_client(c, "billing-2");
	CHECK(cl != NULL && conf_client(c, "billing") == NULL);
	if (cl == NULL)
		goto out;
	CHECK(cl->nkeys == 1 && cl->keys[0][0] == 0x01 && cl->keys[0][31] == 0xef);
	CHECK(cl->has_source == 0 && cl->expires == 0 && cl->has_rate == 0);
	CHECK_STR(cl->whm_user, "root");
	CHECK(cl->whm_token == NULL);          /* read_secrets 0 */
	CHECK(cl->nallow == 2);
	r = conf_allow(cl, "uapi_cpanel:Email::list_pops");
	CHECK(r != NULL && r->ncons == 1);
	if (r && r->ncons == 1) {
		CHECK_STR(r->path, "$.clients[\"billing-2\"].allow"
		    "[\"uapi_cpanel:Email::list_pops\"]");
		CHECK_STR(r->cons[0].param, "cpanel.user");
		CHECK_STR(r->cons[0].path, "$.clients[\"billing-2\"].allow"
		    "[\"uapi_cpanel:Email::list_pops\"][\"cpanel.user\"]");
		CHECK(r->cons[0].has_pattern && !r->cons[0].has_enum);
	}
	CHECK(conf_allow(cl, "listpops") == NULL);
	CHECK(conf_ref(c) == c && c->refs == 2);
	conf_unref(c);
out:
	conf_unref(c);
	buf_fini(&errs);
}

/* The upstream URL and the base whmgate connects to. */
static void
test_upstream(void)
{
	static const struct { const char *url, *base; } t[] = {
		{ "https://whm.example.com", "https://whm.example.com:2087" },
		{ "https://whm.example.com/", "https://whm.example.com:2087" },
		{ "https://whm.example.com:2088", "https://whm.example.com:2088" },
		{ "https://10.0.0.1", "https://10.0.0.1:2087" },
		{ "https://[2001:db8::1]", "https://[2001:db8::1]:2087" },
		{ "https://[2001:db8::1]:9443", "https://[2001:db8::1]:9443" },
		{ "http://whm.example.com", NULL },
		{ "HTTP://whm.example.com", NULL },
		{ "whm.example.com:2087", NULL },
		{ "https://", NULL },
		{ "https://whm.example.com/json-api", NULL },
		{ "https://whm.example.com?x=1", NULL },
		{ "https://user@whm.example.com", NULL },
		{ "", NULL },
	};
	char text[1024];
	struct buf errs;
	struct conf *c;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "{\"listen\": [\"127.0.0.1:1\"],"
		    "\"upstream\": {\"url\": \"%s\"}, \"clients\": {}}", t[i].url);
		c = parse(text, &errs);
		if (t[i].base) {
			CHECK(c != NULL);
			if (c)
				CHECK_STR(c->upstream.base, t[i].base);
		} else {
			CHECK(c == NULL);
			CHECK(errs.p && strstr(errs.p, "t.json: $.upstream.url: "));
		}
		conf_unref(c);
		buf_fini(&errs);
	}
}

/* A throwaway self-signed certificate: parsed, never used for TLS. */
static const char unit_ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBijCCAS+gAwIBAgIUInlC8WSoxKbEiUhGR+XKU482pSswCgYIKoZIzj0EAwIw\n"
	"GjEYMBYGA1UEAwwPd2htZ2F0ZSB1bml0IENBMB4XDTI2MTEyODE2MDEzOFoXDTI2\n"
	"MTEyOTE2MDEzOFowGjEYMBYGA1UEAwwPd2htZ2F0ZSB1bml0IENBMFkwEwYHKoZI\n"
	"zj0CAQYIKoZIzj0DAQcDQgAEYlxyXlsKJBt0BfSjSDZZdvHhyHOZQTjOXswV05MY\n"
	"cmKHgyahbPee7TFyqn4r5gL5Ity2siX7YKBNaMIyNGTsAKNTMFEwHQYDVR0OBBYE\n"
	"FEb3NL73iXpoi2FYLQnMlMX6mZGdMB8GA1UdIwQYMBaAFEb3NL73iXpoi2FYLQnM\n"
	"lMX6mZGdMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAOtUpZ4I\n"
	"bSfkVsy0SNnC4ECP1JEP68w8wCKcehgCpvIDAiEAxST3AP0Auyu6mHXp9KVVbozX\n"
	"1N+GTSVYgxxcCaYGal0=\n"
	"-----END CERTIFICATE-----\n";

/* Writes text (len bytes) to dir/name; returns the path (static). */
static const char *
write_in(const char *dir, const char *name, const char *text, size_t len)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return path;
	fwrite(text, 1, len, f);
	fclose(f);
	return path;
}

/* Loads a config whose upstream.ca_file is path. */
static struct conf *
parse_ca(const char *path, struct buf *errs)
{
	char text[1024];

	snprintf(text, sizeof(text), "{\"listen\": [\"127.0.0.1:1\"],"
	    "\"upstream\": {\"url\": \"https://whm.example.com\", "
	    "\"ca_file\": \"%s\"}, \"clients\": {}}", path);
	return parse(text, errs);
}

/* upstream.ca_file is read and parsed at load: its certificates become
 * the store, its digest names it; a file without a certificate, with one
 * that does not parse, or too large is refused with the reason. */
static void
test_ca_file(void)
{
	static const struct { const char *name, *text, *why; } bad[] = {
		{ "none.pem", "no certificate here\n", "no PEM certificate in it" },
		{ "key.pem", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n"
		    "-----END PRIVATE KEY-----\n", "no PEM certificate in it" },
		{ "broken.pem", "-----BEGIN CERTIFICATE-----\nMIIBijCCAS+gAwIBAgIU\n"
		    "-----END CERTIFICATE-----\n", "a certificate in it does not parse" },
	};
	char dir[] = "/tmp/whmgate-unit-XXXXXX", want[600], line[80];
	struct buf errs, text;
	struct conf *c;
	const char *path;
	size_t i;

	if (mkdtemp(dir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	/* One certificate, with comments around it as in bundles; then two. */
	buf_init(&text);
	buf_adds(&text, "# a comment\n");
	buf_adds(&text, unit_ca_pem);
	buf_adds(&text, "trailing text\n");
	path = write_in(dir, "one.pem", text.p, text.len);
	c = parse_ca(path, &errs);
	CHECK(c != NULL && c->upstream.ca_store != NULL);
	if (c) {
		unit_sha256_line(text.p, line);
		snprintf(want, sizeof(want), "whmgate-ca-%s", line + 7);
		CHECK_STR(c->upstream.ca_id, want);
		CHECK_STR(c->upstream.ca_file, path);
	} else {
		printf("  %s", errs.p ? errs.p : "");
	}
	conf_unref(c);
	buf_fini(&errs);
	buf_adds(&text, unit_ca_pem);
	c = parse_ca(write_in(dir, "two.pem", text.p, text.len), &errs);
	CHECK(c != NULL && c->upstream.ca_store != NULL);
	conf_unref(c);
	buf_fini(&errs);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		path = write_in(dir, bad[i].name, bad[i].text, strlen(bad[i].text));
		c = parse_ca(path, &errs);
		CHECK(c == NULL);
		snprintf(want, sizeof(want), "$.upstream.ca_file: %s: %s", path, bad[i].why);
		CHECK(count_line(&errs, want) == 1);
		if (count_line(&errs, want) != 1)
			printf("  want %s\n  got %s", want, errs.p ? errs.p : "(nothing)\n");
		conf_unref(c);
		buf_fini(&errs);
		unlink(path);
	}
	/* Over 4 MB: refused, not read in part. */
	text.len = 0;
	while (text.len <= (4u << 20))
		buf_adds(&text, unit_ca_pem);
	path = write_in(dir, "big.pem", text.p, text.len);
	c = parse_ca(path, &errs);
	CHECK(c == NULL);
	snprintf(want, sizeof(want), "$.upstream.ca_file: %s is larger than 4 MB", path);
	CHECK(count_line(&errs, want) == 1);
	conf_unref(c);
	buf_fini(&errs);
	/* Missing. */
	snprintf(want, sizeof(want), "%s/missing.pem", dir);
	c = parse_ca(want, &errs);
	CHECK(c == NULL && errs.p && strstr(errs.p, "cannot read"));
	conf_unref(c);
	buf_fini(&errs);
	buf_fini(&text);
	unlink(path);
	unlink(write_in(dir, "one.pem", "", 0));
	unlink(write_in(dir, "two.pem", "", 0));
	rmdir(dir);
}

/* One config with many problems: each is reported once with its path,
 * and nothing else is. */
static void
test_problems(void)
{
	static const char text[] =
	    "{\n"
	    "  // comments are fine\n"
	    "  \"listen\": [\"127.0.0.1:8080\", \"127.0.0.1\", \"localhost:80\"],\n"
	    "  \"instance\": \"a\", \"instance\": \"b\",\n"
	    "  \"bogus\": 1,\n"
	    "  \"upstream\": {\"url\": \"http://whm.example.com\", \"urll\": 1},\n"
	    "  \"limits\": {\"max_header_bytes\": 10, \"max_body\": 1},\n"
	    "  \"audit\": {\"fsync\": \"sometimes\"},\n"
	    "  \"clients\": {\n"
	    "    \"bad id!\": {},\n"
	    "    \"billing\": {\n"
	    "      \"keys\": [\"sha256:" H64 "\", \"whmg_abcdefghijklmnopqrstuvwx"
	    "yzABCDEFGHIJKLMNOPQ\", \"sha256:zz\"],\n"
	    "      \"source\": [\"10.0.0.0/8\", \"10.0.0.1/8\", \"::1/200\"],\n"
	    "      \"expires\": \"2027-06-30\",\n"
	    "      \"whm_user\": \"root\",\n"
	    "      \"whm_token\": \"clear text\",\n"
	    "      \"allow\": {\n"
	    "        \"listaccts\": {}, \"listaccts\": {},\n"
	    "        \"ListAccts\": {},\n"
	    "        \"createacct\": {\"username\": {\"pattern\": \"(\"},\n"
	    "          \"user-1\": {\"enum\": [\"a\"]}, \"plan\": {},\n"
	    "          \"x\": {\"absent\": true, \"enum\": [\"a\"]},\n"
	    "          \"y\": {\"enum\": \"a\"}},\n"
	    "        \"cpanel\": {},\n"
	    "        \"uapi_cpanel\": {},\n"
	    "        \"cpanel:Email\": {},\n"
	    "        \"uapi_cpanel:Email::list_pops\": {\"cpanel.user\":\n"
	    "          {\"pattern\": \"[\", \"regex\": \"x\"}}\n"
	    "      }\n"
	    "    },\n"
	    "    \"ops\": {\"keys\": [\"sha256:" H64 "\"], \"whm_user\": \"a:b\",\n"
	    "      \"whm_token\": {\"env\": \"T\", \"file\": \"f\"}, \"allow\": {}},\n"
	    "    \"x\": {\"keys\": [\"sha256:" H64 "\"]}\n"
	    "  }\n"
	    "}\n";
	static const char *const want[] = {
		"$.instance: duplicate key",
		"$.clients.billing.allow.listaccts: duplicate key",
		"$.listen[1]: must be host:port",
		"$.listen[2]: not a numeric IPv4 address (use [v6]:port for IPv6)",
		"$.bogus: unknown key",
		"$.upstream.url: must be an https:// URL",
		"$.upstream.urll: unknown key",
		"$.upstream.url: is required",
		"$.limits.max_header_bytes: must be between 1024 and 1048576",
		"$.limits.max_body: unknown key",
		"$.audit.fsync: must be \"always\", \"interval\" or \"never\"",
		"$.clients[\"bad id!\"]: client id must match ^[A-Za-z0-9_.-]{1,64}$",
		"$.clients.billing.keys[1]: a key in clear text: put the sha256: "
		    "line from 'whmgate keygen' here instead",
		"$.clients.billing.keys[2]: must be \"sha256:\" and 64 hex digits",
		"$.clients.billing.source[1]: host bits set",
		"$.clients.billing.source[2]: bad prefix length",
		"$.clients.billing.expires: must be an RFC 3339 UTC time like "
		    "\"2027-06-30T00:00:00Z\"",
		"$.clients.billing.whm_token: must be {\"env\": NAME} or {\"file\": "
		    "PATH}: a token in clear text is not allowed",
		"$.clients.billing.allow.ListAccts: must be a function name "
		    "(^[a-z0-9_]+$), \"cpanel:<Module>::<func>\" or \"uapi_cpanel:"
		    "<Module>::<function>\"",
		"$.clients.billing.allow.createacct.username.pattern: not a POSIX "
		    "extended regular expression: Unmatched ( or \\(",
		"$.clients.billing.allow.createacct[\"user-1\"]: name the plain "
		    "parameter: a constraint applies to every -N copy",
		"$.clients.billing.allow.createacct.plan: an empty constraint "
		    "constrains nothing",
		"$.clients.billing.allow.createacct.x: \"absent\" cannot be "
		    "combined with other constraints",
		"$.clients.billing.allow.createacct.y.enum: must be an array of "
		    "strings",
		"$.clients.billing.allow.cpanel: must be a function name "
		    "(^[a-z0-9_]+$), \"cpanel:<Module>::<func>\" or \"uapi_cpanel:"
		    "<Module>::<function>\" (a bare cpanel entry would allow every "
		    "cPanel call)",
		"$.clients.billing.allow.uapi_cpanel: must be a function name "
		    "(^[a-z0-9_]+$), \"cpanel:<Module>::<func>\" or \"uapi_cpanel:"
		    "<Module>::<function>\" (a bare cpanel entry would allow every "
		    "cPanel call)",
		"$.clients.billing.allow[\"cpanel:Email\"]: must be a function name "
		    "(^[a-z0-9_]+$), \"cpanel:<Module>::<func>\" or \"uapi_cpanel:"
		    "<Module>::<function>\"",
		"$.clients.billing.allow[\"uapi_cpanel:Email::list_pops\"]"
		    "[\"cpanel.user\"].pattern: not a POSIX extended regular "
		    "expression: Unmatched [, [^, [:, [., or [=",
		"$.clients.billing.allow[\"uapi_cpanel:Email::list_pops\"]"
		    "[\"cpanel.user\"].regex: unknown key",
		"$.clients.ops.whm_user: must match ^[A-Za-z0-9_.-]{1,64}$",
		"$.clients.ops.whm_token: must be {\"env\": NAME} or {\"file\": "
		    "PATH}: a token in clear text is not allowed",
		"$.clients.x: \"whm_user\" is required",
		"$.clients.x: \"whm_token\" is required",
		"$.clients.x: \"allow\" is required (deny by default)",
		"$.clients.ops.keys[0]: the same key as $.clients.billing.keys[0]: "
		    "one secret must name one client",
		"$.clients.x.keys[0]: the same key as $.clients.billing.keys[0]: "
		    "one secret must name one client",
		"$.clients.x.keys[0]: the same key as $.clients.ops.keys[0]: "
		    "one secret must name one client",
	};
	struct buf errs;
	struct conf *c = parse(text, &errs);
	size_t i;
	int n;

	CHECK(c == NULL);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		n = count_line(&errs, want[i]);
		CHECK(n == 1);
		if (n != 1)
			printf("  reported %d times: %s\n", n, want[i]);
	}
	n = count_lines(&errs);
	CHECK(n == (int)(sizeof(want) / sizeof(want[0])));
	if (n != (int)(sizeof(want) / sizeof(want[0])))
		printf("  %d lines, all of them:\n%s", n, errs.p);
	conf_unref(c);
	buf_fini(&errs);
}

/* A syntax error must be reported at a line in [line, line_hi] and a
 * column in [lo, hi]. */
static void
syntax(const char *text, int line, int line_hi, int lo, int hi)
{
	struct buf errs;
	struct conf *c = parse(text, &errs);
	const char *p;
	int l = -1, col = -1;

	CHECK(c == NULL);
	p = errs.p ? strstr(errs.p, "t.json: $: invalid JSON at line ") : NULL;
	CHECK(p != NULL);
	if (p)
		CHECK(sscanf(p, "t.json: $: invalid JSON at line %d, column %d",
		    &l, &col) == 2);
	CHECK(l >= line && l <= line_hi && col >= lo && col <= hi);
	if (l < line || l > line_hi || col < lo || col > hi)
		printf("  want line %d-%d col %d-%d: %s", line, line_hi, lo, hi,
		    errs.p ? errs.p : "(nothing)\n");
	conf_unref(c);
	buf_fini(&errs);
}

static void
test_syntax(void)
{
	struct buf errs;
	struct conf *c;

	syntax("{\n  \"listen\": [\"127.0.0.1:8080\"],\n  \"x\": [1,,2]\n}\n",
	    3, 3, 12, 12);
	syntax("{\n  \"listen\": [\"127.0.0.1:8080\"],\n  \"x\": tru\n}\n",
	    3, 3, 8, 11);
	syntax("{\"a\": 1}}", 1, 1, 9, 10);
	syntax("{\n\"a\": 1,\n\"b\": \"x\nb\"}\n", 3, 3, 6, 9);
	/* A file cut short: the error is at its end (line 3 after the 1,
	 * or line 4 where the file ends), not at its start. */
	syntax("{\n  \"listen\": [\"127.0.0.1:8080\"],\n  \"x\": 1\n", 3, 4,
	    1, 99);
	syntax("{\n  \"listen\": [\"127.0.0.1:8080\"],\n  \"x\": [1, 2\n\n",
	    3, 5, 1, 99);
	buf_init(&errs);
	c = conf_parse("t.json", "{\"a\":\0 1}", 9, 0, &errs);
	CHECK(c == NULL && strstr(errs.p, "NUL") != NULL);
	buf_fini(&errs);
}

/* The example of SPEC section 2, placeholders filled in. The TLS
 * listener and the admin address are split off, so the rest is checked
 * whether or not this build accepts them. */
#define SPEC_HEAD "{\n  \"listen\": [\"127.0.0.1:8080\"],\n"
#define SPEC_TLS \
    "  \"listen_tls\": [{ \"address\": \"0.0.0.0:8443\",\n" \
    "                   \"cert\": \"%s/gw.crt\", \"key\": \"%s/gw.key\",\n" \
    "                   \"client_ca\": \"%s/clients-ca.crt\",\n" \
    "                   \"require_client_cert\": false }],\n" \
    "  \"admin\": \"127.0.0.1:9180\",\n"
#define SPEC_REST \
    "  \"workers\": 1, \"user\": null, \"instance\": null,\n" \
    "  \"upstream\": { \"url\": \"https://whm.example.com:2087\",\n" \
    "    \"ca_file\": null, \"pinned_pubkey\": null,\n" \
    "    \"insecure_skip_verify\": false, \"connect_timeout_ms\": 5000,\n" \
    "    \"timeout_ms\": 300000, \"max_connections\": 64 },\n" \
    "  \"limits\": { \"max_header_bytes\": 16384, \"max_body_bytes\": " \
    "1048576,\n" \
    "    \"header_timeout_ms\": 10000, \"idle_timeout_ms\": 60000,\n" \
    "    \"max_connections\": 4096, \"shutdown_timeout_ms\": 30000 },\n" \
    "  \"audit\": { \"file\": \"logs/audit.jsonl\", \"fsync\": \"always\",\n" \
    "    \"hmac_key_file\": null, \"redact\": [], \"syslog\": null },\n" \
    "  \"clients\": { \"billing\": {\n" \
    "    \"keys\": [\"sha256:" H64 "\"], \"certs\": [\"sha256:" H64 "\"],\n" \
    "    \"source\": [\"10.0.0.0/8\", \"127.0.0.1/32\"],\n" \
    "    \"expires\": \"2027-06-30T00:00:00Z\", \"whm_user\": \"root\",\n" \
    "    \"whm_token\": { \"env\": \"WHM_TOKEN_BILLING\" },\n" \
    "    \"rate\": { \"per_second\": 20, \"burst\": 40 }, " \
    "\"max_inflight\": 8,\n" \
    "    \"allow\": { \"listaccts\": {},\n" \
    "      \"accountsummary\": { \"user\": { \"pattern\": " \
    "\"^cust[0-9]+$\" } },\n" \
    "      \"createacct\": { \"plan\": { \"enum\": [\"basic\", \"pro\"] },\n" \
    "        \"username\": { \"pattern\": \"^[a-z][a-z0-9]{0,15}$\", " \
    "\"required\": true },\n" \
    "        \"showpass\": { \"enum\": [\"n\"], \"required\": true } },\n" \
    "      \"suspendacct\": {}, \"batch\": {},\n" \
    "      \"uapi_cpanel:Email::list_pops\": { \"cpanel.user\": { " \
    "\"pattern\": \"^cust[0-9]+$\" } } } } }\n" \
    "}\n"

static void
test_spec_example(void)
{
	struct buf errs;
	struct conf *c = parse(SPEC_HEAD SPEC_REST, &errs);
	const struct client *cl;

	CHECK(c != NULL);
	if (c == NULL)
		printf("  the SPEC example does not load:\n%s", errs.p);
	cl = c ? conf_client(c, "billing") : NULL;
	CHECK(cl && cl->has_rate && cl->rate_per_second == 20 &&
	    cl->rate_burst == 40 && cl->max_inflight == 8 && cl->nsource == 2 &&
	    cl->ncerts == 1 && cl->expires == 1814313600 && cl->nallow == 6);
	conf_unref(c);
	buf_fini(&errs);

	/* SPEC section 2 lists listen_tls and admin as settings. The files
	 * the example names are made in a temporary directory. */
	{
		static const char *const names[] = { "gw.crt", "gw.key",
		    "clients-ca.crt" };
		char dir[] = "/tmp/whmgate-conf-XXXXXX", path[128];
		struct buf text;
		size_t i;
		FILE *f;

		CHECK(mkdtemp(dir) != NULL);
		for (i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			if ((f = fopen(path, "w")) != NULL) {
				fputs("-----BEGIN PLACEHOLDER-----\n", f);
				fclose(f);
			}
			chmod(path, 0600);
		}
		buf_init(&text);
		buf_printf(&text, SPEC_HEAD SPEC_TLS "%s", dir, dir, dir,
		    SPEC_REST);
		c = parse(text.p, &errs);
		CHECK(c != NULL);
		if (c == NULL)
			printf("  the full SPEC example does not load:\n%s",
			    errs.p);
		conf_unref(c);
		buf_fini(&errs);
		buf_fini(&text);
		for (i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			unlink(path);
		}
		rmdir(dir);
	}
}

/* The request bounds of issue 16: defaults, values taken, and values
 * out of range refused with their paths. */
static void
test_request_bounds(void)
{
#define BOUNDS_CONF(lim) "{\"listen\": [\"127.0.0.1:8080\"], " \
	"\"upstream\": {\"url\": \"https://whm.example.com\"}, " \
	"\"limits\": " lim ", \"clients\": {\"b\": {\"keys\": " \
	"[\"sha256:" H64 "\"], " CLIENT_OK ", \"allow\": {}}}}"
	static const struct { const char *text, *err; } bad[] = {
		{ BOUNDS_CONF("{\"max_params\": 0}"),
		  "$.limits.max_params: must be between 1 and 1048576" },
		{ BOUNDS_CONF("{\"max_params\": 1048577}"),
		  "$.limits.max_params: must be between 1 and 1048576" },
		{ BOUNDS_CONF("{\"max_batch_calls\": 0}"),
		  "$.limits.max_batch_calls: must be between 1 and 65536" },
		{ BOUNDS_CONF("{\"max_batch_calls\": \"64\"}"), NULL },
		{ BOUNDS_CONF("{\"body_timeout_ms\": 0}"),
		  "$.limits.body_timeout_ms: must be between 1 and 86400000" },
		{ BOUNDS_CONF("{\"max_param\": 10}"),
		  "$.limits.max_param: unknown key" },
	};
	struct buf errs;
	struct conf *c;
	size_t i;

	c = parse(BOUNDS_CONF("{}"), &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK(c->limits.max_params == 1024);
		CHECK(c->limits.max_batch_calls == 64);
		CHECK(c->limits.body_timeout_ms == 60000);
	} else {
		printf("%s", errs.p);
	}
	conf_unref(c);
	buf_fini(&errs);
	c = parse(BOUNDS_CONF("{\"max_params\": 5000, \"max_batch_calls\": "
	    "200, \"body_timeout_ms\": 1500}"), &errs);
	CHECK(c != NULL);
	if (c) {
		CHECK(c->limits.max_params == 5000);
		CHECK(c->limits.max_batch_calls == 200);
		CHECK(c->limits.body_timeout_ms == 1500);
	}
	conf_unref(c);
	buf_fini(&errs);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = parse(bad[i].text, &errs);
		CHECK(c == NULL);
		if (bad[i].err) {
			CHECK(count_line(&errs, bad[i].err) == 1);
			CHECK(count_lines(&errs) == 1);
			if (count_line(&errs, bad[i].err) != 1)
				printf("  want %s, got:\n%s", bad[i].err,
				    errs.p ? errs.p : "");
		}
		conf_unref(c);
		buf_fini(&errs);
	}
#undef BOUNDS_CONF
}

/* Section 12: "allow": "any", candidate (object or "any"), and what is
 * refused with its path. */
static void
test_any_and_candidate(void)
{
#define SETS_CONF(cl) "{\"listen\": [\"127.0.0.1:8080\"], " \
	"\"upstream\": {\"url\": \"https://whm.example.com\"}, " \
	"\"clients\": {\"b\": {\"keys\": [\"sha256:" H64 "\"], " \
	CLIENT_OK ", " cl "}}}"
	static const struct { const char *text, *err; } bad[] = {
		{ SETS_CONF("\"allow\": \"all\""),
		  "$.clients.b.allow: must be an object or \"any\"" },
		{ SETS_CONF("\"allow\": \"ANY\""),
		  "$.clients.b.allow: must be an object or \"any\"" },
		{ SETS_CONF("\"allow\": {}, \"candidate\": \"none\""),
		  "$.clients.b.candidate: must be an object or \"any\"" },
		{ SETS_CONF("\"allow\": {}, \"candidate\": {\"cpanel\": {}}"),
		  "$.clients.b.candidate.cpanel: must be a function name "
		  "(^[a-z0-9_]+$), \"cpanel:<Module>::<func>\" or "
		  "\"uapi_cpanel:<Module>::<function>\" (a bare cpanel entry "
		  "would allow every cPanel call)" },
		{ SETS_CONF("\"allow\": {}, \"candidate\": {\"x\": "
		  "{\"u\": {\"pattern\": \"(\"}}}"), NULL },
		{ SETS_CONF("\"candidate\": {}"),
		  "$.clients.b: \"allow\" is required (deny by default)" },
		{ SETS_CONF("\"allow\": 1"), NULL },
	};
	const struct client *cl;
	struct buf errs;
	struct conf *c;
	size_t i;

	c = parse(SETS_CONF("\"allow\": \"any\""), &errs);
	CHECK(c != NULL);
	if (c) {
		cl = conf_client(c, "b");
		CHECK(cl->allow_any == 1 && cl->nallow == 0);
		CHECK_STR(cl->allow_path, "$.clients.b.allow");
		CHECK(cl->has_candidate == 0);
	} else
		printf("%s", errs.p);
	conf_unref(c);
	buf_fini(&errs);
	c = parse(SETS_CONF("\"allow\": {\"listaccts\": {}}, \"candidate\": "
	    "{\"createacct\": {\"plan\": {\"enum\": [\"basic\"]}}}"), &errs);
	CHECK(c != NULL);
	if (c) {
		cl = conf_client(c, "b");
		CHECK(cl->allow_any == 0 && cl->nallow == 1);
		CHECK(cl->has_candidate == 1 && cl->cand_any == 0 &&
		    cl->ncand == 1);
		CHECK_STR(cl->cand_path, "$.clients.b.candidate");
		CHECK(conf_candidate(cl, "createacct") != NULL);
		CHECK(conf_candidate(cl, "listaccts") == NULL);
		CHECK(conf_allow(cl, "createacct") == NULL);
		if (conf_candidate(cl, "createacct")) {
			CHECK_STR(conf_candidate(cl, "createacct")->cons[0].path,
			    "$.clients.b.candidate.createacct.plan");
		}
	} else
		printf("%s", errs.p);
	conf_unref(c);
	buf_fini(&errs);
	c = parse(SETS_CONF("\"allow\": {}, \"candidate\": \"any\""), &errs);
	CHECK(c != NULL);
	if (c) {
		cl = conf_client(c, "b");
		CHECK(cl->has_candidate && cl->cand_any && !cl->allow_any);
	}
	conf_unref(c);
	buf_fini(&errs);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = parse(bad[i].text, &errs);
		CHECK(c == NULL);
		if (bad[i].err) {
			CHECK(count_line(&errs, bad[i].err) == 1);
			if (count_line(&errs, bad[i].err) != 1)
				printf("  want %s, got:\n%s", bad[i].err,
				    errs.p ? errs.p : "");
		}
		conf_unref(c);
		buf_fini(&errs);
	}
#undef SETS_CONF
}

int
main(void)
{
	test_valid();
	test_upstream();
	test_ca_file();
	test_problems();
	test_syntax();
	test_spec_example();
	test_request_bounds();
	test_any_and_candidate();
	return unit_report();
}

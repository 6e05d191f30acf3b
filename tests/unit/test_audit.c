/* test_audit.c - the audit trail (SPEC section 7): redaction, the hash
 * chain written by the writer thread, audit_verify, continuing a trail and
 * cutting a torn last line. The chain is recomputed here with OpenSSL. */
#define _GNU_SOURCE             /* memmem */
#include <openssl/hmac.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "audit.h"
#include "audit_verify.h"
#include "outcome.h"
#include "params.h"
#include "unit.h"
#include "unit_conf.h"

#define ZEROS "0000000000000000000000000000000000000000000000000000000000000000"
#define WKEY "whmg_Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"

static char dir[64], trail[128];
static uv_loop_t loop;
static uv_timer_t guard;
static int fired, want, all_ok, timed_out;

static void
test_redacted_names(const struct conf *c)
{
	static const struct { const char *name; int red; } t[] = {
		{ "password", 1 }, { "PASSWORD", 1 }, { "newpass", 1 },
		{ "passwd", 1 }, { "api_token", 1 }, { "Token", 1 },
		{ "secret", 1 }, { "client_secret", 1 }, { "sshkey", 1 },
		{ "keyboard", 1 }, { "KEY", 1 }, { "hash", 1 },
		{ "pwhash", 1 }, { "session_id", 1 }, { "SessionID", 1 },
		{ "private_key", 1 }, { "privatekey", 1 }, { "passphrase", 1 },
		{ "authorization", 1 }, { "oauth", 1 }, { "AUTH", 1 },
		{ "contactemail", 1 },                 /* audit.redact */
		{ "user", 0 }, { "username", 0 }, { "domain", 0 }, { "plan", 0 },
		{ "api.version", 0 }, { "contactemail2", 0 }, { "email", 0 },
		{ "pas", 0 }, { "ke", 0 }, { "", 0 }, { "command", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(audit_redacted_name(c, t[i].name) == t[i].red);
		if (audit_redacted_name(c, t[i].name) != t[i].red)
			printf("  redacted(%s) != %d\n", t[i].name, t[i].red);
	}
	CHECK(audit_redacted_name(NULL, "password") == 1);
	CHECK(audit_redacted_name(NULL, "contactemail") == 0);
	/* names too long to lower in place take the other path */
	{
		char name[300];

		memset(name, 'a', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		CHECK(audit_redacted_name(NULL, name) == 0);
		memcpy(name + 250, "ToKeN", 5);
		CHECK(audit_redacted_name(NULL, name) == 1);
		name[127] = '\0';
		CHECK(audit_redacted_name(NULL, name) == 0);
		memcpy(name + 120, "PaSs", 4);
		CHECK(audit_redacted_name(NULL, name) == 1);
	}
}

/* ---- the loop side ---- */

static void
on_guard(uv_timer_t *t)
{
	timed_out = 1;
	uv_timer_stop(t);
}

static void
on_written(void *arg, int ok)
{
	CHECK(arg == &want);
	all_ok &= ok;
	if (++fired == want)
		uv_timer_stop(&guard);
}

/* Runs the loop until n callbacks have fired (10 s at most). */
static void
wait_for(int n)
{
	want = n;
	timed_out = 0;
	uv_timer_start(&guard, on_guard, 10000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(!timed_out && fired == n);
}

static struct audit_sink *sink;        /* the test loop's */
static const struct conf *trail_conf;  /* the conf the records run under */

static void
event_init(struct audit_event *ev, const char *type, const struct call *c)
{
	memset(ev, 0, sizeof(*ev));
	ev->conf = trail_conf;
	ev->type = type;
	ev->id = "req-1";
	ev->client_id = "billing";
	ev->ip = "10.0.0.7";
	ev->port = 40000;
	ev->auth = "bearer";
	ev->method = "POST";
	ev->path = "/json-api/createacct";
	ev->function = "createacct";
	ev->whm_user = "root";
	ev->call = c;
	ev->decision = -1;
	ev->up_status = -1;
	ev->ms = -1;
}

/* Writes a request, a response and a deny record through the writer. */
static void
write_records(struct audit *a, const struct call *c)
{
	static const char body[] = "{\"metadata\":{\"result\":1,\"reason\":"
	    "\"Account Creation Ok\"}}";
	struct audit_event ev;
	struct outcome o;

	fired = 0;
	all_ok = 1;
	event_init(&ev, "request", c);
	ev.with_params = 1;
	ev.decision = 1;
	ev.rule = "$.clients.billing.allow.createacct";
	CHECK(audit_record(a, sink, &ev, on_written, &want) == 0);
	CHECK(outcome_init(&o) == 0);
	outcome_feed(&o, body, sizeof(body) - 1);
	outcome_finish(&o);
	event_init(&ev, "response", c);
	ev.status = 200;
	ev.outcome = &o;
	ev.up_status = 200;
	ev.up_ms = 1.5;
	ev.up_bytes = sizeof(body) - 1;
	ev.ms = 2.25;
	CHECK(audit_record(a, sink, &ev, on_written, &want) == 0);
	event_init(&ev, "deny", NULL);
	ev.id = "req-2";
	ev.status = 403;
	ev.decision = 0;
	ev.code = "function_not_allowed";
	/* not UTF-8 (half a character): replaced, the record kept whole */
	ev.reason = "removeacct is not allowed for this client \xc3";
	ev.function = "removeacct";
	ev.ms = 0.1;
	CHECK(audit_record(a, sink, &ev, on_written, &want) == 0);
	wait_for(3);
	CHECK(all_ok);
	outcome_fini(&o);
}

/* ---- reading the file back ---- */

struct lines {
	char *data;
	size_t n, len;
	char *p[16];
	size_t l[16];
};

static void
read_lines(const char *file, struct lines *ls)
{
	FILE *f = fopen(file, "rb");
	char *s, *nl;
	long size;

	memset(ls, 0, sizeof(*ls));
	if (f == NULL || fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		CHECK(!"cannot read the trail");
		if (f)
			fclose(f);
		return;
	}
	ls->data = calloc(1, (size_t)size + 1);
	ls->len = fread(ls->data, 1, (size_t)size, f);
	fclose(f);
	for (s = ls->data; s < ls->data + ls->len && ls->n < 16; s = nl + 1) {
		nl = memchr(s, '\n', ls->len - (size_t)(s - ls->data));
		if (nl == NULL)
			break;
		ls->p[ls->n] = s;
		ls->l[ls->n++] = (size_t)(nl - s);
	}
}

static void
hex_of(const unsigned char *h, char *out)
{
	static const char hx[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hx[h[i] >> 4];
		out[2 * i + 1] = hx[h[i] & 15];
	}
	out[64] = '\0';
}

/* Checks seq 1..n and prev against our own SHA-256 (or HMAC with key)
 * of each previous line. Fills v with the parsed lines (caller frees). */
static void
check_chain(const struct lines *ls, const char *key, yajl_val *v)
{
	unsigned char h[32];
	unsigned int hl = 32;
	char hex[65], *line;
	yajl_val s, p;
	size_t i;

	for (i = 0; i < ls->n; i++) {
		line = strndup(ls->p[i], ls->l[i]);
		v[i] = yajl_tree_parse(line, NULL, 0);
		free(line);
		CHECK(YAJL_IS_OBJECT(v[i]));
		s = yajl_tree_get(v[i], (const char *[]){ "seq", NULL },
		    yajl_t_number);
		p = yajl_tree_get(v[i], (const char *[]){ "prev", NULL },
		    yajl_t_string);
		CHECK(s && YAJL_IS_INTEGER(s) && YAJL_GET_INTEGER(s) ==
		    (long long)i + 1);
		if (i == 0) {
			strcpy(hex, ZEROS);
		} else {
			if (key)
				HMAC(EVP_sha256(), key, (int)strlen(key),
				    (const unsigned char *)ls->p[i - 1], ls->l[i - 1],
				    h, &hl);
			else
				EVP_Digest(ls->p[i - 1], ls->l[i - 1], h, &hl,
				    EVP_sha256(), NULL);
			hex_of(h, hex);
		}
		CHECK(p && strcmp(p->u.string, hex) == 0);
	}
}

static const char *
str_at(yajl_val v, const char **path)
{
	yajl_val s = yajl_tree_get(v, path, yajl_t_string);

	return s ? s->u.string : "(absent)";
}

#define AT(v, ...) str_at(v, (const char *[]){ __VA_ARGS__, NULL })

/* A number's text as written (yajl keeps it). */
static const char *
num_at(yajl_val v, const char **path)
{
	yajl_val n = yajl_tree_get(v, path, yajl_t_number);

	return n ? n->u.number.r : "(absent)";
}

#define NUM_AT(v, ...) num_at(v, (const char *[]){ __VA_ARGS__, NULL })

static void
free_parsed(yajl_val *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		yajl_tree_free(v[i]);
}

/* audit_verify on a file holding text; keyfile may be NULL. */
static int
verify_text(const char *text, size_t len, const char *keyfile)
{
	char path[160], *files[1] = { path };
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/variant.jsonl", dir);
	f = fopen(path, "wb");
	CHECK(f && fwrite(text, 1, len, f) == len);
	if (f)
		fclose(f);
	rc = audit_verify(files, 1, keyfile);
	unlink(path);
	return rc;
}

/* The lines of ls in the given order (indexes), each with its newline. */
static int
verify_order(const struct lines *ls, const int *order, size_t n)
{
	struct buf b;
	size_t i;
	int rc;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		buf_add(&b, ls->p[order[i]], ls->l[order[i]]);
		buf_addc(&b, '\n');
	}
	rc = verify_text(b.p, b.len, NULL);
	buf_fini(&b);
	return rc;
}

static void
test_tampering(const struct lines *ls)
{
	static const int intact[] = { 0, 1, 2, 3 }, del1[] = { 0, 2, 3 },
	    del2[] = { 0, 1, 3 }, swap[] = { 0, 2, 1, 3 }, dup[] = { 0, 1, 1, 2,
	    3 };
	struct buf b;
	char *p;

	CHECK(ls->n == 4);
	if (ls->n != 4)
		return;
	CHECK(verify_order(ls, intact, 4) == 0);
	CHECK(verify_order(ls, del1, 3) == -1);
	CHECK(verify_order(ls, del2, 3) == -1);
	CHECK(verify_order(ls, swap, 4) == -1);
	CHECK(verify_order(ls, dup, 5) == -1);
	/* One byte changed in the request record. */
	buf_init(&b);
	buf_add(&b, ls->data, ls->len);
	p = strstr(b.p + (ls->p[1] - ls->data), "cust1");
	CHECK(p != NULL && p < b.p + (ls->p[2] - ls->data));
	if (p)
		p[4] = '2';
	CHECK(verify_text(b.p, b.len, NULL) == -1);
	/* A byte inserted that means nothing to JSON: a space. */
	b.len = 0;
	buf_add(&b, ls->data, (size_t)(ls->p[2] - ls->data) + 1);
	buf_addc(&b, ' ');
	buf_add(&b, ls->p[2] + 1, ls->len - (size_t)(ls->p[2] - ls->data) - 1);
	CHECK(b.len == ls->len + 1 && b.p[b.len - 1] == '\n');
	CHECK(verify_text(b.p, b.len, NULL) == -1);
	/* A torn last line. */
	CHECK(verify_text(ls->data, ls->len - 1, NULL) == -1);
	buf_fini(&b);
}

static struct audit *
open_trail(const struct conf *c)
{
	struct buf err;
	struct audit *a;

	buf_init(&err);
	trail_conf = c;
	a = audit_open(c, &err);
	CHECK(a != NULL);
	if (a)
		sink = audit_sink_new(a, &loop);
	if (a == NULL)
		printf("  audit_open: %s\n", err.p ? err.p : "?");
	buf_fini(&err);
	return a;
}

static void
close_trail(struct audit *a)
{
	audit_sink_stop(sink);
	uv_run(&loop, UV_RUN_DEFAULT);       /* the async handle's close */
	audit_close(a, NULL);   /* no stop record: the checks count lines */
}

static void
test_trail(const struct conf *c, struct arena *ar)
{
	struct call call;
	struct lines ls;
	yajl_val v[16];
	struct audit *a;
	const char *why;
	char *files[1] = { trail }, torn_hex[65];
	static const char q[] = "username=cust1&password=hunter2&plan=basic&"
	    "contactemail=a%40b.example&note=" WKEY "&Session-2=s3cr3t";
	unsigned char h[32];
	unsigned int hl = 32;
	FILE *f;

	memset(&call, 0, sizeof(call));
	CHECK(params_parse(ar, &call.params, q, sizeof(q) - 1, &why) == 0);
	CHECK(call_parse(ar, &call, "createacct", &why) == 0);

	if ((a = open_trail(c)) == NULL)
		return;
	CHECK(audit_writable(a) == 1);
	write_records(a, &call);
	close_trail(a);

	read_lines(trail, &ls);
	CHECK(ls.n == 4 && ls.p[0] == ls.data &&
	    ls.l[3] + (size_t)(ls.p[3] - ls.data) + 1 == ls.len);
	if (ls.n != 4) {
		free(ls.data);
		return;
	}
	check_chain(&ls, NULL, v);
	CHECK_STR(AT(v[0], "type"), "system");
	CHECK_STR(AT(v[0], "event"), "start");
	CHECK_STR(AT(v[0], "instance"), "unit-1");
	CHECK_STR(AT(v[1], "type"), "request");
	CHECK_STR(AT(v[2], "type"), "response");
	CHECK_STR(AT(v[3], "type"), "deny");
	CHECK(strlen(AT(v[1], "ts")) == 27 && AT(v[1], "ts")[26] == 'Z');
	CHECK_STR(AT(v[1], "id"), "req-1");
	CHECK_STR(AT(v[1], "client", "auth"), "bearer");
	CHECK_STR(AT(v[1], "http", "path"), "/json-api/createacct");
	CHECK_STR(AT(v[1], "whm", "params", "password"), "[REDACTED]");
	CHECK_STR(AT(v[1], "whm", "params", "contactemail"), "[REDACTED]");
	CHECK_STR(AT(v[1], "whm", "params", "note"), "[REDACTED]");
	CHECK_STR(AT(v[1], "whm", "params", "Session-2"), "[REDACTED]");
	CHECK_STR(AT(v[1], "whm", "params", "username"), "cust1");
	CHECK_STR(AT(v[1], "whm", "params", "api.version"), "1");
	CHECK_STR(AT(v[1], "whm", "target"), "cust1");
	CHECK_STR(AT(v[1], "decision", "rule"),
	    "$.clients.billing.allow.createacct");
	CHECK_STR(AT(v[2], "whm", "reason"), "Account Creation Ok");
	CHECK_STR(AT(v[3], "decision", "code"), "function_not_allowed");
	CHECK_STR(AT(v[3], "decision", "reason"),
	    "removeacct is not allowed for this client ?");
	CHECK_STR(AT(v[3], "whm", "function"), "removeacct");
	/* numbers are written without printf */
	CHECK_STR(NUM_AT(v[1], "client", "port"), "40000");
	CHECK_STR(NUM_AT(v[2], "http", "status"), "200");
	CHECK_STR(NUM_AT(v[2], "ms"), "2.250");
	CHECK_STR(NUM_AT(v[2], "upstream", "ms"), "1.500");
	CHECK_STR(NUM_AT(v[2], "upstream", "bytes"), "56");
	CHECK_STR(NUM_AT(v[2], "whm", "result"), "1");
	CHECK_STR(NUM_AT(v[3], "ms"), "0.100");
	CHECK_STR(NUM_AT(v[3], "seq"), "4");
	CHECK(memmem(ls.data, ls.len, "hunter2", 7) == NULL);
	CHECK(memmem(ls.data, ls.len, "a@b.example", 11) == NULL);
	CHECK(memmem(ls.data, ls.len, "s3cr3t", 6) == NULL);
	CHECK(memmem(ls.data, ls.len, WKEY, strlen(WKEY)) == NULL);
	free_parsed(v, ls.n);

	CHECK(audit_verify(files, 1, NULL) == 0);
	test_tampering(&ls);
	free(ls.data);

	/* Reopening continues seq and the chain. */
	if ((a = open_trail(c)) == NULL)
		return;
	write_records(a, &call);
	close_trail(a);
	read_lines(trail, &ls);
	CHECK(ls.n == 8);
	check_chain(&ls, NULL, v);
	if (ls.n == 8)
		CHECK_STR(AT(v[4], "event"), "start");
	free_parsed(v, ls.n);
	CHECK(audit_verify(files, 1, NULL) == 0);
	free(ls.data);

	/* A torn last line (a crash mid-write) is cut on open, and the start
	 * record names its hash. */
	static const char torn[] = "{\"ts\":\"2026-01-01T00:00:00.000000Z\","
	    "\"type\":\"request\",\"torn-marker";
	f = fopen(trail, "ab");
	CHECK(f && fwrite(torn, 1, sizeof(torn) - 1, f) == sizeof(torn) - 1);
	if (f)
		fclose(f);
	CHECK(audit_verify(files, 1, NULL) == -1);
	EVP_Digest(torn, sizeof(torn) - 1, h, &hl, EVP_sha256(), NULL);
	hex_of(h, torn_hex);
	if ((a = open_trail(c)) == NULL)
		return;
	fired = 0;
	all_ok = 1;
	{
		/* A batch: sub-call arguments are redacted by the same rule,
		 * and the commands move from params to calls. */
		static const char bq[] = "command=createacct%3Fusername%3Dcust9"
		    "%26password%3Dsub-secret&command=listaccts";
		struct audit_event ev;
		struct call batch;
		memset(&batch, 0, sizeof(batch));
		CHECK(params_parse(ar, &batch.params, bq, sizeof(bq) - 1,
		    &why) == 0);
		CHECK(call_parse(ar, &batch, "batch", &why) == 0);
		event_init(&ev, "request", &batch);
		ev.function = "batch";
		ev.with_params = 1;
		ev.decision = 1;
		CHECK(audit_record(a, sink, &ev, on_written, &want) == 0);
		wait_for(1);
		CHECK(all_ok);
	}
	close_trail(a);
	read_lines(trail, &ls);
	CHECK(ls.n == 10);
	CHECK(memmem(ls.data, ls.len, "torn-marker", 11) == NULL);
	CHECK(ls.len > 0 && ls.data[ls.len - 1] == '\n');
	check_chain(&ls, NULL, v);
	if (ls.n == 10) {
		CHECK_STR(AT(v[8], "event"), "start");
		CHECK_STR(AT(v[8], "torn_line_sha256"), torn_hex);
		yajl_val calls = yajl_tree_get(v[9], (const char *[]){ "whm",
		    "calls", NULL }, yajl_t_array);
		CHECK_STR(AT(v[9], "type"), "request");
		CHECK(calls && calls->u.array.len == 2);
		if (calls && calls->u.array.len == 2) {
			CHECK_STR(AT(calls->u.array.values[0], "function"),
			    "createacct");
			CHECK_STR(AT(calls->u.array.values[0], "params",
			    "password"), "[REDACTED]");
			CHECK_STR(AT(calls->u.array.values[0], "params",
			    "username"), "cust9");
			CHECK_STR(AT(calls->u.array.values[1], "function"),
			    "listaccts");
		}
		CHECK(yajl_tree_get(v[9], (const char *[]){ "whm", "params",
		    "command", NULL }, yajl_t_any) == NULL);
		CHECK(memmem(ls.data, ls.len, "sub-secret", 10) == NULL);
	}
	free_parsed(v, ls.n);
	CHECK(audit_verify(files, 1, NULL) == 0);
	free(ls.data);
	unlink(trail);
}

/* With audit.hmac_key_file the chain is HMAC-SHA256 and redacted values
 * are keyed hashes. */
static void
test_hmac(struct arena *ar)
{
	char extra[512], keyfile[160], path[160], *files[1] = { path };
	struct lines ls;
	struct call call;
	struct conf *c;
	struct audit *a;
	const char *why;
	yajl_val v[16];
	FILE *f;

	snprintf(keyfile, sizeof(keyfile), "%s/hmac.key", dir);
	snprintf(path, sizeof(path), "%s/hmac.jsonl", dir);
	f = fopen(keyfile, "w");
	CHECK(f && fputs("unit-test-hmac-key\n", f) >= 0);
	if (f)
		fclose(f);
	chmod(keyfile, 0600);
	snprintf(extra, sizeof(extra), "\"audit\": {\"file\": \"%s\", "
	    "\"hmac_key_file\": \"%s\"}", path, keyfile);
	c = unit_conf(extra, "{}");
	CHECK(c != NULL);
	memset(&call, 0, sizeof(call));
	CHECK(params_parse(ar, &call.params, "username=cust1&password=x", 25,
	    &why) == 0);
	CHECK(call_parse(ar, &call, "createacct", &why) == 0);
	if (c && (a = open_trail(c)) != NULL) {
		write_records(a, &call);
		close_trail(a);
		read_lines(path, &ls);
		CHECK(ls.n == 4);
		check_chain(&ls, "unit-test-hmac-key", v);
		if (ls.n == 4)
			CHECK(strncmp(AT(v[1], "whm", "params", "password"),
			    "hmac-sha256:", 12) == 0);
		free_parsed(v, ls.n);
		free(ls.data);
		CHECK(audit_verify(files, 1, keyfile) == 0);
		CHECK(audit_verify(files, 1, NULL) == -1);
	}
	conf_unref(c);
	unlink(path);
	unlink(keyfile);
}

static void
test_fmt_u64(void)
{
	char out[21];

	CHECK(fmt_u64(out, 0) == 1 && strcmp(out, "0") == 0);
	CHECK(fmt_u64(out, 10) == 2 && strcmp(out, "10") == 0);
	CHECK(fmt_u64(out, 18446744073709551615ULL) == 20 &&
	    strcmp(out, "18446744073709551615") == 0);
}

int
main(void)
{
	char extra[512];
	struct arena ar;
	struct conf *c;

	test_fmt_u64();
	snprintf(dir, sizeof(dir), "/tmp/whmgate-unit-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(trail, sizeof(trail), "%s/audit.jsonl", dir);
	snprintf(extra, sizeof(extra), "\"instance\": \"unit-1\", \"audit\": "
	    "{\"file\": \"%s\", \"fsync\": \"always\", \"redact\": "
	    "[\"contactemail\"]}", trail);
	c = unit_conf(extra, "{}");
	CHECK(c != NULL);
	arena_init(&ar);
	CHECK(uv_loop_init(&loop) == 0);
	uv_timer_init(&loop, &guard);
	if (c) {
		test_redacted_names(c);
		test_trail(c, &ar);
	}
	test_hmac(&ar);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	conf_unref(c);
	arena_fini(&ar);
	rmdir(dir);
	return unit_report();
}

/* test_policy_records.c - audit records read back for the policy tools
 * (record_read.c, SPEC section 12): the fields, the call rebuilt through
 * params.c's rules (and decided by policy.c as the daemon did), redacted
 * values, and hostile lines refused with a reason, never a crash. */
#include <stdlib.h>

#include "params.h"
#include "policy.h"
#include "record_read.h"
#include "unit.h"
#include "unit_conf.h"

#define HEAD "{\"ts\":\"2026-12-04T18:37:43.721154Z\",\"instance\":\"test\","
#define CLIENT "\"client\":{\"id\":\"billing\",\"ip\":\"127.0.0.1\"," \
    "\"port\":48950,\"auth\":\"bearer\"},"

static const char req_create[] = HEAD "\"type\":\"request\","
    "\"id\":\"e64bb4e19646ec1600000000\"," CLIENT
    "\"http\":{\"method\":\"GET\",\"path\":\"/json-api/createacct\"},"
    "\"whm\":{\"function\":\"createacct\",\"user\":\"root\",\"target\":\"newone\","
    "\"params\":{\"api.version\":\"1\",\"username\":\"newone\",\"domain\":"
    "\"new one&x=1\",\"plan\":\"pro\",\"plan-1\":\"basic\"}},"
    "\"decision\":{\"allow\":true,\"rule\":\"$.clients.billing.allow\","
    "\"code\":null,\"reason\":null},\"seq\":2,\"prev\":\"00\"}";

static const char req_uapi[] = HEAD "\"type\":\"request\","
    "\"id\":\"e64bb4e19646ec1600000002\"," CLIENT
    "\"whm\":{\"function\":\"uapi_cpanel\",\"user\":\"root\",\"target\":\"cust1\","
    "\"params\":{\"api.version\":\"1\",\"cpanel.user\":\"cust1\",\"cpanel.module\":"
    "\"Email\",\"cpanel.function\":\"add_pop\",\"email\":\"x\",\"password\":"
    "\"[REDACTED]\"},\"calls\":[{\"function\":\"uapi_cpanel\",\"module\":\"Email\","
    "\"func\":\"add_pop\",\"user\":\"cust1\"}]},"
    "\"decision\":{\"allow\":true,\"rule\":\"r\",\"code\":null,\"reason\":null},"
    "\"seq\":6}";

static const char req_batch[] = HEAD "\"type\":\"request\","
    "\"id\":\"e64bb4e19646ec1600000003\"," CLIENT
    "\"whm\":{\"function\":\"batch\",\"user\":\"root\",\"target\":null,"
    "\"params\":{\"api.version\":\"1\"},\"calls\":[{\"function\":\"listaccts\","
    "\"target\":null,\"params\":{},\"result\":null},{\"function\":\"suspendacct\","
    "\"target\":\"cust2\",\"params\":{\"user\":\"cust2\",\"reason\":\"a&b=c?d\"},"
    "\"result\":null}]},\"decision\":{\"allow\":true,\"rule\":\"r\",\"code\":null,"
    "\"reason\":null,\"candidate\":{\"allow\":false}},\"seq\":8}";

static const char deny_fn[] = HEAD "\"type\":\"deny\","
    "\"id\":\"e64bb4e19646ec1600000007\"," CLIENT
    "\"http\":{\"method\":\"GET\",\"path\":\"/json-api/removeacct\",\"status\":403},"
    "\"whm\":{\"function\":\"removeacct\",\"user\":\"root\",\"target\":\"cust1\","
    "\"params\":{\"api.version\":\"1\",\"user\":\"cust1\"}},\"decision\":{\"allow\":"
    "false,\"rule\":null,\"code\":\"function_not_allowed\",\"reason\":\"x\"},"
    "\"ms\":0.048,\"seq\":13}";

static const char resp_ok[] = HEAD "\"type\":\"response\","
    "\"id\":\"e64bb4e19646ec1600000000\"," CLIENT
    "\"whm\":{\"function\":\"createacct\",\"result\":1,\"reason\":\"OK\"},\"seq\":3}";

static const char sys_start[] = HEAD "\"type\":\"system\",\"event\":\"start\","
    "\"seq\":1}";

static void
test_fields(void)
{
	struct record r;
	char err[128];

	CHECK(record_parse(req_create, strlen(req_create), &r, err,
	    sizeof(err)) == 0);
	CHECK_STR(r.type, "request");
	CHECK_STR(r.id, "e64bb4e19646ec1600000000");
	CHECK_STR(r.client, "billing");
	CHECK_STR(r.function, "createacct");
	CHECK(r.has_call == 1 && r.decision == 1 && r.seq == 2 && r.result == -1);
	CHECK(r.code == NULL && r.cand == 0);
	record_fini(&r);
	CHECK(record_parse(deny_fn, strlen(deny_fn), &r, err, sizeof(err)) == 0);
	CHECK(r.decision == 0 && r.has_call == 1);
	CHECK_STR(r.code, "function_not_allowed");
	CHECK(record_policy_refusal(r.code));
	CHECK(!record_policy_refusal("too_many_inflight"));
	CHECK(!record_policy_refusal(NULL));
	record_fini(&r);
	CHECK(record_parse(resp_ok, strlen(resp_ok), &r, err, sizeof(err)) == 0);
	CHECK(r.result == 1 && r.has_call == 0 && r.decision == -1);
	record_fini(&r);
	CHECK(record_parse(req_batch, strlen(req_batch), &r, err, sizeof(err)) == 0);
	CHECK(r.cand == 1);
	record_fini(&r);
	CHECK(record_parse(sys_start, strlen(sys_start), &r, err, sizeof(err)) == 0);
	CHECK_STR(r.type, "system");
	CHECK(r.id == NULL && r.seq == 1);
	record_fini(&r);
}

/* The rebuilt call: what the daemon parsed, from the record alone. */
static void
test_rebuild(void)
{
	static const struct params_limits lim = { 1 << 20, 1 << 20 };
	struct record r;
	struct arena a;
	struct call c;
	const char *why;
	char err[128];

	arena_init(&a);
	CHECK(record_parse(req_create, strlen(req_create), &r, err,
	    sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(c.kind == CALL_PLAIN);
	CHECK_STR(c.rule_name, "createacct");
	CHECK(c.params.n == 5);
	CHECK_STR(params_get(&c.params, "domain"), "new one&x=1");
	CHECK(params_count(&c.params, "plan", 0) == 2);
	CHECK(params_count(&c.params, "x", 0) == 0);
	record_fini(&r);
	CHECK(record_parse(req_uapi, strlen(req_uapi), &r, err, sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(c.kind == CALL_UAPI);
	CHECK_STR(c.rule_name, "uapi_cpanel:Email::add_pop");
	CHECK_STR(params_get(&c.params, "password"), "[REDACTED]");
	record_fini(&r);
	CHECK(record_parse(req_batch, strlen(req_batch), &r, err, sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(c.kind == CALL_BATCH && c.nsubs == 2);
	if (c.nsubs == 2) {
		CHECK_STR(c.subs[0].rule_name, "listaccts");
		CHECK_STR(c.subs[1].rule_name, "suspendacct");
		CHECK_STR(params_get(&c.subs[1].params, "reason"), "a&b=c?d");
		CHECK_STR(params_get(&c.subs[1].params, "user"), "cust2");
	}
	record_fini(&r);
	/* no call to rebuild */
	CHECK(record_parse(resp_ok, strlen(resp_ok), &r, err, sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == -1 && why != NULL);
	record_fini(&r);
	arena_fini(&a);
}

/* Lines that are not records, or records whose call cannot be the one
 * the daemon parsed: refused with a reason. */
static void
test_hostile(void)
{
	static const struct params_limits lim = { 1 << 20, 1 << 20 };
	static const char *const bad[] = {
		"", "x", "{", "[]", "null", "\"request\"", "{\"type\":\"request\"}",
		HEAD "\"type\":\"request\"}",                 /* no id */
		HEAD "\"type\":\"weird\",\"id\":\"1\"}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":[]}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"f\","
		    "\"params\":[]}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"params\":{}}}",
		HEAD "\"type\":\"deny\",\"id\":\"1\",\"decision\":{\"allow\":\"no\"}}",
		HEAD "\"type\":1,\"id\":\"1\"}",
	};
	/* parse, but the call cannot be rebuilt */
	static const char *const unbuildable[] = {
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"f\","
		    "\"params\":{\"a\":1}}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":"
		    "\"[REDACTED]\",\"params\":{}}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"f\","
		    "\"params\":{\"a\":\"1\",\"a\":\"2\"}}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"f\","
		    "\"params\":{\"api.version\":\"2\"}}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"batch\","
		    "\"params\":{},\"calls\":{}}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"batch\","
		    "\"params\":{},\"calls\":[{\"function\":\"x\"}]}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"batch\","
		    "\"params\":{},\"calls\":[{\"function\":\"Bad!\",\"params\":{}}]}}",
		HEAD "\"type\":\"request\",\"id\":\"1\",\"whm\":{\"function\":\"f\","
		    "\"params\":{\"\":\"x\"}}}",
	};
	struct record r;
	struct arena a;
	struct call c;
	const char *why;
	char err[128], *deep;
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(record_parse(bad[i], strlen(bad[i]), &r, err,
		    sizeof(err)) == -1);
		CHECK(err[0] != '\0' && r.root == NULL);
		if (err[0] == '\0')
			printf("  no reason for %s\n", bad[i]);
	}
	arena_init(&a);
	for (i = 0; i < sizeof(unbuildable) / sizeof(unbuildable[0]); i++) {
		CHECK(record_parse(unbuildable[i], strlen(unbuildable[i]), &r, err,
		    sizeof(err)) == 0);
		why = NULL;
		CHECK(record_call(&r, &a, &lim, &c, &why) == -1 && why != NULL);
		if (why == NULL)
			printf("  rebuilt %s\n", unbuildable[i]);
		record_fini(&r);
	}
	arena_fini(&a);
	/* a truncated record at every length, and a NUL inside */
	for (n = 0; n < strlen(req_batch); n++) {
		if (record_parse(req_batch, n, &r, err, sizeof(err)) == 0) {
			CHECK(!"a truncated record parsed");
			record_fini(&r);
		}
	}
	CHECK(record_parse(req_batch, strlen(req_batch) + 1, &r, err,
	    sizeof(err)) == -1);
	/* a million '[': refused before yajl_tree recurses into it */
	n = 1000000;
	deep = malloc(n);
	memset(deep, '[', n);
	CHECK(record_parse(deep, n, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested") != NULL);
	memset(deep, '{', n);
	CHECK(record_parse(deep, n, &r, err, sizeof(err)) == -1);
	/* balanced: yajl_tree itself overflows the stack on this (measured:
	 * SIGSEGV at a million levels), so the depth is refused first */
	memset(deep, '[', n / 2);
	memset(deep + n / 2, ']', n / 2);
	CHECK(record_parse(deep, n, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested") != NULL);
	/* at the limit it is read (and is no record) */
	memset(deep, '[', 32);
	memset(deep + 32, ']', 32);
	CHECK(record_parse(deep, 64, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "nested") == NULL);
	free(deep);
}

static void
test_redacted(void)
{
	CHECK(record_redacted("[REDACTED]"));
	CHECK(record_redacted("hmac-sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
	CHECK(!record_redacted("hmac-sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"));
	CHECK(!record_redacted("hmac-sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"));
	CHECK(!record_redacted("[redacted]"));
	CHECK(!record_redacted(""));
	CHECK(!record_redacted("REDACTED"));
}

/* A recorded call decided again by policy.c: the replay's view. */
static void
test_replay_decision(void)
{
	static const struct params_limits lim = { 1 << 20, 1 << 20 };
	static const char clients[] = "{"
	    "\"billing\": {\"keys\": [\"sha256:"
	    "0000000000000000000000000000000000000000000000000000000000000000\"],"
	    " \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"}, \"allow\": {"
	    "  \"createacct\": {\"plan\": {\"enum\": [\"basic\", \"pro\"]}},"
	    "  \"uapi_cpanel:Email::add_pop\": {\"password\": {\"pattern\": \".{8,}\"}},"
	    "  \"batch\": {}, \"listaccts\": {}}}}";
	struct conf *cf = unit_conf(NULL, clients);
	const struct client *cl;
	struct decision d;
	struct record r;
	struct arena a;
	struct call c;
	const char *why;
	char err[128];

	CHECK(cf != NULL);
	if (cf == NULL)
		return;
	cl = conf_client(cf, "billing");
	arena_init(&a);
	CHECK(record_parse(req_create, strlen(req_create), &r, err,
	    sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(policy_check_ex(cl, POLICY_ALLOW, &c, record_redacted, &d) == 0);
	record_fini(&r);
	/* the password is redacted: its pattern cannot be decided */
	CHECK(record_parse(req_uapi, strlen(req_uapi), &r, err, sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(policy_check_ex(cl, POLICY_ALLOW, &c, record_redacted, &d) == -1);
	CHECK(d.unknown == 1 && d.allow == 0);
	record_fini(&r);
	/* suspendacct inside the batch is not on the list */
	CHECK(record_parse(req_batch, strlen(req_batch), &r, err, sizeof(err)) == 0);
	CHECK(record_call(&r, &a, &lim, &c, &why) == 0);
	CHECK(policy_check_ex(cl, POLICY_ALLOW, &c, record_redacted, &d) == -1);
	CHECK(d.unknown == 0 && d.code && strcmp(d.code, "function_not_allowed") == 0);
	record_fini(&r);
	arena_fini(&a);
	conf_unref(cf);
}

int
main(void)
{
	test_fields();
	test_rebuild();
	test_hostile();
	test_redacted();
	test_replay_decision();
	return unit_report();
}

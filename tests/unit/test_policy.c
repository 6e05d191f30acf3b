/* test_policy.c - deny-by-default decisions (SPEC section 4): constraints,
 * -N copies, batch sub-calls, cpanel/uapi_cpanel targets, decision.rule. */
#include <stdlib.h>

#include "params.h"
#include "policy.h"
#include "unit.h"
#include "unit_conf.h"

#define KEY "\"keys\": [\"sha256:" \
    "0000000000000000000000000000000000000000000000000000000000000000\"]"
/* One key names one client: the others get keys of their own. */
#define KEY_NB "\"keys\": [\"sha256:" \
    "0000000000000000000000000000000000000000000000000000000000000001\"]"
#define KEY_NONE "\"keys\": [\"sha256:" \
    "0000000000000000000000000000000000000000000000000000000000000002\"]"
#define KEY_ANY "\"keys\": [\"sha256:" \
    "0000000000000000000000000000000000000000000000000000000000000003\"]"
#define KEY_TIGHT "\"keys\": [\"sha256:" \
    "0000000000000000000000000000000000000000000000000000000000000004\"]"

static const char clients[] = "{"
    "\"p\": {" KEY ", \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"},"
    " \"allow\": {"
    "  \"listaccts\": {},"
    "  \"accountsummary\": {\"user\": {\"pattern\": \"^cust[0-9]+$\"}},"
    "  \"alt\": {\"mode\": {\"pattern\": \"a|b\"}},"
    "  \"createacct\": {\"plan\": {\"enum\": [\"basic\", \"pro\"]},"
    "    \"username\": {\"pattern\": \"[a-z][a-z0-9]{0,15}\","
    "      \"required\": true},"
    "    \"showpass\": {\"enum\": [\"n\"], \"required\": true}},"
    "  \"suspendacct\": {\"reason\": {\"absent\": true}},"
    "  \"both\": {\"x\": {\"enum\": [\"ab\", \"cd\"], \"pattern\": \"a.*\"}},"
    "  \"batch\": {},"
    "  \"cpanel:Email::listpops\": {\"cpanel_jsonapi_user\":"
    "    {\"pattern\": \"cust[0-9]+\"}},"
    "  \"uapi_cpanel:Email::list_pops\": {\"cpanel.user\":"
    "    {\"pattern\": \"^cust[0-9]+$\"}}"
    " }},"
    "\"nb\": {" KEY_NB ", \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"},"
    " \"allow\": {\"listaccts\": {}, \"accountsummary\": {}}},"
    "\"none\": {" KEY_NONE ", \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"},"
    " \"allow\": {}},"
    "\"any\": {" KEY_ANY ", \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"},"
    " \"allow\": \"any\", \"candidate\": {\"listaccts\": {}, \"batch\": {},"
    "  \"createacct\": {\"plan\": {\"enum\": [\"basic\"]},"
    "    \"username\": {\"pattern\": \"[a-z]+\", \"required\": true}},"
    "  \"uapi_cpanel:Email::add_pop\": {\"password\": {\"pattern\": \".{8,}\"}}}},"
    "\"tight\": {" KEY_TIGHT ", \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"},"
    " \"allow\": {\"listaccts\": {}}, \"candidate\": \"any\"}"
    "}";

#define R "$.clients.p.allow"
#define FN "function_not_allowed"
#define PN "parameter_not_allowed"

struct pcase {
	const char *client, *fn, *q;
	const char *code;       /* NULL: allowed */
	const char *rule;       /* expected decision.rule (NULL: none) */
};

static const struct pcase cases[] = {
	{ "p", "listaccts", "", NULL, R ".listaccts" },
	{ "p", "listaccts", "search=x&anything=y", NULL, R ".listaccts" },
	{ "p", "removeacct", "user=x", FN, NULL },
	{ "none", "listaccts", "", FN, NULL },
	{ "p", "listaccts_x", "", FN, NULL },
	/* pattern: whole value, every -N copy */
	{ "p", "accountsummary", "user=cust1", NULL, R ".accountsummary" },
	{ "p", "accountsummary", "", NULL, R ".accountsummary" },
	{ "p", "accountsummary", "user=bob", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user=cust1x", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user=xcust1", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user=cust1%0A", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user=", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user=cust1&user-1=bob", PN,
	  R ".accountsummary.user" },
	{ "p", "accountsummary", "user-7=root", PN, R ".accountsummary.user" },
	{ "p", "accountsummary", "user-1=cust2&user=cust3", NULL,
	  R ".accountsummary" },
	{ "p", "accountsummary", "user-x=root", NULL, R ".accountsummary" },
	{ "p", "alt", "mode=a", NULL, R ".alt" },
	{ "p", "alt", "mode=b", NULL, R ".alt" },
	{ "p", "alt", "mode=ab", PN, R ".alt.mode" },
	{ "p", "alt", "mode=xa", PN, R ".alt.mode" },
	{ "p", "alt", "mode=a-and-anything", PN, R ".alt.mode" },
	{ "p", "alt", "mode=anything-b", PN, R ".alt.mode" },
	/* enum, required (plain name only) */
	{ "p", "createacct", "username=abc&showpass=n&plan=pro", NULL,
	  R ".createacct" },
	{ "p", "createacct", "username=abc&showpass=n", NULL, R ".createacct" },
	{ "p", "createacct", "username=abc&showpass=n&plan=gold", PN,
	  R ".createacct.plan" },
	{ "p", "createacct", "username=abc&showpass=n&plan=Pro", PN,
	  R ".createacct.plan" },
	{ "p", "createacct", "username=abc&showpass=n&plan=pro&plan-1=gold",
	  PN, R ".createacct.plan" },
	{ "p", "createacct", "username=abc&showpass=n&plan-3=gold", PN,
	  R ".createacct.plan" },
	{ "p", "createacct", "username=abc&showpass=y", PN,
	  R ".createacct.showpass" },
	{ "p", "createacct", "username=abc", PN, R ".createacct.showpass" },
	{ "p", "createacct", "username=abc&showpass-1=n", PN,
	  R ".createacct.showpass" },
	{ "p", "createacct", "showpass=n", PN, R ".createacct.username" },
	{ "p", "createacct", "username-0=abc&showpass=n", PN,
	  R ".createacct.username" },
	{ "p", "createacct", "username=Abc&showpass=n", PN,
	  R ".createacct.username" },
	{ "p", "createacct", "username=abcdefghijklmnopq&showpass=n", PN,
	  R ".createacct.username" },
	/* absent: the name and every -N copy */
	{ "p", "suspendacct", "user=x", NULL, R ".suspendacct" },
	{ "p", "suspendacct", "user=x&reason=y", PN, R ".suspendacct.reason" },
	{ "p", "suspendacct", "reason=", PN, R ".suspendacct.reason" },
	{ "p", "suspendacct", "reason-2=y", PN, R ".suspendacct.reason" },
	{ "p", "suspendacct", "reasons=y&reason-x=z", NULL, R ".suspendacct" },
	/* enum and pattern together: both must hold */
	{ "p", "both", "x=ab", NULL, R ".both" },
	{ "p", "both", "x=cd", PN, R ".both.x" },
	{ "p", "both", "x=abc", PN, R ".both.x" },
	/* batch */
	{ "p", "batch", "command=listaccts&command=accountsummary%3Fuser%3Dcust1",
	  NULL, R ".batch" },
	{ "p", "batch", "command-1=accountsummary%3Fuser%3Dcust1&command-0="
	  "listaccts", NULL, R ".batch" },
	{ "p", "batch", "command=listaccts&command=removeacct%3Fuser%3Dx", FN,
	  NULL },
	{ "p", "batch", "command=accountsummary%3Fuser%3Dbob", PN,
	  R ".accountsummary.user" },
	{ "p", "batch", "command=accountsummary%3Fuser%3Dcust1%26user-1%3Droot",
	  PN, R ".accountsummary.user" },
	{ "p", "batch", "command=createacct%3Fusername%3Dabc", PN,
	  R ".createacct.showpass" },
	/* a sub-call's parameters are its own: the outer ones do not count */
	{ "p", "batch", "command=createacct%3Fusername%3Dabc&showpass=n", PN,
	  R ".createacct.showpass" },
	{ "p", "batch", "command=accountsummary&user=bob", NULL, R ".batch" },
	{ "p", "batch", "command=batch%3Fcommand%3Dlistaccts", FN, R ".batch" },
	{ "p", "batch", "command=listaccts&command=batch", FN, R ".batch" },
	{ "nb", "batch", "command=listaccts", FN, NULL },
	{ "nb", "batch", "command=batch%3Fcommand%3Dlistaccts", FN, NULL },
	{ "p", "batch", "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	  "cpanel_jsonapi_func%3Dlistpops%26cpanel_jsonapi_user%3Dcust5", NULL,
	  R ".batch" },
	{ "p", "batch", "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	  "cpanel_jsonapi_func%3Dlistpops%26cpanel_jsonapi_user%3Droot", PN,
	  R "[\"cpanel:Email::listpops\"].cpanel_jsonapi_user" },
	{ "p", "batch", "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	  "cpanel_jsonapi_func%3Daddpop", FN, NULL },
	{ "p", "batch", "command=uapi_cpanel%3Fcpanel.module%3DEmail%26"
	  "cpanel.function%3Dlist_pops%26cpanel.user%3Dcust1", NULL, R ".batch" },
	/* cpanel / uapi_cpanel per target */
	{ "p", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "listpops&cpanel_jsonapi_user=cust1", NULL,
	  R "[\"cpanel:Email::listpops\"]" },
	{ "p", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "listpops&cpanel_jsonapi_user=root", PN,
	  R "[\"cpanel:Email::listpops\"].cpanel_jsonapi_user" },
	{ "p", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "addpop&cpanel_jsonapi_user=cust1", FN, NULL },
	/* the 'user' fallback is held to the cpanel_jsonapi_user rule */
	{ "p", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "listpops&user=root", PN,
	  R "[\"cpanel:Email::listpops\"].cpanel_jsonapi_user" },
	{ "p", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "listpops&user=cust7", NULL, R "[\"cpanel:Email::listpops\"]" },
	{ "p", "batch", "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	  "cpanel_jsonapi_func%3Dlistpops%26user%3Droot", PN,
	  R "[\"cpanel:Email::listpops\"].cpanel_jsonapi_user" },
	{ "p", "cpanel", "cpanel_jsonapi_module=email&cpanel_jsonapi_func="
	  "listpops", FN, NULL },
	{ "p", "cpanel", "cpanel_jsonapi_module=Ftp&cpanel_jsonapi_func="
	  "listpops", FN, NULL },
	{ "p", "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops&"
	  "cpanel.user=cust1", NULL, R "[\"uapi_cpanel:Email::list_pops\"]" },
	{ "p", "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops&"
	  "cpanel.user=root", PN,
	  R "[\"uapi_cpanel:Email::list_pops\"][\"cpanel.user\"]" },
	{ "p", "uapi_cpanel", "cpanel.module=Email&cpanel.function=listpops&"
	  "cpanel.user=cust1", FN, NULL },
	{ "nb", "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
	  "listpops", FN, NULL },
	{ "nb", "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops",
	  FN, NULL },
	/* "allow": "any" (section 12): every function, parameter, sub-call
	 * and target; decision.rule is the allow itself */
	{ "any", "removeacct", "user=x&keepdns=1", NULL, "$.clients.any.allow" },
	{ "any", "createacct", "username=A-B&plan=gold", NULL,
	  "$.clients.any.allow" },
	{ "any", "batch", "command=removeacct%3Fuser%3Dx&command=listaccts",
	  NULL, "$.clients.any.allow" },
	{ "any", "uapi_cpanel", "cpanel.module=Mysql&cpanel.function="
	  "delete_database&cpanel.user=x&name=y", NULL, "$.clients.any.allow" },
	{ "any", "cpanel", "cpanel_jsonapi_module=Fileman&cpanel_jsonapi_func="
	  "fileop&user=x", NULL, "$.clients.any.allow" },
	/* a nested batch stays refused, even under any */
	{ "any", "batch", "command=batch%3Fcommand%3Dlistaccts", FN,
	  "$.clients.any.allow" },
	/* a candidate never decides */
	{ "tight", "removeacct", "", FN, NULL },
};

struct ccase {
	const char *client, *fn, *q;
	int has;                /* the client has a candidate */
	int allow;              /* the candidate's decision */
	const char *rule;       /* the candidate's decision.rule */
	int differs;            /* from the allow's decision */
};

#define C "$.clients.any.candidate"
static const struct ccase ccases[] = {
	{ "p", "listaccts", "", 0, 0, NULL, 0 },
	{ "any", "listaccts", "", 1, 1, C ".listaccts", 0 },
	{ "any", "createacct", "username=abc&plan=basic", 1, 1, C ".createacct", 0 },
	{ "any", "createacct", "username=abc&plan=pro", 1, 0, C ".createacct.plan", 1 },
	{ "any", "createacct", "plan=basic", 1, 0, C ".createacct.username", 1 },
	{ "any", "removeacct", "user=x", 1, 0, NULL, 1 },
	{ "any", "batch", "command=listaccts&command=removeacct%3Fuser%3Dx", 1,
	  0, NULL, 1 },
	{ "any", "batch", "command=listaccts&command=createacct%3Fusername%3Dab",
	  1, 1, C ".batch", 0 },
	{ "tight", "removeacct", "", 1, 1, "$.clients.tight.candidate", 1 },
	{ "tight", "listaccts", "", 1, 1, "$.clients.tight.candidate", 0 },
};

/* Replays: a value recorded redacted cannot be decided. */
static int
redacted(const char *v)
{
	return strcmp(v, "[REDACTED]") == 0;
}

static void
test_candidate(const struct conf *c, struct arena *a)
{
	const struct ccase *t;
	struct decision d, cd;
	struct call call;
	const char *why;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
		t = &ccases[i];
		memset(&call, 0, sizeof(call));
		if (params_parse(a, &call.params, t->q, strlen(t->q), &why) ||
		    call_parse(a, &call, t->fn, &why)) {
			CHECK(!"call could not be built");
			continue;
		}
		policy_check(conf_client(c, t->client), &call, &d);
		rc = policy_check_candidate(conf_client(c, t->client), &call, &cd);
		if (!t->has) {
			CHECK(rc == 1 && cd.allow == 0 && cd.rule == NULL);
			continue;
		}
		CHECK(rc == (t->allow ? 0 : -1) && cd.allow == t->allow);
		if (t->rule)
			CHECK_STR(cd.rule, t->rule);
		else
			CHECK(cd.rule == NULL);
		CHECK(policy_differs(&d, &cd) == t->differs);
		if (cd.allow != t->allow || policy_differs(&d, &cd) != t->differs)
			printf("  %s %s?%s: candidate %d differs %d\n", t->client,
			    t->fn, t->q, cd.allow, policy_differs(&d, &cd));
	}
}

/* policy_check_ex with a redaction test: a rule that reads a redacted
 * value is unknown, never allowed; one that does not read it decides. */
static void
test_unknown(const struct conf *c, struct arena *a)
{
	static const struct {
		const char *client, *fn, *q;
		int which, rc, unknown;
		const char *code;
	} t[] = {
		/* pattern on a redacted value: unknown */
		{ "any", "uapi_cpanel", "cpanel.module=Email&cpanel.function="
		  "add_pop&password=%5BREDACTED%5D", POLICY_CANDIDATE, -1, 1,
		  "unknown" },
		/* the same value in clear: decided */
		{ "any", "uapi_cpanel", "cpanel.module=Email&cpanel.function="
		  "add_pop&password=longenough", POLICY_CANDIDATE, 0, 0, NULL },
		{ "any", "uapi_cpanel", "cpanel.module=Email&cpanel.function="
		  "add_pop&password=short", POLICY_CANDIDATE, -1, 0, PN },
		/* a definite refusal wins over an unknown value */
		{ "any", "createacct", "username=%5BREDACTED%5D&plan=pro",
		  POLICY_CANDIDATE, -1, 0, PN },
		/* no value rule on it: the redaction does not matter */
		{ "any", "listaccts", "search=%5BREDACTED%5D", POLICY_CANDIDATE,
		  0, 0, NULL },
		{ "any", "removeacct", "user=%5BREDACTED%5D", POLICY_ALLOW, 0, 0,
		  NULL },
		/* enum on a redacted value, inside a batch */
		{ "p", "batch", "command=createacct%3Fusername%3Dab%26showpass%3Dn"
		  "%26plan%3D%255BREDACTED%255D", POLICY_ALLOW, -1, 1, "unknown" },
		/* required is about presence, which a redacted value keeps */
		{ "any", "createacct", "username=abc&plan=basic",
		  POLICY_CANDIDATE, 0, 0, NULL },
	};
	struct decision d;
	struct call call;
	const char *why;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&call, 0, sizeof(call));
		if (params_parse(a, &call.params, t[i].q, strlen(t[i].q), &why) ||
		    call_parse(a, &call, t[i].fn, &why)) {
			CHECK(!"call could not be built");
			printf("  %s: %s\n", t[i].q, why);
			continue;
		}
		rc = policy_check_ex(conf_client(c, t[i].client), t[i].which,
		    &call, redacted, &d);
		CHECK(rc == t[i].rc && d.unknown == t[i].unknown);
		CHECK(d.allow == (t[i].rc == 0));
		if (t[i].code)
			CHECK(d.code && strcmp(d.code, t[i].code) == 0);
		if (rc != t[i].rc || d.unknown != t[i].unknown)
			printf("  %s?%s: rc %d unknown %d code %s\n", t[i].fn,
			    t[i].q, rc, d.unknown, d.code ? d.code : "-");
		/* without the test, the same call is decided on the text */
		rc = policy_check_ex(conf_client(c, t[i].client), t[i].which,
		    &call, NULL, &d);
		CHECK(d.unknown == 0);
	}
}

static void
run_case(const struct conf *c, struct arena *a, const struct pcase *t)
{
	const struct client *cl = conf_client(c, t->client);
	struct decision d;
	struct call call;
	const char *why = NULL;
	int rc;

	memset(&call, 0, sizeof(call));
	if (cl == NULL || params_parse(a, &call.params, t->q, strlen(t->q),
	    &why) == -1 || call_parse(a, &call, t->fn, &why) == -1) {
		CHECK(!"call could not be built");
		printf("  %s?%s: %s\n", t->fn, t->q, why ? why : "no client");
		return;
	}
	memset(&d, 0x55, sizeof(d));
	rc = policy_check(cl, &call, &d);
	if (t->code == NULL) {
		CHECK(rc == 0 && d.allow == 1);
	} else {
		CHECK(rc == -1 && d.allow == 0 && d.status == 403);
		CHECK(d.code != NULL && strcmp(d.code, t->code) == 0);
		CHECK(d.reason[0] != '\0');
	}
	if (t->rule)
		CHECK_STR(d.rule, t->rule);
	else
		CHECK(d.rule == NULL);
	if ((rc == 0) != (t->code == NULL) || (t->code && d.code &&
	    strcmp(d.code, t->code) != 0))
		printf("  %s %s?%s: rc %d code %s reason %s\n", t->client,
		    t->fn, t->q, rc, rc ? d.code : "-", rc ? d.reason : "-");
}

int
main(void)
{
	struct conf *c = unit_conf(NULL, clients);
	struct arena a;
	size_t i;

	CHECK(c != NULL);
	if (c == NULL)
		return unit_report();
	arena_init(&a);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(c, &a, &cases[i]);
	test_candidate(c, &a);
	test_unknown(c, &a);
	arena_fini(&a);
	conf_unref(c);
	return unit_report();
}

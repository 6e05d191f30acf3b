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
    " \"allow\": {}}"
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
};

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
	arena_fini(&a);
	conf_unref(c);
	return unit_report();
}

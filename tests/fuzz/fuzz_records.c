/* fuzz_records.c - audit lines read back by policy suggest/replay
 * (record_read.c). Input: one line. Properties: a line either parses or
 * says why; a rebuilt call is one params.c accepts; the replay's decision
 * (redacted values unknown) is never more permissive than the decision on
 * the text, and an unknown is never an allow. */
#include "conf.h"
#include "params.h"
#include "policy.h"
#include "record_read.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "{\"listen\":[\"127.0.0.1:1\"],\"upstream\":{\"url\":\"https://h\"},"
    "\"clients\":{\"billing\":{\"keys\":[\"sha256:"
    "0000000000000000000000000000000000000000000000000000000000000000\"],"
    "\"whm_user\":\"root\",\"whm_token\":{\"env\":\"X\"},\"allow\":{"
    "\"listaccts\":{},\"batch\":{},"
    "\"createacct\":{\"username\":{\"pattern\":\"^[a-z]{1,8}$\",\"required\":true},"
    "\"plan\":{\"enum\":[\"basic\",\"pro\"]},\"password\":{\"absent\":true}},"
    "\"uapi_cpanel:Email::add_pop\":{\"password\":{\"pattern\":\".{8,}\"}},"
    "\"cpanel:Email::listpops\":{\"cpanel_jsonapi_user\":{\"pattern\":\"cust[0-9]+\"}}},"
    "\"candidate\":{\"listaccts\":{}}}}}";

static struct conf *conf;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct params_limits lim = { 4096, 256 };
	const struct client *cl;
	struct decision d, plain;
	struct record r;
	struct arena a;
	struct call c;
	const char *why = NULL;
	char err[160];
	int rc, rc2;

	if (conf == NULL) {
		conf = conf_parse("fuzz.json", config, strlen(config), 0, NULL);
		if (conf == NULL)
			abort();
	}
	err[0] = '\0';
	if (record_parse((const char *)data, size, &r, err, sizeof(err)) == -1) {
		if (err[0] == '\0' || r.root != NULL)
			abort();
		return 0;
	}
	if (r.type == NULL || r.ts == NULL)
		abort();
	arena_init(&a);
	if (r.has_call && record_call(&r, &a, &lim, &c, &why) == 0) {
		if (c.rule_name == NULL || c.function == NULL)
			abort();
		cl = conf_client(conf, "billing");
		rc = policy_check_ex(cl, POLICY_ALLOW, &c, record_redacted, &d);
		rc2 = policy_check(cl, &c, &plain);
		if (d.unknown && d.allow)
			abort();
		if (rc == 0 && (rc2 != 0 || !d.allow))
			abort();
		(void)policy_check_candidate(cl, &c, &d);
	} else if (r.has_call && why == NULL) {
		abort();
	}
	arena_fini(&a);
	record_fini(&r);
	return 0;
}

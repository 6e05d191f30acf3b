/* fuzz_policy.c - decisions over hostile calls. Input: a function name,
 * '?', then a query. Properties: a function absent from the allowlist is
 * never allowed; every allowed batch sub-call is itself on the list; an
 * allowed createacct always carries a username matching its pattern. */
#include "conf.h"
#include "params.h"
#include "policy.h"

#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "{\"listen\":[\"127.0.0.1:1\"],\"upstream\":{\"url\":\"https://h\"},"
    "\"clients\":{\"c\":{\"keys\":[\"sha256:" 
    "0000000000000000000000000000000000000000000000000000000000000000\"],"
    "\"whm_user\":\"root\",\"whm_token\":{\"env\":\"X\"},\"allow\":{"
    "\"listaccts\":{},\"batch\":{},"
    "\"createacct\":{\"username\":{\"pattern\":\"^[a-z]{1,8}$\",\"required\":true},"
    "\"plan\":{\"enum\":[\"basic\"]},\"password\":{\"absent\":true}},"
    "\"cpanel:Email::listpops\":{\"user\":{\"pattern\":\"cust[0-9]+\"}},"
    "\"uapi_cpanel:Email::list_pops\":{}}}}}";

static struct conf *conf;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct client *cl;
	struct decision d;
	struct arena a;
	struct call c;
	const char *why, *q;
	char fn[64];
	size_t fl, i;
	regex_t re;

	if (conf == NULL) {
		conf = conf_parse("fuzz", config, sizeof(config) - 1, 0, NULL);
		if (conf == NULL)
			abort();
	}
	cl = &conf->clients[0];
	q = memchr(data, '?', size);
	fl = q ? (size_t)(q - (const char *)data) : size;
	if (fl == 0 || fl >= sizeof(fn))
		return 0;
	memcpy(fn, data, fl);
	fn[fl] = '\0';
	if (!params_valid_function(fn))
		return 0;
	arena_init(&a);
	memset(&c, 0, sizeof(c));
	if (params_parse(&a, &c.params, q ? q + 1 : "", q ? size - fl - 1 : 0,
	    &why) == 0 && call_parse(&a, &c, fn, &why) == 0 &&
	    policy_check(cl, &c, &d) == 0) {
		if (conf_allow(cl, c.rule_name) == NULL)
			abort();
		for (i = 0; i < c.nsubs; i++)
			if (conf_allow(cl, c.subs[i].rule_name) == NULL ||
			    strcmp(c.subs[i].function, "batch") == 0)
				abort();
		if (strcmp(fn, "createacct") == 0) {
			const char *u = params_get(&c.params, "username");
			regcomp(&re, "^[a-z]{1,8}$", REG_EXTENDED | REG_NOSUB);
			if (u == NULL || regexec(&re, u, 0, NULL, 0) != 0)
				abort();
			regfree(&re);
			if (params_count(&c.params, "password", 0))
				abort();
		}
	}
	arena_fini(&a);
	return 0;
}

/* test_target.c - the request target and media type rules (SPEC section
 * 4), shared by the daemon and the policy tools. */
#include "target.h"
#include "unit.h"
#include "util.h"

struct tcase {
	const char *t;
	int want;
	const char *fn, *query;
};

static const struct tcase cases[] = {
	{ "/json-api/listaccts", 0, "listaccts", "" },
	{ "/json-api/listaccts?api.version=1&a=b", 0, "listaccts", "api.version=1&a=b" },
	{ "/json-api/create_user_session?", 0, "create_user_session", "" },
	{ "/foo", 404, NULL, NULL },
	{ "/", 404, NULL, NULL },
	{ "/json-apix/listaccts", 404, NULL, NULL },
	{ "/json-api", 400, NULL, NULL },
	{ "/json-api#x", 400, NULL, NULL },
	{ "/json-api/", 400, NULL, NULL },
	{ "/xml-api/listaccts", 400, NULL, NULL },
	{ "/json-api/list%61ccts", 400, NULL, NULL },
	{ "/json-api/ListAccts", 400, NULL, NULL },
	{ "/json-api/listaccts/", 400, NULL, NULL },
	{ "/json-api/../json-api/listaccts", 400, NULL, NULL },
	{ "/json-api/listaccts#frag", 400, NULL, NULL },
	{ "/json-api/listaccts?a=1#frag", 400, NULL, NULL },
	{ "/json-api/cpsess1/listaccts", 400, NULL, NULL },
	{ "http://h/json-api/listaccts", 400, NULL, NULL },
	{ "*", 400, NULL, NULL },
	{ "127.0.0.1:2087", 400, NULL, NULL },
	{ "", 400, NULL, NULL },
};

int
main(void)
{
	struct arena a;
	size_t i;

	arena_init(&a);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path;
		const char *q, *fn;
		int rc = target_parse(&a, cases[i].t, &path, &q, &fn);

		if (rc != cases[i].want)
			printf("target %s: got %d\n", cases[i].t, rc);
		CHECK(rc == cases[i].want);
		if (cases[i].want == 0) {
			CHECK_STR(fn, cases[i].fn);
			CHECK_STR(q, cases[i].query);
		} else {
			CHECK(fn == NULL);
		}
	}
	CHECK(target_media_ok(NULL));
	CHECK(target_media_ok("application/x-www-form-urlencoded"));
	CHECK(target_media_ok(" Application/X-WWW-Form-Urlencoded; charset=utf-8"));
	CHECK(target_media_ok("application/octet-stream"));
	CHECK(!target_media_ok("application/json"));
	CHECK(!target_media_ok("multipart/form-data; boundary=x"));
	CHECK(!target_media_ok("application/x-www-form-urlencodedx"));
	CHECK(!target_media_ok(""));
	arena_fini(&a);
	return unit_report();
}

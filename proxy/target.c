/* target.c - see target.h. */
#include "target.h"
#include "params.h"
#include "util.h"

#include <string.h>
#include <strings.h>

int
target_parse(struct arena *a, const char *t, char **path, const char **query,
    const char **function)
{
	const char *q, *fn;
	size_t plen, flen;

	*path = NULL;
	*query = "";
	*function = NULL;
	/* absolute-form, authority-form and asterisk-form are refused. */
	if (t == NULL || t[0] != '/')
		return 400;
	q = strchr(t, '?');
	plen = q ? (size_t)(q - t) : strlen(t);
	if ((*path = arena_strndup(a, t, plen)) == NULL)
		return 400;
	*query = q ? q + 1 : "";
	/* Ours are /json-api, /json-api/... and /xml-api/... (a fragment
	 * aside); everything else is no path of WHM's API. */
	flen = strcspn(*path, "#");
	if (strncmp(*path, "/json-api/", 10) != 0 &&
	    strncmp(*path, "/xml-api/", 9) != 0 &&
	    !(flen == 9 && strncmp(*path, "/json-api", 9) == 0))
		return 404;
	/* The raw target must already be canonical: WHM would decode, fold
	 * and strip a different spelling to some other function. */
	if (strncmp(*path, "/json-api/", 10) != 0)
		return 400;
	fn = *path + 10;
	if (!params_valid_function(fn) || strchr(t, '#'))
		return 400;
	*function = fn;
	return 0;
}

int
target_media_ok(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 1;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	return (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) ||
	    (n == 24 && strncasecmp(ct, "application/octet-stream", 24) == 0);
}

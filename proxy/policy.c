/* policy.c - see policy.h.
 *
 * A call is allowed only if the client's allow names it and every
 * constraint holds; a batch only if 'batch' is allowed and every sub-call
 * is allowed with its own parameters; cpanel and uapi_cpanel per target.
 * enum and pattern hold for the plain name and every -N copy, since WHM
 * reads list parameters from all of them. */
#include "policy.h"
#include "conf.h"
#include "params.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int deny(struct decision *d, const char *code, const char *rule,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
deny(struct decision *d, const char *code, const char *rule, const char *fmt,
    ...)
{
	va_list ap;

	d->allow = 0;
	d->status = 403;
	d->code = code;
	d->rule = rule;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	return -1;
}

static int
value_ok(const struct constraint *co, const char *v)
{
	size_t i;

	if (co->has_enum) {
		for (i = 0; i < co->nenums; i++)
			if (strcmp(co->enums[i], v) == 0)
				break;
		if (i == co->nenums)
			return 0;
	}
	if (co->has_pattern && regexec(&co->re, v, 0, NULL, 0) != 0)
		return 0;
	return 1;
}

static int
check_rule(const struct allow_rule *r, const struct params *ps,
    struct decision *d)
{
	const struct constraint *co;
	size_t i, k;

	for (i = 0; i < r->ncons; i++) {
		co = &r->cons[i];
		if (co->required && params_count(ps, co->param, 1) == 0)
			return deny(d, "parameter_not_allowed", co->path,
			    "parameter %s is required", co->param);
		if (co->absent && params_count(ps, co->param, 0) > 0)
			return deny(d, "parameter_not_allowed", co->path,
			    "parameter %s is not allowed", co->param);
		for (k = 0; k < ps->n; k++)
			if (strcmp(ps->v[k].base, co->param) == 0 &&
			    !value_ok(co, ps->v[k].value))
				return deny(d, "parameter_not_allowed", co->path,
				    "value of %s is not allowed", ps->v[k].name);
	}
	return 0;
}

/* cpanel runs as cpanel_jsonapi_user, or as 'user' when that is absent:
 * a value constraint written for cpanel_jsonapi_user holds for the user
 * the call really runs as, whichever name carried it. */
static int
check_cpanel_user(const struct allow_rule *r, const struct params *ps,
    const char *cuser, struct decision *d)
{
	size_t i;

	if (cuser == NULL || params_count(ps, "cpanel_jsonapi_user", 0) > 0)
		return 0;
	for (i = 0; i < r->ncons; i++)
		if (strcmp(r->cons[i].param, "cpanel_jsonapi_user") == 0 &&
		    !value_ok(&r->cons[i], cuser))
			return deny(d, "parameter_not_allowed", r->cons[i].path,
			    "%s", "the cPanel user is not allowed");
	return 0;
}

static int
check_one(const struct client *cl, const char *name, const struct params *ps,
    const char *cuser, struct decision *d)
{
	const struct allow_rule *r = conf_allow(cl, name);

	if (r == NULL)
		return deny(d, "function_not_allowed", NULL,
		    "%s is not allowed for this client", name);
	d->rule = r->path;
	if (check_rule(r, ps, d) == -1)
		return -1;
	return strncmp(name, "cpanel:", 7) == 0 ?
	    check_cpanel_user(r, ps, cuser, d) : 0;
}

int
policy_check(const struct client *cl, const struct call *c, struct decision *d)
{
	const struct allow_rule *batch;
	size_t i;

	memset(d, 0, sizeof(*d));
	if (check_one(cl, c->rule_name, &c->params, c->cuser, d) == -1)
		return -1;
	batch = conf_allow(cl, "batch");
	for (i = 0; i < c->nsubs; i++) {
		if (strcmp(c->subs[i].function, "batch") == 0)
			return deny(d, "function_not_allowed", batch->path,
			    "%s", "nested batch is not allowed");
		if (check_one(cl, c->subs[i].rule_name, &c->subs[i].params,
		    c->subs[i].cuser, d) == -1)
			return -1;
	}
	d->allow = 1;
	d->rule = conf_allow(cl, c->rule_name)->path;
	return 0;
}

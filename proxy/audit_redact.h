/* audit_redact.h - what the audit trail does not record in clear (SPEC
 * section 7): secret parameter names, values holding a whmgate key or a
 * WHM token (as sent or percent-decoded), and the exception of values the
 * config pins with an enum. Pure: no I/O, no state. */
#ifndef WHMGATE_AUDIT_REDACT_H
#define WHMGATE_AUDIT_REDACT_H

struct conf;
struct allow_rule;

/* 1 if a parameter of this name (without -N) is recorded redacted: it
 * contains pass, secret, token, key, hash, session, private, passphrase
 * or auth (any case), or is in audit.redact. c may be NULL. */
int audit_redacted_name(const struct conf *c, const char *base);
/* 1 if a string holds a whmgate key or a configured WHM token, as it is
 * or percent-decoded (up to four times). c may be NULL (keys only). */
int audit_secret_value(const struct conf *c, const char *v);
/* 1 if rule (may be NULL) pins parameter base with an enum holding v. */
int audit_pinned(const struct allow_rule *rule, const char *base,
    const char *v);

#endif

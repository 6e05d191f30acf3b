/* target.h - what a request may ask for, by SPEC section 4: the request
 * target (only /json-api/<function>, already canonical) and the body's
 * media type. Pure: the daemon (req.c) and the policy tools apply the same
 * rules through these functions. */
#ifndef WHMGATE_TARGET_H
#define WHMGATE_TARGET_H

struct arena;

/* Checks raw target t. Returns 0 with *path (an arena copy without the
 * query), *query (inside t; "" when none) and *function (inside *path);
 * 404 for a path that is no part of WHM's API; 400 for every other
 * spelling (absolute-form, escapes, dot segments, a fragment, upper case,
 * a trailing slash...). *path is set whenever the path could be split
 * off, for the record of a refusal. */
int target_parse(struct arena *a, const char *t, char **path,
    const char **query, const char **function);
/* 1 if a body of this Content-Type is read as a form (absent, form
 * urlencoded, or octet-stream as cPanel::PublicAPI sends it). */
int target_media_ok(const char *content_type);

#endif

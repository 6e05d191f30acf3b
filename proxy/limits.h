/* limits.h - per-client rate buckets and in-flight counts (SPEC section 9).
 *
 * One table for the process, shared by every worker (a mutex), keyed by
 * client id. It is sized from the conf and follows reloads: when a call
 * comes with a conf newer than the table's, the table is rebuilt for that
 * conf's clients, keeping the state of clients that remain and dropping
 * the others. It fails closed: a call it cannot account for (a client it
 * does not hold, no memory) is refused, never allowed.
 *
 * Time comes from the caller (seconds, any monotonic origin), so the unit
 * tests inject a clock. */
#ifndef WHMGATE_LIMITS_H
#define WHMGATE_LIMITS_H

struct conf;
struct client;

enum limits_verdict {
	LIMITS_OK,        /* taken */
	LIMITS_OVER,      /* over the limit: answer 429 */
	LIMITS_UNKNOWN    /* cannot be accounted for: answer 429 too */
};

/* Takes one token from cl's bucket (cl must have a rate). On LIMITS_OVER
 * *wait is the seconds until a token is there. c is the conf cl belongs
 * to. Safe from any thread. */
enum limits_verdict limits_rate_take(const struct conf *c,
    const struct client *cl, double now, double *wait);
/* Counts a call forwarded to WHM against cl's max_inflight (cl must have
 * one). LIMITS_OK means the caller must give it back with
 * limits_inflight_put. Safe from any thread. */
enum limits_verdict limits_inflight_take(const struct conf *c,
    const struct client *cl);
/* Gives back a call counted by limits_inflight_take. Safe from any thread;
 * a client dropped by a reload meanwhile is ignored. */
void limits_inflight_put(const struct client *cl);
/* The state of client id for the status page and tests: 0 and the tokens
 * left at its last call (< 0: none made yet) and its calls in flight, or
 * -1 when the table holds no such client. */
int limits_peek(const char *id, double *tokens, long *inflight);
/* Frees the table (at exit, and between unit tests). */
void limits_reset(void);

#endif

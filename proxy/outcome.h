/* outcome.h - reads WHM's own verdict out of a response body while it is
 * relayed: metadata.result and metadata.reason wherever they stand in the
 * top-level object; for uapi_cpanel the UAPI call's own verdict
 * (data.uapi.status, its first errors entry); for cpanel (cPanel API 1/2
 * answers, in a cpanelresult envelope or bare) an inner error, a failed
 * event or data result; each batch sub-call's data.result[i].metadata.result
 * (and data.result[i].data.uapi.status for uapi_cpanel sub-calls).
 * Streaming (yajl's callback parser), any chunking, bounded memory: the
 * body is never buffered. */
#ifndef WHMGATE_OUTCOME_H
#define WHMGATE_OUTCOME_H

#include <stddef.h>
#include <yajl/yajl_parse.h>

#define OUTCOME_MAX_DEPTH 64
#define OUTCOME_MAX_SUBS 256
#define OUTCOME_REASON 512

struct outcome_frame {
	int is_array;
	long index;
	char key[16];   /* only short keys matter; longer ones are "~" */
};

/* Where the skip of the top-level "data" value stands. */
enum outcome_skip {
	SKIP_NONE,        /* not skipping (yet) */
	SKIP_COLON,       /* after the key, before ':' */
	SKIP_VALUE,       /* before the value */
	SKIP_IN,          /* inside the value */
	SKIP_DONE,        /* value over: yajl takes the rest */
	SKIP_RESUMED      /* done; never skip again */
};

/* What kind of call the answer is to: it says what in data is wanted. */
enum outcome_kind {
	OUTCOME_PLAIN,            /* metadata only; data is stepped over */
	OUTCOME_BATCH,            /* + data.result[i].metadata.result */
	OUTCOME_CPANEL,           /* + the cPanel API 1/2 (or UAPI) verdict */
	OUTCOME_UAPI              /* + data.uapi.status and errors[0] */
};

/* Objects whose members make an inner verdict (one open at a time). */
enum outcome_watch {
	WATCH_NONE,
	WATCH_UAPI,               /* uapi_cpanel: data.uapi {status, errors} */
	WATCH_EVENT,              /* cpanel: R.event {result, reason} */
	WATCH_DATA,               /* cpanel: R.data {result, reason} */
	WATCH_ITEM,               /* cpanel: R.data[i] {result, reason} */
	WATCH_URESULT             /* cpanel, UAPI answer: R.result {status, errors} */
};

struct outcome {
	yajl_handle h;
	enum outcome_kind kind;   /* outcome_set_kind; OUTCOME_PLAIN after init */
	int skip_data;            /* data holds nothing wanted (set with the kind) */
	enum outcome_skip skip;
	int in_string, escaped;
	long sdepth;
	int depth;
	size_t since_event;       /* bytes fed since the last parser event */
	int failed;               /* 1: not JSON (or gave up); stop feeding */
	int done;
	/* The verdict (SPEC 7 whm.result/reason): -1 unknown, 0, 1; reason
	 * points into one of the buffers below when has_reason. A failed
	 * WHM wrapper (metadata.result 0) is the verdict with its reason;
	 * otherwise, for cpanel and uapi_cpanel, the inner call's verdict
	 * once known: on failure with the inner reason (or none), on
	 * success with metadata's reason. */
	int result;
	int uapi_status;          /* uapi_cpanel: the same as result; else -1 */
	int has_reason;
	const char *reason;
	int meta_result;          /* metadata.result: -1 unknown */
	int has_meta_reason;
	int inner_result;         /* the inner call's verdict: -1 unknown */
	int has_inner_reason, inner_prio;   /* lower prio: better reason */
	enum outcome_watch watch; /* the object being read, WATCH_NONE: none */
	int watch_frame;          /* its frame */
	int w_result, w_has_reason;         /* what it said so far */
	size_t nsubs;             /* sub_result[0..nsubs) are set */
	/* The arrays (5 KB) come last: outcome_init clears what is above
	 * them, and each entry is written before it is read. */
	struct outcome_frame f[OUTCOME_MAX_DEPTH];   /* f[0..depth) */
	char meta_reason[OUTCOME_REASON];            /* if has_meta_reason */
	char inner_reason[OUTCOME_REASON];           /* if has_inner_reason */
	char w_reason[OUTCOME_REASON];               /* if w_has_reason */
	int sub_result[OUTCOME_MAX_SUBS];  /* -1 unknown, 0 failed, 1 ok */
	/* What sub_result[i] is made of: the sub-call's metadata.result and,
	 * for a uapi_cpanel sub-call, its data.uapi.status (-1 unknown). */
	signed char sub_meta[OUTCOME_MAX_SUBS], sub_uapi[OUTCOME_MAX_SUBS];
};

/* Returns 0, -1 if the parser could not be allocated. The reader starts
 * as for a plain call (outcome_set_kind to change it) without the skip.
 * o->reason points into o itself: an outcome is read in place, not copied. */
int outcome_init(struct outcome *o);
/* Before the first outcome_feed: what kind of call the answer is to. For
 * OUTCOME_PLAIN nothing in data is wanted and the reader steps over the
 * top-level data value without parsing it (o->skip_data). */
void outcome_set_kind(struct outcome *o, enum outcome_kind kind);
void outcome_fini(struct outcome *o);
void outcome_feed(struct outcome *o, const char *p, size_t n);
/* Call at the end of the body; after it, o->failed says whether the body
 * was a complete JSON document. */
void outcome_finish(struct outcome *o);

#endif

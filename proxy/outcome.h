/* outcome.h - reads WHM's own verdict out of a response body while it is
 * relayed: metadata.result and metadata.reason wherever they stand in the
 * top-level object, data.uapi.status for uapi_cpanel, and each batch
 * sub-call's data.result[i].metadata.result. Streaming (yajl's callback
 * parser), any chunking, bounded memory: the body is never buffered. */
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

struct outcome {
	yajl_handle h;
	int skip_data;            /* set by the caller: data holds nothing wanted */
	enum outcome_skip skip;
	int in_string, escaped;
	long sdepth;
	int depth;
	size_t since_event;       /* bytes fed since the last parser event */
	int failed;               /* 1: not JSON (or gave up); stop feeding */
	int done;
	int result;               /* metadata.result: -1 unknown */
	int uapi_status;          /* data.uapi.status: -1 unknown */
	int has_reason;
	size_t nsubs;             /* sub_result[0..nsubs) are set */
	/* The arrays (3.6 KB) come last: outcome_init clears what is above
	 * them, and each entry is written before it is read. */
	struct outcome_frame f[OUTCOME_MAX_DEPTH];   /* f[0..depth) */
	char reason[OUTCOME_REASON];                 /* if has_reason */
	int sub_result[OUTCOME_MAX_SUBS];  /* -1 unknown, 0 failed, 1 ok */
};

/* Returns 0, -1 if the parser could not be allocated. Setting
 * o->skip_data afterwards (plain calls: nothing in data is wanted) makes
 * the reader step over the top-level data value without parsing it. */
int outcome_init(struct outcome *o);
void outcome_fini(struct outcome *o);
void outcome_feed(struct outcome *o, const char *p, size_t n);
/* Call at the end of the body; after it, o->failed says whether the body
 * was a complete JSON document. */
void outcome_finish(struct outcome *o);

#endif

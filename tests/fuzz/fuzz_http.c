/* fuzz_http.c - the request parser wrapper: any bytes, cut at any point,
 * must end in a clean event sequence and never read out of bounds. The
 * first input byte chooses where the input is split in two feeds. */
#include "http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parser hp;
	struct http_req req;
	struct arena a;
	enum http_event ev;
	size_t cut, off = 0, end, used;
	int messages = 0;

	if (size < 1)
		return 0;
	cut = 1 + (size > 1 ? data[0] % (size - 1) : 0);
	http_parser_init(&hp, 2048, 4096);
	arena_init(&a);
	req.arena = &a;
	http_begin(&hp, &req);
	while (off < size && messages < 64) {
		end = off < cut ? cut : size;
		ev = http_feed(&hp, (const char *)data + off, end - off, &used);
		if (used > end - off)
			abort();
		off += used;
		if (ev == HEV_ERROR) {
			if (hp.status != 400 && hp.status != 413 && hp.status != 431)
				abort();
			break;
		}
		if (ev == HEV_HEAD && req.target == NULL)
			abort();
		if (ev == HEV_DONE) {
			if (req.body.len > 4096)
				abort();
			buf_fini(&req.body);
			arena_fini(&a);
			http_begin(&hp, &req);
			messages++;
		}
		if (ev == HEV_MORE && off < end)
			abort();
	}
	buf_fini(&req.body);
	arena_fini(&a);
	http_parser_fini(&hp);
	return 0;
}

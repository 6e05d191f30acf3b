/* admin.c - see admin.h. Reuses the client request parser (http.c) with
 * small limits; nothing here reads a secret or a request's content. */
#include "admin.h"
#include "audit.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct admin_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t w;
	struct http_parser hp;
	struct http_req req;
	struct arena arena;
	struct buf out;
	char in[4096];
	int handles, done;
};

static uv_tcp_t admin_tcp;
static int admin_on;
static struct audit *admin_audit;
static int admin_draining;

static void
on_closed(uv_handle_t *h)
{
	struct admin_conn *a = h->data;

	if (--a->handles > 0)
		return;
	http_parser_fini(&a->hp);
	buf_fini(&a->req.body);
	arena_fini(&a->arena);
	buf_fini(&a->out);
	free(a);
}

static void
admin_close(struct admin_conn *a)
{
	if (uv_is_closing((uv_handle_t *)&a->tcp))
		return;
	uv_close((uv_handle_t *)&a->timer, on_closed);
	uv_close((uv_handle_t *)&a->tcp, on_closed);
}

static void
on_written(uv_write_t *w, int status)
{
	(void)status;
	admin_close(w->data);
}

static void
respond(struct admin_conn *a, int status, const char *ctype, struct buf *body)
{
	struct buf *o = &a->out;
	uv_buf_t b;

	a->done = 1;
	uv_read_stop((uv_stream_t *)&a->tcp);
	buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", status, status == 200 ? "OK" :
	    status == 503 ? "Service Unavailable" : status == 404 ? "Not Found" :
	    "Bad Request", ctype, body->len);
	buf_add(o, body->p ? body->p : "", body->len);
	b = uv_buf_init(o->p, (unsigned int)o->len);
	a->w.data = a;
	if (uv_write(&a->w, (uv_stream_t *)&a->tcp, &b, 1, on_written) != 0)
		admin_close(a);
}

static void
serve(struct admin_conn *a)
{
	struct buf body;
	int writable = audit_writable(admin_audit);
	int ready = writable && !admin_draining;

	buf_init(&body);
	if (a->req.method_id != HTTP_GET) {
		buf_adds(&body, "GET only\n");
		respond(a, 400, "text/plain", &body);
	} else if (strcmp(a->req.target, "/healthz") == 0) {
		buf_adds(&body, "ok\n");
		respond(a, 200, "text/plain", &body);
	} else if (strcmp(a->req.target, "/readyz") == 0) {
		buf_adds(&body, ready ? "ready\n" : admin_draining ? "draining\n" :
		    "audit trail not writable\n");
		respond(a, ready ? 200 : 503, "text/plain", &body);
	} else if (strcmp(a->req.target, "/metrics") == 0) {
		metrics_render(&body, server_connections(),
		    audit_records_total(admin_audit),
		    audit_failures_total(admin_audit), writable, admin_draining);
		respond(a, 200, "text/plain; version=0.0.4", &body);
	} else {
		buf_adds(&body, "not found\n");
		respond(a, 404, "text/plain", &body);
	}
	buf_fini(&body);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct admin_conn *a = h->data;

	(void)hint;
	*b = uv_buf_init(a->in, sizeof(a->in));
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct admin_conn *a = st->data;
	struct buf body;
	size_t off = 0, used;
	enum http_event ev;

	if (a->done)
		return;
	if (n < 0) {
		admin_close(a);
		return;
	}
	for (;;) {
		/* After the head, feed again (even nothing) to finish. */
		ev = http_feed(&a->hp, b->base + off, (size_t)n - off, &used);
		off += used;
		if (ev == HEV_HEAD)
			continue;
		if (ev == HEV_DONE) {
			serve(a);
			return;
		}
		if (ev == HEV_ERROR) {
			buf_init(&body);
			buf_printf(&body, "%s\n", a->hp.reason);
			respond(a, 400, "text/plain", &body);
			buf_fini(&body);
			return;
		}
		break;
	}
}

static void
on_timeout(uv_timer_t *t)
{
	admin_close(t->data);
}

static void
on_connection(uv_stream_t *ls, int status)
{
	struct admin_conn *a;

	if (status < 0 || (a = calloc(1, sizeof(*a))) == NULL)
		return;
	uv_tcp_init(ls->loop, &a->tcp);
	a->tcp.data = a;
	uv_timer_init(ls->loop, &a->timer);
	a->timer.data = a;
	a->handles = 2;
	arena_init(&a->arena);
	a->req.arena = &a->arena;
	buf_init(&a->out);
	http_parser_init(&a->hp, 4096, 0);
	http_begin(&a->hp, &a->req);
	if (uv_accept(ls, (uv_stream_t *)&a->tcp) != 0) {
		admin_close(a);
		return;
	}
	uv_timer_start(&a->timer, on_timeout, 5000, 0);
	uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
}

int
admin_listen(uv_loop_t *loop, const char *addr, struct audit *audit)
{
	struct sockaddr_storage ss;
	const char *why;
	int rc;

	admin_audit = audit;
	if (addr == NULL)
		return 0;
	if (conf_hostport(addr, &ss, &why) != 0) {
		log_err("admin %s: %s", addr, why);
		return -1;
	}
	uv_tcp_init(loop, &admin_tcp);
	admin_on = 1;
	if ((rc = uv_tcp_bind(&admin_tcp, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&admin_tcp, 64, on_connection)) != 0) {
		log_err("admin %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	log_info("admin on http://%s", addr);
	return 0;
}

void
admin_set_draining(void)
{
	admin_draining = 1;
}

void
admin_stop(void)
{
	if (admin_on && !uv_is_closing((uv_handle_t *)&admin_tcp))
		uv_close((uv_handle_t *)&admin_tcp, NULL);
}

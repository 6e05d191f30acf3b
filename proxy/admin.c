/* admin.c - see admin.h. Its own small llhttp reader, not the client
 * listener's http.c: health checks are answered as load balancers send
 * them (HTTP/1.0 without Host, HEAD), and only the request line is read;
 * nothing here reads a secret or a request's content. */
#include "admin.h"
#include "audit.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "status.h"
#include "util.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The longest target and head the admin listener reads: health checks and
 * scrapes send a short line and a few headers. */
#define ADMIN_MAX_TARGET 256
#define ADMIN_MAX_HEAD 8192

struct admin_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t w;
	llhttp_t p;
	struct buf out;
	char in[4096];
	char target[ADMIN_MAX_TARGET];
	size_t tlen, head_bytes;
	int too_long;            /* the target did not fit */
	int handles, done, head_done;
};

static uv_tcp_t admin_tcp;
static int admin_on;
static struct audit *admin_audit;
static int admin_draining;
static struct conf *admin_conf;
static llhttp_settings_t admin_settings;

static void
on_closed(uv_handle_t *h)
{
	struct admin_conn *a = h->data;

	if (--a->handles > 0)
		return;
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

/* The head always; the body unless the request was HEAD (which gets the
 * length GET would have had, RFC 9110 9.3.2). */
static void
respond(struct admin_conn *a, int status, const char *ctype, struct buf *body)
{
	struct buf *o = &a->out;
	uv_buf_t b;
	int head = a->head_done && a->p.method == HTTP_HEAD;

	a->done = 1;
	uv_read_stop((uv_stream_t *)&a->tcp);
	buf_printf(o, "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "%sConnection: close\r\n\r\n", a->head_done && a->p.http_major == 1 &&
	    a->p.http_minor == 0 ? 0 : 1, status, http_status_text(status), ctype,
	    body->len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head)
		buf_add(o, body->p ? body->p : "", body->len);
	b = uv_buf_init(o->p, (unsigned int)o->len);
	a->w.data = a;
	if (uv_write(&a->w, (uv_stream_t *)&a->tcp, &b, 1, on_written) != 0)
		admin_close(a);
}

static void
respond_text(struct admin_conn *a, int status, const char *text)
{
	struct buf body;

	buf_init(&body);
	buf_adds(&body, text);
	respond(a, status, "text/plain", &body);
	buf_fini(&body);
}

static void
serve(struct admin_conn *a)
{
	struct buf body;
	int writable = audit_writable(admin_audit);
	int ready = writable && !admin_draining;
	char *q;

	/* Health checks come as load balancers send them: HTTP/1.0 without
	 * Host (HAProxy's option httpchk), HEAD (curl -I). Nothing here is
	 * forwarded or read from the request beyond its line, so no Host is
	 * needed; the client listener's framing rules do not apply. */
	if (a->p.http_major != 1 || a->p.http_minor > 1) {
		respond_text(a, 400, "unsupported HTTP version\n");
		return;
	}
	if (a->p.method != HTTP_GET && a->p.method != HTTP_HEAD) {
		respond_text(a, 405, "GET or HEAD only\n");
		return;
	}
	if ((q = strchr(a->target, '?')) != NULL)
		*q = '\0';
	buf_init(&body);
	if (strcmp(a->target, "/healthz") == 0) {
		buf_adds(&body, "ok\n");
		respond(a, 200, "text/plain", &body);
	} else if (strcmp(a->target, "/readyz") == 0) {
		buf_adds(&body, ready ? "ready\n" : admin_draining ? "draining\n" :
		    "audit trail not writable\n");
		respond(a, ready ? 200 : 503, "text/plain", &body);
	} else if (strcmp(a->target, "/metrics") == 0) {
		struct metrics_audit au;
		double since;

		memset(&au, 0, sizeof(au));
		au.records = audit_records_total(admin_audit);
		au.failures = audit_failures_total(admin_audit);
		audit_failure_kinds(admin_audit, &au.fail_write, &au.fail_fsync,
		    &au.fail_reopen);
		audit_position(admin_audit, &au.seq, &since);
		au.syslog_dropped = audit_syslog_dropped(admin_audit);
		au.writable = writable;
		metrics_render(&body, server_connections(), &au, admin_draining);
		metrics_render_conf(&body, admin_conf);
		respond(a, 200, "text/plain; version=0.0.4", &body);
	} else if (strcmp(a->target, "/status") == 0) {
		status_render(&body, admin_conf, admin_audit,
		    server_connections(), admin_draining, time(NULL));
		respond(a, 200, "text/html; charset=utf-8", &body);
	} else {
		buf_adds(&body, "not found\n");
		respond(a, 404, "text/plain", &body);
	}
	buf_fini(&body);
}

static int
on_url(llhttp_t *p, const char *at, size_t n)
{
	struct admin_conn *a = p->data;

	if (a->tlen + n >= sizeof(a->target)) {
		a->too_long = 1;
		return HPE_USER;
	}
	memcpy(a->target + a->tlen, at, n);
	a->tlen += n;
	a->target[a->tlen] = '\0';
	return 0;
}

/* The body, if any, is never read: the answer closes the connection. */
static int
on_headers_complete(llhttp_t *p)
{
	struct admin_conn *a = p->data;

	a->head_done = 1;
	return HPE_PAUSED;
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
	llhttp_errno_t e;

	if (a->done)
		return;
	if (n < 0) {
		admin_close(a);
		return;
	}
	if (n == 0)
		return;
	a->head_bytes += (size_t)n;
	e = llhttp_execute(&a->p, b->base, (size_t)n);
	if (e == HPE_PAUSED && a->head_done)
		serve(a);
	else if (e != HPE_OK)
		respond_text(a, a->too_long ? 414 : 400, a->too_long ?
		    "target too long\n" : "bad request\n");
	else if (a->head_bytes > ADMIN_MAX_HEAD)
		respond_text(a, 431, "head too large\n");
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
	buf_init(&a->out);
	llhttp_init(&a->p, HTTP_REQUEST, &admin_settings);
	a->p.data = a;
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
	llhttp_settings_init(&admin_settings);
	admin_settings.on_url = on_url;
	admin_settings.on_headers_complete = on_headers_complete;
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
admin_set_conf(struct conf *c)
{
	conf_unref(admin_conf);
	admin_conf = c ? conf_ref(c) : NULL;
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
	admin_set_conf(NULL);
}

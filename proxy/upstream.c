/* upstream.c - see upstream.h.
 *
 * Ownership: struct upstream_req is owned by this module from start until
 * its completion is drained from curl_multi_info_read (or a cancel), and
 * freed there. curl's rules: no add/remove of handles from inside curl's
 * callbacks, so a cancel issued from inside one (u->depth > 0) is deferred
 * to the end of the curl call that is running. */
#include "upstream.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define EASY_POOL 64

struct upstream {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	int depth;                  /* > 0 while inside a curl call */
	struct upstream_req *reap;  /* cancelled inside a curl call */
	/* Easy handles kept for the next call, with the options of the conf
	 * they were set up for (by serial): only the call's own options are
	 * set again, unless the conf changed. */
	CURL *pool[EASY_POOL];
	unsigned long pool_serial[EASY_POOL];
	int npool;
	int openssl;                /* curl's TLS is OpenSSL (see on_ssl_ctx) */
	/* The headers every call sends after its own two (see start); a
	 * POST's Content-Type node leads into the same list. */
	struct curl_slist *fixed;
	struct curl_slist ctype;
	struct up_sock **socks;     /* by fd: the poll handle of each socket */
	int nsocks;                 /* curl has open */
};

struct upstream_req {
	struct upstream *u;
	CURL *easy;
	unsigned long serial;       /* of the conf easy was set up for */
	/* This call's own headers, Authorization (the token) and
	 * X-Request-Id, both in own_text; the fixed ones follow. */
	struct curl_slist own[2];
	struct buf own_text;
	char *body;
	const struct upstream_ops *ops;
	void *arg;
	int status;
	int head_done;
	int cancelled;
	int reaping;                /* on u->reap: reap() frees it */
	long long clen;
	char ctype[128];
	unsigned long long bytes;
	double t0;
	struct upstream_req *next_reap;
	/* curl's own account of a failure ("SSL certificate problem:
	 * unable to get local issuer certificate"), more than its code's
	 * generic text: what an operator needs in the log. */
	char errbuf[CURL_ERROR_SIZE];
};

/* A socket curl watches. The poll handle of a connection to WHM lives as
 * long as the socket (opened in on_curl_open, closed in on_curl_close), not
 * just while curl is interested in it: uv_poll_start and uv_poll_stop each
 * cost epoll_ctl calls, five or six per call on a pooled connection if the
 * handle came and went with every transfer. Other sockets curl reports
 * (a resolver's socketpair) are "transient": their handle goes on REMOVE,
 * since curl closes them itself. */
struct up_sock {
	uv_poll_t poll;
	struct upstream *u;
	curl_socket_t fd;
	int transient;
	int want;    /* UV_READABLE/UV_WRITABLE curl asked for, 0 if none */
	int armed;   /* what the poll handle watches */
};

static void check_done(struct upstream *u);
static void on_poll(uv_poll_t *h, int status, int events);

static void
req_free(struct upstream_req *r)
{
	struct upstream *u = r->u;

	/* An easy handle is kept for the next call, its conf options set;
	 * what pointed into this request (the header list with the token,
	 * the body, the callbacks' data) is cleared. */
	if (r->easy && u->npool < EASY_POOL) {
		curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(r->easy, CURLOPT_PRIVATE, NULL);
		curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, NULL);
		curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, NULL);
		curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, NULL);
		u->pool_serial[u->npool] = r->serial;
		u->pool[u->npool++] = r->easy;
	} else if (r->easy) {
		curl_easy_cleanup(r->easy);
	}
	/* The Authorization header holds the WHM token. */
	if (r->own_text.p)
		OPENSSL_cleanse(r->own_text.p, r->own_text.cap);
	buf_fini(&r->own_text);
	free(r->body);
	free(r);
}

/* Frees requests cancelled while curl was running. */
static void
reap(struct upstream *u)
{
	struct upstream_req *r;

	while (u->depth == 0 && (r = u->reap) != NULL) {
		u->reap = r->next_reap;
		curl_multi_remove_handle(u->multi, r->easy);
		req_free(r);
	}
}

static void
socket_action(struct upstream *u, curl_socket_t fd, int flags)
{
	int running;

	u->depth++;
	curl_multi_socket_action(u->multi, fd, flags, &running);
	u->depth--;
	check_done(u);
	reap(u);
}

static void
arm(struct up_sock *s, int events)
{
	if (s->armed == events)
		return;
	if (events == 0)
		uv_poll_stop(&s->poll);
	else if (uv_poll_start(&s->poll, events, on_poll) != 0)
		events = 0;      /* not armed: the next request tries again */
	s->armed = events;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct up_sock *s = h->data;
	int flags = 0;

	if (s->want == 0) {
		/* An idle pooled connection became readable (WHM closed
		 * it, most likely): curl finds out when it next looks at
		 * the connection; until then stop watching it. */
		arm(s, 0);
		return;
	}
	if (status < 0) {
		/* libuv stopped the handle itself. */
		s->armed = 0;
		flags = CURL_CSELECT_ERR;
	}
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	socket_action(s->u, s->fd, flags);
}

static void
on_timer(uv_timer_t *h)
{
	socket_action(h->data, CURL_SOCKET_TIMEOUT, 0);
}

static void
on_sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static struct up_sock *
sock_new(struct upstream *u, curl_socket_t fd)
{
	struct up_sock *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->u = u;
	s->fd = fd;
	if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
		free(s);
		return NULL;
	}
	s->poll.data = s;
	return s;
}

static void
sock_close(struct up_sock *s)
{
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* Closes the poll handle of socket fd, if it has one. */
static void
sock_forget(struct upstream *u, curl_socket_t fd)
{
	if (fd >= 0 && fd < u->nsocks && u->socks[fd] != NULL) {
		sock_close(u->socks[fd]);
		u->socks[fd] = NULL;
	}
}

/* curl opens a connection: the socket and its poll handle. */
static curl_socket_t
on_curl_open(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct upstream *u = userp;
	struct up_sock *s;
	int fd;

	(void)purpose;
	if ((fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol)) < 0)
		return CURL_SOCKET_BAD;
	if (fd >= u->nsocks) {
		int n = fd + 64;
		struct up_sock **t = realloc(u->socks, (size_t)n * sizeof(*t));
		if (t == NULL)
			goto fail;
		memset(t + u->nsocks, 0, (size_t)(n - u->nsocks) * sizeof(*t));
		u->socks = t;
		u->nsocks = n;
	}
	/* A handle left from an earlier socket with this number (one curl
	 * closed without telling us) must not watch the new one. */
	sock_forget(u, fd);
	if ((s = sock_new(u, fd)) == NULL)
		goto fail;
	u->socks[fd] = s;
	return fd;
fail:
	close(fd);
	return CURL_SOCKET_BAD;
}

/* curl closes a connection: its poll handle goes first. */
static int
on_curl_close(void *userp, curl_socket_t fd)
{
	sock_forget(userp, fd);
	return close(fd);
}

static int
on_curl_socket(CURL *e, curl_socket_t fd, int action, void *userp,
    void *socketp)
{
	struct upstream *u = userp;
	struct up_sock *s = socketp;
	int events = 0;

	(void)e;
	if (s == NULL && fd >= 0 && fd < u->nsocks)
		s = u->socks[fd];
	if (action == CURL_POLL_REMOVE) {
		if (s && s->transient) {
			sock_close(s);
		} else if (s) {
			/* Between transfers: watch for readability only (a
			 * writable socket would wake the loop at once); see
			 * on_poll. */
			s->want = 0;
			arm(s, s->armed & UV_READABLE);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = sock_new(u, fd)) == NULL)
			return -1;
		s->transient = 1;
	}
	curl_multi_assign(u->multi, fd, s);
	if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	s->want = events;
	arm(s, events);
	return 0;
}

static int
on_curl_timer(CURLM *m, long ms, void *userp)
{
	struct upstream *u = userp;

	(void)m;
	if (ms < 0)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, on_timer, (uint64_t)ms, 0);
	return 0;
}

static int
fixed_headers(struct upstream *u)
{
	static const char *const fixed[] = { "Accept: application/json",
		"User-Agent: whmgate/" WHMGATE_VERSION, "Expect:" };
	static char ctype[] = "Content-Type: application/x-www-form-urlencoded";
	struct curl_slist *l;
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if ((l = curl_slist_append(u->fixed, fixed[i])) == NULL) {
			curl_slist_free_all(u->fixed);
			return -1;
		}
		u->fixed = l;
	}
	u->ctype.data = ctype;
	u->ctype.next = u->fixed;
	return 0;
}

struct upstream *
upstream_new(uv_loop_t *loop, const struct conf *c)
{
	struct upstream *u = calloc(1, sizeof(*u));
	const char *ssl;

	if (u == NULL)
		return NULL;
	u->loop = loop;
	if ((u->multi = curl_multi_init()) == NULL) {
		free(u);
		return NULL;
	}
	if (fixed_headers(u) == -1) {
		curl_multi_cleanup(u->multi);
		free(u);
		return NULL;
	}
	uv_timer_init(loop, &u->timer);
	u->timer.data = u;
	ssl = curl_version_info(CURLVERSION_NOW)->ssl_version;
	u->openssl = ssl && strncmp(ssl, "OpenSSL/", 8) == 0;
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	upstream_set_conf(u, c);
	return u;
}

void
upstream_set_conf(struct upstream *u, const struct conf *c)
{
	curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    c->upstream.max_connections);
	curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS,
	    c->upstream.max_connections);
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct upstream *u = h->data;

	free(u);
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	reap(u);
	while (u->npool > 0)
		curl_easy_cleanup(u->pool[--u->npool]);
	/* Closing the multi handle closes its sockets through
	 * on_curl_close, which closes their poll handles. */
	curl_multi_cleanup(u->multi);
	for (int fd = 0; fd < u->nsocks; fd++)
		sock_forget(u, fd);
	free(u->socks);
	curl_slist_free_all(u->fixed);
	uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct upstream_req *r = ud;
	size_t len = size * n, vl;
	const char *v;
	char num[24];

	if (r->cancelled)
		return 0;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new status line: an earlier 1xx head is forgotten. */
		r->status = 0;
		r->clen = -1;
		r->ctype[0] = '\0';
		v = memchr(p, ' ', len);
		if (v && (size_t)(p + len - v) > 4)
			r->status = atoi(v + 1);
		return len;
	}
	if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		if (r->status >= 200 && !r->head_done) {
			r->head_done = 1;
			r->ops->on_head(r->arg, r->status, r->ctype, r->clen);
		}
		return len;
	}
	if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
		v = p + 13;
		while (v < p + len && (*v == ' ' || *v == '\t'))
			v++;
		vl = (size_t)(p + len - v);
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
		    v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(r->ctype))
			vl = sizeof(r->ctype) - 1;
		/* Relayed to the client: printable ASCII only. */
		for (size_t i = 0; i < vl; i++)
			r->ctype[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
		r->ctype[vl] = '\0';
	} else if (len > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
		vl = len - 15 < sizeof(num) - 1 ? len - 15 : sizeof(num) - 1;
		memcpy(num, p + 15, vl);
		num[vl] = '\0';
		r->clen = strtoll(num, NULL, 10);
	}
	return len;
}

static size_t
on_write(char *p, size_t size, size_t n, void *ud)
{
	struct upstream_req *r = ud;
	size_t len = size * n;

	if (r->cancelled)
		return 0;          /* makes curl abort the transfer */
	if (!r->head_done) {
		/* Body before a final head cannot happen with HTTP/1.1;
		 * treat it as a broken upstream. */
		return 0;
	}
	if (len == 0)
		return 0;
	if (r->ops->on_data(r->arg, p, len))
		return CURL_WRITEFUNC_PAUSE;
	r->bytes += len;
	return len;
}

static void
classify(struct upstream_req *r, CURLcode rc, struct upstream_result *res)
{
	curl_off_t pre = 0;

	res->detail = rc != CURLE_OK && r->errbuf[0] ? r->errbuf :
	    curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_OK:
		return;
	case CURLE_OPERATION_TIMEDOUT:
		/* Before the request was sent (connect, TLS, waiting for a
		 * pooled connection) WHM was unavailable; after, it was slow. */
		curl_easy_getinfo(r->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
		if (pre == 0) {
			res->err_status = 502;
			res->err_code = "upstream_unavailable";
			res->kind = "connect";
		} else {
			res->err_status = 504;
			res->err_code = "upstream_timeout";
			res->kind = "timeout";
		}
		return;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		res->kind = "connect";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		res->kind = "tls";
		break;
	default:
		res->kind = "reset";
		break;
	}
	res->err_status = 502;
	res->err_code = "upstream_unavailable";
}

/* A transfer that failed or (re)connected may leave state in its handle
 * that only a reset clears (curl's retry count among it). */
static int
left_state(CURL *e, CURLcode result)
{
	long nconn = 0;

	curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
	return nconn > 0 || result != CURLE_OK;
}

static void
check_done(struct upstream *u)
{
	struct upstream_result res;
	struct upstream_req *r;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(u->multi, r->easy);
		if (left_state(r->easy, m->data.result))
			r->serial = 0;           /* set up afresh next time */
		if (!r->cancelled) {
			memset(&res, 0, sizeof(res));
			res.status = r->status;
			res.bytes = r->bytes;
			res.ms = time_ms() - r->t0;
			classify(r, m->data.result, &res);
			r->cancelled = 1;     /* no callback after on_done */
			r->ops->on_done(r->arg, &res);
		}
		/* Cancelled inside a curl call (in on_done too): reap()
		 * frees it. */
		if (!r->reaping)
			req_free(r);
	}
}

/* Called by curl for each new WHM connection's SSL_CTX, after curl set up
 * its own trust store. Installed only when curl's TLS is OpenSSL's.
 * - The CA of upstream.ca_file (arg): the store parsed at load, shared.
 *   Handing curl the PEM as a blob instead costs a copy and a compare of
 *   the whole file on every call (curl clones its TLS options into each
 *   call's connection lookup) and a parse on every connection.
 * - curl sets SSL_MODE_RELEASE_BUFFERS: OpenSSL then frees a connection's
 *   record buffers whenever it is idle and allocates them again for the
 *   next call. A pooled WHM connection is idle between every two calls,
 *   so it keeps them (about 34 KB per connection). */
static CURLcode
on_ssl_ctx(CURL *e, void *ctx, void *arg)
{
	X509_STORE *ca = arg;

	(void)e;
	if (ca != NULL)
		SSL_CTX_set1_cert_store((SSL_CTX *)ctx, ca);
	SSL_CTX_clear_mode((SSL_CTX *)ctx, SSL_MODE_RELEASE_BUFFERS);
	return CURLE_OK;
}

/* The options that come from the conf, the same for every call. */
static void
easy_setup(struct upstream *u, const struct conf *c, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	/* Straight to WHM: an https_proxy or all_proxy in the environment
	 * is ignored (curl would read it at every call and send the WHM
	 * traffic through whatever it names). */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->upstream.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->upstream.timeout_ms);
	if (c->upstream.ca_store && u->openssl) {
		/* Only the given CA, not the system store besides: curl loads
		 * no file, on_ssl_ctx installs the store. The CA path curl is
		 * given is no directory (on_ssl_ctx replaces the store that
		 * would look there) but the CA's name by digest: curl reuses a
		 * pooled connection only for a call with the same TLS options,
		 * so after a reload to another ca_file no connection verified
		 * under the old one is used again. */
		curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(e, CURLOPT_CAPATH, c->upstream.ca_id);
	} else if (c->upstream.ca_pem) {
		struct curl_blob ca = { c->upstream.ca_pem->p,
		    c->upstream.ca_pem->len, CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (c->upstream.pinned_pubkey)
		curl_easy_setopt(e, CURLOPT_PINNEDPUBLICKEY, c->upstream.pinned_pubkey);
	if (c->upstream.insecure_skip_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (u->openssl) {
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, c->upstream.ca_store);
	}
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_curl_open);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
}

struct upstream_req *
upstream_start(struct upstream *u, const struct conf *c,
    const struct client *cl, const struct upstream_call *call,
    const struct upstream_ops *ops, void *arg)
{
	struct upstream_req *r = calloc(1, sizeof(*r));
	CURL *e;
	int rc = 0, fresh = 1;

	if (r == NULL)
		return NULL;
	r->u = u;
	r->ops = ops;
	r->arg = arg;
	r->clen = -1;
	r->t0 = time_ms();
	if (u->npool > 0) {
		e = r->easy = u->pool[--u->npool];
		if ((fresh = u->pool_serial[u->npool] != c->serial))
			curl_easy_reset(e);
	} else if ((e = r->easy = curl_easy_init()) == NULL) {
		goto fail;
	}
	/* Exactly the headers of SPEC section 5: this call's two, then the
	 * fixed ones (curl's own Accept and Expect replaced or removed). The
	 * text is sized first, so the token is never left in a buffer that
	 * grew away from it. */
	{
		struct buf *t = &r->own_text;
		size_t auth_off, id_off;

		static const char a[] = "Authorization: whm ", x[] = "X-Request-Id: ";

		buf_init(t);
		if (buf_reserve(t, sizeof(a) + strlen(cl->whm_user) + 1 +
		    strlen(cl->whm_token) + sizeof(x) + strlen(call->request_id)) == -1)
			goto fail;
		/* From here on the additions fit: no realloc moves the token. */
		auth_off = t->len;
		rc |= buf_adds(t, a);
		rc |= buf_adds(t, cl->whm_user);
		rc |= buf_addc(t, ':');
		rc |= buf_adds(t, cl->whm_token);
		rc |= buf_addc(t, '\0');
		id_off = t->len;
		rc |= buf_adds(t, x);
		rc |= buf_adds(t, call->request_id);
		if (rc)
			goto fail;
		r->own[0].data = t->p + auth_off;
		r->own[0].next = &r->own[1];
		r->own[1].data = t->p + id_off;
		r->own[1].next = call->body ? &u->ctype : u->fixed;
	}
	if (call->body) {
		if ((r->body = malloc(call->body_len + 1)) == NULL)
			goto fail;
		memcpy(r->body, call->body, call->body_len);
		r->body[call->body_len] = '\0';
	}
	if (rc)
		goto fail;
	if (fresh)
		easy_setup(u, c, e);
	r->serial = c->serial;
	curl_easy_setopt(e, CURLOPT_URL, call->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->own);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	if (call->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)call->body_len);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if (curl_multi_add_handle(u->multi, e) != CURLM_OK)
		goto fail;
	return r;
fail:
	req_free(r);
	return NULL;
}

void
upstream_resume(struct upstream_req *r)
{
	struct upstream *u = r->u;

	/* curl may deliver the held piece from inside this call. */
	u->depth++;
	curl_easy_pause(r->easy, CURLPAUSE_CONT);
	u->depth--;
	check_done(u);
	reap(u);
}

void
upstream_cancel(struct upstream_req *r)
{
	struct upstream *u = r->u;

	if (r->cancelled && r->ops == NULL)
		return;
	r->cancelled = 1;
	r->ops = NULL;
	r->serial = 0;           /* cut mid-transfer: set up afresh */
	if (u->depth > 0) {
		r->reaping = 1;
		r->next_reap = u->reap;
		u->reap = r;
		return;
	}
	curl_multi_remove_handle(u->multi, r->easy);
	req_free(r);
}

/* upcurl.c - see upcurl.h. curl's socket and timer callbacks drive the
 * connections being made; a socket whose connection was made belongs to
 * its owner (s->owner): curl is no longer asked about it, and its
 * readiness goes to the owner's io(). */
#include "upcurl.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket curl opened: its poll handle lives as long as the socket (five
 * or six epoll_ctl per call if it came and went with every transfer).
 * Sockets curl reports without opening them through on_curl_open (a
 * resolver's socketpair) are "transient": their handle goes on REMOVE. */
struct upcurl_sock {
	uv_poll_t poll;
	struct upcurl *u;
	curl_socket_t fd;
	int transient;
	int want;    /* UV_READABLE/UV_WRITABLE curl asked for, 0 if none */
	int armed;   /* what the poll handle watches */
	struct upcurl_conn *owner;  /* the connection made on it, once made */
};

static void check_done(struct upcurl *u);
static void on_poll(uv_poll_t *h, int status, int events);

static void
socket_action(struct upcurl *u, curl_socket_t fd, int flags)
{
	CURLMcode mc;
	int running;

	u->depth++;
	mc = curl_multi_socket_action(u->multi, fd, flags, &running);
	u->depth--;
	if (mc != CURLM_OK)
		log_warn("upstream: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
	check_done(u);
}

static void
arm(struct upcurl_sock *s, int events)
{
	if (s->armed == events)
		return;
	if (events == 0)
		uv_poll_stop(&s->poll);
	else if (uv_poll_start(&s->poll, events, on_poll) != 0)
		events = 0;      /* not armed: the next step tries again */
	s->armed = events;
}

void
upcurl_arm(struct upcurl_conn *k, int events)
{
	/* Gone if curl closed it under us. */
	if (k->s)
		arm(k->s, events);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct upcurl_sock *s = h->data;
	int flags = 0;

	if (status < 0)
		s->armed = 0;    /* libuv stopped the handle itself */
	if (s->owner) {
		s->u->io(s->owner->owner, status, events);
		return;
	}
	if (s->want == 0) {
		arm(s, 0);
		return;
	}
	if (status < 0)
		flags = CURL_CSELECT_ERR;
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

static struct upcurl_sock *
sock_new(struct upcurl *u, curl_socket_t fd)
{
	struct upcurl_sock *s = calloc(1, sizeof(*s));

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

/* Closes the poll handle of socket fd, if it has one. */
static void
sock_forget(struct upcurl *u, curl_socket_t fd)
{
	struct upcurl_sock *s;

	if (fd < 0 || fd >= u->nsocks || (s = u->socks[fd]) == NULL)
		return;
	if (s->owner)
		s->owner->s = NULL;
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
	u->socks[fd] = NULL;
}

static curl_socket_t
on_curl_open(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct upcurl *u = userp;
	struct upcurl_sock *s;
	int fd;

	(void)purpose;
	if ((fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol)) < 0)
		return CURL_SOCKET_BAD;
	if (fd >= u->nsocks) {
		int n = fd + 64;
		struct upcurl_sock **t = realloc(u->socks, (size_t)n * sizeof(*t));
		if (t == NULL)
			goto fail;
		memset(t + u->nsocks, 0, (size_t)(n - u->nsocks) * sizeof(*t));
		u->socks = t;
		u->nsocks = n;
	}
	/* A handle left from an earlier socket with this number must not
	 * watch the new one. */
	sock_forget(u, fd);
	if ((s = sock_new(u, fd)) == NULL)
		goto fail;
	u->socks[fd] = s;
	return fd;
fail:
	close(fd);
	return CURL_SOCKET_BAD;
}

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
	struct upcurl *u = userp;
	struct upcurl_sock *s = socketp;
	int events = 0;

	(void)e;
	if (s == NULL && fd >= 0 && fd < u->nsocks)
		s = u->socks[fd];
	if (s && s->owner)
		return 0;        /* a made connection: ours, not curl's */
	if (action == CURL_POLL_REMOVE) {
		if (s && s->transient) {
			uv_close((uv_handle_t *)&s->poll, on_sock_closed);
		} else if (s) {
			s->want = 0;
			arm(s, 0);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = sock_new(u, fd)) == NULL)
			return -1;
		s->transient = 1;   /* a resolver's: curl closes it itself */
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
	struct upcurl *u = userp;

	(void)m;
	if (ms < 0)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, on_timer, (uint64_t)ms, 0);
	return 0;
}

/* Called by curl for each new WHM connection's SSL_CTX, after curl set up
 * its own trust store; installed only when curl's TLS is OpenSSL's.
 * - The CA of upstream.ca_file (arg): the store parsed at load, shared.
 * - curl sets SSL_MODE_RELEASE_BUFFERS: OpenSSL would free a connection's
 *   record buffers whenever it is idle, between every two calls. */
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

static void
easy_setup(struct upcurl *u, const struct conf *c, struct upcurl_conn *k)
{
	CURL *e = k->easy;
	char url[600];

	snprintf(url, sizeof(url), "%s/", c->upstream.base);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	/* Straight to WHM: a proxy named in the environment is ignored. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->upstream.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->err);
	if (c->upstream.ca_store && u->openssl) {
		/* Only the given CA, not the system store besides: curl loads
		 * no file, on_ssl_ctx installs the store. The CA path curl is
		 * given is no directory (on_ssl_ctx replaces the store that
		 * would look there) but the CA's name by digest: curl resumes
		 * a TLS session (skipping verification) only for the same TLS
		 * options, so after a reload to another ca_file no session
		 * verified under the old one is resumed. */
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
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)k);
}

static const char *
classify(CURLcode rc, const char **kind)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		*kind = "connect";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		*kind = "tls";
		break;
	default:
		*kind = "reset";
		break;
	}
	return curl_easy_strerror(rc);
}


/* Connections made (or not): handed to their owners. */
static void
check_done(struct upcurl *u)
{
	struct upcurl_conn *k;
	curl_socket_t fd;
	const char *kind, *why;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		k = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&k);
		if (k == NULL || k->s != NULL)
			continue;
		if (m->data.result != CURLE_OK) {
			why = classify(m->data.result, &kind);
			/* curl's own account ("SSL certificate problem: unable
			 * to get local issuer certificate") says more than its
			 * code's generic words: it goes to the log. */
			if (k->err[0])
				why = k->err;
			u->made(k->owner, 0, kind, why);
			continue;
		}
		fd = CURL_SOCKET_BAD;
		curl_easy_getinfo(k->easy, CURLINFO_ACTIVESOCKET, &fd);
		if (fd == CURL_SOCKET_BAD || fd >= u->nsocks || u->socks[fd] == NULL) {
			u->made(k->owner, 0, "connect", "no socket for the connection");
			continue;
		}
		k->s = u->socks[fd];
		k->s->owner = k;
		k->s->want = 0;
		u->made(k->owner, 1, NULL, NULL);
	}
}

int
upcurl_init(struct upcurl *u, uv_loop_t *loop, upcurl_made_cb made,
    upcurl_io_cb io)
{
	const char *ssl;

	memset(u, 0, sizeof(*u));
	u->loop = loop;
	u->made = made;
	u->io = io;
	if ((u->multi = curl_multi_init()) == NULL)
		return -1;
	if (uv_timer_init(loop, &u->timer) != 0) {
		curl_multi_cleanup(u->multi);
		return -1;
	}
	u->timer.data = u;
	ssl = curl_version_info(CURLVERSION_NOW)->ssl_version;
	u->openssl = ssl && strncmp(ssl, "OpenSSL/", 8) == 0;
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	return 0;
}

int
upcurl_open(struct upcurl *u, struct upcurl_conn *k, const struct conf *f,
    void *owner)
{
	memset(k, 0, sizeof(*k));
	k->owner = owner;
	if ((k->easy = curl_easy_init()) == NULL)
		return -1;
	easy_setup(u, f, k);
	if (curl_multi_add_handle(u->multi, k->easy) != CURLM_OK) {
		curl_easy_cleanup(k->easy);
		k->easy = NULL;
		return -1;
	}
	return 0;
}

void
upcurl_drop(struct upcurl *u, struct upcurl_conn *k)
{
	if (k->easy == NULL)
		return;
	if (k->s)
		k->s->owner = NULL;
	k->s = NULL;
	/* Leaving the multi closes the connection, and through
	 * on_curl_close its socket and poll handle. */
	curl_multi_remove_handle(u->multi, k->easy);
	curl_easy_cleanup(k->easy);
	k->easy = NULL;
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct upcurl *u = h->data;

	if (u->closed)
		u->closed(u->closed_arg);
}

void
upcurl_fini(struct upcurl *u, void (*closed)(void *arg), void *arg)
{
	u->closed = closed;
	u->closed_arg = arg;
	curl_multi_cleanup(u->multi);
	for (int fd = 0; fd < u->nsocks; fd++)
		sock_forget(u, fd);
	free(u->socks);
	u->socks = NULL;
	uv_timer_stop(&u->timer);
	uv_close((uv_handle_t *)&u->timer, on_timer_closed);
}

/* tls.c - see tls.h. The pattern: two memory BIOs, accept state; after
 * every handshake step and every read the write BIO is flushed, so alerts
 * and TLS 1.3 tickets go out. */
#include "tls.h"
#include "conf.h"
#include "util.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <string.h>

static void
ssl_err(struct buf *err, const char *what, const char *file)
{
	char msg[256];

	ERR_error_string_n(ERR_get_error(), msg, sizeof(msg));
	buf_printf(err, "%s %s: %s", what, file ? file : "", msg);
	ERR_clear_error();
}

/* The verdict is kept (SSL_get_verify_result) but does not end the
 * handshake: used when client certificates are optional. */
static int
accept_any(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

SSL_CTX *
tls_ctx_new(const struct tls_listen *t, struct buf *err)
{
	static const unsigned char sid[] = "whmgate";
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		ssl_err(err, "SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		ssl_err(err, "certificate", t->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, "private key", t->key);
		goto fail;
	}
	if (t->client_ca) {
		if (SSL_CTX_load_verify_locations(ctx, t->client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(t->client_ca)) == NULL) {
			ssl_err(err, "client CA", t->client_ca);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		/* Required: a missing or untrusted certificate ends the
		 * handshake. Optional: the handshake goes on and the request
		 * is refused with a 401 (tls_conn's cert_presented). */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    (t->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
		    t->require_client_cert ? NULL : accept_any);
		SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_conn_init(struct tls_conn *t, SSL_CTX *ctx)
{
	BIO *rbio, *wbio;

	memset(t, 0, sizeof(*t));
	if ((t->ssl = SSL_new(ctx)) == NULL)
		return -1;
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (rbio == NULL || wbio == NULL) {
		BIO_free(rbio);
		BIO_free(wbio);
		SSL_free(t->ssl);
		t->ssl = NULL;
		return -1;
	}
	/* An empty read BIO means "more later", not end of file. */
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(t->ssl, rbio, wbio);
	SSL_set_accept_state(t->ssl);
	return 0;
}

void
tls_conn_fini(struct tls_conn *t)
{
	if (t->ssl)
		SSL_free(t->ssl);
	t->ssl = NULL;
}

static void
flush(struct tls_conn *t, struct buf *out)
{
	BIO *wbio = SSL_get_wbio(t->ssl);
	char tmp[16384];
	int n;

	while ((n = BIO_read(wbio, tmp, sizeof(tmp))) > 0)
		buf_add(out, tmp, (size_t)n);
}

static void
peer_cert(struct tls_conn *t)
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);
	unsigned int len = 32;

	if (x == NULL)
		return;
	t->cert_presented = 1;
	/* Only a certificate that chained to client_ca counts. */
	if (SSL_get_verify_result(t->ssl) == X509_V_OK &&
	    X509_digest(x, EVP_sha256(), t->fp, &len) == 1 && len == 32)
		t->has_cert = 1;
	X509_free(x);
}

int
tls_read(struct tls_conn *t, const char *in, size_t n, struct buf *plain,
    struct buf *out)
{
	char tmp[16384];
	int r, e;

	if (n && BIO_write(SSL_get_rbio(t->ssl), in, (int)n) != (int)n)
		return -1;
	if (!t->established) {
		r = SSL_do_handshake(t->ssl);
		flush(t, out);
		if (r != 1) {
			e = SSL_get_error(t->ssl, r);
			ERR_clear_error();
			return e == SSL_ERROR_WANT_READ ? 0 : -1;
		}
		t->established = 1;
		peer_cert(t);
	}
	for (;;) {
		r = SSL_read(t->ssl, tmp, sizeof(tmp));
		if (r > 0) {
			if (buf_add(plain, tmp, (size_t)r) == -1)
				return -1;
			continue;
		}
		e = SSL_get_error(t->ssl, r);
		flush(t, out);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		return e == SSL_ERROR_ZERO_RETURN ? 1 : -1;
	}
}

int
tls_write(struct tls_conn *t, const char *p, size_t n, struct buf *out)
{
	/* A memory BIO takes everything: SSL_write completes at once. */
	if (n && SSL_write(t->ssl, p, (int)n) != (int)n) {
		ERR_clear_error();
		return -1;
	}
	flush(t, out);
	return 0;
}

void
tls_close_notify(struct tls_conn *t, struct buf *out)
{
	if (t->established) {
		SSL_shutdown(t->ssl);
		flush(t, out);
	}
	ERR_clear_error();
}

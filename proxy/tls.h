/* tls.h - TLS for client listeners with OpenSSL memory BIOs, so libuv keeps
 * doing the socket I/O: ciphertext in, plaintext out, and back. */
#ifndef WHMGATE_TLS_H
#define WHMGATE_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

struct buf;
struct tls_listen;

/* A server context for one listen_tls entry: TLS 1.2+, its certificate and
 * key, and client certificates verified against client_ca when set.
 * Returns NULL with a message in err. */
SSL_CTX *tls_ctx_new(const struct tls_listen *t, struct buf *err);

struct tls_conn {
	SSL *ssl;
	int established;
	int cert_presented;        /* the client sent a certificate */
	int has_cert;              /* ... and it verified against client_ca */
	unsigned char fp[32];      /* its SHA-256 fingerprint */
};

int tls_conn_init(struct tls_conn *t, SSL_CTX *ctx);
void tls_conn_fini(struct tls_conn *t);
/* Takes n ciphertext bytes; appends plaintext to plain and bytes to send
 * to out. Returns 0, 1 when the peer closed the TLS session, or -1 on a
 * TLS error (out may still hold an alert worth sending). */
int tls_read(struct tls_conn *t, const char *in, size_t n, struct buf *plain,
    struct buf *out);
/* Encrypts n plaintext bytes into out. Returns 0 or -1. */
int tls_write(struct tls_conn *t, const char *p, size_t n, struct buf *out);
/* A close_notify into out. */
void tls_close_notify(struct tls_conn *t, struct buf *out);

#endif

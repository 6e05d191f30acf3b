/* conf.c - configuration loading and validation (SPEC section 2).
 *
 * The whole file is parsed into a yajl tree, then walked once by the
 * validators below. Every validator takes the JSON path of the value it
 * checks and reports problems through conf_err(), so that -t can list every
 * problem in one run. Nothing is applied until the whole file is valid. */
#define _GNU_SOURCE
#include "conf.h"
#include "params.h"
#include "syslog.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#define CA_MAX (4u << 20)      /* bytes of upstream.ca_file */

struct loader {
	const char *file;
	struct buf *errs;
	int nerr;
	int read_secrets;
	struct conf *c;
};

static void conf_err(struct loader *l, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
conf_err(struct loader *l, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->nerr++;
	if (l->errs)
		buf_printf(l->errs, "%s: %s: %s\n", l->file, path, msg);
}

/* Child path: .key for identifiers, ["key"] (JSON-escaped) otherwise. */
static char *
path_key(const char *parent, const char *key)
{
	struct buf b;
	const char *p;
	int ident = isalpha((unsigned char)key[0]) || key[0] == '_';

	for (p = key; *p && ident; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			ident = 0;
	buf_init(&b);
	buf_adds(&b, parent);
	if (ident) {
		buf_printf(&b, ".%s", key);
		return buf_take(&b);
	}
	buf_adds(&b, "[\"");
	for (p = key; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			buf_printf(&b, "\\%c", ch);
		else if (ch < 0x20)
			buf_printf(&b, "\\u%04x", ch);
		else
			buf_addc(&b, (char)ch);
	}
	buf_adds(&b, "\"]");
	return buf_take(&b);
}

static char *
path_idx(const char *parent, size_t i)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%s[%zu]", parent, i);
	return buf_take(&b);
}

/* Duplicate keys are kept by yajl's tree; a typo'd second copy must not
 * silently override the first, so every object is checked. */
static void
check_duplicates(struct loader *l, yajl_val v, const char *path)
{
	size_t i, j;
	char *p;

	if (YAJL_IS_OBJECT(v)) {
		for (i = 0; i < v->u.object.len; i++) {
			p = path_key(path, v->u.object.keys[i]);
			for (j = 0; j < i; j++)
				if (strcmp(v->u.object.keys[i],
				    v->u.object.keys[j]) == 0) {
					conf_err(l, p, "duplicate key");
					break;
				}
			check_duplicates(l, v->u.object.values[i], p);
			free(p);
		}
	} else if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++) {
			p = path_idx(path, i);
			check_duplicates(l, v->u.array.values[i], p);
			free(p);
		}
	}
}

/* Walks an object, calling fn for each known key and reporting the rest. */
struct field {
	const char *name;
	void (*fn)(struct loader *, yajl_val, const char *, void *);
};

static int
expect_object(struct loader *l, yajl_val v, const char *path)
{
	if (!YAJL_IS_OBJECT(v)) {
		conf_err(l, path, "must be an object");
		return -1;
	}
	return 0;
}

static void
walk_fields(struct loader *l, yajl_val v, const char *path,
    const struct field *fields, void *arg)
{
	size_t i, j;
	const struct field *f;
	char *p;

	if (expect_object(l, v, path) == -1)
		return;
	for (i = 0; i < v->u.object.len; i++) {
		/* A repeated key was reported by check_duplicates; reading
		 * it twice would overwrite the first copy's state. */
		for (j = 0; j < i; j++)
			if (strcmp(v->u.object.keys[i], v->u.object.keys[j]) == 0)
				break;
		if (j < i)
			continue;
		p = path_key(path, v->u.object.keys[i]);
		for (f = fields; f->name; f++)
			if (strcmp(f->name, v->u.object.keys[i]) == 0)
				break;
		if (f->name == NULL)
			conf_err(l, p, "unknown key");
		else
			f->fn(l, v->u.object.values[i], p, arg);
		free(p);
	}
}

static int
get_string(struct loader *l, yajl_val v, const char *path, char **out,
    int nullable)
{
	if (nullable && YAJL_IS_NULL(v)) {
		free(*out);
		*out = NULL;
		return 0;
	}
	if (!YAJL_IS_STRING(v)) {
		conf_err(l, path, nullable ? "must be a string or null" :
		    "must be a string");
		return -1;
	}
	if (v->u.string[0] == '\0') {
		conf_err(l, path, "must not be empty");
		return -1;
	}
	free(*out);
	*out = xstrdup(v->u.string);
	return 0;
}

static void
get_long(struct loader *l, yajl_val v, const char *path, long *out, long min,
    long max)
{
	long long n;

	if (!YAJL_IS_INTEGER(v)) {
		conf_err(l, path, "must be an integer");
		return;
	}
	n = YAJL_GET_INTEGER(v);
	if (n < min || n > max) {
		conf_err(l, path, "must be between %ld and %ld", min, max);
		return;
	}
	*out = (long)n;
}

static void
get_bool(struct loader *l, yajl_val v, const char *path, int *out)
{
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
		conf_err(l, path, "must be true or false");
		return;
	}
	*out = YAJL_IS_TRUE(v);
}

/* An array of non-empty strings; NULL on error. */
static char **
get_strings(struct loader *l, yajl_val v, const char *path, size_t *n)
{
	char **out, *p;
	size_t i;

	*n = 0;
	if (!YAJL_IS_ARRAY(v)) {
		conf_err(l, path, "must be an array of strings");
		return NULL;
	}
	out = xcalloc(v->u.array.len + 1, sizeof(*out));
	for (i = 0; i < v->u.array.len; i++) {
		p = path_idx(path, i);
		if (get_string(l, v->u.array.values[i], p, &out[*n], 0) == 0)
			(*n)++;
		free(p);
	}
	return out;
}

static void
free_strings(char **s, size_t n)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

int
conf_hostport(const char *s, struct sockaddr_storage *ss, const char **why)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[64];
	const char *colon, *port;
	size_t hl;
	long pn;
	char *end;
	int v6 = s[0] == '[';

	memset(ss, 0, sizeof(*ss));
	colon = v6 ? strstr(s, "]:") : strrchr(s, ':');
	hl = colon ? (size_t)(colon - s) - (size_t)v6 : 0;
	if (colon == NULL || hl >= sizeof(host)) {
		*why = v6 ? "must be [IPv6]:port" : "must be host:port";
		return -1;
	}
	memcpy(host, s + v6, hl);
	host[hl] = '\0';
	port = colon + 1 + v6;
	errno = 0;
	pn = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno || pn < 1 || pn > 65535) {
		*why = "port must be 1-65535";
		return -1;
	}
	if (v6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pn);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "not a numeric IPv6 address";
			return -1;
		}
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pn);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "not a numeric IPv4 address (use [v6]:port for IPv6)";
			return -1;
		}
	}
	return 0;
}

static int
check_hostport(const char *s, const char **why)
{
	struct sockaddr_storage ss;

	return conf_hostport(s, &ss, why);
}

int
cidr_parse(const char *s, struct cidr *out, const char **why)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t al = slash ? (size_t)(slash - s) : strlen(s);
	long bits;
	char *end;
	int i, maxbits;

	memset(out, 0, sizeof(*out));
	if (al >= sizeof(addr)) {
		*why = "not a CIDR";
		return -1;
	}
	memcpy(addr, s, al);
	addr[al] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		maxbits = 128;
	} else {
		*why = "not an IPv4 or IPv6 CIDR";
		return -1;
	}
	bits = maxbits;
	if (slash) {
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno || bits < 0 ||
		    bits > maxbits || !isdigit((unsigned char)slash[1])) {
			*why = "bad prefix length";
			return -1;
		}
	}
	out->bits = (int)bits;
	/* Host bits set usually mean a typo ("10.0.0.1/8"): refuse it. */
	for (i = 0; i < maxbits; i++)
		if (i >= bits && (out->addr[i / 8] & (0x80 >> (i % 8)))) {
			*why = "host bits set";
			return -1;
		}
	return 0;
}

int
cidr_match(const struct cidr *c, int family, const unsigned char *addr)
{
	int full = c->bits / 8, rest = c->bits % 8;
	unsigned char mask;

	if (family != c->family)
		return 0;
	if (full && memcmp(c->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest) {
		mask = (unsigned char)(0xff << (8 - rest));
		if ((c->addr[full] & mask) != (addr[full] & mask))
			return 0;
	}
	return 1;
}

/* ---- top-level sections ---- */

static void
f_listen(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	const char *why;
	size_t i;
	char *p;

	free_strings(c->listen, c->nlisten);
	c->listen = get_strings(l, v, path, &c->nlisten);
	for (i = 0; i < c->nlisten; i++) {
		if (check_hostport(c->listen[i], &why) == -1) {
			p = path_idx(path, i);
			conf_err(l, p, "%s", why);
			free(p);
		}
	}
}

static void
tl_address(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct tls_listen *t = arg;
	const char *why;

	if (get_string(l, v, path, &t->address, 0) == 0 &&
	    check_hostport(t->address, &why) == -1)
		conf_err(l, path, "%s", why);
}

static void
readable_file(struct loader *l, yajl_val v, const char *path, char **out)
{
	if (get_string(l, v, path, out, 0) == 0 && access(*out, R_OK) == -1)
		conf_err(l, path, "cannot read %s: %s", *out, strerror(errno));
}

static void
tl_cert(struct loader *l, yajl_val v, const char *path, void *arg)
{
	readable_file(l, v, path, &((struct tls_listen *)arg)->cert);
}

static int check_private_file(struct loader *l, const char *path,
    const char *file);

static void
tl_key(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct tls_listen *t = arg;

	if (get_string(l, v, path, &t->key, 0) == 0 && l->read_secrets)
		check_private_file(l, path, t->key);
}

static void
tl_ca(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct tls_listen *t = arg;

	if (YAJL_IS_NULL(v))
		return;
	readable_file(l, v, path, &t->client_ca);
}

static void
tl_require(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_bool(l, v, path, &((struct tls_listen *)arg)->require_client_cert);
}

static const struct field tls_fields[] = {
	{ "address", tl_address }, { "cert", tl_cert }, { "key", tl_key },
	{ "client_ca", tl_ca }, { "require_client_cert", tl_require },
	{ NULL, NULL }
};

static void
f_listen_tls(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	struct tls_listen *t;
	size_t i;
	char *p;

	if (!YAJL_IS_ARRAY(v)) {
		conf_err(l, path, "must be an array of objects");
		return;
	}
	c->tls = xcalloc(v->u.array.len + 1, sizeof(*c->tls));
	for (i = 0; i < v->u.array.len; i++) {
		p = path_idx(path, i);
		t = &c->tls[c->ntls++];
		walk_fields(l, v->u.array.values[i], p, tls_fields, t);
		if (YAJL_IS_OBJECT(v->u.array.values[i])) {
			if (t->address == NULL || t->cert == NULL || t->key == NULL)
				conf_err(l, p, "\"address\", \"cert\" and \"key\" "
				    "are required");
			if (t->require_client_cert && t->client_ca == NULL)
				conf_err(l, p, "require_client_cert needs client_ca");
		}
		free(p);
	}
}

static void
f_admin(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	const char *why;

	if (get_string(l, v, path, &c->admin, 1) == 0 && c->admin &&
	    check_hostport(c->admin, &why) == -1)
		conf_err(l, path, "%s", why);
}

static void
f_user(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	if (get_string(l, v, path, &c->user, 1) == 0 && c->user &&
	    getpwnam(c->user) == NULL)
		conf_err(l, path, "no such user: %s", c->user);
}

static void
f_workers(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct conf *)arg)->workers, 1, 64);
}

static void
f_instance(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	get_string(l, v, path, &c->instance, 1);
}

static void
up_url(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	const char *host, *end, *p;
	struct buf b;

	if (get_string(l, v, path, &c->upstream.url, 0) == -1)
		return;
	if (strncmp(c->upstream.url, "https://", 8) != 0) {
		conf_err(l, path, "must be an https:// URL");
		return;
	}
	host = c->upstream.url + 8;
	end = host + strcspn(host, "/?#");
	if (*end && strcmp(end, "/") != 0) {
		conf_err(l, path, "must have no path, query or fragment");
		return;
	}
	for (p = host; p < end; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-:[]", *p)) {
			conf_err(l, path, "bad host name");
			return;
		}
	if (end == host) {
		conf_err(l, path, "missing host");
		return;
	}
	buf_init(&b);
	buf_adds(&b, "https://");
	buf_add(&b, host, (size_t)(end - host));
	/* WHM's port: default 2087, not 443. */
	p = memchr(host, ']', (size_t)(end - host));
	if (memchr(p ? p : host, ':', (size_t)(end - (p ? p : host))) == NULL)
		buf_adds(&b, ":2087");
	free(c->upstream.base);
	c->upstream.base = buf_take(&b);
}

/* The certificates of a PEM text as a store, or NULL with a reason in
 * *why: none there, or one that does not parse. */
static X509_STORE *
ca_store_new(const struct buf *pem, const char **why)
{
	X509_STORE *st = X509_STORE_new();
	BIO *bio = BIO_new_mem_buf(pem->p, (int)pem->len);
	X509 *x;
	int n = 0, ok = 1;
	unsigned long e;

	*why = "out of memory";
	if (st == NULL || bio == NULL)
		ok = 0;
	while (ok && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		ok = X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	/* The loop ends at the end of the text (no further PEM start
	 * line) or at a certificate that does not parse. */
	e = ERR_peek_last_error();
	if (ok && (ERR_GET_LIB(e) != ERR_LIB_PEM ||
	    ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
		*why = "a certificate in it does not parse";
		ok = 0;
	} else if (ok && n == 0) {
		*why = "no PEM certificate in it";
		ok = 0;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (!ok) {
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

static void
up_ca(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	char chunk[8192];
	unsigned char digest[32];
	const char *why;
	ssize_t n;
	int fd;

	if (get_string(l, v, path, &c->upstream.ca_file, 1) == -1 ||
	    c->upstream.ca_file == NULL)
		return;
	/* Read and parsed once, so TLS to WHM needs no file access after
	 * start-up (privileges may have been dropped by then) and no
	 * parsing per connection. */
	if ((fd = open(c->upstream.ca_file, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_err(l, path, "cannot read %s: %s", c->upstream.ca_file,
		    strerror(errno));
		return;
	}
	if (c->upstream.ca_pem == NULL) {
		c->upstream.ca_pem = xcalloc(1, sizeof(struct buf));
		buf_init(c->upstream.ca_pem);
	}
	c->upstream.ca_pem->len = 0;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 &&
	    c->upstream.ca_pem->len <= CA_MAX)
		buf_add(c->upstream.ca_pem, chunk, (size_t)n);
	close(fd);
	if (n < 0 || c->upstream.ca_pem->len == 0) {
		conf_err(l, path, "cannot read %s", c->upstream.ca_file);
		return;
	}
	if (c->upstream.ca_pem->len > CA_MAX) {
		conf_err(l, path, "%s is larger than 4 MB", c->upstream.ca_file);
		return;
	}
	X509_STORE_free(c->upstream.ca_store);
	if ((c->upstream.ca_store = ca_store_new(c->upstream.ca_pem, &why)) == NULL) {
		conf_err(l, path, "%s: %s", c->upstream.ca_file, why);
		return;
	}
	sha256(c->upstream.ca_pem->p, c->upstream.ca_pem->len, digest);
	memcpy(c->upstream.ca_id, "whmgate-ca-", 11);
	hex_encode(digest, sizeof(digest), c->upstream.ca_id + 11);
}

static void
up_pin(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	if (get_string(l, v, path, &c->upstream.pinned_pubkey, 1) == 0 &&
	    c->upstream.pinned_pubkey &&
	    strncmp(c->upstream.pinned_pubkey, "sha256//", 8) != 0)
		conf_err(l, path, "must be \"sha256//<base64>\"");
}

static void
up_insecure(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_bool(l, v, path, &((struct conf *)arg)->upstream.insecure_skip_verify);
}

static void
up_connect(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct conf *)arg)->upstream.connect_timeout_ms,
	    1, 3600000);
}

static void
up_timeout(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct conf *)arg)->upstream.timeout_ms, 1,
	    86400000);
}

static void
up_maxconn(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct conf *)arg)->upstream.max_connections,
	    1, 100000);
}

static void
up_idle(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct conf *)arg)->upstream.idle_timeout_ms,
	    1, 86400000);
}

static const struct field upstream_fields[] = {
	{ "url", up_url }, { "ca_file", up_ca }, { "pinned_pubkey", up_pin },
	{ "insecure_skip_verify", up_insecure },
	{ "connect_timeout_ms", up_connect }, { "timeout_ms", up_timeout },
	{ "max_connections", up_maxconn }, { "idle_timeout_ms", up_idle },
	{ NULL, NULL }
};

static void
f_upstream(struct loader *l, yajl_val v, const char *path, void *arg)
{
	walk_fields(l, v, path, upstream_fields, arg);
}

#define LIMIT_FIELD(name, min, max)                                          \
	static void lim_##name(struct loader *l, yajl_val v, const char *path, \
	    void *arg)                                                       \
	{                                                                    \
		get_long(l, v, path, &((struct conf *)arg)->limits.name, min, \
		    max);                                                    \
	}
LIMIT_FIELD(max_header_bytes, 1024, 1048576)
LIMIT_FIELD(max_body_bytes, 0, 1073741824)
LIMIT_FIELD(header_timeout_ms, 1, 3600000)
LIMIT_FIELD(idle_timeout_ms, 1, 86400000)
LIMIT_FIELD(max_connections, 1, 1000000)
LIMIT_FIELD(shutdown_timeout_ms, 0, 3600000)
LIMIT_FIELD(max_params, 1, 1048576)
LIMIT_FIELD(max_batch_calls, 1, 65536)
LIMIT_FIELD(body_timeout_ms, 1, 86400000)

static const struct field limits_fields[] = {
	{ "max_header_bytes", lim_max_header_bytes },
	{ "max_body_bytes", lim_max_body_bytes },
	{ "header_timeout_ms", lim_header_timeout_ms },
	{ "idle_timeout_ms", lim_idle_timeout_ms },
	{ "max_connections", lim_max_connections },
	{ "max_params", lim_max_params },
	{ "max_batch_calls", lim_max_batch_calls },
	{ "body_timeout_ms", lim_body_timeout_ms },
	{ "shutdown_timeout_ms", lim_shutdown_timeout_ms }, { NULL, NULL }
};

static void
f_limits(struct loader *l, yajl_val v, const char *path, void *arg)
{
	walk_fields(l, v, path, limits_fields, arg);
}

/* A secret file must exist, be a regular file and be private. */
static int
check_private_file(struct loader *l, const char *path, const char *file)
{
	struct stat st;

	if (stat(file, &st) == -1) {
		conf_err(l, path, "cannot read %s: %s", file, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_err(l, path, "%s is not a regular file", file);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		conf_err(l, path, "%s is readable by group or others "
		    "(chmod 600 it)", file);
		return -1;
	}
	return 0;
}

static void
au_file(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_string(l, v, path, &((struct conf *)arg)->audit.file, 0);
}

static void
au_fsync(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	if (YAJL_IS_STRING(v) && strcmp(v->u.string, "always") == 0)
		c->audit.fsync = FSYNC_ALWAYS;
	else if (YAJL_IS_STRING(v) && strcmp(v->u.string, "interval") == 0)
		c->audit.fsync = FSYNC_INTERVAL;
	else if (YAJL_IS_STRING(v) && strcmp(v->u.string, "never") == 0)
		c->audit.fsync = FSYNC_NEVER;
	else
		conf_err(l, path, "must be \"always\", \"interval\" or \"never\"");
}

static void
au_hmac(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	if (get_string(l, v, path, &c->audit.hmac_key_file, 1) == 0 &&
	    c->audit.hmac_key_file && l->read_secrets)
		check_private_file(l, path, c->audit.hmac_key_file);
}

static void
au_redact(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;

	free_strings(c->audit.redact, c->audit.nredact);
	c->audit.redact = get_strings(l, v, path, &c->audit.nredact);
}

static void
au_syslog(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	const char *why;

	if (get_string(l, v, path, &c->audit.syslog, 1) == 0 && c->audit.syslog &&
	    (why = syslog_check(c->audit.syslog)) != NULL)
		conf_err(l, path, "%s", why);
}

static const struct field audit_fields[] = {
	{ "file", au_file }, { "fsync", au_fsync },
	{ "hmac_key_file", au_hmac }, { "redact", au_redact },
	{ "syslog", au_syslog }, { NULL, NULL }
};

static void
f_audit(struct loader *l, yajl_val v, const char *path, void *arg)
{
	walk_fields(l, v, path, audit_fields, arg);
}

/* ---- clients ---- */

static int
valid_name(const char *s, size_t max, const char *extra)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return 0;
	return n >= 1 && n <= max;
}

static void
get_hashes(struct loader *l, yajl_val v, const char *path,
    unsigned char (**out)[32], size_t *n)
{
	size_t i;
	const char *s;
	char *p;

	*n = 0;
	free(*out);
	*out = NULL;
	if (!YAJL_IS_ARRAY(v)) {
		conf_err(l, path, "must be an array of \"sha256:<hex>\" strings");
		return;
	}
	*out = xcalloc(v->u.array.len + 1, 32);
	for (i = 0; i < v->u.array.len; i++) {
		p = path_idx(path, i);
		s = YAJL_GET_STRING(v->u.array.values[i]);
		if (s && strncmp(s, "whmg_", 5) == 0)
			conf_err(l, p, "a key in clear text: put the sha256: "
			    "line from 'whmgate keygen' here instead");
		else if (s == NULL || strncmp(s, "sha256:", 7) != 0 ||
		    hex_decode(s + 7, (*out)[*n], 32) == -1)
			conf_err(l, p, "must be \"sha256:\" and 64 hex digits");
		else
			(*n)++;
		free(p);
	}
}

static void
cl_keys(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	get_hashes(l, v, path, &cl->keys, &cl->nkeys);
}

static void
cl_certs(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	get_hashes(l, v, path, &cl->certs, &cl->ncerts);
}

static void
cl_source(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;
	const char *s, *why;
	size_t i;
	char *p;

	cl->has_source = 1;
	if (!YAJL_IS_ARRAY(v)) {
		conf_err(l, path, "must be an array of CIDRs");
		return;
	}
	free(cl->source);
	cl->source = xcalloc(v->u.array.len + 1, sizeof(*cl->source));
	cl->nsource = 0;
	for (i = 0; i < v->u.array.len; i++) {
		p = path_idx(path, i);
		s = YAJL_GET_STRING(v->u.array.values[i]);
		if (s == NULL)
			conf_err(l, p, "must be a string");
		else if (cidr_parse(s, &cl->source[cl->nsource], &why) == -1)
			conf_err(l, p, "%s", why);
		else
			cl->nsource++;
		free(p);
	}
}

static void
cl_expires(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	if (!YAJL_IS_STRING(v) ||
	    time_parse_rfc3339(v->u.string, &cl->expires) == -1)
		conf_err(l, path, "must be an RFC 3339 UTC time like "
		    "\"2027-06-30T00:00:00Z\"");
}

static void
cl_whm_user(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	/* The user goes into "Authorization: whm USER:TOKEN": no ':' or
	 * whitespace may reach that header. */
	if (get_string(l, v, path, &cl->whm_user, 0) == 0 &&
	    !valid_name(cl->whm_user, 64, "_.-"))
		conf_err(l, path, "must match ^[A-Za-z0-9_.-]{1,64}$");
}

static char *
read_secret_file(struct loader *l, const char *path, const char *file)
{
	char data[1024];
	ssize_t n;
	int fd;

	if (check_private_file(l, path, file) == -1)
		return NULL;
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_err(l, path, "cannot read %s: %s", file, strerror(errno));
		return NULL;
	}
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n < 0) {
		conf_err(l, path, "cannot read %s: %s", file, strerror(errno));
		return NULL;
	}
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	data[n] = '\0';
	return xstrdup(data);
}

static void
cl_whm_token(struct loader *l, yajl_val v, const char *path, void *arg)
{
	static const char *env_path[] = { "env", NULL };
	static const char *file_path[] = { "file", NULL };
	struct client *cl = arg;
	yajl_val env, file;
	const char *s, *p;
	char *tok = NULL;

	if (!YAJL_IS_OBJECT(v) || v->u.object.len != 1) {
		conf_err(l, path, "must be {\"env\": NAME} or {\"file\": PATH}: "
		    "a token in clear text is not allowed");
		return;
	}
	env = yajl_tree_get(v, env_path, yajl_t_string);
	file = yajl_tree_get(v, file_path, yajl_t_string);
	if (env == NULL && file == NULL) {
		conf_err(l, path, "must be {\"env\": NAME} or {\"file\": PATH}");
		return;
	}
	if (!l->read_secrets)
		return;
	if (env) {
		if ((s = getenv(env->u.string)) == NULL || *s == '\0') {
			conf_err(l, path, "environment variable %s is not set",
			    env->u.string);
			return;
		}
		tok = xstrdup(s);
	} else {
		/* Kept so -t can check the run-time user reads it too. */
		free(cl->whm_token_file);
		cl->whm_token_file = xstrdup(file->u.string);
		if ((tok = read_secret_file(l, path, file->u.string)) == NULL)
			return;
	}
	/* The token is pasted into a header: only WHM's token alphabet. */
	for (p = tok; *p; p++)
		if (!isalnum((unsigned char)*p))
			break;
	if (*p || p == tok || p - tok > 256) {
		conf_err(l, path, "the token must be 1-256 letters and digits");
		secret_free(tok);
		return;
	}
	secret_free(cl->whm_token);
	cl->whm_token = tok;
}

static void
rate_ps(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	if (!YAJL_IS_NUMBER(v) || YAJL_GET_DOUBLE(v) <= 0 ||
	    YAJL_GET_DOUBLE(v) > 1e6)
		conf_err(l, path, "must be a number above 0");
	else
		cl->rate_per_second = YAJL_GET_DOUBLE(v);
}

static void
rate_burst(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	if (!YAJL_IS_NUMBER(v) || YAJL_GET_DOUBLE(v) < 1 ||
	    YAJL_GET_DOUBLE(v) > 1e6)
		conf_err(l, path, "must be a number of at least 1");
	else
		cl->rate_burst = YAJL_GET_DOUBLE(v);
}

static const struct field rate_fields[] = {
	{ "per_second", rate_ps }, { "burst", rate_burst }, { NULL, NULL }
};

static void
cl_rate(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	cl->has_rate = 1;
	walk_fields(l, v, path, rate_fields, arg);
	if (cl->rate_per_second <= 0)
		conf_err(l, path, "per_second is required");
	if (cl->rate_burst <= 0)
		cl->rate_burst = cl->rate_per_second < 1 ? 1 : cl->rate_per_second;
}

static void
cl_inflight(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_long(l, v, path, &((struct client *)arg)->max_inflight, 1, 100000);
}

/* ---- allow entries and constraints ---- */

/* 1 if name is in WHM's list form (name-N), by params.c's rule. */
static int
is_indexed(const char *name)
{
	int indexed;

	params_base_len(name, &indexed);
	return indexed;
}

static void
co_enum(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct constraint *co = arg;

	free_strings(co->enums, co->nenums);
	co->enums = NULL;
	co->nenums = 0;
	if (!YAJL_IS_ARRAY(v)) {
		conf_err(l, path, "must be an array of strings");
		return;
	}
	co->has_enum = 1;
	co->enums = xcalloc(v->u.array.len + 1, sizeof(char *));
	for (size_t i = 0; i < v->u.array.len; i++) {
		const char *s = YAJL_GET_STRING(v->u.array.values[i]);
		if (s == NULL) {
			char *p = path_idx(path, i);
			conf_err(l, p, "must be a string");
			free(p);
			continue;
		}
		co->enums[co->nenums++] = xstrdup(s);
	}
}

static void
co_pattern(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct constraint *co = arg;
	struct buf b;
	char msg[256];
	int rc;

	if (!YAJL_IS_STRING(v)) {
		conf_err(l, path, "must be a string");
		return;
	}
	if (co->has_pattern) {
		regfree(&co->re);
		co->has_pattern = 0;
	}
	/* The whole value must match: anchor the ERE as a group, so "a|b"
	 * cannot match "a-and-anything". */
	buf_init(&b);
	buf_printf(&b, "^(%s)$", v->u.string);
	rc = regcomp(&co->re, b.p, REG_EXTENDED | REG_NOSUB);
	buf_fini(&b);
	if (rc != 0) {
		regerror(rc, &co->re, msg, sizeof(msg));
		conf_err(l, path, "not a POSIX extended regular expression: %s",
		    msg);
		return;
	}
	co->has_pattern = 1;
	free(co->pattern);
	co->pattern = xstrdup(v->u.string);
}

static void
co_required(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_bool(l, v, path, &((struct constraint *)arg)->required);
}

static void
co_absent(struct loader *l, yajl_val v, const char *path, void *arg)
{
	get_bool(l, v, path, &((struct constraint *)arg)->absent);
}

static const struct field constraint_fields[] = {
	{ "enum", co_enum }, { "pattern", co_pattern },
	{ "required", co_required }, { "absent", co_absent }, { NULL, NULL }
};

/* "fn", "cpanel:Module::func" or "uapi_cpanel:Module::function". */
static int
valid_allow_name(const char *name)
{
	const char *p, *sep;
	char mod[128];
	size_t ml;

	if (strncmp(name, "cpanel:", 7) == 0)
		p = name + 7;
	else if (strncmp(name, "uapi_cpanel:", 12) == 0)
		p = name + 12;
	else
		return valid_name(name, 128, "_") &&
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
		    strlen(name) && strcmp(name, "cpanel") != 0 &&
		    strcmp(name, "uapi_cpanel") != 0;
	if ((sep = strstr(p, "::")) == NULL || (ml = (size_t)(sep - p)) >=
	    sizeof(mod))
		return 0;
	memcpy(mod, p, ml);
	mod[ml] = '\0';
	return valid_name(mod, 127, "_") && valid_name(sep + 2, 127, "_");
}

static void
load_allow(struct loader *l, yajl_val v, const char *path,
    struct allow_rule **rules, size_t *nrules)
{
	struct allow_rule *r;
	struct constraint *co;
	yajl_val cv;
	size_t i, j;
	char *rp, *cp;

	if (expect_object(l, v, path) == -1)
		return;
	*rules = xcalloc(v->u.object.len + 1, sizeof(**rules));
	for (i = 0; i < v->u.object.len; i++) {
		rp = path_key(path, v->u.object.keys[i]);
		if (!valid_allow_name(v->u.object.keys[i])) {
			conf_err(l, rp, "must be a function name (^[a-z0-9_]+$), "
			    "\"cpanel:<Module>::<func>\" or "
			    "\"uapi_cpanel:<Module>::<function>\"%s",
			    strcmp(v->u.object.keys[i], "cpanel") == 0 ||
			    strcmp(v->u.object.keys[i], "uapi_cpanel") == 0 ?
			    " (a bare cpanel entry would allow every cPanel "
			    "call)" : "");
			free(rp);
			continue;
		}
		r = &(*rules)[(*nrules)++];
		r->name = xstrdup(v->u.object.keys[i]);
		r->path = rp;
		cv = v->u.object.values[i];
		if (expect_object(l, cv, rp) == -1)
			continue;
		r->cons = xcalloc(cv->u.object.len + 1, sizeof(*r->cons));
		for (j = 0; j < cv->u.object.len; j++) {
			cp = path_key(rp, cv->u.object.keys[j]);
			co = &r->cons[r->ncons++];
			co->param = xstrdup(cv->u.object.keys[j]);
			co->path = cp;
			if (co->param[0] == '\0')
				conf_err(l, cp, "empty parameter name");
			else if (is_indexed(co->param))
				conf_err(l, cp, "name the plain parameter: a "
				    "constraint applies to every -N copy");
			walk_fields(l, cv->u.object.values[j], cp,
			    constraint_fields, co);
			if (co->absent && (co->required || co->has_enum ||
			    co->has_pattern))
				conf_err(l, cp, "\"absent\" cannot be combined "
				    "with other constraints");
			if (YAJL_IS_OBJECT(cv->u.object.values[j]) &&
			    cv->u.object.values[j]->u.object.len == 0)
				conf_err(l, cp, "an empty constraint constrains "
				    "nothing");
		}
	}
}

/* "any" (section 12) or an object of entries. */
static void
cl_allow(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	free(cl->allow_path);
	cl->allow_path = xstrdup(path);
	if (YAJL_IS_STRING(v) && strcmp(v->u.string, "any") == 0)
		cl->allow_any = 1;
	else if (YAJL_IS_STRING(v))
		conf_err(l, path, "must be an object or \"any\"");
	else
		load_allow(l, v, path, &cl->allow, &cl->nallow);
}

static void
cl_candidate(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct client *cl = arg;

	free(cl->cand_path);
	cl->cand_path = xstrdup(path);
	cl->has_candidate = 1;
	if (YAJL_IS_STRING(v) && strcmp(v->u.string, "any") == 0)
		cl->cand_any = 1;
	else if (YAJL_IS_STRING(v))
		conf_err(l, path, "must be an object or \"any\"");
	else
		load_allow(l, v, path, &cl->cand, &cl->ncand);
}

static const struct field client_fields[] = {
	{ "keys", cl_keys }, { "certs", cl_certs }, { "source", cl_source },
	{ "expires", cl_expires }, { "whm_user", cl_whm_user },
	{ "whm_token", cl_whm_token }, { "rate", cl_rate },
	{ "max_inflight", cl_inflight }, { "allow", cl_allow },
	{ "candidate", cl_candidate }, { NULL, NULL }
};

static void
f_clients(struct loader *l, yajl_val v, const char *path, void *arg)
{
	struct conf *c = arg;
	struct client *cl;
	size_t i;
	char *p;

	if (expect_object(l, v, path) == -1)
		return;
	c->clients = xcalloc(v->u.object.len + 1, sizeof(*c->clients));
	for (i = 0; i < v->u.object.len; i++) {
		p = path_key(path, v->u.object.keys[i]);
		if (!valid_name(v->u.object.keys[i], 64, "_.-")) {
			conf_err(l, p, "client id must match "
			    "^[A-Za-z0-9_.-]{1,64}$");
			free(p);
			continue;
		}
		cl = &c->clients[c->nclients++];
		cl->id = xstrdup(v->u.object.keys[i]);
		walk_fields(l, v->u.object.values[i], p, client_fields, cl);
		if (YAJL_IS_OBJECT(v->u.object.values[i])) {
			if (cl->nkeys == 0 && cl->ncerts == 0)
				conf_err(l, p, "needs \"keys\" or \"certs\"");
			if (cl->whm_user == NULL)
				conf_err(l, p, "\"whm_user\" is required");
			if (yajl_tree_get(v->u.object.values[i],
			    (const char *[]){ "whm_token", NULL },
			    yajl_t_any) == NULL)
				conf_err(l, p, "\"whm_token\" is required");
			if (cl->allow == NULL && !cl->allow_any)
				conf_err(l, p, "\"allow\" is required "
				    "(deny by default)");
		}
		free(p);
	}
}

static const struct field top_fields[] = {
	{ "listen", f_listen }, { "listen_tls", f_listen_tls },
	{ "admin", f_admin }, { "workers", f_workers },
	{ "user", f_user }, { "instance", f_instance },
	{ "upstream", f_upstream }, { "limits", f_limits },
	{ "audit", f_audit }, { "clients", f_clients }, { NULL, NULL }
};

/* One key hash or certificate fingerprint under two clients would let one
 * secret act as either (Bearer picks the first, "whm id:key" any): an
 * error, reported at the later copy. A config holds few secrets, so pairs
 * are compared directly. */
static void
check_shared(struct loader *l, const struct conf *c, int certs)
{
	const struct client *a, *b;
	unsigned char (*ha)[32], (*hb)[32];
	size_t i, j, x, y, na, nb;
	char *pa, *pb, *ia, *ib;

	for (i = 0; i < c->nclients; i++) {
		b = &c->clients[i];
		hb = certs ? b->certs : b->keys;
		nb = certs ? b->ncerts : b->nkeys;
		for (y = 0; y < nb; y++)
			for (j = 0; j < i; j++) {
				a = &c->clients[j];
				ha = certs ? a->certs : a->keys;
				na = certs ? a->ncerts : a->nkeys;
				for (x = 0; x < na; x++) {
					if (memcmp(ha[x], hb[y], 32) != 0)
						continue;
					pa = path_key("$.clients", a->id);
					pb = path_key("$.clients", b->id);
					ia = path_key(pa, certs ? "certs" : "keys");
					ib = path_key(pb, certs ? "certs" : "keys");
					free(pa);
					free(pb);
					pa = path_idx(ia, x);
					pb = path_idx(ib, y);
					conf_err(l, pb, "the same %s as %s: one secret "
					    "must name one client", certs ?
					    "certificate" : "key", pa);
					free(pa);
					free(pb);
					free(ia);
					free(ib);
				}
			}
	}
}

/* yajl_tree's messages carry no position: re-parse to find line/column. */
static void
report_syntax(struct loader *l, const char *text, size_t len)
{
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	size_t off, i;
	int line = 1, col = 1;
	unsigned char *msg;

	yajl_config(h, yajl_allow_comments, 1);
	if (yajl_parse(h, (const unsigned char *)text, len) != yajl_status_ok) {
		off = yajl_get_bytes_consumed(h);
	} else if (yajl_complete_parse(h) != yajl_status_ok) {
		off = len;          /* premature end: the error is at the end */
	} else {
		conf_err(l, "$", "invalid JSON");
		yajl_free(h);
		return;
	}
	for (i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	msg = yajl_get_error(h, 0, NULL, 0);
	conf_err(l, "$", "invalid JSON at line %d, column %d: %s", line, col,
	    (char *)msg);
	yajl_free_error(h, msg);
	yajl_free(h);
}

static void
set_defaults(struct conf *c)
{
	c->workers = 1;
	c->upstream.connect_timeout_ms = 5000;
	c->upstream.timeout_ms = 300000;
	c->upstream.max_connections = 64;
	c->upstream.idle_timeout_ms = 10000;
	c->limits.max_header_bytes = 16384;
	c->limits.max_body_bytes = 1048576;
	c->limits.header_timeout_ms = 10000;
	c->limits.idle_timeout_ms = 60000;
	c->limits.max_connections = 4096;
	c->limits.shutdown_timeout_ms = 30000;
	c->limits.max_params = PARAMS_MAX_DEFAULT;
	c->limits.max_batch_calls = PARAMS_BATCH_MAX_DEFAULT;
	c->limits.body_timeout_ms = 60000;
	c->audit.file = xstrdup("logs/audit.jsonl");
	c->audit.fsync = FSYNC_ALWAYS;
}

/* Numbers each loaded conf, so a cache can tell them apart even when
 * one is allocated where a freed one was. */
static atomic_ulong conf_serials;

struct conf *
conf_parse(const char *file, const char *text, size_t len, int read_secrets,
    struct buf *errs)
{
	struct loader l = { file, errs, 0, read_secrets, NULL };
	struct conf *c;
	char errbuf[256], host[256], *copy;
	yajl_val root;
	unsigned char digest[32];

	/* yajl_tree_parse wants a NUL-terminated string, and would stop at
	 * an embedded NUL without saying so. */
	if (memchr(text, '\0', len) != NULL) {
		conf_err(&l, "$", "the file contains a NUL byte");
		return NULL;
	}
	copy = xcalloc(len + 1, 1);
	memcpy(copy, text, len);
	root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
	if (root == NULL) {
		report_syntax(&l, copy, len);
		free(copy);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	atomic_init(&c->refs, 1);
	c->serial = atomic_fetch_add(&conf_serials, 1) + 1;
	c->file = xstrdup(file);
	set_defaults(c);
	check_duplicates(&l, root, "$");
	walk_fields(&l, root, "$", top_fields, c);
	if (YAJL_IS_OBJECT(root)) {
		if (c->nlisten == 0 && c->ntls == 0)
			conf_err(&l, "$.listen", "at least one listener is required");
		if (c->upstream.base == NULL)
			conf_err(&l, "$.upstream.url", "is required");
		if (c->clients == NULL)
			conf_err(&l, "$.clients", "is required");
		check_shared(&l, c, 0);
		check_shared(&l, c, 1);
	}
	if (c->instance == NULL) {
		if (gethostname(host, sizeof(host)) == -1)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		c->instance = xstrdup(host);
	}
	sha256(text, len, digest);
	hex_encode(digest, 32, c->digest);
	yajl_tree_free(root);
	free(copy);
	if (l.nerr) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

struct conf *
conf_load(const char *file, struct buf *errs)
{
	struct buf text;
	char chunk[65536];
	struct conf *c;
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		buf_printf(errs, "%s: $: cannot open: %s\n", file, strerror(errno));
		return NULL;
	}
	buf_init(&text);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (text.len > 16 * 1024 * 1024 || buf_add(&text, chunk,
		    (size_t)n) == -1) {
			n = -1;
			errno = EFBIG;
			break;
		}
	}
	close(fd);
	if (n < 0) {
		buf_printf(errs, "%s: $: cannot read: %s\n", file, strerror(errno));
		buf_fini(&text);
		return NULL;
	}
	c = conf_parse(file, text.p ? text.p : "", text.len, 1, errs);
	buf_fini(&text);
	return c;
}

int
conf_warnings(const struct conf *c, int64_t now, struct buf *out)
{
	const struct client *cl;
	char *p, *q, when[32];
	struct tm tm;
	time_t t;
	size_t i, j;
	int n = 0;

	if (c->upstream.insecure_skip_verify) {
		buf_printf(out, "warning: %s: $.upstream.insecure_skip_verify: WHM's "
		    "certificate is not verified: whoever is on the path reads the "
		    "WHM tokens\n", c->file);
		n++;
	}
	for (i = 0; i < c->nclients; i++) {
		cl = &c->clients[i];
		p = path_key("$.clients", cl->id);
		for (j = 0; j < cl->nsource; j++) {
			if (cl->source[j].bits != 0)
				continue;
			buf_printf(out, "warning: %s: %s.source[%zu]: allows every "
			    "%s address, as if there were no source\n", c->file, p,
			    j, cl->source[j].family == AF_INET ? "IPv4" : "IPv6");
			n++;
		}
		if (cl->expires != 0 && cl->expires < now + 14 * 86400) {
			t = (time_t)cl->expires;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			q = path_key(p, "expires");
			if (cl->expires <= now)
				buf_printf(out, "warning: %s: %s: expired at %s: every "
				    "call of this client is refused\n", c->file, q, when);
			else
				buf_printf(out, "warning: %s: %s: expires at %s, in %lld "
				    "hours\n", c->file, q, when,
				    (long long)((cl->expires - now) / 3600));
			free(q);
			n++;
		}
		free(p);
	}
	return n;
}

struct conf *
conf_ref(struct conf *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

static void
rules_free(struct allow_rule *rules, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		struct allow_rule *r = &rules[i];
		for (j = 0; j < r->ncons; j++) {
			free(r->cons[j].param);
			free(r->cons[j].path);
			free(r->cons[j].pattern);
			free_strings(r->cons[j].enums, r->cons[j].nenums);
			if (r->cons[j].has_pattern)
				regfree(&r->cons[j].re);
		}
		free(r->cons);
		free(r->name);
		free(r->path);
	}
	free(rules);
}

static void
client_fini(struct client *cl)
{
	free(cl->id);
	free(cl->keys);
	free(cl->certs);
	free(cl->source);
	free(cl->whm_user);
	free(cl->whm_token_file);
	secret_free(cl->whm_token);
	rules_free(cl->allow, cl->nallow);
	rules_free(cl->cand, cl->ncand);
	free(cl->allow_path);
	free(cl->cand_path);
}

void
conf_unref(struct conf *c)
{
	size_t i;

	if (c == NULL || atomic_fetch_sub(&c->refs, 1) > 1)
		return;
	for (i = 0; i < c->nclients; i++)
		client_fini(&c->clients[i]);
	free(c->clients);
	free_strings(c->listen, c->nlisten);
	for (i = 0; i < c->ntls; i++) {
		free(c->tls[i].address);
		free(c->tls[i].cert);
		free(c->tls[i].key);
		free(c->tls[i].client_ca);
	}
	free(c->tls);
	free(c->file);
	free(c->instance);
	free(c->admin);
	free(c->user);
	free(c->upstream.url);
	free(c->upstream.base);
	free(c->upstream.ca_file);
	if (c->upstream.ca_pem) {
		buf_fini(c->upstream.ca_pem);
		free(c->upstream.ca_pem);
	}
	X509_STORE_free(c->upstream.ca_store);
	free(c->upstream.pinned_pubkey);
	free(c->audit.file);
	free(c->audit.hmac_key_file);
	free(c->audit.syslog);
	free_strings(c->audit.redact, c->audit.nredact);
	free(c);
}

const struct client *
conf_client(const struct conf *c, const char *id)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i].id, id) == 0)
			return &c->clients[i];
	return NULL;
}

const struct allow_rule *
conf_allow(const struct client *cl, const char *name)
{
	size_t i;

	for (i = 0; i < cl->nallow; i++)
		if (strcmp(cl->allow[i].name, name) == 0)
			return &cl->allow[i];
	return NULL;
}

const struct allow_rule *
conf_candidate(const struct client *cl, const char *name)
{
	size_t i;

	for (i = 0; i < cl->ncand; i++)
		if (strcmp(cl->cand[i].name, name) == 0)
			return &cl->cand[i];
	return NULL;
}

/* conf.h - the configuration (SPEC section 2): parsed from JSON with yajl,
 * validated with every problem reported as "FILE: <json path>: <problem>".
 * A loaded conf is immutable and reference counted, so a request keeps the
 * conf it started with across a reload. */
#ifndef WHMGATE_CONF_H
#define WHMGATE_CONF_H

#include <regex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

enum fsync_mode { FSYNC_ALWAYS, FSYNC_INTERVAL, FSYNC_NEVER };

struct cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

/* One parameter constraint inside an allow entry. */
struct constraint {
	char *param;            /* the plain name; applies to every name-N copy */
	char *path;             /* JSON path, for the audit record's decision.rule */
	char **enums;
	size_t nenums;
	int has_enum;
	int has_pattern;
	regex_t re;             /* compiled once at load, anchored to the whole value */
	char *pattern;          /* the ERE as written (policy show) */
	int required;
	int absent;
};

/* One allow entry: a WHM function, or cpanel:/uapi_cpanel: target. */
struct allow_rule {
	char *name;
	char *path;
	struct constraint *cons;
	size_t ncons;
};

struct client {
	char *id;
	unsigned char (*keys)[32];   /* SHA-256 of the whmgate keys */
	size_t nkeys;
	unsigned char (*certs)[32];  /* certificate fingerprints */
	size_t ncerts;
	struct cidr *source;
	size_t nsource;
	int has_source;              /* 0: any source */
	int64_t expires;             /* unix time; 0: never */
	char *whm_user;
	char *whm_token;             /* secret: wiped on free */
	char *whm_token_file;        /* the file it is read from (each reload), or NULL */
	double rate_per_second, rate_burst;
	int has_rate;
	long max_inflight;           /* 0: unlimited */
	struct allow_rule *allow;
	size_t nallow;
	/* SPEC section 12: "allow": "any" and a candidate tried in shadow. */
	int allow_any;               /* every function and parameter */
	char *allow_path;            /* "$.clients.<id>.allow" */
	struct allow_rule *cand;     /* the candidate's entries */
	size_t ncand;
	int has_candidate, cand_any;
	char *cand_path;             /* "$.clients.<id>.candidate" */
};

/* One listen_tls entry. */
struct tls_listen {
	char *address;
	char *cert, *key;            /* PEM files; the key must be private */
	char *client_ca;             /* enables client certificates, or NULL */
	int require_client_cert;
};

struct conf {
	char *file;
	char **listen;
	size_t nlisten;
	struct tls_listen *tls;
	size_t ntls;
	char *instance;              /* never NULL after load: defaults to the host name */
	char *admin;                 /* admin listener host:port, or NULL */
	char *user;                  /* drop to this user after binding, or NULL */
	long workers;                /* event-loop threads */
	struct {
		char *url;               /* as configured */
		char *base;              /* https://host:port, no trailing slash */
		char *ca_file;
		struct buf *ca_pem;      /* ca_file's contents, read at load */
		struct x509_store_st *ca_store; /* its certificates, parsed at load */
		char ca_id[76];          /* "whmgate-ca-" and their SHA-256 in hex */
		char *pinned_pubkey;
		int insecure_skip_verify;
		long connect_timeout_ms, timeout_ms, max_connections;
		long idle_timeout_ms;    /* a pooled connection unused this long closes */
	} upstream;
	struct {
		long max_header_bytes, max_body_bytes, header_timeout_ms,
		    idle_timeout_ms, max_connections, shutdown_timeout_ms;
		long max_params, max_batch_calls; /* issue 16: 413 beyond */
		long body_timeout_ms;    /* the whole body read (408) */
	} limits;
	struct {
		char *file;
		enum fsync_mode fsync;
		char *hmac_key_file;
		char **redact;
		size_t nredact;
		char *syslog;            /* "unix:/path" or "tcp:HOST:PORT", or NULL */
	} audit;
	struct client *clients;
	size_t nclients;
	char digest[65];             /* hex SHA-256 of the file's bytes */
	unsigned long serial;        /* unique per loaded conf (1, 2, ...) */
	atomic_int refs;             /* workers share a conf: atomic */
};

/* Loads and validates FILE. On success returns a conf with one reference.
 * On failure returns NULL and appends one line per problem to errs. Reads
 * secrets (token env variables and files) unless check_secrets is 0. */
struct conf *conf_load(const char *file, struct buf *errs);
/* Same, from a string already in memory (for tests and fuzzing); no secret
 * files are read when read_secrets is 0. */
struct conf *conf_parse(const char *file, const char *text, size_t len,
    int read_secrets, struct buf *errs);

/* Appends one "warning: FILE: <json path>: <text>" line for each setting
 * that starts but deserves a second look (insecure_skip_verify, a source
 * of 0.0.0.0/0 or ::/0, an expires in the past or within 14 days of now,
 * unix seconds). Returns how many. */
int conf_warnings(const struct conf *c, int64_t now, struct buf *out);

struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);     /* frees at zero; NULL is a no-op */

const struct client *conf_client(const struct conf *c, const char *id);
const struct allow_rule *conf_allow(const struct client *cl, const char *name);
/* The candidate's entry for name, or NULL (section 12). */
const struct allow_rule *conf_candidate(const struct client *cl,
    const char *name);

struct sockaddr_storage;
/* "a.b.c.d:port" or "[v6]:port" (numeric only) to a socket address.
 * Returns 0, or -1 with *why set. */
int conf_hostport(const char *s, struct sockaddr_storage *ss, const char **why);

/* Parses "a.b.c.d/n" or "v6/n" (or a bare address as /32 or /128).
 * Returns 0, or -1 with *why set. */
int cidr_parse(const char *s, struct cidr *out, const char **why);
/* 1 if the address (family, 4 or 16 bytes) is inside. */
int cidr_match(const struct cidr *c, int family, const unsigned char *addr);

#endif

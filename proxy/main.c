/* main.c - arguments, -t, keygen, audit verify, signals, and the loop.
 *
 * Signals come through uv_signal_t, so their work runs on the loop:
 * SIGHUP reloads the config, SIGUSR1 reopens the audit file, SIGTERM and
 * SIGINT drain and stop. */
#define _GNU_SOURCE
#include "admin.h"
#include "audit.h"
#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static struct server srv;
static uv_signal_t sig_hup, sig_usr1, sig_term, sig_int;
static uv_timer_t drain_timer;
static uv_timer_t drain_check;
static const char *conf_file = "conf/whmgate.json";
static int exiting;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: whmgate [-c FILE]           run (default conf/whmgate.json)\n"
	    "       whmgate -t [-c FILE]        check the config and exit\n"
	    "       whmgate keygen              print a new client key and its sha256: line\n"
	    "       whmgate audit verify FILE... [--key KEYFILE]\n"
	    "       whmgate -V | -h\n");
}

/* After binding and opening the audit file: the process holds no root
 * privilege from here on (setgroups first, then gid, then uid). */
static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		log_err("user %s: no such user", user);
		return -1;
	}
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_err("cannot drop privileges to %s: %s", user, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		log_err("privileges could be regained after dropping them");
		return -1;
	}
	/* setuid makes the process dumpable again: no core with secrets. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	log_info("running as %s", user);
	return 0;
}

/* A reload may not change what was bound or opened at start. */
static const char *
reload_blocker(const struct conf *o, const struct conf *n)
{
	size_t i;

	if (o->nlisten != n->nlisten || o->ntls != n->ntls)
		return "listen cannot change on reload";
	for (i = 0; i < o->ntls; i++)
		if (strcmp(o->tls[i].address, n->tls[i].address) != 0)
			return "listen_tls addresses cannot change on reload";
	for (i = 0; i < o->nlisten; i++)
		if (strcmp(o->listen[i], n->listen[i]) != 0)
			return "listen cannot change on reload";
	if (strcmp(o->audit.file, n->audit.file) != 0)
		return "audit.file cannot change on reload";
	if ((o->audit.hmac_key_file == NULL) != (n->audit.hmac_key_file == NULL) ||
	    (o->audit.hmac_key_file && strcmp(o->audit.hmac_key_file,
	    n->audit.hmac_key_file) != 0))
		return "audit.hmac_key_file cannot change on reload";
	if (o->audit.fsync != n->audit.fsync)
		return "audit.fsync cannot change on reload";
	if ((o->admin == NULL) != (n->admin == NULL) ||
	    (o->admin && strcmp(o->admin, n->admin) != 0))
		return "admin cannot change on reload";
	if ((o->user == NULL) != (n->user == NULL) ||
	    (o->user && strcmp(o->user, n->user) != 0))
		return "user cannot change on reload";
	if ((o->audit.syslog == NULL) != (n->audit.syslog == NULL) ||
	    (o->audit.syslog && strcmp(o->audit.syslog, n->audit.syslog) != 0))
		return "audit.syslog cannot change on reload";
	return NULL;
}

static void
on_hup(uv_signal_t *h, int sig)
{
	struct buf errs;
	struct conf *n;
	const char *why;
	char *nl;

	(void)h;
	(void)sig;
	buf_init(&errs);
	n = conf_load(conf_file, &errs);
	if (n == NULL || (why = reload_blocker(srv.conf, n)) != NULL) {
		if (n == NULL) {
			/* The first problem goes in the record; all go to
			 * the diagnostics. */
			log_err("reload refused:\n%s", errs.p ? errs.p : "");
			if (errs.p && (nl = strchr(errs.p, '\n')) != NULL)
				*nl = '\0';
			why = errs.p ? errs.p : "invalid config";
		} else {
			log_err("reload refused: %s", why);
		}
		audit_system(srv.audit, "reload", "result", "refused",
		    "reason", why, NULL);
		metrics_reload(0);
		conf_unref(n);
		buf_fini(&errs);
		return;
	}
	if (server_tls_reload(&srv, n, &errs) == -1) {
		log_err("reload refused: TLS: %s", errs.p ? errs.p : "");
		audit_system(srv.audit, "reload", "result", "refused", "reason",
		    "TLS certificate or key cannot be loaded", NULL);
		metrics_reload(0);
		conf_unref(n);
		buf_fini(&errs);
		return;
	}
	buf_fini(&errs);
	/* In-flight requests keep their own reference to the old conf. */
	audit_set_conf(srv.audit, n);
	upstream_set_conf(srv.up, n);
	conf_unref(srv.conf);
	srv.conf = n;
	audit_system(srv.audit, "reload", "result", "ok", "config_digest",
	    n->digest, NULL);
	metrics_reload(1);
	log_info("reloaded %s", conf_file);
}

static void
on_usr1(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	audit_system(srv.audit, "reopen", NULL);
	audit_reopen(srv.audit);
}

static void
finish(void)
{
	if (exiting++)
		return;
	conn_close_all(&srv);
	admin_stop(&srv);
	uv_timer_stop(&drain_timer);
	uv_timer_stop(&drain_check);
	uv_close((uv_handle_t *)&drain_timer, NULL);
	uv_close((uv_handle_t *)&drain_check, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&sig_usr1, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	upstream_free(srv.up);
}

static void
on_drain_deadline(uv_timer_t *t)
{
	(void)t;
	log_warn("shutdown deadline: cutting %zu connections", srv.nconns);
	finish();
}

static void
on_drain_check(uv_timer_t *t)
{
	(void)t;
	conn_close_idle(&srv);
	if (srv.inflight == 0)
		finish();
}

static void
on_term(uv_signal_t *h, int sig)
{
	(void)h;
	if (srv.draining)
		return;
	log_info("signal %d: draining", sig);
	srv.draining = 1;
	server_stop_listening(&srv);
	conn_close_idle(&srv);
	uv_timer_start(&drain_timer, on_drain_deadline,
	    (uint64_t)srv.conf->limits.shutdown_timeout_ms, 0);
	uv_timer_start(&drain_check, on_drain_check, 0, 50);
}

static int
cmd_keygen(void)
{
	char key[49], line[72];

	if (auth_keygen(key, line) == -1) {
		fprintf(stderr, "whmgate: no randomness\n");
		return 1;
	}
	printf("%s\n%s\n", key, line);
	return 0;
}

static int
cmd_verify(int argc, char **argv)
{
	const char *key = NULL;
	char **files = calloc((size_t)argc + 1, sizeof(char *));
	int i, n = 0, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else
			files[n++] = argv[i];
	}
	if (n == 0) {
		usage(stderr);
		free(files);
		return 2;
	}
	rc = audit_verify(files, n, key);
	free(files);
	return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct buf errs;
	struct rlimit rl = { 0, 0 };
	int check = 0, i, rc;

	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen();
	if (argc >= 3 && strcmp(argv[1], "audit") == 0 &&
	    strcmp(argv[2], "verify") == 0)
		return cmd_verify(argc - 3, argv + 3);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0)
			check = 1;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_file = argv[++i];
		else if (strcmp(argv[i], "-V") == 0) {
			printf("whmgate %s\n", WHMGATE_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	/* No core dump may carry the tokens held in memory. */
	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (getenv("WHMGATE_DEBUG"))
		log_min = LOG_DEBUG;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	buf_init(&errs);
	srv.conf = conf_load(conf_file, &errs);
	if (srv.conf == NULL) {
		fputs(errs.p ? errs.p : "invalid config\n", stderr);
		buf_fini(&errs);
		return 1;
	}
	for (i = 0; i < (int)srv.conf->ntls; i++) {
		/* -t does every start-up check but binding. */
		SSL_CTX *ctx = tls_ctx_new(&srv.conf->tls[i], &errs);
		if (ctx == NULL) {
			fprintf(stderr, "%s: $.listen_tls[%d]: %s\n", conf_file, i,
			    errs.p ? errs.p : "TLS set-up failed");
			buf_fini(&errs);
			conf_unref(srv.conf);
			return 1;
		}
		SSL_CTX_free(ctx);
	}
	if (check) {
		printf("%s: ok\n", conf_file);
		conf_unref(srv.conf);
		return 0;
	}
	if (srv.conf->upstream.insecure_skip_verify)
		log_warn("upstream.insecure_skip_verify is true: WHM's "
		    "certificate is NOT verified; tokens can be stolen");
	srv.loop = uv_default_loop();
	if ((srv.audit = audit_open(srv.conf, srv.loop, &errs)) == NULL) {
		log_err("%s", errs.p ? errs.p : "audit: cannot open");
		buf_fini(&errs);
		conf_unref(srv.conf);
		return 1;
	}
	metrics_init();
	if ((srv.up = upstream_new(srv.loop, srv.conf)) == NULL ||
	    server_listen(&srv) == -1 || admin_listen(&srv) == -1 ||
	    (srv.conf->user && drop_privileges(srv.conf->user) == -1)) {
		audit_close(srv.audit, "start-up failed");
		return 1;
	}
	uv_signal_init(srv.loop, &sig_hup);
	uv_signal_start(&sig_hup, on_hup, SIGHUP);
	uv_signal_init(srv.loop, &sig_usr1);
	uv_signal_start(&sig_usr1, on_usr1, SIGUSR1);
	uv_signal_init(srv.loop, &sig_term);
	uv_signal_start(&sig_term, on_term, SIGTERM);
	uv_signal_init(srv.loop, &sig_int);
	uv_signal_start(&sig_int, on_term, SIGINT);
	uv_timer_init(srv.loop, &drain_timer);
	uv_timer_init(srv.loop, &drain_check);
	log_info("whmgate %s started (config %s, upstream %s)", WHMGATE_VERSION,
	    conf_file, srv.conf->upstream.base);
	uv_run(srv.loop, UV_RUN_DEFAULT);
	audit_close(srv.audit, "");
	uv_run(srv.loop, UV_RUN_DEFAULT);   /* the audit's close callback */
	server_free(&srv);
	conf_unref(srv.conf);
	buf_fini(&errs);
	rc = uv_loop_close(srv.loop);
	if (rc != 0)
		log_warn("loop closed with handles open");
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}

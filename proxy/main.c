/* main.c - arguments, -t, keygen, audit verify, workers, signals.
 *
 * The main thread owns the current conf, the audit trail and the signals,
 * and runs worker 0 on its loop; workers 1..N-1 run on their own threads
 * (server.c). SIGHUP loads and checks a new conf and posts it to every
 * worker, SIGUSR1 reopens the audit file, SIGTERM and SIGINT post a drain;
 * when every loop has ended, the audit is closed with its stop record. */
#define _GNU_SOURCE
#include "admin.h"
#include "audit.h"
#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "policy_tool.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static struct server *workers;
static int nworkers;
static struct conf *conf;          /* the current config (main thread) */
static struct audit *audit;
static uv_signal_t sig_hup, sig_usr1, sig_term, sig_int;
static const char *conf_file = "conf/whmgate.json";
static int draining;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: whmgate [-c FILE]           run (default conf/whmgate.json)\n"
	    "       whmgate -t [-c FILE]        check the config and exit\n"
	    "       whmgate keygen              print a new client key and its sha256: line\n"
	    "       whmgate audit verify FILE... [--key KEYFILE]\n"
	    "       whmgate policy show|check|suggest|replay ...\n"
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
	if (o->workers != n->workers)
		return "workers cannot change on reload";
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
reload_refused(const char *why)
{
	audit_system(audit, "reload", "result", "refused", "reason", why, NULL);
	metrics_reload(0);
}

static void
on_hup(uv_signal_t *h, int sig)
{
	struct buf errs;
	struct conf *n;
	const char *why;
	SSL_CTX **ctx;
	char *nl;
	int i, failed;

	(void)h;
	(void)sig;
	if (draining)
		return;
	buf_init(&errs);
	n = conf_load(conf_file, &errs);
	if (n == NULL) {
		/* The first problem goes in the record; all go to stderr. */
		log_err("reload refused:\n%s", errs.p ? errs.p : "");
		if (errs.p && (nl = strchr(errs.p, '\n')) != NULL)
			*nl = '\0';
		reload_refused(errs.p ? errs.p : "invalid config");
		buf_fini(&errs);
		return;
	}
	if ((why = reload_blocker(conf, n)) != NULL) {
		log_err("reload refused: %s", why);
		reload_refused(why);
		conf_unref(n);
		buf_fini(&errs);
		return;
	}
	ctx = server_tls_load(n, &errs, &failed);
	if (failed) {
		log_err("reload refused: TLS: %s", errs.p ? errs.p : "");
		reload_refused("TLS certificate or key cannot be loaded");
		conf_unref(n);
		buf_fini(&errs);
		return;
	}
	buf_fini(&errs);
	/* Each worker switches on its own loop; in-flight requests keep
	 * their own reference to the old conf. */
	for (i = 0; i < nworkers; i++)
		server_post_conf(&workers[i], n, ctx);
	server_tls_free(ctx, n->ntls);
	audit_set_conf(audit, n);
	conf_unref(conf);
	conf = n;
	audit_system(audit, "reload", "result", "ok", "config_digest",
	    n->digest, NULL);
	metrics_reload(1);
	log_info("reloaded %s", conf_file);
}

static void
on_usr1(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	audit_system(audit, "reopen", NULL);
	audit_reopen(audit);
}

/* Worker 0 has closed its handles: the main loop's own go too, and then
 * uv_run returns. */
static void
on_worker0_finished(struct server *s)
{
	(void)s;
	admin_stop();
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&sig_usr1, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
}

static void
on_term(uv_signal_t *h, int sig)
{
	int i;

	(void)h;
	if (draining)
		return;
	log_info("signal %d: draining", sig);
	draining = 1;
	admin_set_draining();
	for (i = 0; i < nworkers; i++)
		server_post_drain(&workers[i]);
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
	SSL_CTX **ctx;
	int check = 0, i, rc, failed;

	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen();
	if (argc >= 3 && strcmp(argv[1], "audit") == 0 &&
	    strcmp(argv[2], "verify") == 0)
		return cmd_verify(argc - 3, argv + 3);
	if (argc >= 2 && strcmp(argv[1], "policy") == 0)
		return policy_tool_main(argc - 2, argv + 2);
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
	/* Each call frees what it allocated; with glibc's default 128 KiB
	 * trim threshold that meant a brk() and fresh page faults every few
	 * calls. Keeping up to 4 MiB free at the top of the heap ends that
	 * (measured: 0.3 brk and 0.85 page faults per call before). */
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	/* Setting it fixes glibc's mmap threshold at 128 KiB, so a 128 KiB
	 * buffer (a gathered answer) would be an mmap and munmap per call;
	 * below 1 MiB the heap serves. */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if (getenv("WHMGATE_DEBUG"))
		log_min = LOG_DEBUG;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	buf_init(&errs);
	conf = conf_load(conf_file, &errs);
	if (conf == NULL) {
		fputs(errs.p ? errs.p : "invalid config\n", stderr);
		buf_fini(&errs);
		return 1;
	}
	/* -t does every start-up check but binding, TLS files included. */
	ctx = server_tls_load(conf, &errs, &failed);
	if (failed) {
		fprintf(stderr, "%s: $.listen_tls: %s\n", conf_file,
		    errs.p ? errs.p : "TLS set-up failed");
		buf_fini(&errs);
		conf_unref(conf);
		return 1;
	}
	if (check) {
		policy_tool_warnings(conf, stderr);
		printf("%s: ok\n", conf_file);
		server_tls_free(ctx, conf->ntls);
		conf_unref(conf);
		return 0;
	}
	if (conf->upstream.insecure_skip_verify)
		log_warn("upstream.insecure_skip_verify is true: WHM's "
		    "certificate is NOT verified; tokens can be stolen");
	if ((audit = audit_open(conf, &errs)) == NULL) {
		log_err("%s", errs.p ? errs.p : "audit: cannot open");
		buf_fini(&errs);
		server_tls_free(ctx, conf->ntls);
		conf_unref(conf);
		return 1;
	}
	metrics_init();
	/* Signals first: one sent as soon as the port answers is handled on
	 * the loop, not by its default action. */
	uv_signal_init(uv_default_loop(), &sig_hup);
	uv_signal_start(&sig_hup, on_hup, SIGHUP);
	uv_signal_init(uv_default_loop(), &sig_usr1);
	uv_signal_start(&sig_usr1, on_usr1, SIGUSR1);
	uv_signal_init(uv_default_loop(), &sig_term);
	uv_signal_start(&sig_term, on_term, SIGTERM);
	uv_signal_init(uv_default_loop(), &sig_int);
	uv_signal_start(&sig_int, on_term, SIGINT);
	nworkers = (int)conf->workers;
	workers = xcalloc((size_t)nworkers, sizeof(*workers));
	workers[0].on_finished = on_worker0_finished;
	for (i = 0; i < nworkers; i++)
		if (server_start(&workers[i], i, nworkers, conf, audit, ctx) == -1)
			break;
	server_tls_free(ctx, conf->ntls);
	if (i < nworkers || admin_listen(uv_default_loop(), conf->admin, audit) == -1 ||
	    (conf->user && drop_privileges(conf->user) == -1)) {
		/* Nothing was served; the started workers sit idle. */
		audit_close(audit, "start-up failed");
		exit(1);
	}
	log_info("whmgate %s started (config %s, upstream %s, %d worker%s)",
	    WHMGATE_VERSION, conf_file, conf->upstream.base, nworkers,
	    nworkers == 1 ? "" : "s");
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	for (i = 1; i < nworkers; i++)
		server_join(&workers[i]);
	/* Every loop has ended: the audit runs the last callbacks itself. */
	audit_close(audit, "");
	for (i = 0; i < nworkers; i++)
		server_free(&workers[i]);
	free(workers);
	conf_unref(conf);
	buf_fini(&errs);
	rc = uv_loop_close(uv_default_loop());
	if (rc != 0)
		log_warn("loop closed with handles open");
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}

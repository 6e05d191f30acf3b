/* main.c - arguments, -t, keygen, audit verify, reload, workers, signals.
 *
 * The main thread owns the current conf, the audit trail and the signals,
 * and runs worker 0 on its loop; workers 1..N-1 run on their own threads
 * (server.c). SIGHUP loads and checks a new conf and posts it to every
 * worker, SIGUSR1 reopens the audit file, SIGTERM and SIGINT post a drain;
 * when every loop has ended, the audit is closed with its stop record. The
 * service manager hears each step (notify.c): READY=1 once serving,
 * RELOADING=1 and READY=1 around a reload, STOPPING=1 at the drain.
 *
 * -t (check_config) does what start does but binding, and what a reload or
 * a reopen will need as "user" (check_access); `whmgate reload` is -t, then
 * SIGHUP, then the daemon's verdict read from its own trail. */
#define _GNU_SOURCE
#include "admin.h"
#include "audit.h"
#include "audit_verify.h"
#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "policy_tool.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <yajl/yajl_tree.h>
#include <yajl/yajl_version.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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
	    "       whmgate -t [-c FILE]        check the config and exit (0 valid, 1 not)\n"
	    "       whmgate keygen              print a new client key and its sha256: line\n"
	    "       whmgate audit verify FILE... [--key KEYFILE] [--anchor SEQ:HASH]\n"
	    "                                   verify audit files as one chain, in any\n"
	    "                                   order (- stdin, .gz read compressed)\n"
	    "       whmgate reload [-c FILE] --pid PID [--timeout SECONDS]\n"
	    "                                   check FILE, send SIGHUP to PID, wait for\n"
	    "                                   its verdict (0 reloaded, 1 refused)\n"
	    "       whmgate policy show|check|suggest|replay ...\n"
	    "                                   the policy tools (see whmgate(8))\n"
	    "       whmgate -V | --version      version, and the libraries it runs on\n"
	    "       whmgate -h | --help         this text\n"
	    "signals: HUP reload, USR1 reopen the audit file, TERM/INT drain and stop\n"
	    "see whmgate(8)\n");
}

/* The versions of the libraries this binary runs on: the loaded ones where
 * the library can say (libuv, OpenSSL, libcurl, yajl), else the one built in
 * (llhttp is compiled from Debian's sources). */
static void
version(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	int y = yajl_version();

	printf("whmgate %s\n", WHMGATE_VERSION);
	printf("libuv %s\n", uv_version_string());
	printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
	    LLHTTP_VERSION_PATCH);
	printf("OpenSSL %s (%s)\n", OpenSSL_version(OPENSSL_FULL_VERSION_STRING),
	    OpenSSL_version(OPENSSL_VERSION));
	printf("libcurl %s (%s)\n", cv->version, cv->ssl_version ? cv->ssl_version : "no TLS");
	printf("yajl %d.%d.%d\n", y / 10000, y / 100 % 100, y % 100);
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
	/* Already that user (systemd's User= with the same "user"): nothing
	 * to drop, and setgroups would fail without root. */
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
	    getgid() == pw->pw_gid && getegid() == pw->pw_gid) {
		log_info("running as %s", user);
		return 0;
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

/* Each line of problems (as conf_load lists them) as its own log line. */
static void
log_problems(const char *what, const char *problems)
{
	const char *p = problems, *nl;

	if (p == NULL || *p == '\0') {
		log_err("%s", what);
		return;
	}
	while (*p) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if (nl > p)
			log_err("%s: %.*s", what, (int)(nl - p), p);
		p = *nl ? nl + 1 : nl;
	}
}

static void
reload_refused(const char *why)
{
	audit_system(audit, "reload", "result", "refused", "reason", why, NULL);
	metrics_reload(0);
	/* The service manager hears the outcome too: still ready, on the old
	 * config, and why (one line: a notify message is KEY=value lines). */
	notify_send("READY=1\nSTATUS=reload refused: %.*s", (int)strcspn(why, "\n"),
	    why);
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
	notify_reloading();
	buf_init(&errs);
	n = conf_load(conf_file, &errs);
	if (n == NULL) {
		/* The first problem goes in the record; all go to stderr, one
		 * line each (a journal entry per problem, every one with its
		 * priority). */
		log_problems("reload refused", errs.p);
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
		log_problems("reload refused: TLS", errs.p);
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
	admin_set_conf(n);
	conf_unref(conf);
	conf = n;
	audit_system(audit, "reload", "result", "ok", "config_digest",
	    n->digest, NULL);
	metrics_reload(1);
	log_info("reloaded %s", conf_file);
	notify_send("READY=1\nSTATUS=serving (config %.12s)", n->digest);
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
	notify_send("STOPPING=1\nSTATUS=draining");
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
	return audit_verify_main(argc, argv);
}

/* One file the running whmgate needs, with the access it needs. */
static void
need(struct buf *out, const char *conffile, const char *who, const char *path,
    const char *file, int mode, const char *why)
{
	if (file == NULL || access(file, mode) == 0)
		return;
	buf_printf(out, "%s: %s: %s cannot %s %s (%s): %s\n", conffile, path, who,
	    mode & W_OK ? "write" : "read", file, why, strerror(errno));
}

/* What start, reload and SIGUSR1 need from the file system, checked with
 * access(2) as the process running them: the audit folder (and file) to
 * write, and every file a reload re-reads. */
static void
need_all(const struct conf *c, const char *who, struct buf *out)
{
	const char *f = c->file;
	char *dir = xstrdup(c->audit.file), *slash, path[160];
	struct stat st;
	size_t i;

	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		buf_printf(out, "%s: $.audit.file: the folder %s does not exist\n",
		    f, dir);
	else {
		need(out, f, who, "$.audit.file", dir, W_OK | X_OK,
		    "the audit file is created and reopened in this folder");
		if (stat(c->audit.file, &st) == 0)
			need(out, f, who, "$.audit.file", c->audit.file, W_OK,
			    "the audit file");
	}
	free(dir);
	need(out, f, who, "$", f, R_OK, "a reload re-reads the config");
	need(out, f, who, "$.upstream.ca_file", c->upstream.ca_file, R_OK,
	    "a reload re-reads it");
	need(out, f, who, "$.audit.hmac_key_file", c->audit.hmac_key_file, R_OK,
	    "a reload re-reads it");
	for (i = 0; i < c->ntls; i++) {
		snprintf(path, sizeof(path), "$.listen_tls[%zu].cert", i);
		need(out, f, who, path, c->tls[i].cert, R_OK, "a reload re-reads it");
		snprintf(path, sizeof(path), "$.listen_tls[%zu].key", i);
		need(out, f, who, path, c->tls[i].key, R_OK, "a reload re-reads it");
		snprintf(path, sizeof(path), "$.listen_tls[%zu].client_ca", i);
		need(out, f, who, path, c->tls[i].client_ca, R_OK,
		    "a reload re-reads it");
	}
	for (i = 0; i < c->nclients; i++) {
		if (c->clients[i].whm_token_file == NULL)
			continue;
		/* Client ids are [A-Za-z0-9_.-]: bracket those with . or -. */
		if (strpbrk(c->clients[i].id, ".-") || isdigit((unsigned char)
		    c->clients[i].id[0]))
			snprintf(path, sizeof(path), "$.clients[\"%s\"].whm_token",
			    c->clients[i].id);
		else
			snprintf(path, sizeof(path), "$.clients.%s.whm_token",
			    c->clients[i].id);
		need(out, f, who, path, c->clients[i].whm_token_file, R_OK,
		    "a reload re-reads it");
	}
}

/* need_all as the user whmgate will run as: "user" after the drop (checked
 * in a child that drops to it exactly as drop_privileges does), else this
 * process. Appends "FILE: <path>: <problem>" lines; returns how many. */
static int
check_access(const struct conf *c, struct buf *out)
{
	struct passwd *pw;
	struct buf mine;
	char chunk[4096], who[96];
	int fds[2], st, n0 = 0;
	ssize_t n;
	size_t i;
	pid_t pid;

	buf_init(&mine);
	if (c->user == NULL) {
		need_all(c, "whmgate", &mine);
		goto count;
	}
	if ((pw = getpwnam(c->user)) == NULL) {
		buf_printf(&mine, "%s: $.user: no such user: %s\n", c->file, c->user);
		goto count;
	}
	snprintf(who, sizeof(who), "user %s", c->user);
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			buf_printf(&mine, "%s: $.user: switching to %s needs root "
			    "(this is uid %ld)\n", c->file, c->user, (long)geteuid());
		else
			need_all(c, who, &mine);
		goto count;
	}
	if (pipe(fds) == -1 || (pid = fork()) == -1) {
		buf_printf(&mine, "%s: $.user: cannot check as %s: %s\n", c->file,
		    c->user, strerror(errno));
		goto count;
	}
	if (pid == 0) {
		close(fds[0]);
		if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1)
			buf_printf(&mine, "%s: $.user: cannot switch to %s: %s\n",
			    c->file, c->user, strerror(errno));
		else
			need_all(c, who, &mine);
		if (mine.len && write(fds[1], mine.p, mine.len) == -1)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		buf_add(&mine, chunk, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
count:
	for (i = 0; i < mine.len; i++)
		n0 += mine.p[i] == '\n';
	if (mine.len)
		buf_add(out, mine.p, mine.len);
	buf_fini(&mine);
	return n0;
}

/* The config as start and -t see it: loaded, checked, TLS files loaded.
 * Returns it (one reference) with *ctx, or NULL after printing every
 * problem on stderr. strict (-t, reload): what start, reload or a reopen
 * would need from the file system (as "user") must be there too, and the
 * warnings are printed; else (start) those problems are logged as
 * warnings: the audit file's own open decides. */
static struct conf *
check_config(const char *file, SSL_CTX ***ctx, int strict)
{
	struct buf errs;
	struct conf *c;
	char *p, *nl;
	int failed;

	buf_init(&errs);
	c = conf_load(file, &errs);
	if (c == NULL) {
		fputs(errs.p ? errs.p : "invalid config\n", stderr);
		buf_fini(&errs);
		return NULL;
	}
	*ctx = server_tls_load(c, &errs, &failed);
	if (failed) {
		fprintf(stderr, "%s: $.listen_tls: %s\n", file,
		    errs.p ? errs.p : "TLS set-up failed");
		buf_fini(&errs);
		conf_unref(c);
		return NULL;
	}
	errs.len = 0;
	if (check_access(c, &errs) > 0 && strict) {
		fputs(errs.p, stderr);
		buf_fini(&errs);
		server_tls_free(*ctx, c->ntls);
		conf_unref(c);
		return NULL;
	}
	conf_warnings(c, (int64_t)time(NULL), &errs);
	if (strict && errs.len)
		fputs(errs.p, stderr);
	else if (errs.len) {
		buf_addc(&errs, '\0');
		for (p = errs.p; *p; p = nl + 1) {
			nl = strchr(p, '\n');
			*nl = '\0';
			log_warn("%s", strncmp(p, "warning: ", 9) == 0 ? p + 9 : p);
		}
	}
	buf_fini(&errs);
	return c;
}

/* One audit line: if it is a reload record, its result ("ok" or
 * "refused") and reason, else NULL. Frees nothing the caller holds. */
static yajl_val
reload_record(const char *line, const char **result, const char **reason)
{
	static const char *type_p[] = { "type", NULL }, *event_p[] = { "event", NULL },
	    *result_p[] = { "result", NULL }, *reason_p[] = { "reason", NULL };
	yajl_val v, t, e, r;

	if (strstr(line, "\"reload\"") == NULL ||
	    (v = yajl_tree_parse(line, NULL, 0)) == NULL)
		return NULL;
	t = yajl_tree_get(v, type_p, yajl_t_string);
	e = yajl_tree_get(v, event_p, yajl_t_string);
	r = yajl_tree_get(v, result_p, yajl_t_string);
	if (t == NULL || e == NULL || r == NULL ||
	    strcmp(t->u.string, "system") != 0 || strcmp(e->u.string, "reload") != 0) {
		yajl_tree_free(v);
		return NULL;
	}
	*result = r->u.string;
	r = yajl_tree_get(v, reason_p, yajl_t_string);
	*reason = r ? r->u.string : NULL;
	return v;
}

/* whmgate reload -c FILE --pid PID [--timeout SECONDS]: what systemctl
 * reload runs. Checks FILE as -t does (a refused config is never sent),
 * sends SIGHUP, and waits for the reload record the daemon appends to its
 * audit trail: exit 0 when it says ok, 1 when refused or when none comes,
 * so the service manager reports what really happened. */
static int
cmd_reload(int argc, char **argv)
{
	struct conf *c;
	SSL_CTX **ctx;
	struct buf pending;
	yajl_val rec;
	const char *result, *reason;
	char chunk[65536], *nl, *end;
	double deadline;
	long pid = 0, timeout = 60;
	ssize_t n;
	off_t off;
	int i, fd, rc = 1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_file = argv[++i];
		else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
			pid = strtol(argv[++i], &end, 10);
			if (*end || pid <= 1)
				pid = 0;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			timeout = strtol(argv[++i], &end, 10);
			if (*end || timeout <= 0)
				timeout = 0;
		} else
			pid = -1;
	}
	if (pid <= 0 || timeout <= 0) {
		usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((c = check_config(conf_file, &ctx, 1)) == NULL) {
		fprintf(stderr, "reload refused: %s is not valid; whmgate keeps "
		    "its config\n", conf_file);
		curl_global_cleanup();
		return 1;
	}
	server_tls_free(ctx, c->ntls);
	/* audit.file cannot change on reload: the running daemon writes the
	 * record to the file this config names (if it names another, that
	 * reload is refused, and no record here says ok). */
	if ((fd = open(c->audit.file, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (off = lseek(fd, 0, SEEK_END)) == -1) {
		fprintf(stderr, "reload: %s: %s\n", c->audit.file, strerror(errno));
		goto out;
	}
	if (kill((pid_t)pid, SIGHUP) == -1) {
		fprintf(stderr, "reload: pid %ld: %s\n", pid, strerror(errno));
		goto out;
	}
	buf_init(&pending);
	deadline = time_ms() + (double)timeout * 1000;
	for (;;) {
		while ((n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
			off += n;
			buf_add(&pending, chunk, (size_t)n);
		}
		while (pending.len && (nl = memchr(pending.p, '\n', pending.len))) {
			*nl = '\0';
			rec = reload_record(pending.p, &result, &reason);
			if (rec) {
				rc = strcmp(result, "ok") == 0 ? 0 : 1;
				if (rc == 0)
					printf("reloaded %s\n", conf_file);
				else
					fprintf(stderr, "reload refused: %s\n",
					    reason ? reason : result);
				yajl_tree_free(rec);
				buf_fini(&pending);
				goto out;
			}
			pending.len -= (size_t)(nl + 1 - pending.p);
			memmove(pending.p, nl + 1, pending.len);
		}
		if (time_ms() > deadline)
			break;
		usleep(20000);
	}
	fprintf(stderr, "reload: no reload record in %s within %ld s\n",
	    c->audit.file, timeout);
	buf_fini(&pending);
out:
	if (fd != -1)
		close(fd);
	conf_unref(c);
	curl_global_cleanup();
	return rc;
}

int
main(int argc, char **argv)
{
	struct buf errs;
	struct rlimit rl = { 0, 0 };
	SSL_CTX **ctx;
	int check = 0, i, rc;

	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen();
	if (argc >= 3 && strcmp(argv[1], "audit") == 0 &&
	    strcmp(argv[2], "verify") == 0)
		return cmd_verify(argc - 3, argv + 3);
	if (argc >= 2 && strcmp(argv[1], "reload") == 0)
		return cmd_reload(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "policy") == 0)
		return policy_tool_main(argc - 2, argv + 2);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0)
			check = 1;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_file = argv[++i];
		else if (strcmp(argv[i], "-V") == 0 ||
		    strcmp(argv[i], "--version") == 0) {
			version();
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
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
	log_init();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* -t does every start-up check but binding, TLS files included. */
	if ((conf = check_config(conf_file, &ctx, check)) == NULL)
		return 1;
	buf_init(&errs);
	if (check) {
		policy_tool_warnings(conf, stderr);
		printf("%s: ok\n", conf_file);
		server_tls_free(ctx, conf->ntls);
		conf_unref(conf);
		return 0;
	}
	/* Before the privilege drop: the socket's path may be root's. */
	notify_init();
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
	admin_set_conf(conf);
	log_info("whmgate %s started (config %s, upstream %s, %d worker%s)",
	    WHMGATE_VERSION, conf_file, conf->upstream.base, nworkers,
	    nworkers == 1 ? "" : "s");
	/* Bound, privileges dropped, the trail open: connections queue on the
	 * listeners until the loop runs, a moment from now. */
	notify_send("READY=1\nSTATUS=serving (config %.12s)", conf->digest);
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
	notify_fini();
	log_info("stopped");
	return 0;
}

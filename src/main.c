/*
 * main.c - command line, configuration, signals, start and stop.
 *
 * The main thread owns the configuration and the broker object. It opens
 * the store and loads retained messages, starts the shards (each restores
 * its sessions), opens the listeners once they all have, and then only
 * waits for signals with sigtimedwait(): SIGINT/SIGTERM stop the broker
 * cleanly, SIGUSR1 starts draining (clients are sent to another server),
 * SIGUSR2 toggles debug logging, SIGHUP reloads the password and ACL files
 * and the TLS certificates. Every TLS_FILE_CHECK_MS without a signal it
 * checks whether TLS certificate files changed. Every thread inherits the
 * blocked signal mask, so no shard is ever interrupted by a signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <urcu-qsbr.h>

#include "ringmq/acl.h"
#include "ringmq/auth.h"
#include "ringmq/config.h"
#include "ringmq/conn.h"
#include "ringmq/http.h"
#include "ringmq/limits.h"
#include "ringmq/log.h"
#include "ringmq/persist.h"
#include "ringmq/shard.h"
#include "ringmq/store.h"
#include "ringmq/tls.h"

extern char **environ;

static void usage(FILE *f)
{
	fprintf(f, "Usage: ringmq [options]\n"
		   "\n"
		   "With no options ringmq listens on 127.0.0.1:1883, allows anonymous clients there\n"
		   "and keeps its data under ./data.\n"
		   "\n"
		   "  -c, --config FILE   read the configuration file FILE\n"
		   "      --shards N      shard threads (default: one per online CPU)\n"
		   "  -p, --port PORT     port of the first listener (0 = any free port)\n"
		   "      --bind ADDR     address of the first listener\n"
		   "  -v, --verbose       log at debug level\n"
		   "  -h, --help          show this help\n"
		   "  -V, --version       show the version\n"
		   "\n"
		   "       ringmq passwd [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n"
		   "  add or update USER in a password file ($7$ PBKDF2-SHA512, mosquitto format);\n"
		   "  the password is read from standard input unless -b gives it\n"
		   "\n"
		   "       ringmq store stats|dump|check [-c FILE | DIR]\n"
		   "  inspect the store in DIR (default: persistence_location of FILE or the\n"
		   "  embedded default); read-only, safe while the broker runs\n"
		   "\n"
		   "Environment: RINGMQ_<DIRECTIVE>=value overrides any directive of the file,\n"
		   "e.g. RINGMQ_SHARDS=4.  Command-line options override both.\n"
		   "See docs/configuration.md for every directive.\n");
}

struct cli {
	const char *config_file;
	const char *shards;
	const char *port;
	const char *bind;
	bool verbose;
};

/* Returns 0 to run, 1 to exit successfully (help, version), -1 on error. */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"shards", required_argument, NULL, 's'},
		{"port", required_argument, NULL, 'p'},	  {"bind", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	  {NULL, 0, NULL, 0},
	};
	int o;

	while ((o = getopt_long(argc, argv, "c:p:vhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': cli->config_file = optarg; break;
		case 's': cli->shards = optarg; break;
		case 'p': cli->port = optarg; break;
		case 'b': cli->bind = optarg; break;
		case 'v': cli->verbose = true; break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("ringmq %s\n", RINGMQ_VERSION); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ringmq: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* Command-line options are applied as directives, so they get the same checks. */
static int apply_cli(struct config *cfg, const struct cli *cli, char *err)
{
	int r = 0;

	if (cli->shards)
		r = config_apply_option(cfg, "shards", cli->shards, "--shards", err);
	if (r == 0 && cli->verbose)
		r = config_apply_option(cfg, "log_level", "debug", "-v", err);
	if (r == 0 && (cli->port || cli->bind))
		r = config_override_listener(cfg, cli->port, cli->bind, err);
	return r;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl); /* best effort; max_connections still bounds */
	}
}

/* The HTTP listener, once the MQTT listeners are up (so the harness and
 * operators see them first).  On failure the broker is stopped again. */
static int start_http(struct broker *b, const struct config *cfg, struct http **ret)
{
	int r = http_start(b, cfg->http_bind_address, (uint16_t)cfg->http_port, ret);

	if (r < 0)
		broker_stop(b);
	return r;
}

/* SIGHUP: re-read the password and ACL files.  A file that fails to load
 * leaves the current one in place, and the log says why: never fail open. */
/* TLS listeners' certificate, key, CA and CRL files: every listener on
 * SIGHUP (@force), else those whose files changed (checked every
 * TLS_FILE_CHECK_MS).  Connected clients keep their sessions; a failure
 * keeps the listener's current files (tls.h). */
static void reload_tls(struct broker *b, bool force)
{
	char err[512];
	int r;

	for (unsigned l = 0; l < b->cfg->listener_count; l++) {
		const struct config_listener *cl = &b->cfg->listeners[l];
		if (!b->tls[l])
			continue;
		r = tls_ctx_reload(b->tls[l], force, err);
		if (r > 0)
			log_info(NULL, "listener %u: TLS certificate reloaded from %s%s", b->ports[l], cl->certfile,
				 force ? " (SIGHUP)" : " (files changed)");
		else if (r < 0)
			log_error(NULL,
				  "%s:%d: listener %u: TLS files not reloaded, keeping the previous certificate: %s",
				  cl->file, cl->line, b->ports[l], err);
	}
}

static void reload(struct broker *b)
{
	struct auth_db *db = NULL, *old_db = NULL;
	struct acl *acl = NULL, *old_acl = NULL;
	char err[512];

	reload_tls(b, true);
	if (!b->cfg->password_file[0] && !b->cfg->acl_file[0]) {
		log_info(NULL, "SIGHUP: no password_file or acl_file to reload");
		return;
	}
	if (b->cfg->password_file[0] && auth_db_load(b->cfg->password_file, &db, err) < 0)
		log_error(NULL, "SIGHUP: password_file not reloaded, keeping the previous one: %s", err);
	else if (db)
		old_db = rcu_xchg_pointer(&b->auth, db);
	if (b->cfg->acl_file[0] && acl_load(b->cfg->acl_file, &acl, err) < 0)
		log_error(NULL, "SIGHUP: acl_file not reloaded, keeping the previous one: %s", err);
	else if (acl)
		old_acl = rcu_xchg_pointer(&b->acl, acl);
	synchronize_rcu(); /* every shard has passed a quiescent state: nobody holds the old ones */
	auth_db_free(old_db);
	acl_free(old_acl);
	if (db)
		log_info(NULL, "SIGHUP: password_file %s reloaded: %zu users", b->cfg->password_file,
			 auth_db_count(db));
	if (acl)
		log_info(NULL, "SIGHUP: acl_file %s reloaded: %zu rules", b->cfg->acl_file, acl_rules(acl));
}

/* Password and ACL files and TLS contexts, before any shard runs.
 * Returns 0 or -EINVAL (logged). */
static int load_access(struct broker *b, const struct config *cfg)
{
	char err[512];

	for (unsigned l = 0; l < cfg->listener_count; l++) {
		const struct config_listener *cl = &cfg->listeners[l];
		if (!cl->certfile[0])
			continue;
		if (tls_global_init() < 0 || tls_ctx_new(cl, &b->tls[l], err) < 0) {
			log_error(NULL, "%s:%d: listener: %s", cl->file, cl->line, err);
			return -EINVAL;
		}
		log_info(NULL, "listener %u: TLS with %s%s", cl->port, cl->certfile,
			 cl->require_certificate ? ", client certificates required" : "");
	}
	if (cfg->password_file[0]) {
		if (auth_db_load(cfg->password_file, &b->auth, err) < 0) {
			log_error(NULL, "password_file: %s", err);
			return -EINVAL;
		}
		log_info(NULL, "password_file %s: %zu users", cfg->password_file, auth_db_count(b->auth));
	}
	if (cfg->acl_file[0]) {
		if (acl_load(cfg->acl_file, &b->acl, err) < 0) {
			log_error(NULL, "acl_file: %s", err);
			return -EINVAL;
		}
		log_info(NULL, "acl_file %s: %zu rules", cfg->acl_file, acl_rules(b->acl));
	}
	return 0;
}

/* The main thread's life after start-up: wait for signals.  Returns the
 * stopping signal. */
static int signal_loop(struct broker *b, const struct config *cfg, const sigset_t *set)
{
	const struct timespec tick = {.tv_sec = TLS_FILE_CHECK_MS / 1000,
				      .tv_nsec = TLS_FILE_CHECK_MS % 1000 * 1000000L};
	int sig;

	for (;;) {
		sig = sigtimedwait(set, NULL, &tick);
		if (sig < 0) {
			if (errno == EAGAIN)
				reload_tls(b, false); /* certificate files replaced (a Kubernetes Secret)? */
			continue;
		}
		if (sig == SIGINT || sig == SIGTERM)
			return sig;
		if (sig == SIGUSR2) {
			log_set_level(log_get_level() == LOG_DEBUG ? (enum log_level)cfg->log_level : LOG_DEBUG);
			log_info(NULL, "log level now %s", log_get_level() == LOG_DEBUG ? "debug" : "configured");
		} else if (sig == SIGUSR1) {
			atomic_store(&b->draining, true);
			log_info(NULL, "SIGUSR1: draining - clients are sent to %s",
				 cfg->server_reference[0] ? cfg->server_reference : "another server");
		} else if (sig == SIGHUP) {
			reload(b);
		}
	}
}

static struct broker *broker_release(struct broker *b)
{
	store_stop(b->store); /* after the shards: it commits their last changes */
	b->store = store_close(b->store);
	free(b->ring_fds);
	b->ring_fds = NULL;
	auth_db_free(b->auth);
	acl_free(b->acl);
	for (unsigned l = 0; l < CONFIG_LISTENERS_MAX; l++)
		b->tls[l] = tls_ctx_free(b->tls[l]);
	tls_thread_done();
	return broker_free(b);
}

/* Open the store and load retained messages (before any shard runs: the
 * shards restore their sessions from it during their start-up). */
static int open_store(struct broker *b, const struct config *cfg)
{
	struct store_opts o = {
		.dir = cfg->persistence_location,
		.map_size = cfg->persistence_map_size,
		.map_max = cfg->persistence_max_size,
		.durability = cfg->durability,
		.commit_interval_ms = cfg->commit_interval_ms,
		.nshards = b->nshards,
	};
	static const char *const words[] = {"sync", "batch", "none"};
	char err[1024];
	int r;

	if (!cfg->persistence) {
		log_info(NULL, "persistence off: sessions and retained messages live in memory only");
		return 0;
	}
	if (o.map_max < o.map_size)
		o.map_max = o.map_size;
	b->store = store_open(&o, err, sizeof(err));
	if (!b->store) {
		log_error(NULL, "persistence: %s", err);
		return -EIO;
	}
	log_info(NULL, "store: %s (durability %s, map %llu bytes, up to %llu)", cfg->persistence_location,
		 words[cfg->durability], (unsigned long long)o.map_size, (unsigned long long)o.map_max);
	rcu_register_thread(); /* the retained store's hash table wants a registered thread */
	r = persist_restore_retained(b);
	rcu_unregister_thread();
	return r;
}

static int start_store(struct broker *b)
{
	if (!b->store)
		return 0;
	b->ring_fds = calloc(b->nshards, sizeof(int));
	if (!b->ring_fds)
		return -ENOMEM;
	for (unsigned i = 0; i < b->nshards; i++)
		b->ring_fds[i] = b->shards[i].ring_fd;
	return store_start(b->store, b->ring_fds, UD_PACK(OP_WAKE, 0, 0));
}

static int run(struct config *cfg)
{
	struct http *http = NULL;
	struct broker *b;
	bool running = false;
	sigset_t set;
	int sig, r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	b = broker_new(cfg);
	if (!b) {
		log_error(NULL, "out of memory creating the broker");
		return 1;
	}
	r = load_access(b, cfg);
	if (r == 0)
		r = open_store(b, cfg);
	if (r == 0) {
		r = broker_start(b);
		running = r == 0;
	}
	if (r == 0)
		r = start_store(b);
	if (r == 0 && cfg->http_port >= 0)
		r = start_http(b, cfg, &http);
	if (r < 0) {
		log_error(NULL, "start-up failed: %s", strerror(-r));
		if (running)
			broker_stop(b);
		broker_release(b);
		return 1;
	}
	log_info(NULL, "ringmq %s running", RINGMQ_VERSION);
	sig = signal_loop(b, cfg, &set);
	log_info(NULL, "shutting down (signal %d)", sig);
	broker_stop(b);
	http = http_stop(http); /* after the shards (readyz says "stopping"), before the broker goes */
	broker_release(b);
	log_info(NULL, "stopped");
	return 0;
}

/*
 * ringmq passwd [-b] [-I ITERATIONS] FILE USER [PASSWORD]: add or update
 * USER in a mosquitto-format password file with a $7$ (PBKDF2-SHA512)
 * entry.  Without -b the password is read from standard input (one line).
 * The file is rewritten through a temporary file and rename(2), mode 0600.
 */
static int passwd_main(int argc, char **argv)
{
	unsigned long iter = AUTH_PBKDF2_ITERATIONS_DEFAULT;
	char entry[512], pw[AUTH_PASSWORD_BYTES_MAX + 2], line[2048], tmp[4200];
	const char *file, *user;
	bool batch = false, found = false;
	FILE *in, *out;
	int o, fd;

	optind = 1;
	while ((o = getopt(argc, argv, "bI:")) != -1) {
		if (o == 'b') {
			batch = true;
		} else if (o == 'I') {
			char *end;
			iter = strtoul(optarg, &end, 10);
			if (*end || iter == 0 || iter > AUTH_PBKDF2_ITERATIONS_MAX) {
				fprintf(stderr, "ringmq passwd: -I: expected 1..%u iterations\n",
					AUTH_PBKDF2_ITERATIONS_MAX);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: ringmq passwd [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n");
			return 2;
		}
	}
	if (argc - optind != (batch ? 3 : 2)) {
		fprintf(stderr, "usage: ringmq passwd [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n");
		return 2;
	}
	file = argv[optind];
	user = argv[optind + 1];
	if (!user[0] || strchr(user, ':') || strlen(user) > AUTH_USERNAME_BYTES_MAX) {
		fprintf(stderr, "ringmq passwd: user names are 1..%u bytes without ':'\n", AUTH_USERNAME_BYTES_MAX);
		return 2;
	}
	if (batch) {
		snprintf(pw, sizeof(pw), "%s", argv[optind + 2]);
	} else if (!fgets(pw, sizeof(pw), stdin)) {
		fprintf(stderr, "ringmq passwd: no password on standard input\n");
		return 2;
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	if (strlen(pw) > AUTH_PASSWORD_BYTES_MAX || auth_hash_new(pw, (unsigned)iter, entry, sizeof(entry)) < 0) {
		fprintf(stderr, "ringmq passwd: cannot hash the password\n");
		return 1;
	}
	explicit_bzero(pw, sizeof(pw));
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(out = fdopen(fd, "w"))) {
		fprintf(stderr, "ringmq passwd: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	in = fopen(file, "re");
	while (in && fgets(line, sizeof(line), in)) {
		size_t ul = strlen(user);
		if (strncmp(line, user, ul) == 0 && line[ul] == ':') {
			fprintf(out, "%s:%s\n", user, entry);
			found = true;
		} else {
			fputs(line, out);
		}
	}
	if (in)
		fclose(in);
	if (!found)
		fprintf(out, "%s:%s\n", user, entry);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0 || rename(tmp, file) != 0) {
		fprintf(stderr, "ringmq passwd: writing %s: %s\n", file, strerror(errno));
		return 1;
	}
	return 0;
}

/* ringmq store stats|dump|check [-c FILE | DIR] */
static int store_main(int argc, char **argv)
{
	struct config cfg;
	char err[CONFIG_ERROR_BYTES] = "";
	const char *dir;
	int r = 0;

	if (argc < 2 || argc > 4 || (argc == 4 && strcmp(argv[2], "-c") != 0) ||
	    (argc == 3 && strcmp(argv[2], "-c") == 0)) {
		fprintf(stderr, "usage: ringmq store stats|dump|check [-c FILE | DIR]\n");
		return 2;
	}
	config_init(&cfg);
	if (argc == 4)
		r = config_parse_file(&cfg, argv[3], err);
	if (r == 0)
		r = config_apply_env(&cfg, environ, err);
	if (r < 0) {
		fprintf(stderr, "ringmq: %s\n", err);
		config_done(&cfg);
		return 1;
	}
	dir = argc == 3 ? argv[2] : cfg.persistence_location;
	r = store_inspect(dir, argv[1]);
	config_done(&cfg);
	return r;
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	struct config cfg;
	char err[CONFIG_ERROR_BYTES] = "";
	int r;

	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "store") == 0)
		return store_main(argc - 1, argv + 1);
	r = parse_cli(argc, argv, &cli);
	if (r != 0)
		return r > 0 ? 0 : 2;
	config_init(&cfg);
	r = 0;
	if (cli.config_file)
		r = config_parse_file(&cfg, cli.config_file, err);
	if (r == 0)
		r = config_apply_env(&cfg, environ, err);
	if (r == 0)
		r = apply_cli(&cfg, &cli, err);
	if (r == 0)
		r = config_finish(&cfg, err);
	if (r < 0) {
		fprintf(stderr, "ringmq: %s\n", err);
		config_done(&cfg);
		return 1;
	}
	log_set_level((enum log_level)cfg.log_level);
	log_set_format((enum log_format)cfg.log_format);
	r = run(&cfg);
	config_done(&cfg);
	return r;
}

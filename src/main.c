/* main: command line, configuration check, signals, start and stop.
 * Owns the process: loads the configuration, starts the worker threads,
 * turns signals into worker stops, reloads (SIGHUP, --watch) and binary
 * upgrades (SIGUSR2: which sockets to hand over, what to do with the
 * outcome; the mechanics are src/upgrade.c), writes the pid file, and maps
 * failures to exit codes (0 clean, 1 bad configuration or usage, 2 could
 * not start). */
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/accesslog.h"
#include "ferry/admin.h"
#include "ferry/inspect_cli.h"
#include "ferry/inspector.h"
#include "ferry/config.h"
#include "ferry/explain.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/pidfile.h"
#include "ferry/router.h"
#include "ferry/routetest.h"
#include "ferry/snapshot.h"
#include "ferry/upgrade.h"
#include "ferry/upstream.h"
#include "ferry/watch.h"
#include "ferry/worker.h"

#define EXIT_USAGE 1
#define EXIT_START 2

static void usage(FILE *f) {
  fprintf(f, "usage: ferry [-c FILE] [-w N] [-l ADDR]...   run (FILE defaults to ./proxy.yaml)\n"
             "       ferry -t [-c FILE]                    check the configuration and exit\n"
             "       ferry --watch [-c FILE] [-w N] [-l ADDR]...\n"
             "                    run, and reload (as on SIGHUP) whenever FILE's content changes\n"
             "       ferry inspect [-c FILE] [--admin ADDR] [--route R] [--filter E] [--har F]\n"
             "       ferry explain [-c FILE] [--json] METHOD URL [-H 'N: v']... [--from IP]\n"
             "       ferry test-routes [-c FILE] TESTS.yaml\n"
             "       ferry --version | -h | --help\n"
             "\n"
             "  -c FILE   configuration file (proxy.yaml)\n"
             "  -t        check FILE: print \"FILE: ok\" or every error, exit 0 or 1\n"
             "  -w N      worker threads (overrides `workers:`; 0 = one per core)\n"
             "  -l ADDR   add a listener, e.g. 127.0.0.1:8080 or [::1]:8080\n"
             "  -v        debug logging on stderr\n"
             "\n"
             "  inspect      follow a running ferry's inspector, or save it as HAR\n"
             "  explain      which route a request takes, why, and what goes upstream\n"
             "  test-routes  run route test cases (CI for configuration files)\n"
             "  (each takes -h)\n"
             "\n"
             "signals: SIGTERM/SIGINT drain and exit (a second one exits at once),\n"
             "         SIGQUIT exits at once, SIGHUP reloads FILE, SIGUSR1 reopens the\n"
             "         access log, SIGUSR2 upgrades the binary (starts the installed one,\n"
             "         hands it the listening sockets, then drains)\n");
}

struct app {
  uv_loop_t loop;
  uv_async_t done_async; /* a worker thread finished */
  _Atomic unsigned finished;
  uv_signal_t sig_int, sig_term, sig_quit, sig_hup, sig_usr1, sig_usr2;
  struct upgrade upg; /* SIGUSR2 */
  struct watch watch; /* --watch */
  bool watching;
  struct worker *workers;
  unsigned nworkers;
  int stops;
  struct admin *admin;    /* NULL when admin is off */
  struct inspector *insp; /* /inspect on the admin listener; NULL when admin is off */
  struct metrics_process proc;
  struct metrics_source msrc;

  /* reload (SIGHUP) */
  const char *file;
  long workers_override;
  const char *const *extra_listeners;
  unsigned nextra;
  struct snapshot *cur;    /* published configuration (main's reference) */
  struct config *boot_cfg; /* ferry's start-up configuration: admin and inspector use it */
  uint64_t gen;
  _Atomic uint64_t conns; /* open client connections, all workers */
  bool pid_written;       /* boot_cfg->pid_file holds this process's pid */
  struct snapshot_reaper reaper;
  uv_async_t reap_async;
};

static int add_listener(struct config *cfg, const char *addr);
static void reload(struct app *a, const char *why);

static void close_signals(struct app *a) {
  uv_close((uv_handle_t *)&a->done_async, NULL);
  uv_close((uv_handle_t *)&a->sig_int, NULL);
  uv_close((uv_handle_t *)&a->sig_term, NULL);
  uv_close((uv_handle_t *)&a->sig_quit, NULL);
  uv_close((uv_handle_t *)&a->sig_hup, NULL);
  uv_close((uv_handle_t *)&a->sig_usr1, NULL);
  uv_close((uv_handle_t *)&a->sig_usr2, NULL);
  uv_close((uv_handle_t *)&a->reap_async, NULL);
  upgrade_close(&a->upg);
  if (a->watching)
    watch_close(&a->watch);
}

static void on_reap(uv_async_t *h) {
  struct app *a = h->data;
  snapshot_reap(&a->reaper);
}

/* SIGUSR2: hand every listening socket (each worker's, and the admin's)
 * to a new process started from the same executable. The workers' lists
 * of listeners change only when they apply a reload or stop, both started
 * from this thread: once every worker reports the current generation and
 * none is stopping, reading them here is safe. */
static void upgrade(struct app *a) {
  if (a->stops > 0) {
    log_warn("SIGUSR2 ignored: this process is draining");
    return;
  }
  for (unsigned i = 0; i < a->nworkers; i++)
    if (mc_get(&a->workers[i].metrics.config_gen) != a->cur->gen) {
      log_warn("SIGUSR2 ignored: the workers are still applying a reload; send it again");
      return;
    }
  int fds[UPGRADE_MAX_FDS];
  size_t n = 0;
  for (unsigned i = 0; i < a->nworkers; i++)
    n += worker_listen_fds(&a->workers[i], fds + n, UPGRADE_MAX_FDS - 1 - n);
  int afd = admin_listen_fd(a->admin);
  if (afd >= 0)
    fds[n++] = afd;
  char err[600];
  if (upgrade_start(&a->upg, fds, n, err, sizeof(err)) != 0) {
    mc_add(&a->proc.upgrades_failed, 1);
    log_error("upgrade failed: %s; still serving with this process (pid %d)", err, (int)getpid());
    return;
  }
  log_info("SIGUSR2: started %s (pid %d) with %zu listening sockets; this process serves until "
           "it is ready",
           a->upg.exe, a->upg.pid, n);
}

static void on_upgrade_done(struct upgrade *u, bool ok, int pid, const char *why) {
  struct app *a = u->data;
  mc_add(ok ? &a->proc.upgrades_ok : &a->proc.upgrades_failed, 1);
  if (!ok) {
    log_error("upgrade failed: the new process (pid %d) did not take over: %s; still serving "
              "with this process (pid %d)",
              pid, why, (int)getpid());
    return;
  }
  if (a->stops > 0) {
    log_info("upgrade: the new process (pid %d) serves; this one was already draining", pid);
    return;
  }
  a->stops++;
  mc_set(&a->proc.draining, 1);
  /* /readyz stays 200: the port is served, by the new process from now on
   * (it answers on the same admin socket). */
  log_info("upgrade: the new process (pid %d) serves; this one (pid %d) stops accepting, lets "
           "requests in flight finish and exits",
           pid, (int)getpid());
  for (unsigned i = 0; i < a->nworkers; i++)
    worker_handover(&a->workers[i]);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct app *a = h->data;
  if (signum == SIGUSR2) {
    upgrade(a);
    return;
  }
  if (signum == SIGHUP) {
    if (a->stops == 0)
      reload(a, "SIGHUP");
    return;
  }
  if (signum == SIGUSR1) {
    log_info("SIGUSR1: reopening the access log");
    accesslog_reopen(a->msrc.log);
    return;
  }
  if (signum == SIGQUIT || a->stops > 0) {
    log_info("%s: exiting at once", signum == SIGQUIT ? "SIGQUIT" : "second stop signal");
    fflush(stdout);
    _exit(0);
  }
  a->stops++;
  /* /readyz turns 503 before the line that says so: whoever reads the
   * log and then asks sees the new state. */
  admin_set_ready(a->admin, false);
  mc_set(&a->proc.draining, 1);
  log_info("%s: draining (send it again to exit at once)", signum == SIGINT ? "SIGINT" : "SIGTERM");
  for (unsigned i = 0; i < a->nworkers; i++)
    worker_stop(&a->workers[i], false);
}

/* --watch: the file's content changed (a touch does not get here). */
static void on_file_changed(struct watch *w) {
  struct app *a = w->data;
  if (a->stops == 0)
    reload(a, "watch: the file changed");
}

static void on_worker_done(uv_async_t *h) {
  struct app *a = h->data;
  if (atomic_load(&a->finished) == a->nworkers)
    close_signals(a); /* nothing left to watch: the main loop ends */
}

struct worker_arg {
  struct app *app;
  struct worker *w;
};

static void worker_thread(void *arg) {
  struct worker_arg *wa = arg;
  worker_run(wa->w);
  atomic_fetch_add(&wa->app->finished, 1);
  uv_async_send(&wa->app->done_async);
}

static int add_listener(struct config *cfg, const char *addr) {
  struct cfg_listener *l = realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof(*l));
  if (!l)
    return -1;
  cfg->listeners = l;
  struct cfg_listener *n = &l[cfg->nlisteners];
  memset(n, 0, sizeof(*n));
  char err[256];
  if (config_parse_listen_address(addr, &n->addr, err, sizeof(err)) != 0) {
    fprintf(stderr, "ferry: -l %s: %s\n", addr, err);
    return -1;
  }
  n->address = strdup(addr);
  if (!n->address)
    return -1;
  cfg->nlisteners++;
  return 0;
}

/* Can a new listener bind and listen on addr now? The probe socket has no
 * SO_REUSEPORT, so a port another process listens on fails with
 * UV_EADDRINUSE even when that process set SO_REUSEPORT (ferry's workers
 * do, to share each port among themselves). Only for addresses ferry does
 * not listen on yet; the probe is closed before the workers bind.
 * 0 or a negative uv error. */
static int probe_listener(const struct sockaddr_storage *addr) {
  uv_loop_t loop;
  uv_tcp_t t;
  int r = uv_loop_init(&loop);
  if (r < 0)
    return r;
  uv_tcp_init(&loop, &t);
  /* IPv6 listeners are IPv6-only (worker.c), so the probe must be too */
  r = uv_tcp_bind(&t, (const struct sockaddr *)addr,
                  addr->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&t, 1, NULL);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return r;
}

static bool listener_known(const struct config *cfg, const struct cfg_listener *l);

/* Probes every listener of cfg that old (NULL at start) does not have and
 * that no inherited socket (inh, may be NULL) serves.
 * 0, or -1 with "cannot listen on ADDRESS: why (what to do)" in what. */
static int probe_new_listeners(const struct config *cfg, const struct config *old,
                               const struct upgrade_inherit *inh, char *what, size_t len) {
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    const struct cfg_listener *l = &cfg->listeners[i];
    if ((old && listener_known(old, l)) || (inh && upgrade_inherit_has(inh, &l->addr)))
      continue; /* ours already, or handed over by the process this one upgrades */
    int r = probe_listener(&l->addr);
    if (r < 0) {
      snprintf(what, len, "cannot listen on %s: %s%s", l->address, uv_strerror(r),
               r == UV_EADDRINUSE ? " (another process listens on this port, perhaps another "
                                    "ferry: stop it or change listeners[].address)"
               : r == UV_EACCES   ? " (ports below 1024 need privileges: use a higher port)"
                                  : "");
      return -1;
    }
  }
  return 0;
}

static bool listener_known(const struct config *cfg, const struct cfg_listener *l) {
  for (size_t i = 0; i < cfg->nlisteners; i++) {
    const struct cfg_listener *o = &cfg->listeners[i];
    size_t len =
        l->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (o->addr.ss_family == l->addr.ss_family && memcmp(&o->addr, &l->addr, len) == 0)
      return true;
  }
  return false;
}

/* Two name lists hold the same names in the same order. */
static bool same_names(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0)
      return false;
  return true;
}

static void reload_failed(struct app *a, const char *what) {
  mc_add(&a->proc.reloads_failed, 1);
  mc_set(&a->proc.last_reload_ok, 0);
  mc_set(&a->proc.last_reload_time, (uint64_t)time(NULL));
  log_error("reload failed: %s; still serving configuration generation %" PRIu64
            " (fix the file and send SIGHUP again)",
            what, a->cur->gen);
}

/* SIGHUP or --watch, on the main thread (no client traffic runs here): read,
 * validate and compile the file, then publish it to every worker. On any
 * error the running configuration stays. */
static void reload(struct app *a, const char *why) {
  log_info("%s: reloading %s", why, a->file);
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int rc = config_load_file(a->file, &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++)
    log_msg(rc != 0 ? LOG_ERROR : LOG_WARN, "reload: %s", diag.msgs[i]);
  char what[600];
  if (rc != 0) {
    snprintf(what, sizeof(what), "%s has %zu error%s", a->file, diag.nerrors,
             diag.nerrors == 1 ? "" : "s");
    config_diag_free(&diag);
    reload_failed(a, what);
    return;
  }
  config_diag_free(&diag);
  for (unsigned i = 0; i < a->nextra; i++)
    if (add_listener(cfg, a->extra_listeners[i]) != 0) {
      config_free(cfg);
      reload_failed(a, "out of memory adding -l listeners");
      return;
    }
  if (a->workers_override >= 0)
    cfg->workers = (uint32_t)a->workers_override;
  const struct config *old = a->cur->cfg;
  if (probe_new_listeners(cfg, old, NULL, what, sizeof(what)) != 0) {
    config_free(cfg);
    reload_failed(a, what);
    return;
  }
  if (cfg->workers != old->workers)
    log_warn("reload: `workers` changed: the number of workers changes only on restart");
  if ((cfg->pid_file == NULL) != (old->pid_file == NULL) ||
      (cfg->pid_file && strcmp(cfg->pid_file, old->pid_file) != 0))
    log_warn("reload: `pid_file` changed: the pid file changes only on restart or upgrade");
  if (cfg->admin.enabled != old->admin.enabled ||
      (cfg->admin.enabled && (strcmp(cfg->admin.address, old->admin.address) != 0 ||
                              !same_names(cfg->admin.allowed_hosts, cfg->admin.nallowed_hosts,
                                          old->admin.allowed_hosts, old->admin.nallowed_hosts))))
    log_warn("reload: `admin` changed: the admin listener changes only on restart");
  struct snapshot *snap = snapshot_build(cfg, a->cur, &a->reaper, a->gen + 1, what, sizeof(what));
  if (!snap) {
    config_free(cfg);
    reload_failed(a, what);
    return;
  }
  a->gen++;
  for (unsigned i = 0; i < a->nworkers; i++)
    worker_reload(&a->workers[i], snap);
  metrics_set_certificates(&a->proc, cfg);
  snapshot_unref(a->cur);
  a->cur = snap;
  accesslog_configure(a->msrc.log, cfg);
  mc_add(&a->proc.reloads_ok, 1);
  mc_set(&a->proc.last_reload_ok, 1);
  mc_set(&a->proc.last_reload_time, (uint64_t)time(NULL));
  log_info("reload: configuration generation %" PRIu64 " published (%zu routes, %zu upstreams, "
           "upstream pools %s)",
           snap->gen, cfg->nroutes, cfg->nupstreams, snap->ups_owner ? "kept" : "rebuilt");
}

/* File descriptors: the soft RLIMIT_NOFILE is raised to the hard limit
 * (as nginx's worker_rlimit_nofile and HAProxy do by themselves), and a
 * warning says when even that is below what the configuration may need:
 * a client connection and an upstream one per limits.max_connections, the
 * idle pools of every worker, the listeners, and a margin for the admin
 * listener, logs and health checks. */
static void fd_limit_check(const struct config *cfg, unsigned nworkers) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0)
      rl = want;
  }
  uint64_t need = 2 * (uint64_t)cfg->limits.max_connections + 64;
  for (size_t i = 0; i < cfg->nupstreams; i++)
    need += (uint64_t)cfg->upstreams[i].nservers * cfg->upstreams[i].keepalive_max_idle * nworkers;
  need += (uint64_t)cfg->nlisteners * nworkers;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
    log_warn("the open-file limit is %" PRIu64 ", below the %" PRIu64
             " that limits.max_connections (%" PRIu64
             ") and the upstream pools may need: raise it (ulimit -n, systemd LimitNOFILE=) or "
             "lower limits.max_connections; past it, connections are refused and counted in "
             "ferry_accept_errors_total",
             (uint64_t)rl.rlim_cur, need, (uint64_t)cfg->limits.max_connections);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "inspect") == 0)
    return inspect_cli_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "explain") == 0)
    return explain_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "test-routes") == 0)
    return routetest_main(argc - 1, argv + 1);
  const char *file = "proxy.yaml";
  bool check = false, watch = false;
  long workers_override = -1;
  const char *extra_listeners[16];
  unsigned nextra = 0;
  static const struct option longopts[] = {{"version", no_argument, NULL, 'V'},
                                           {"help", no_argument, NULL, 'h'},
                                           {"watch", no_argument, NULL, 'W'},
                                           {NULL, 0, NULL, 0}};
  int opt;
  while ((opt = getopt_long(argc, argv, "c:tw:l:hv", longopts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      file = optarg;
      break;
    case 't':
      check = true;
      break;
    case 'w': {
      char *end;
      workers_override = strtol(optarg, &end, 10);
      if (*end || workers_override < 0 || workers_override > 256) {
        fprintf(stderr, "ferry: -w %s: expected a number of workers from 0 (auto) to 256\n",
                optarg);
        return EXIT_USAGE;
      }
      break;
    }
    case 'l':
      if (nextra == sizeof(extra_listeners) / sizeof(extra_listeners[0])) {
        fprintf(stderr, "ferry: too many -l options (at most 16)\n");
        return EXIT_USAGE;
      }
      extra_listeners[nextra++] = optarg;
      break;
    case 'v':
      log_set_level(LOG_DEBUG);
      break;
    case 'W':
      watch = true;
      break;
    case 'V':
      printf("ferry %s\n", FERRY_VERSION);
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "ferry: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return EXIT_USAGE;
  }

  struct config *cfg = NULL;
  struct config_diag diag = {0};
  int rc = config_load_file(file, &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++)
    fprintf(stderr, "%s\n", diag.msgs[i]);
  if (rc != 0) {
    fprintf(stderr, "%s: %zu error%s\n", file, diag.nerrors, diag.nerrors == 1 ? "" : "s");
    config_diag_free(&diag);
    return EXIT_USAGE;
  }
  config_diag_free(&diag);
  for (unsigned i = 0; i < nextra; i++)
    if (add_listener(cfg, extra_listeners[i]) != 0) {
      config_free(cfg);
      return EXIT_USAGE;
    }
  if (workers_override >= 0)
    cfg->workers = (uint32_t)workers_override;
  if (check) {
    printf("%s: ok\n", file);
    config_free(cfg);
    return 0;
  }

  signal(SIGPIPE, SIG_IGN);
  /* Until the main loop handles SIGHUP/SIGUSR1, an early one must not kill ferry. */
  signal(SIGHUP, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  signal(SIGUSR2, SIG_IGN);
  int exit_code = 0;
  struct accesslog alog;
  char err[512];
  /* A port another process listens on (another ferry included) is an
   * error here, before the workers bind it with SO_REUSEPORT. */
  /* Started by a binary upgrade: the old process's listening sockets. */
  struct upgrade_inherit inh;
  if (upgrade_inherit_load(&inh, err, sizeof(err)) != 0) {
    fprintf(stderr, "ferry: %s\n", err);
    config_free(cfg);
    return EXIT_START;
  }
  if (probe_new_listeners(cfg, NULL, &inh, err, sizeof(err)) != 0) {
    fprintf(stderr, "ferry: %s\n", err);
    upgrade_inherit_release(&inh);
    config_free(cfg);
    return EXIT_START;
  }
  unsigned nworkers = cfg->workers ? cfg->workers : (unsigned)uv_available_parallelism();
  if (nworkers == 0)
    nworkers = 1;
  fd_limit_check(cfg, nworkers);
  if (accesslog_open(&alog, cfg, nworkers, err, sizeof(err)) != 0) {
    fprintf(stderr, "ferry: %s\n", err);
    config_free(cfg);
    return EXIT_START;
  }

  struct app app;
  memset(&app, 0, sizeof(app));
  app.file = file;
  app.workers_override = workers_override;
  app.extra_listeners = extra_listeners;
  app.nextra = nextra;
  app.gen = 1;
  app.cur = snapshot_build(cfg, NULL, &app.reaper, app.gen, err, sizeof(err));
  if (!app.cur) {
    fprintf(stderr, "ferry: %s\n", err);
    accesslog_close(&alog);
    config_free(cfg);
    return EXIT_START;
  }
  app.boot_cfg = cfg;
  app.cur->owns_cfg = false;
  app.nworkers = nworkers;
  app.workers = calloc(app.nworkers, sizeof(*app.workers));
  unsigned started = 0, inited = 0;
  struct worker_arg *wargs = NULL;
  if (!app.workers) {
    fprintf(stderr, "ferry: out of memory\n");
    exit_code = EXIT_START;
    goto out;
  }
  for (; inited < app.nworkers; inited++) {
    struct worker *w = &app.workers[inited];
    int r = worker_init(w, inited, app.cur, &alog);
    w->proc_conns = &app.conns;
    for (size_t l = 0; r == 0 && l < cfg->nlisteners; l++) {
      int fd;
      while (r == 0 &&
             (fd = upgrade_inherit_next(&inh, &cfg->listeners[l].addr, inited, app.nworkers)) >= 0)
        r = worker_adopt(w, &cfg->listeners[l], fd);
    }
    if (r == 0)
      r = worker_listen(w);
    if (r != 0) {
      fprintf(stderr, "ferry: %s\n", w->start_error_msg[0] ? w->start_error_msg : uv_strerror(r));
      exit_code = EXIT_START;
      inited++;
      goto out;
    }
  }

  mc_set(&app.proc.start_time, (uint64_t)time(NULL));
  metrics_process_init(&app.proc);
  metrics_set_certificates(&app.proc, cfg);
  app.msrc = (struct metrics_source){app.workers, app.nworkers, &app.proc, &alog, NULL};
  if (cfg->admin.enabled) {
    app.admin = admin_new(&cfg->admin.addr, cfg->admin.address);
    int afd = app.admin ? upgrade_inherit_next(&inh, &cfg->admin.addr, 0, 1) : -1;
    if (afd >= 0)
      admin_adopt_fd(app.admin, afd);
    if (!app.admin ||
        admin_set_allowed_hosts(app.admin, cfg->admin.allowed_hosts, cfg->admin.nallowed_hosts) !=
            0 ||
        admin_route(app.admin, "/metrics", false, metrics_admin_handler, &app.msrc) != 0) {
      fprintf(stderr, "ferry: out of memory\n");
      exit_code = EXIT_START;
      goto out;
    }
    app.msrc.admin = app.admin;
    if ((app.insp = inspector_new(cfg, app.admin)) == NULL) {
      fprintf(stderr, "ferry: out of memory\n");
      exit_code = EXIT_START;
      goto out;
    }
    char amsg[512];
    if (admin_start(app.admin, amsg, sizeof(amsg)) != 0) {
      fprintf(stderr, "ferry: %s\n", amsg);
      exit_code = EXIT_START;
      goto out;
    }
    for (unsigned i = 0; i < app.nworkers; i++) {
      app.workers[i].admin = app.admin;
      app.workers[i].insp = inspector_wanted(cfg) ? app.insp : NULL;
    }
  }

  upgrade_inherit_release(&inh); /* sockets for listeners this configuration dropped */
  /* Listening (the sockets are bound and listen): the pid file tells
   * service managers and scripts that this process serves. */
  if (cfg->pid_file) {
    if (pidfile_write(cfg->pid_file, getpid(), err, sizeof(err)) != 0) {
      fprintf(stderr, "ferry: %s\n", err);
      exit_code = EXIT_START;
      goto out;
    }
    app.pid_written = true;
  }

  uv_loop_init(&app.loop);
  uv_async_init(&app.loop, &app.done_async, on_worker_done);
  app.done_async.data = &app;
  uv_async_init(&app.loop, &app.reap_async, on_reap);
  app.reap_async.data = &app;
  app.reaper.wake = &app.reap_async;
  upgrade_init(&app.upg, &app.loop, argv, on_upgrade_done, &app);
  if (watch) {
    if (watch_start(&app.watch, &app.loop, file, on_file_changed, &app, err, sizeof(err)) != 0)
      log_warn("%s; reload with SIGHUP instead", err);
    else
      app.watching = true;
  }
  uv_signal_t *sigs[] = {&app.sig_int, &app.sig_term, &app.sig_quit,
                         &app.sig_hup, &app.sig_usr1, &app.sig_usr2};
  int signums[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
  for (int i = 0; i < 6; i++) {
    uv_signal_init(&app.loop, sigs[i]);
    sigs[i]->data = &app;
    uv_signal_start(sigs[i], on_signal, signums[i]);
  }
  wargs = calloc(app.nworkers, sizeof(*wargs));
  for (; wargs && started < app.nworkers; started++) {
    wargs[started] = (struct worker_arg){&app, &app.workers[started]};
    if (uv_thread_create(&app.workers[started].thread, worker_thread, &wargs[started]) != 0)
      break;
  }
  if (started < app.nworkers) {
    fprintf(stderr, "ferry: cannot start worker thread %u\n", started);
    exit_code = EXIT_START;
    app.nworkers = started; /* wait only for those running */
    for (unsigned i = 0; i < started; i++)
      worker_stop(&app.workers[i], true);
    if (started == 0)
      close_signals(&app);
  } else {
    for (size_t i = 0; i < cfg->nlisteners; i++)
      log_info("listening on %s (%u worker%s)", cfg->listeners[i].address, app.nworkers,
               app.nworkers == 1 ? "" : "s");
    if (inh.ready_fd >= 0) {
      upgrade_inherit_ready(&inh);
      log_info("upgrade: this process (pid %d) serves; the old one drains", (int)getpid());
    }
  }
  /* Runs until every worker has finished (after a stop signal). */
  uv_run(&app.loop, UV_RUN_DEFAULT);
  for (unsigned i = 0; i < started; i++)
    uv_thread_join(&app.workers[i].thread);
  uv_run(&app.loop, UV_RUN_DEFAULT);
  uv_loop_close(&app.loop);
  app.reaper.wake = NULL; /* from here on, the last reference frees at once */
  /* The admin outlives the workers (/readyz says 503 while they drain);
   * no worker posts to it any more. */
  admin_stop(app.admin);
  admin_join(app.admin);
  if (app.pid_written)
    pidfile_remove_own(cfg->pid_file, getpid()); /* a newer process may own it by now */
  if (exit_code == 0)
    log_info("stopped");

out:
  upgrade_inherit_release(&inh); /* a start that failed before taking them */
  for (unsigned i = 0; i < inited; i++) {
    if (i >= started) {
      /* Never ran: close its handles on its own loop. */
      worker_stop(&app.workers[i], true);
      worker_run(&app.workers[i]);
    }
    worker_destroy(&app.workers[i]);
  }
  admin_stop(app.admin);
  admin_join(app.admin);
  inspector_free(app.insp);
  admin_free(app.admin);
  free(app.workers);
  free(wargs);
  app.reaper.wake = NULL;
  snapshot_reap(&app.reaper);
  snapshot_unref(app.cur);
  snapshot_reap(&app.reaper);
  config_free(app.boot_cfg); /* after every snapshot that could point into it */
  metrics_process_destroy(&app.proc);
  accesslog_close(&alog);
  return exit_code;
}

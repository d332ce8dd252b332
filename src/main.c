/* main: command line, configuration check, signals, start and stop.
 * Owns the process: loads the configuration, starts the worker threads,
 * turns signals into worker stops, and maps failures to exit codes
 * (0 clean, 1 bad configuration or usage, 2 could not start). */
#include <getopt.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "ferry/accesslog.h"
#include "ferry/admin.h"
#include "ferry/inspector.h"
#include "ferry/config.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/router.h"
#include "ferry/upstream.h"
#include "ferry/worker.h"

#define EXIT_USAGE 1
#define EXIT_START 2

static void usage(FILE *f) {
  fprintf(f, "usage: ferry [-c FILE] [-w N] [-l ADDR]...   run (FILE defaults to ./proxy.yaml)\n"
             "       ferry -t [-c FILE]                    check the configuration and exit\n"
             "       ferry --version | -h | --help\n"
             "\n"
             "  -c FILE   configuration file (proxy.yaml)\n"
             "  -t        check FILE: print \"FILE: ok\" or every error, exit 0 or 1\n"
             "  -w N      worker threads (overrides `workers:`; 0 = one per core)\n"
             "  -l ADDR   add a listener, e.g. 127.0.0.1:8080 or [::1]:8080\n"
             "  -v        debug logging on stderr\n"
             "\n"
             "signals: SIGTERM/SIGINT drain and exit (a second one exits at once),\n"
             "         SIGQUIT exits at once\n");
}

struct app {
  uv_loop_t loop;
  uv_async_t done_async; /* a worker thread finished */
  _Atomic unsigned finished;
  uv_signal_t sig_int, sig_term, sig_quit, sig_hup;
  struct worker *workers;
  unsigned nworkers;
  int stops;
  struct admin *admin; /* NULL when admin is off */
  struct inspector *insp; /* /inspect on the admin listener; NULL when admin is off */
  struct metrics_process proc;
  struct metrics_source msrc;
};

static void close_signals(struct app *a) {
  uv_close((uv_handle_t *)&a->done_async, NULL);
  uv_close((uv_handle_t *)&a->sig_int, NULL);
  uv_close((uv_handle_t *)&a->sig_term, NULL);
  uv_close((uv_handle_t *)&a->sig_quit, NULL);
  uv_close((uv_handle_t *)&a->sig_hup, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct app *a = h->data;
  if (signum == SIGHUP) {
    log_warn("SIGHUP: configuration reload is not available in this version; restart ferry to "
             "apply changes");
    return;
  }
  if (signum == SIGQUIT || a->stops > 0) {
    log_info("%s: exiting at once", signum == SIGQUIT ? "SIGQUIT" : "second stop signal");
    fflush(stdout);
    _exit(0);
  }
  a->stops++;
  log_info("%s: draining (send it again to exit at once)", signum == SIGINT ? "SIGINT" : "SIGTERM");
  admin_set_ready(a->admin, false);
  mc_set(&a->proc.draining, 1);
  for (unsigned i = 0; i < a->nworkers; i++)
    worker_stop(&a->workers[i], false);
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

int main(int argc, char **argv) {
  const char *file = "proxy.yaml";
  bool check = false;
  long workers_override = -1;
  const char *extra_listeners[16];
  unsigned nextra = 0;
  static const struct option longopts[] = {
      {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
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
  int exit_code = 0;
  struct router *router = router_new(cfg);
  struct accesslog alog;
  char err[512];
  if (!router) {
    fprintf(stderr, "ferry: out of memory compiling routes\n");
    config_free(cfg);
    return EXIT_START;
  }
  if (accesslog_open(&alog, cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "ferry: %s\n", err);
    router_free(router);
    config_free(cfg);
    return EXIT_START;
  }
  /* Upstream pools: server names resolve now; the monitor thread (health
   * checks, DNS refresh) starts. */
  struct upstreams *ups = upstreams_new(cfg, err, sizeof(err));
  if (!ups) {
    fprintf(stderr, "ferry: %s\n", err);
    accesslog_close(&alog);
    router_free(router);
    config_free(cfg);
    return EXIT_START;
  }

  struct app app;
  memset(&app, 0, sizeof(app));
  app.nworkers = cfg->workers ? cfg->workers : (unsigned)uv_available_parallelism();
  if (app.nworkers == 0)
    app.nworkers = 1;
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
    int r = worker_init(w, inited, cfg, router, &alog, ups);
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
  app.msrc = (struct metrics_source){app.workers, app.nworkers, &app.proc, &alog, NULL};
  if (cfg->admin.enabled) {
    app.admin = admin_new(&cfg->admin.addr, cfg->admin.address);
    if (!app.admin ||
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

  uv_loop_init(&app.loop);
  uv_async_init(&app.loop, &app.done_async, on_worker_done);
  app.done_async.data = &app;
  uv_signal_t *sigs[] = {&app.sig_int, &app.sig_term, &app.sig_quit, &app.sig_hup};
  int signums[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
  for (int i = 0; i < 4; i++) {
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
  }
  /* Runs until every worker has finished (after a stop signal). */
  uv_run(&app.loop, UV_RUN_DEFAULT);
  for (unsigned i = 0; i < started; i++)
    uv_thread_join(&app.workers[i].thread);
  uv_run(&app.loop, UV_RUN_DEFAULT);
  uv_loop_close(&app.loop);
  /* The admin outlives the workers (/readyz says 503 while they drain);
   * no worker posts to it any more. */
  admin_stop(app.admin);
  admin_join(app.admin);
  if (exit_code == 0)
    log_info("stopped");

out:
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
  upstreams_free(ups);
  accesslog_close(&alog);
  router_free(router);
  config_free(cfg);
  return exit_code;
}

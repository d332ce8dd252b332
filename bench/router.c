/* bench-router: cost of router_match() as the number of routes grows.
 *
 * For N = 10, 100, 1,000 and 10,000 routes, builds a configuration of N
 * host + path_prefix routes (through config_load_string, as ferry does),
 * compiles the router, then times lookups of requests that each hit one of
 * the routes (a random one, a path one segment below its prefix). Two
 * layouts: "spread" puts 10 prefixes on each of N/10 hosts, "one-host" puts
 * all N prefixes on a single host. Prints ns per lookup and the ratio to
 * N = 10; the router should keep the 10,000-route cost within 3x of the
 * 10-route cost. Times are this thread's CPU time; sizes are timed in 11
 * interleaved rounds and each figure is the best round, so other work on
 * the machine skews them less. Exit status 1 when the ratio is over 3x.
 *
 * Usage: bench-router [lookups-per-round]   (default 300000)
 * Not a test: timings depend on the machine; run it by hand. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llhttp.h>

#include "ferry/config.h"
#include "ferry/router.h"

#define NQUERIES 4096

struct query {
  char host[64];
  char path[96];
  size_t want;
};

/* CPU time of this thread: time the scheduler gives to other processes
 * on a busy machine is not counted. */
static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void route_names(size_t i, size_t nhosts, size_t per_host, char *host, size_t hn,
                        char *prefix, size_t pn) {
  snprintf(host, hn, "svc%zu.example.com", i % nhosts);
  snprintf(prefix, pn, "/api/team%zu/v%zu", (i / nhosts) % per_host, i % 3 + 1);
}

/* Returns the YAML text of n routes over nhosts hosts (caller frees). */
static char *make_yaml(size_t n, size_t nhosts) {
  size_t cap = 256 + n * 128, o = 0;
  char *y = malloc(cap);
  if (!y)
    return NULL;
  o += (size_t)snprintf(y + o, cap - o, "listeners:\n  - address: 127.0.0.1:8080\nroutes:\n");
  size_t per_host = (n + nhosts - 1) / nhosts;
  for (size_t i = 0; i < n; i++) {
    char host[64], prefix[64];
    route_names(i, nhosts, per_host, host, sizeof host, prefix, sizeof prefix);
    o += (size_t)snprintf(y + o, cap - o,
                          "  - host: %s\n    path_prefix: %s\n    respond: {status: 200}\n", host,
                          prefix);
  }
  return y;
}

/* One table under test: its configuration, router and queries. */
struct table {
  size_t n, nhosts;
  struct config *cfg;
  struct router *r;
  struct query *q;
  struct route_query *rq;
  double load_ms, compile_ms, best_ns;
};

static void table_free(struct table *t) {
  router_free(t->r);
  config_free(t->cfg);
  free(t->q);
  free(t->rq);
}

static int table_build(struct table *t, size_t n, size_t nhosts) {
  memset(t, 0, sizeof *t);
  t->n = n;
  t->nhosts = nhosts;
  char *yaml = make_yaml(n, nhosts);
  if (!yaml)
    return -1;
  struct config_diag diag = {0};
  double t0 = now_ns();
  int rc = config_load_string("bench.yaml", yaml, strlen(yaml), &t->cfg, &diag);
  double t1 = now_ns();
  free(yaml);
  for (size_t i = 0; i < diag.n; i++)
    fprintf(stderr, "%s\n", diag.msgs[i]);
  config_diag_free(&diag);
  if (rc != 0)
    return -1;
  t->r = router_new(t->cfg);
  t->load_ms = (t1 - t0) / 1e6;
  t->compile_ms = (now_ns() - t1) / 1e6;
  t->q = calloc(NQUERIES, sizeof *t->q);
  t->rq = calloc(NQUERIES, sizeof *t->rq);
  if (!t->r || !t->q || !t->rq)
    return -1;

  size_t per_host = (n + nhosts - 1) / nhosts;
  unsigned seed = 42;
  for (size_t k = 0; k < NQUERIES; k++) {
    struct query *q = &t->q[k];
    size_t i = (size_t)rand_r(&seed) % n;
    char prefix[64];
    route_names(i, nhosts, per_host, q->host, sizeof q->host, prefix, sizeof prefix);
    snprintf(q->path, sizeof q->path, "%s/items/%zu", prefix, k);
    q->want = i;
    t->rq[k] = (struct route_query){slice_cstr(q->host), slice_cstr(q->path), HTTP_GET, NULL};
    /* Check every answer once (and warm the caches). */
    const struct cfg_route *m = router_match(t->r, &t->rq[k]);
    if (!m || m->index != q->want) {
      fprintf(stderr, "bench-router: wrong route for %s%s\n", q->host, q->path);
      return -1;
    }
  }
  return 0;
}

static double time_lookups(const struct table *t, long lookups, uintptr_t *sink) {
  double s0 = now_ns();
  for (long i = 0; i < lookups; i++)
    *sink += (uintptr_t)router_match(t->r, &t->rq[(size_t)i & (NQUERIES - 1)]);
  return (now_ns() - s0) / (double)lookups;
}

#define NSIZES 4
#define ROUNDS 11

int main(int argc, char **argv) {
  long lookups = argc > 1 ? atol(argv[1]) : 300000;
  static const size_t sizes[NSIZES] = {10, 100, 1000, 10000};
  static const char *const layouts[] = {"spread", "one-host"};
  int bad = 0;
  uintptr_t sink = 0;
  if (lookups <= 0) {
    fprintf(stderr, "usage: bench-router [lookups-per-round]\n");
    return 2;
  }
  for (int layout = 0; layout < 2; layout++) {
    struct table t[NSIZES];
    for (size_t s = 0; s < NSIZES; s++) {
      size_t n = sizes[s], nhosts = layout == 0 ? (n / 10 ? n / 10 : 1) : 1;
      if (table_build(&t[s], n, nhosts) != 0) {
        for (size_t k = 0; k <= s; k++)
          table_free(&t[k]);
        return 1;
      }
    }
    /* Rounds interleave the sizes, so a busy moment on the machine costs
     * every size alike; each figure is the best round. */
    for (int round = 0; round < ROUNDS; round++)
      for (size_t s = 0; s < NSIZES; s++) {
        double ns = time_lookups(&t[s], lookups, &sink);
        if (round == 0 || ns < t[s].best_ns)
          t[s].best_ns = ns;
      }
    for (size_t s = 0; s < NSIZES; s++)
      printf("%-9s %6zu routes %5zu hosts  %7.1f ns/lookup  (load %.1f ms, compile %.2f ms)\n",
             layouts[layout], t[s].n, t[s].nhosts, t[s].best_ns, t[s].load_ms, t[s].compile_ms);
    double ratio = t[NSIZES - 1].best_ns / t[0].best_ns;
    printf("%-9s 10000/10 cost ratio: %.2fx (limit 3x)%s\n\n", layouts[layout], ratio,
           ratio > 3.0 ? "  OVER THE LIMIT" : "");
    bad |= ratio > 3.0;
    for (size_t s = 0; s < NSIZES; s++)
      table_free(&t[s]);
  }
  return bad || sink == 1 ? 1 : 0;
}

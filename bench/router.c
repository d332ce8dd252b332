/* bench-router: cost of router_match() as the number of routes grows.
 *
 * For N = 10, 100, 1,000 and 10,000 routes, builds a configuration of N
 * host + path_prefix routes (through config_load_string, as ferry does),
 * compiles the router, then times lookups of requests that each hit one of
 * the routes (a random one, a path one segment below its prefix). Two
 * layouts: "spread" puts 10 prefixes on each of N/10 hosts, "one-host" puts
 * all N prefixes on a single host. Prints ns per lookup and the ratio to
 * N = 10; the router should keep the 10,000-route cost within 3x of the
 * 10-route cost. Each figure is the best of 5 rounds.
 *
 * Usage: bench-router [lookups-per-round]   (default 1000000)
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

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
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

static int run(const char *layout, size_t n, size_t nhosts, long lookups, double *ns_out) {
  char *yaml = make_yaml(n, nhosts);
  if (!yaml)
    return -1;
  struct config *cfg = NULL;
  struct config_diag diag = {0};
  double t0 = now_ns();
  int rc = config_load_string("bench.yaml", yaml, strlen(yaml), &cfg, &diag);
  double t1 = now_ns();
  free(yaml);
  if (rc != 0) {
    for (size_t i = 0; i < diag.n; i++)
      fprintf(stderr, "%s\n", diag.msgs[i]);
    config_diag_free(&diag);
    return -1;
  }
  config_diag_free(&diag);
  struct router *r = router_new(cfg);
  double t2 = now_ns();
  if (!r) {
    config_free(cfg);
    return -1;
  }

  static struct query q[NQUERIES];
  size_t per_host = (n + nhosts - 1) / nhosts;
  unsigned seed = 42;
  for (size_t k = 0; k < NQUERIES; k++) {
    size_t i = (size_t)rand_r(&seed) % n;
    char prefix[64];
    route_names(i, nhosts, per_host, q[k].host, sizeof q[k].host, prefix, sizeof prefix);
    snprintf(q[k].path, sizeof q[k].path, "%s/items/%zu", prefix, k);
    q[k].want = i;
  }
  /* Check every answer once (and warm the caches). */
  for (size_t k = 0; k < NQUERIES; k++) {
    struct route_query rq = {slice_cstr(q[k].host), slice_cstr(q[k].path), HTTP_GET, NULL};
    const struct cfg_route *m = router_match(r, &rq);
    if (!m || m->index != q[k].want) {
      fprintf(stderr, "bench-router: wrong route for %s%s\n", q[k].host, q[k].path);
      router_free(r);
      config_free(cfg);
      return -1;
    }
  }
  struct route_query rqs[NQUERIES];
  for (size_t k = 0; k < NQUERIES; k++)
    rqs[k] = (struct route_query){slice_cstr(q[k].host), slice_cstr(q[k].path), HTTP_GET, NULL};

  /* Best of 5 rounds: the machine may be busy with other work. */
  uintptr_t sink = 0;
  *ns_out = 0;
  for (int round = 0; round < 5; round++) {
    double s0 = now_ns();
    for (long i = 0; i < lookups; i++)
      sink += (uintptr_t)router_match(r, &rqs[(size_t)i & (NQUERIES - 1)]);
    double ns = (now_ns() - s0) / (double)lookups;
    if (round == 0 || ns < *ns_out)
      *ns_out = ns;
  }
  printf("%-9s %6zu routes %5zu hosts  %7.1f ns/lookup  (load %.1f ms, compile %.2f ms)%s\n",
         layout, n, nhosts, *ns_out, (t1 - t0) / 1e6, (t2 - t1) / 1e6, sink == 1 ? " " : "");
  router_free(r);
  config_free(cfg);
  return 0;
}

int main(int argc, char **argv) {
  long lookups = argc > 1 ? atol(argv[1]) : 1000000;
  static const size_t sizes[] = {10, 100, 1000, 10000};
  int bad = 0;
  if (lookups <= 0) {
    fprintf(stderr, "usage: bench-router [lookups-per-round]\n");
    return 2;
  }
  for (int layout = 0; layout < 2; layout++) {
    double base = 0, ns = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t n = sizes[s], nhosts = layout == 0 ? (n / 10 ? n / 10 : 1) : 1;
      if (run(layout == 0 ? "spread" : "one-host", n, nhosts, lookups, &ns) != 0)
        return 1;
      if (s == 0)
        base = ns;
    }
    double ratio = ns / base;
    printf("%-9s 10000/10 cost ratio: %.2fx (limit 3x)%s\n\n", layout == 0 ? "spread" : "one-host",
           ratio, ratio > 3.0 ? "  OVER THE LIMIT" : "");
    bad |= ratio > 3.0;
  }
  return bad ? 1 : 0;
}

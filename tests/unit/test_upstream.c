/* upstream: pools built from a configuration, picks with health and
 * exclusions, passive ejection (at most half a pool, doubling), hash keys,
 * membership changes and state carried over a rebuild. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/config.h"
#include "ferry/resolve.h"
#include "ferry/upstream.h"

static struct config *load(const char *yaml) {
  struct config *cfg = NULL;
  struct config_diag d = {0};
  int r = config_load_string("proxy.yaml", yaml, strlen(yaml), &cfg, &d);
  for (size_t i = 0; i < d.n; i++)
    fprintf(stderr, "%s\n", d.msgs[i]);
  config_diag_free(&d);
  cr_assert_eq(r, 0);
  return cfg;
}

#define POOL(balance, extra)                                                                       \
  "listeners: [{address: 127.0.0.1:8080}]\n"                                                       \
  "upstreams:\n"                                                                                   \
  "  api:\n"                                                                                       \
  "    servers:\n"                                                                                 \
  "      - address: 127.0.0.1:9001\n"                                                              \
  "      - address: 127.0.0.1:9002\n"                                                              \
  "      - address: 127.0.0.1:9003\n"                                                              \
  "      - address: 127.0.0.1:9004\n"                                                              \
  "    balance: " balance "\n" extra

struct fixture {
  struct config *cfg;
  struct upstreams *ups;
  struct upstream_rt rt;
};

static void setup(struct fixture *f, const char *yaml) {
  f->cfg = load(yaml);
  char err[256];
  f->ups = upstreams_new(f->cfg, err, sizeof(err));
  cr_assert_not_null(f->ups, "%s", err);
  cr_assert_eq(upstream_rt_init(&f->rt, &f->ups->pools[0], 42), 0);
}

static void teardown(struct fixture *f) {
  upstream_rt_destroy(&f->rt);
  upstreams_free(f->ups);
  config_free(f->cfg);
}

static int index_of(struct fixture *f, struct server_rt *s) {
  return s ? (int)(s - f->rt.servers) : -1;
}

Test(upstream, numeric_servers_become_slots_and_round_robin_skips_down_ones) {
  struct fixture f;
  setup(&f, POOL("round_robin", ""));
  cr_assert_eq(f.rt.nservers, 4);
  cr_assert_str_eq(f.rt.servers[2].name, "127.0.0.1:9003");
  atomic_store(&f.rt.servers[1].slot->down, true);
  int count[4] = {0};
  for (int i = 0; i < 300; i++)
    count[index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0))]++;
  cr_assert_eq(count[1], 0);
  cr_assert_eq(count[0], 100);
  cr_assert_eq(count[2], 100);
  cr_assert_eq(count[3], 100);
  for (int i = 0; i < 4; i++)
    atomic_store(&f.rt.servers[i].slot->down, true);
  cr_assert_null(upstream_pick(&f.rt, false, 0, NULL, 0));
  teardown(&f);
}

Test(upstream, pick_never_returns_an_excluded_server) {
  struct fixture f;
  setup(&f, POOL("least_conn", ""));
  struct server_rt *ex[3] = {&f.rt.servers[0], &f.rt.servers[1], &f.rt.servers[3]};
  for (int i = 0; i < 50; i++)
    cr_assert_eq(index_of(&f, upstream_pick(&f.rt, false, 0, ex, 3)), 2);
  struct server_rt *all[4] = {&f.rt.servers[0], &f.rt.servers[1], &f.rt.servers[2],
                              &f.rt.servers[3]};
  cr_assert_null(upstream_pick(&f.rt, false, 0, all, 4));
  teardown(&f);
}

Test(upstream, passive_ejection_stops_at_half_the_pool_and_doubles) {
  struct fixture f;
  setup(&f, POOL("round_robin", "    passive: {consecutive_failures: 2, eject_for: 10s}\n"));
  struct server_rt *s = f.rt.servers;
  upstream_report_status(&s[0], 500);
  cr_assert_eq(atomic_load(&s[0].slot->eject_until_ms), 0, "one 5xx is not enough");
  upstream_report_status(&s[0], 200);
  upstream_report_status(&s[0], 500);
  cr_assert_eq(atomic_load(&s[0].slot->eject_until_ms), 0, "a success resets the count");
  upstream_report_status(&s[0], 502);
  uint64_t until = atomic_load(&s[0].slot->eject_until_ms);
  cr_assert_gt(until, upstream_now_ms() + 9000);
  cr_assert_leq(until, upstream_now_ms() + 10000);
  upstream_report_failure(&s[1], true, "connect refused");
  cr_assert_gt(atomic_load(&s[1].slot->eject_until_ms), 0, "a connect failure ejects at once");
  upstream_report_failure(&s[2], true, "connect refused");
  cr_assert_eq(atomic_load(&s[2].slot->eject_until_ms), 0, "never more than half of 4");
  for (int i = 0; i < 100; i++) {
    int k = index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0));
    cr_assert(k == 2 || k == 3, "picked ejected server %d", k);
  }
  cr_assert_eq(upstream_retry_after(&f.rt), 10);
  /* the ejection runs out; ejected again soon after: twice as long */
  atomic_store(&s[0].slot->eject_until_ms, upstream_now_ms() - 1);
  s[0].slot->last_eject_until = upstream_now_ms() - 1;
  cr_assert(upslot_usable(&f.ups->pools[0], s[0].slot, upstream_now_ms()));
  cr_assert_eq(atomic_load(&s[0].slot->eject_until_ms), 0);
  upstream_report_status(&s[0], 500);
  upstream_report_status(&s[0], 500);
  until = atomic_load(&s[0].slot->eject_until_ms);
  cr_assert_gt(until, upstream_now_ms() + 19000, "doubled");
  struct upstream_server_stats st;
  upslot_stats(s[0].slot, upstream_now_ms(), &st);
  cr_assert(st.ejected && st.present && !st.down);
  teardown(&f);
}

Test(upstream, passive_off_never_ejects) {
  struct fixture f;
  setup(&f, POOL("round_robin", "    passive: {consecutive_failures: 0}\n"));
  for (int i = 0; i < 20; i++)
    upstream_report_status(&f.rt.servers[0], 500);
  upstream_report_failure(&f.rt.servers[0], true, "connect refused");
  cr_assert_eq(atomic_load(&f.rt.servers[0].slot->eject_until_ms), 0);
  teardown(&f);
}

Test(upstream, in_flight_counts_steer_least_conn) {
  struct fixture f;
  setup(&f, POOL("least_conn", ""));
  for (int i = 0; i < 3; i++)
    upstream_attempt_begin(&f.rt.servers[i]);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0)), 3);
  upstream_attempt_end(&f.rt.servers[1]);
  upstream_attempt_begin(&f.rt.servers[3]);
  cr_assert_eq(index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0)), 1);
  teardown(&f);
}

Test(upstream, hash_keys_from_client_ip_header_and_cookie) {
  struct config *cfg = load(POOL("hash", "    hash_key: cookie:sid\n"));
  struct hdr store[4];
  struct hdr_list h = {.v = store, .cap = 4};
  http_head_push(&h, SLICE_LIT("Host"), SLICE_LIT("x"));
  http_head_push(&h, SLICE_LIT("Cookie"), SLICE_LIT("a=1; sid=abc"));
  http_head_push(&h, SLICE_LIT("X-User"), SLICE_LIT("u1"));
  uint64_t k1 = 0, k2 = 0;
  cr_assert(upstream_hash_key(&cfg->upstreams[0], SLICE_LIT("10.0.0.1"), &h, &k1));
  cr_assert_eq(k1, balance_hash("abc", 3));
  free(cfg->upstreams[0].hash_key);
  cfg->upstreams[0].hash_key = strdup("header:x-user");
  cr_assert(upstream_hash_key(&cfg->upstreams[0], SLICE_LIT("10.0.0.1"), &h, &k2));
  cr_assert_eq(k2, balance_hash("u1", 2));
  free(cfg->upstreams[0].hash_key);
  cfg->upstreams[0].hash_key = strdup("header:X-Missing");
  cr_assert_not(upstream_hash_key(&cfg->upstreams[0], SLICE_LIT("10.0.0.1"), &h, &k2));
  free(cfg->upstreams[0].hash_key);
  cfg->upstreams[0].hash_key = strdup("client_ip");
  cr_assert(upstream_hash_key(&cfg->upstreams[0], SLICE_LIT("10.0.0.1"), &h, &k2));
  cr_assert_eq(k2, balance_hash("10.0.0.1", 8));
  config_free(cfg);
}

Test(upstream, hash_pick_is_sticky_and_skips_down_servers) {
  struct fixture f;
  setup(&f, POOL("hash", "    hash_key: client_ip\n"));
  int first[64];
  for (int k = 0; k < 64; k++)
    first[k] = index_of(&f, upstream_pick(&f.rt, true, balance_hash(&k, sizeof(k)), NULL, 0));
  atomic_store(&f.rt.servers[2].slot->down, true);
  int moved = 0;
  for (int k = 0; k < 64; k++) {
    int now = index_of(&f, upstream_pick(&f.rt, true, balance_hash(&k, sizeof(k)), NULL, 0));
    cr_assert_neq(now, 2);
    if (first[k] != 2)
      cr_assert_eq(now, first[k], "key %d moved though its server is up", k);
    moved += now != first[k];
  }
  cr_assert_gt(moved, 0);
  teardown(&f);
}

Test(upstream, membership_changes_reach_the_worker_view) {
  struct fixture f;
  setup(&f, POOL("round_robin", ""));
  struct uppool *p = &f.ups->pools[0];
  struct sockaddr_storage a;
  char why[64];
  cr_assert_eq(resolve_hosts_file("/dev/null", "x", 1, &a, 1, why, sizeof(why)), -1);
  a = f.cfg->upstreams[0].servers[0].addr;
  ((struct sockaddr_in *)&a)->sin_port = htons(9100);
  struct upslot *s = uppool_add(p, &f.cfg->upstreams[0].servers[0], &a);
  cr_assert_null(s, "the pool holds exactly its numeric servers");
  uppool_remove(p, &p->slots[3]);
  for (int i = 0; i < 30; i++)
    cr_assert_neq(index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0)), 3);
  cr_assert(f.rt.servers[3].gone);
  cr_assert_not(upstream_server_present(&f.rt.servers[3]));
  uppool_add(p, f.rt.servers[3].cfg, &p->slots[3].addr);
  int seen3 = 0;
  for (int i = 0; i < 8; i++)
    seen3 += index_of(&f, upstream_pick(&f.rt, false, 0, NULL, 0)) == 3;
  cr_assert_eq(seen3, 2, "back in the rotation");
  teardown(&f);
}

Test(upstream, state_survives_a_rebuild_by_address) {
  struct fixture f;
  setup(&f, POOL("round_robin", ""));
  atomic_store(&f.rt.servers[1].slot->down, true);
  atomic_store(&f.rt.servers[2].slot->eject_until_ms, upstream_now_ms() + 5000);
  /* the new configuration drops 9001 and adds weight elsewhere */
  struct config *cfg2 = load("listeners: [{address: 127.0.0.1:8080}]\n"
                             "upstreams:\n"
                             "  api:\n"
                             "    servers:\n"
                             "      - address: 127.0.0.1:9003\n"
                             "      - address: 127.0.0.1:9002\n"
                             "        weight: 5\n");
  char err[256];
  struct upstreams *u2 = upstreams_new(cfg2, err, sizeof(err));
  cr_assert_not_null(u2);
  upstreams_inherit(u2, f.ups);
  cr_assert_gt(atomic_load(&u2->pools[0].slots[0].eject_until_ms), 0);
  cr_assert_not(atomic_load(&u2->pools[0].slots[0].down));
  cr_assert(atomic_load(&u2->pools[0].slots[1].down));
  upstreams_free(u2);
  config_free(cfg2);
  teardown(&f);
}

Test(upstream, names_resolve_from_the_hosts_file_and_an_empty_pool_fails_start) {
  char path[] = "/tmp/ferry-hosts-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  const char *text = "# test\n127.0.0.1 a.test b.test\n127.0.0.2\ta.test\n::1 a.test\n"
                     "127.0.0.1 a.test\n";
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  struct sockaddr_storage out[8];
  char why[256], name[64];
  cr_assert_eq(resolve_hosts_file(path, "A.TEST", 80, out, 8, why, sizeof(why)), 3);
  resolve_name(&out[2], name, sizeof(name));
  cr_assert_str_eq(name, "[::1]:80");
  cr_assert_eq(resolve_hosts_file(path, "c.test", 80, out, 8, why, sizeof(why)), -1);
  cr_assert(strstr(why, "not in hosts file") != NULL, "%s", why);

  setenv("FERRY_HOSTS_FILE", path, 1);
  struct config *cfg = load("listeners: [{address: 127.0.0.1:8080}]\n"
                            "upstreams:\n"
                            "  api:\n"
                            "    servers: [{address: \"a.test:9000\"}]\n"
                            "  web:\n"
                            "    servers: [{address: \"c.test:9000\"}]\n");
  char err[512];
  struct upstreams *u = upstreams_new(cfg, err, sizeof(err));
  cr_assert_null(u);
  cr_assert(strstr(err, "upstream web: no server address could be resolved (c.test: not in "
                        "hosts file") != NULL,
            "%s", err);
  config_free(cfg);
  cfg = load("listeners: [{address: 127.0.0.1:8080}]\n"
             "upstreams:\n"
             "  api:\n"
             "    servers: [{address: \"a.test:9000\"}, {address: \"c.test:9000\"}]\n");
  u = upstreams_new(cfg, err, sizeof(err));
  cr_assert_not_null(u, "%s", err);
  cr_assert_eq(atomic_load(&u->pools[0].nslots), 3);
  cr_assert_str_eq(u->pools[0].slots[1].name, "127.0.0.2:9000");
  upstreams_free(u);
  config_free(cfg);
  unsetenv("FERRY_HOSTS_FILE");
  unlink(path);
}

Test(upstream, a_long_gone_idle_slot_is_reused_for_a_new_address) {
  char path[] = "/tmp/ferry-hosts-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  const char *text = "10.1.0.1 r.test\n";
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  setenv("FERRY_HOSTS_FILE", path, 1);
  struct fixture f;
  setup(&f, "listeners: [{address: 127.0.0.1:8080}]\n"
            "upstreams:\n"
            "  api:\n"
            "    servers: [{address: \"r.test:80\"}]\n");
  unsetenv("FERRY_HOSTS_FILE");
  unlink(path);
  struct uppool *p = &f.ups->pools[0];
  const struct cfg_server *cs = &f.cfg->upstreams[0].servers[0];
  cr_assert_eq(p->cap, UPSTREAM_NAME_SLOTS);
  char ip[32], path2[] = "/tmp/ferry-hosts-XXXXXX";
  fd = mkstemp(path2);
  cr_assert_geq(fd, 0);
  close(fd);
  struct sockaddr_storage a;
  for (unsigned i = 2; i <= UPSTREAM_NAME_SLOTS + 1; i++) {
    snprintf(ip, sizeof(ip), "10.1.0.%u", i);
    char why[64];
    FILE *hf = fopen(path2, "w");
    fprintf(hf, "%s r.test\n", ip);
    fclose(hf);
    cr_assert_eq(resolve_hosts_file(path2, "r.test", 80, &a, 1, why, sizeof(why)), 1);
    struct upslot *s = uppool_add(p, cs, &a);
    if (i <= UPSTREAM_NAME_SLOTS)
      cr_assert_not_null(s, "address %u", i);
    else
      cr_assert_null(s, "no place left for address %u", i);
  }
  unlink(path2);
  /* gone just now: not reused yet */
  uppool_remove(p, &p->slots[1]);
  cr_assert_null(uppool_add(p, cs, &a));
  /* gone long ago with nothing in flight: reused, with a new epoch */
  p->slots[1].gone_since_ms = upstream_now_ms() - UPSTREAM_SLOT_REUSE_MS - 1;
  atomic_store(&p->slots[1].eject_until_ms, upstream_now_ms() + 100000);
  struct upslot *s = uppool_add(p, cs, &a);
  cr_assert_eq(s, &p->slots[1]);
  cr_assert_str_eq(s->name, "10.1.0.33:80");
  cr_assert_eq(atomic_load(&s->epoch), 1);
  cr_assert_eq(atomic_load(&s->eject_until_ms), 0, "the new address starts clean");
  upstream_rt_sync(&f.rt);
  cr_assert_str_eq(f.rt.servers[1].name, "10.1.0.33:80");
  cr_assert_not(f.rt.servers[1].gone);
  teardown(&f);
}

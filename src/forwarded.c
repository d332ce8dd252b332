/* forwarded: the client address behind a trusted proxy
 * (include/ferry/forwarded.h). Owns the walk over X-Forwarded-For; must not
 * touch sessions, sockets or the headers themselves (which ones are
 * forwarded is http_head's business). */
#include "ferry/forwarded.h"

#include <arpa/inet.h>
#include <string.h>

#include "ferry/cidr.h"

bool forwarded_trusted(const struct cfg_listener *l, const uint8_t addr[16], bool v6, bool known) {
  return l && known && l->ntrusted_proxies > 0 &&
         cidr_list_match(l->trusted_proxies, l->ntrusted_proxies, addr, v6);
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

const char *forwarded_client(const struct hdr_list *h, const struct cfg_listener *l, bool trusted,
                             const char *peer, struct arena *a) {
  if (!trusted)
    return peer;
  uint8_t best[16], addr[16];
  bool best_v6 = false, v6, have = false;
  /* right to left: headers last to first, entries in each last to first */
  for (uint32_t i = h->n; i-- > 0;) {
    const struct hdr *x = &h->v[i];
    if (x->tok != HDR_X_FORWARDED_FOR || (x->flags & HDRF_HOP))
      continue;
    const char *p = x->value.p;
    size_t end = x->value.n;
    for (;;) {
      size_t start = end;
      while (start > 0 && p[start - 1] != ',')
        start--;
      size_t s = start, e = end;
      while (s < e && is_ows(p[s]))
        s++;
      while (e > s && is_ows(p[e - 1]))
        e--;
      if (e > s) { /* empty list elements are allowed and skipped */
        if (!cidr_parse_ip(p + s, e - s, addr, &v6))
          goto done;
        memcpy(best, addr, 16);
        best_v6 = v6;
        have = true;
        if (!cidr_list_match(l->trusted_proxies, l->ntrusted_proxies, addr, v6))
          goto done;
      }
      if (start == 0)
        break;
      end = start - 1;
    }
  }
done:
  if (!have)
    return peer;
  char *out = arena_alloc(a, INET6_ADDRSTRLEN);
  if (!out || !inet_ntop(best_v6 ? AF_INET6 : AF_INET, best, out, INET6_ADDRSTRLEN))
    return peer;
  return out;
}

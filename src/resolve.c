/* resolve: names to addresses via getaddrinfo or a hosts file. Owns
 * nothing between calls. */
#include "ferry/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port &&
         memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Append a unless present; returns the new count. */
static int push(struct sockaddr_storage *out, int n, size_t max, const struct sockaddr_storage *a) {
  for (int i = 0; i < n; i++)
    if (same_addr(&out[i], a))
      return n;
  if ((size_t)n >= max)
    return n;
  out[n] = *a;
  return n + 1;
}

static bool parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *sin = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return true;
  }
  if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return true;
  }
  return false;
}

int resolve_hosts_file(const char *file, const char *host, uint16_t port,
                       struct sockaddr_storage *out, size_t max, char *why, size_t whylen) {
  FILE *f = fopen(file, "r");
  if (!f) {
    snprintf(why, whylen, "cannot read hosts file %s: %s", file, strerror(errno));
    return -1;
  }
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof(line), f)) {
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    char *save = NULL;
    char *ip = strtok_r(line, " \t\r\n", &save);
    if (!ip)
      continue;
    struct sockaddr_storage ss;
    if (!parse_ip(ip, port, &ss))
      continue;
    for (char *name = strtok_r(NULL, " \t\r\n", &save); name;
         name = strtok_r(NULL, " \t\r\n", &save))
      if (strcasecmp(name, host) == 0) {
        n = push(out, n, max, &ss);
        break;
      }
  }
  fclose(f);
  if (n == 0)
    snprintf(why, whylen, "not in hosts file %s", file);
  return n > 0 ? n : -1;
}

int resolve_collect(const struct addrinfo *res, uint16_t port, struct sockaddr_storage *out,
                    size_t max) {
  int n = 0;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
      memcpy(&ss, ai->ai_addr, sizeof(struct sockaddr_in));
      ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
      memcpy(&ss, ai->ai_addr, sizeof(struct sockaddr_in6));
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    } else {
      continue;
    }
    n = push(out, n, max, &ss);
  }
  return n;
}

int resolve_now(const char *hosts_file, const char *host, uint16_t port,
                struct sockaddr_storage *out, size_t max, char *why, size_t whylen) {
  if (hosts_file)
    return resolve_hosts_file(hosts_file, host, port, out, max, why, whylen);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int r = getaddrinfo(host, NULL, &hints, &res);
  if (r != 0) {
    snprintf(why, whylen, "%s", r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
    return -1;
  }
  int n = resolve_collect(res, port, out, max);
  freeaddrinfo(res);
  if (n == 0)
    snprintf(why, whylen, "no address");
  return n > 0 ? n : -1;
}

void resolve_name(const struct sockaddr_storage *a, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const void *)a;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(s->sin_port));
  } else if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const void *)a;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
    snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(s->sin6_port));
  } else {
    snprintf(out, len, "?");
  }
}

/* config: proxy.yaml -> an immutable configuration snapshot.
 *
 * The snapshot is built once by config_load_*() and is read-only afterwards;
 * it may be shared by every worker thread. Every diagnostic names the file,
 * line and column (from libyaml's marks), the key path, what was found and
 * what was expected, e.g.
 *   proxy.yaml:14:7: upstreams.api: unknown key "sever" (did you mean "servers"?)
 * All errors in a file are collected, not only the first. */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ferry/cidr.h"

struct tls_server;

enum cfg_client_verify { CLIENT_VERIFY_OFF, CLIENT_VERIFY_OPTIONAL, CLIENT_VERIFY_REQUIRE };

struct cfg_tls_cert {
  char *cert; /* PEM chain, leaf first */
  char *key;
};

/* listeners[].tls (SPEC §7). */
struct cfg_tls {
  struct cfg_tls_cert *certs; /* >= 1; the first is the default */
  size_t ncerts;
  int min_version;      /* 12 or 13 */
  char *ciphers;        /* NULL: a modern default */
  bool session_tickets; /* default true */
  char *ticket_keys;    /* NULL: random per process */
  char *client_ca;
  int client_verify; /* enum cfg_client_verify */
};

struct listener_counters;

struct cfg_listener {
  char *address; /* as written, e.g. "127.0.0.1:8080", "[::]:8080" */
  struct sockaddr_storage addr;
  bool proxy_protocol;
  /* Peers whose X-Forwarded-Proto/-Host are kept and whose X-Forwarded-For
   * names the client (SPEC §3); default none. */
  struct cidr *trusted_proxies;
  size_t ntrusted_proxies;
  struct cfg_tls *tls;        /* NULL: plain HTTP */
  struct tls_server *tls_srv; /* the contexts built from tls (a reference) */
  uint16_t redirect_https;    /* 0, or the port of 308 redirects to https */
  int line;
  /* In a worker's own copy of the listener (src/worker.c) only: where its
   * TLS handshakes are counted (NULL in the configuration itself). */
  struct listener_counters *counters;
};

struct cfg_server {
  char *address; /* as written */
  char *host;    /* host part, brackets removed for IPv6 */
  uint16_t port;
  uint32_t weight;              /* >= 1, default 1 */
  bool resolve;                 /* host is a name: resolved by upstream at start and every
                                   resolve_interval (addr is unset) */
  struct sockaddr_storage addr; /* numeric hosts: parsed at load */
  int line;
};

enum cfg_balance { BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN, BALANCE_RANDOM2, BALANCE_HASH };

struct cfg_health_check {
  bool enabled;                                    /* false when the key is absent */
  char *path;                                      /* default "/healthz" */
  uint64_t interval_ms, timeout_ms;                /* defaults 5s, 1s */
  uint32_t unhealthy_threshold, healthy_threshold; /* defaults 3, 2 */
};

struct tls_client;

/* upstreams.NAME.tls (SPEC §2, §7). */
struct cfg_upstream_tls {
  bool verify;       /* default true */
  char *ca;          /* NULL: the system store */
  char *server_name; /* NULL: each server's host */
  char *cert, *key;  /* client certificate (mTLS to the upstream) */
};

struct cfg_upstream {
  char *name;
  struct cfg_server *servers;
  size_t nservers;          /* >= 1 */
  enum cfg_balance balance; /* default round_robin */
  char *hash_key; /* "client_ip", "header:NAME", "cookie:NAME"; NULL unless balance hash */
  uint32_t keepalive_max_idle;        /* default 32 */
  uint64_t keepalive_idle_timeout_ms; /* default: timeouts.upstream_idle */
  struct cfg_health_check health_check;
  struct {
    uint32_t consecutive_failures; /* 5xx in a row that eject a server; 0 = off; default 5 */
    uint64_t eject_for_ms;         /* first ejection; doubled on repeats; default 30s */
  } passive;
  uint64_t resolve_interval_ms; /* re-resolve server names; default 30s */
  uint32_t retries;             /* default 1 */
  uint32_t max_requests;        /* circuit breaker: in flight per process; 0 = no cap */
  struct cfg_upstream_tls *tls; /* NULL: plain HTTP */
  struct tls_client *tls_cli;   /* the context built from tls (a reference) */
  int line;
};

struct cfg_kv {
  char *name;
  char *value;
};

struct cfg_header_ops {
  struct cfg_kv *set;
  size_t nset;
  struct cfg_kv *add;
  size_t nadd;
  char **remove;
  size_t nremove;
};

/* One upstream of a route's weighted split (`upstreams:`). */
struct cfg_split {
  char *name;
  size_t upstream_index; /* in config.upstreams */
  uint32_t weight;       /* 1..1000 */
};

/* `rate_limit`: a token bucket per key; `burst` tokens at most, refilled
 * at `requests` per `per_ms`. */
enum cfg_rate_key { RATE_KEY_CLIENT_IP, RATE_KEY_HEADER, RATE_KEY_ROUTE };
struct cfg_rate_limit {
  bool enabled;
  uint32_t requests; /* >= 1 */
  uint64_t per_ms;   /* >= 1 */
  uint32_t burst;    /* >= 1; default requests */
  enum cfg_rate_key key;
  char *header; /* RATE_KEY_HEADER: the header's name */
};

/* `retry` (SPEC §8): attempts on other servers of the chosen upstream
 * when an attempt fails as `on` lists, within a budget of the route's
 * recent requests. Replaces the upstream's `retries` for the route. */
#define CFG_RETRY_MAX_ATTEMPTS 10
struct cfg_retry {
  bool enabled;
  uint32_t attempts;       /* 1..CFG_RETRY_MAX_ATTEMPTS, the first included; default 2 */
  bool on_connect_failure; /* refused, unreachable, connect timed out */
  bool on_reset;           /* closed or reset before any response byte */
  uint64_t on_status[2];   /* bit s-500 of [ (s-500)/64 ]: 5xx statuses retried */
  uint32_t budget_percent; /* 0..100; default 20 */
};

/* `auth_request`: a sub-request to `upstream` before forwarding (SPEC
 * §8); off while upstream is NULL. */
struct cfg_auth_request {
  char *upstream;
  size_t upstream_index; /* in config.upstreams */
  char *path;            /* starts with '/'; may carry a query */
  char **pass_headers;   /* copied from a 2xx answer into the forwarded request */
  size_t npass_headers;
};

/* `mirror`: a copy of `percent` of the requests to `upstream`; off while
 * upstream is NULL. */
struct cfg_mirror {
  char *upstream;
  size_t upstream_index;
  uint32_t percent; /* 0..100; default 100 */
};

enum cfg_path_kind { PATH_ANY, PATH_EXACT, PATH_PREFIX, PATH_REGEX };
enum cfg_action { ACTION_UPSTREAM, ACTION_REDIRECT, ACTION_RESPOND };

struct cfg_route {
  size_t index; /* position in routes[], 0-based */
  int line, col;

  /* host: NULL = any host. Stored lower-cased. For "*.example.com",
   * host_wildcard is true and host holds the suffix ".example.com". */
  char *host;
  bool host_wildcard;

  enum cfg_path_kind path_kind;
  char *path;     /* path, path_prefix or path_regex as written */
  regex_t *regex; /* compiled REG_EXTENDED|REG_NOSUB when PATH_REGEX */

  uint64_t methods;       /* bit (1ull << llhttp_method_t); 0 = any method */
  struct cfg_kv *headers; /* all must be present with this exact value */
  size_t nheaders;

  enum cfg_action action;
  char *upstream;          /* ACTION_UPSTREAM: name (with `upstreams:`, the first) ... */
  size_t upstream_index;   /* ... and its index in config.upstreams */
  struct cfg_split *split; /* `upstreams:` (weighted split); NULL with `upstream:` */
  size_t nsplit;
  char *redirect_location;    /* ACTION_REDIRECT */
  int redirect_status;        /* 301, 302, 303, 307, 308; default 302 */
  int respond_status;         /* ACTION_RESPOND; default 200 */
  char *respond_body;         /* default "" */
  char *respond_content_type; /* default "text/plain" */

  char *rewrite_prefix; /* NULL = none; "/" strips the matched prefix */
  char *set_host;       /* NULL = client's Host */
  struct cfg_header_ops request_headers;
  struct cfg_header_ops response_headers; /* add is allowed too */
  bool inspect;

  /* traffic control (SPEC §8); absent = off */
  uint64_t timeout_ms; /* this route's upstream_response; 0 = timeouts.upstream_response */
  struct cidr *allow;  /* when set, only these client addresses */
  size_t nallow;
  struct cidr *deny; /* checked first */
  size_t ndeny;
  struct cfg_rate_limit rate_limit;
  struct cfg_retry retry;
  struct cfg_auth_request auth;
  struct cfg_mirror mirror;
};

enum cfg_log_format { LOG_FORMAT_COMBINED, LOG_FORMAT_JSON };

struct config {
  char *file; /* path as given, used in messages */

  struct cfg_listener *listeners;
  size_t nlisteners; /* >= 1 */
  uint32_t workers;  /* 0 = auto (number of cores) */
  char *pid_file;    /* NULL = none (default); else where the pid is written */

  struct {
    bool enabled;
    char *address;
    struct sockaddr_storage addr;
    bool redact;           /* default true */
    uint32_t inspect_keep; /* default 500 */
    /* inspector (src/inspect.c) */
    bool inspect_all;            /* capture every route, not only inspect: true; default false */
    uint64_t inspect_body_bytes; /* first bytes of each body kept; default 0 */
    uint64_t inspect_max_bytes;  /* bound on the capture ring's memory; default 16m */
    char **redact_headers;       /* names shown as "[redacted]"; default Authorization,
                                    Proxy-Authorization, Cookie, Set-Cookie */
    size_t nredact_headers;
    bool replay;          /* the inspector may resend captured requests; default false */
    char **allowed_hosts; /* Host names the admin serves besides IP literals and
                             localhost (DNS-rebinding guard); "*" = any; default none */
    size_t nallowed_hosts;
  } admin;

  struct {
    char *path; /* NULL = off, "-" = stdout (default), else a file */
    enum cfg_log_format format;
  } access_log;

  struct {
    uint64_t max_request_header_bytes; /* default 32k */
    uint64_t max_request_body_bytes;   /* default 0 = unlimited */
    uint32_t max_connections;          /* default 10000 */
  } limits;

  struct {
    uint64_t client_header_ms;     /* 10s */
    uint64_t client_idle_ms;       /* 60s */
    uint64_t upstream_connect_ms;  /* 3s */
    uint64_t upstream_response_ms; /* 30s */
    uint64_t upstream_idle_ms;     /* 60s */
    uint64_t drain_ms;             /* 30s */
    uint64_t drain_grace_ms;       /* 0: keep accepting this long after SIGTERM */
  } timeouts;

  struct cfg_upstream *upstreams;
  size_t nupstreams;
  struct cfg_route *routes;
  size_t nroutes; /* may be 0 (every request gets 404) */
};

/* Diagnostics collected while loading. Each message is one complete line
 * without a trailing newline, "FILE:LINE:COL: ..." for errors and
 * "FILE:LINE:COL: warning: ..." for warnings. */
struct config_diag {
  char **msgs;
  size_t n, cap;
  size_t nerrors, nwarnings;
};

/* Load and validate a configuration file. Returns 0 and sets *out on
 * success (warnings may still be in diag); returns -1 with *out == NULL when
 * there was at least one error. The caller owns *out (config_free) and the
 * messages (config_diag_free). */
int config_load_file(const char *path, struct config **out, struct config_diag *diag);

/* Same, from memory; name is used in messages in place of a file path. */
int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_diag *diag);

void config_free(struct config *cfg);
void config_diag_free(struct config_diag *diag);

/* Parse "host:port" / "[v6]:port" / ":port" (all interfaces) for a listener
 * into a socket address. Returns 0 or -1 with a reason in err. Numeric hosts
 * and "localhost" only. */
int config_parse_listen_address(const char *s, struct sockaddr_storage *out, char *err,
                                size_t errlen);

/* Duration ("250ms", "10s", "2m", "1h", bare seconds) to milliseconds and
 * size ("512", "16k", "1m", "2g") to bytes. Return 0 or -1 if malformed. */
int config_parse_duration_ms(const char *s, uint64_t *out);
int config_parse_size(const char *s, uint64_t *out);

#endif

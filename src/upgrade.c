/* upgrade: binary upgrade (SIGUSR2): the environment protocol between the
 * old and the new process, starting the new one and waiting for it to be
 * ready. See include/ferry/upgrade.h. Touches no worker, configuration or
 * admin state: main decides what to hand over and what to do with the
 * outcome. */
#include "ferry/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/log.h"

extern char **environ;

#define ENV_FDS "FERRY_INHERIT_FDS"
#define ENV_READY "FERRY_UPGRADE_READY_FD"

/* --- new process ---------------------------------------------------------- */

static bool same_sockaddr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return false;
}

/* A decimal fd (>= 3: 0..2 are stdio) ending at *end. -1 when malformed. */
static int parse_fd(const char *s, const char **end) {
  long v = 0;
  const char *p = s;
  while (*p >= '0' && *p <= '9' && v < 1000000)
    v = v * 10 + (*p++ - '0');
  *end = p;
  return p == s || v < 3 || v >= 1000000 ? -1 : (int)v;
}

/* fd is a listening TCP socket: its address into *addr. */
static bool listening_tcp(int fd, struct sockaddr_storage *addr) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || !v)
    return false;
  len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_STREAM)
    return false;
  memset(addr, 0, sizeof(*addr));
  len = sizeof(*addr);
  if (getsockname(fd, (struct sockaddr *)addr, &len) != 0)
    return false;
  return addr->ss_family == AF_INET || addr->ss_family == AF_INET6;
}

int upgrade_inherit_load(struct upgrade_inherit *in, char *err, size_t errlen) {
  memset(in, 0, sizeof(*in));
  in->ready_fd = -1;
  const char *fds = getenv(ENV_FDS), *ready = getenv(ENV_READY);
  if (!fds && !ready)
    return 0;
  int rc = 0;
  if (ready) {
    const char *end;
    in->ready_fd = parse_fd(ready, &end);
    if (in->ready_fd < 0 || *end) {
      snprintf(err, errlen,
               "%s=\"%s\" is not a file descriptor (it is set by a ferry that upgrades itself; "
               "unset it)",
               ENV_READY, ready);
      in->ready_fd = -1;
      rc = -1;
    } else {
      fcntl(in->ready_fd, F_SETFD, FD_CLOEXEC);
    }
  }
  size_t cap = 0;
  for (const char *p = fds; rc == 0 && p && *p;) {
    const char *end;
    int fd = parse_fd(p, &end);
    if (fd < 0 || (*end && *end != ',')) {
      snprintf(err, errlen,
               "%s=\"%s\" is not a list of file descriptors (it is set by a ferry that upgrades "
               "itself; unset it)",
               ENV_FDS, fds);
      rc = -1;
      break;
    }
    p = *end ? end + 1 : end;
    struct sockaddr_storage addr;
    if (!listening_tcp(fd, &addr)) {
      log_warn("upgrade: inherited file descriptor %d is not a listening TCP socket: ignored", fd);
      continue; /* not ours to close: it may be anything */
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (in->n == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      struct upgrade_sock *ns = realloc(in->socks, ncap * sizeof(*ns));
      if (!ns) {
        close(fd);
        snprintf(err, errlen, "out of memory adopting the inherited sockets");
        rc = -1;
        break;
      }
      in->socks = ns;
      cap = ncap;
    }
    in->socks[in->n++] = (struct upgrade_sock){addr, fd, false};
  }
  /* Our own children (a later upgrade) get fresh values, never these. */
  unsetenv(ENV_FDS);
  unsetenv(ENV_READY);
  if (rc != 0)
    upgrade_inherit_release(in);
  return rc;
}

bool upgrade_inherit_has(const struct upgrade_inherit *in, const struct sockaddr_storage *addr) {
  for (size_t i = 0; i < in->n; i++)
    if (same_sockaddr(&in->socks[i].addr, addr))
      return true;
  return false;
}

int upgrade_inherit_next(struct upgrade_inherit *in, const struct sockaddr_storage *addr,
                         unsigned id, unsigned nworkers) {
  unsigned k = 0; /* index among the sockets for addr */
  for (size_t i = 0; i < in->n; i++) {
    struct upgrade_sock *s = &in->socks[i];
    if (!same_sockaddr(&s->addr, addr))
      continue;
    if (k++ % nworkers == id && !s->taken) {
      s->taken = true;
      return s->fd;
    }
  }
  return -1;
}

void upgrade_inherit_release(struct upgrade_inherit *in) {
  for (size_t i = 0; i < in->n; i++)
    if (!in->socks[i].taken)
      close(in->socks[i].fd);
  free(in->socks);
  in->socks = NULL;
  in->n = 0;
}

void upgrade_inherit_ready(struct upgrade_inherit *in) {
  if (in->ready_fd < 0)
    return;
  static const char msg[] = "ready\n";
  ssize_t w;
  do
    w = write(in->ready_fd, msg, sizeof(msg) - 1);
  while (w < 0 && errno == EINTR);
  if (w != (ssize_t)sizeof(msg) - 1)
    log_warn("upgrade: cannot tell the old process that this one serves: %s (it will stop this "
             "one when its wait runs out, or keeps serving if it has exited)",
             w < 0 ? strerror(errno) : "short write");
  close(in->ready_fd);
  in->ready_fd = -1;
}

/* --- old process ---------------------------------------------------------- */

void upgrade_init(struct upgrade *u, uv_loop_t *loop, char **argv, upgrade_done_fn done,
                  void *data) {
  memset(u, 0, sizeof(*u));
  u->loop = loop;
  u->argv = argv;
  u->done = done;
  u->data = data;
  ssize_t n = readlink("/proc/self/exe", u->exe, sizeof(u->exe) - 1);
  if (n > 0) {
    u->exe[n] = '\0';
    return;
  }
  /* No /proc: argv[0], made absolute when it is a path (a bare name is
   * looked up in PATH again, as the shell did). */
  const char *a0 = argv && argv[0] ? argv[0] : "ferry";
  char buf[PATH_MAX];
  if (strchr(a0, '/') && realpath(a0, buf))
    a0 = buf;
  snprintf(u->exe, sizeof(u->exe), "%s", a0);
}

static void on_handle_closed(uv_handle_t *h) {
  struct upgrade *u = h->data;
  u->open_handles--;
}

static void close_handle(struct upgrade *u, uv_handle_t *h) {
  if (!uv_is_closing(h))
    uv_close(h, on_handle_closed);
  (void)u;
}

static void report(struct upgrade *u, bool ok, const char *why) {
  if (u->reported)
    return;
  u->reported = true;
  u->running = false;
  close_handle(u, (uv_handle_t *)&u->timer);
  close_handle(u, (uv_handle_t *)&u->pipe);
  if (ok) /* it goes on; its exit (much later) must not keep this loop up */
    uv_unref((uv_handle_t *)&u->proc);
  u->done(u, ok, u->pid, why);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
  struct upgrade *u = p->data;
  u->exited = true;
  u->exit_status = status;
  u->term_signal = sig;
  char why[160];
  if (sig)
    snprintf(why, sizeof(why), "it was killed by signal %d before it was ready", sig);
  else
    snprintf(why, sizeof(why),
             "it exited with status %lld before it was ready (its own messages above say why)",
             (long long)status);
  report(u, false, why);
  close_handle(u, (uv_handle_t *)&u->proc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct upgrade *u = h->data;
  buf->base = u->rbuf + u->nrbuf;
  buf->len = sizeof(u->rbuf) - 1 - u->nrbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  struct upgrade *u = s->data;
  if (n > 0) {
    u->nrbuf += (size_t)n;
    u->rbuf[u->nrbuf] = '\0';
    if (strstr(u->rbuf, "ready\n")) {
      u->got_ready = true;
      report(u, true, "ready");
    } else if (u->nrbuf >= sizeof(u->rbuf) - 1) {
      uv_read_stop(s); /* garbage: wait for the exit or the timeout */
    }
    return;
  }
  if (n < 0) {
    /* EOF (or an error) before "ready": the exit callback (or the
     * timeout, for a process that closed the pipe and lives on) reports. */
    u->got_eof = true;
    uv_read_stop(s);
  }
}

static void on_timeout(uv_timer_t *t) {
  struct upgrade *u = t->data;
  uv_process_kill(&u->proc, SIGQUIT);
  char why[160];
  snprintf(why, sizeof(why), "it did not say it was ready within %u s, so it was stopped",
           UPGRADE_START_MS / 1000);
  report(u, false, why);
}

/* environ without our two variables, plus fresh ones. NULL on OOM. */
static char **child_env(size_t nfds, int ready_fd) {
  size_t n = 0;
  while (environ && environ[n])
    n++;
  char **env = calloc(n + 3, sizeof(*env));
  if (!env)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], ENV_FDS "=", sizeof(ENV_FDS)) != 0 &&
        strncmp(environ[i], ENV_READY "=", sizeof(ENV_READY)) != 0)
      env[k++] = environ[i];
  size_t len = sizeof(ENV_FDS) + 1 + nfds * 8;
  char *fdv = malloc(len);
  char *rv = malloc(sizeof(ENV_READY) + 16);
  if (!fdv || !rv) {
    free(fdv);
    free(rv);
    free(env);
    return NULL;
  }
  size_t off = (size_t)snprintf(fdv, len, "%s=", ENV_FDS);
  for (size_t i = 0; i < nfds; i++)
    off += (size_t)snprintf(fdv + off, len - off, "%s%zu", i ? "," : "", 3 + i);
  snprintf(rv, sizeof(ENV_READY) + 16, "%s=%d", ENV_READY, ready_fd);
  env[k++] = fdv;
  env[k++] = rv;
  env[k] = NULL;
  return env;
}

static void free_env(char **env) {
  size_t n = 0;
  while (env[n])
    n++;
  free(env[n - 1]);
  free(env[n - 2]);
  free(env);
}

int upgrade_start(struct upgrade *u, const int *fds, size_t n, char *err, size_t errlen) {
  if (u->running || u->open_handles > 0) {
    snprintf(err, errlen, "an upgrade is already under way (wait for its outcome in the log)");
    return -1;
  }
  if (n > UPGRADE_MAX_FDS) {
    snprintf(err, errlen, "too many listening sockets to hand over (%zu, at most %u)", n,
             UPGRADE_MAX_FDS);
    return -1;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "cannot create a pipe: %s (check the open-file limit)", strerror(errno));
    return -1;
  }
  uv_stdio_container_t *stdio = calloc(n + 4, sizeof(*stdio));
  char **env = child_env(n, (int)(3 + n));
  if (!stdio || !env) {
    free(stdio);
    if (env)
      free_env(env);
    close(p[0]);
    close(p[1]);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < 3; i++) {
    /* a closed stdio fd cannot be inherited: the new process gets /dev/null */
    stdio[i].flags = fcntl(i, F_GETFD) == -1 ? UV_IGNORE : UV_INHERIT_FD;
    stdio[i].data.fd = i;
  }
  for (size_t i = 0; i < n; i++) {
    stdio[3 + i].flags = UV_INHERIT_FD;
    stdio[3 + i].data.fd = fds[i];
  }
  stdio[3 + n].flags = UV_INHERIT_FD;
  stdio[3 + n].data.fd = p[1];

  memset(&u->proc, 0, sizeof(u->proc));
  uv_process_options_t o = {0};
  o.file = u->exe;
  o.args = u->argv;
  o.env = env;
  o.stdio = stdio;
  o.stdio_count = (int)(n + 4);
  o.exit_cb = on_exit_cb;
  u->proc.data = u;
  int r = uv_spawn(u->loop, &u->proc, &o);
  free(stdio);
  free_env(env);
  close(p[1]);
  if (r < 0) {
    close(p[0]);
    snprintf(err, errlen, "cannot start %s: %s (is the new binary installed there?)", u->exe,
             uv_strerror(r));
    u->open_handles++;
    close_handle(u, (uv_handle_t *)&u->proc); /* libuv wants a failed spawn closed too */
    return -1;
  }
  u->open_handles++;
  u->pid = u->proc.pid;
  u->running = true;
  u->got_ready = u->got_eof = u->exited = u->reported = false;
  u->nrbuf = 0;
  uv_pipe_init(u->loop, &u->pipe, 0);
  u->pipe.data = u;
  u->open_handles++;
  uv_timer_init(u->loop, &u->timer);
  u->timer.data = u;
  u->open_handles++;
  if (uv_pipe_open(&u->pipe, p[0]) != 0 ||
      uv_read_start((uv_stream_t *)&u->pipe, on_alloc, on_read) != 0) {
    /* cannot hear it: it is stopped at the timeout rather than trusted */
    log_warn("upgrade: cannot read the new process's readiness pipe");
  }
  uv_timer_start(&u->timer, on_timeout, UPGRADE_START_MS, 0);
  return 0;
}

void upgrade_close(struct upgrade *u) {
  if (u->running)
    uv_process_kill(&u->proc, SIGQUIT);
  if (u->open_handles == 0)
    return;
  close_handle(u, (uv_handle_t *)&u->timer);
  close_handle(u, (uv_handle_t *)&u->pipe);
  close_handle(u, (uv_handle_t *)&u->proc);
}

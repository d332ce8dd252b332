/* upgrade: the new process's side of the handover (environment, sockets
 * dealt out to workers) and the old process's failure reports, on real
 * sockets and a real child process. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ferry/upgrade.h"

/* A listening socket on 127.0.0.1 (port 0 = any; SO_REUSEPORT so several
 * share one port), its address in *addr. */
static int listener(uint16_t port, struct sockaddr_storage *addr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(fd, 8), 0);
  socklen_t len = sizeof(*addr);
  memset(addr, 0, sizeof(*addr));
  getsockname(fd, (struct sockaddr *)addr, &len);
  return fd;
}

static uint16_t port_of(const struct sockaddr_storage *a) {
  return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

Test(upgrade, not_started_by_an_upgrade_inherits_nothing) {
  unsetenv("FERRY_INHERIT_FDS");
  unsetenv("FERRY_UPGRADE_READY_FD");
  struct upgrade_inherit in;
  char err[256];
  cr_assert_eq(upgrade_inherit_load(&in, err, sizeof(err)), 0);
  cr_assert_eq(in.n, 0);
  cr_assert_eq(in.ready_fd, -1);
  upgrade_inherit_ready(&in); /* no-op */
  upgrade_inherit_release(&in);
}

Test(upgrade, sockets_are_dealt_to_workers_in_turn_and_others_skipped) {
  struct sockaddr_storage a, b, x;
  int a0 = listener(0, &a);
  int a1 = listener(port_of(&a), &x);
  int a2 = listener(port_of(&a), &x);
  int b0 = listener(0, &b);
  int plain = open("/dev/null", O_RDONLY); /* not a socket: skipped, left open */
  char env[128];
  snprintf(env, sizeof(env), "%d,%d,%d,%d,%d", a0, b0, a1, plain, a2);
  setenv("FERRY_INHERIT_FDS", env, 1);
  struct upgrade_inherit in;
  char err[256];
  cr_assert_eq(upgrade_inherit_load(&in, err, sizeof(err)), 0, "%s", err);
  cr_assert_null(getenv("FERRY_INHERIT_FDS"), "removed for our own children");
  cr_assert_eq(in.n, 4, "four listening sockets");
  cr_assert(upgrade_inherit_has(&in, &a));
  cr_assert(upgrade_inherit_has(&in, &b));
  /* 3 sockets for a, 2 workers: worker 0 gets the 1st and 3rd, worker 1 the 2nd */
  cr_assert_eq(upgrade_inherit_next(&in, &a, 0, 2), a0);
  cr_assert_eq(upgrade_inherit_next(&in, &a, 0, 2), a2);
  cr_assert_eq(upgrade_inherit_next(&in, &a, 0, 2), -1);
  cr_assert_eq(upgrade_inherit_next(&in, &a, 1, 2), a1);
  cr_assert_eq(upgrade_inherit_next(&in, &a, 1, 2), -1);
  /* b is not taken: release closes it */
  upgrade_inherit_release(&in);
  cr_assert_eq(fcntl(b0, F_GETFD), -1, "an unclaimed socket is closed");
  cr_assert_neq(fcntl(plain, F_GETFD), -1, "a descriptor that is not a socket is left alone");
  cr_assert_neq(fcntl(a0, F_GETFD) & FD_CLOEXEC, 0, "adopted sockets are close-on-exec again");
  close(a0);
  close(a1);
  close(a2);
  close(plain);
}

Test(upgrade, a_malformed_variable_is_an_error_that_says_what_to_do) {
  setenv("FERRY_INHERIT_FDS", "3,x", 1);
  struct upgrade_inherit in;
  char err[256];
  cr_assert_eq(upgrade_inherit_load(&in, err, sizeof(err)), -1);
  cr_assert(strstr(err, "FERRY_INHERIT_FDS=\"3,x\" is not a list of file descriptors") != NULL,
            "%s", err);
  cr_assert(strstr(err, "unset it") != NULL, "%s", err);
  cr_assert_null(getenv("FERRY_INHERIT_FDS"));
}

Test(upgrade, ready_is_written_on_the_pipe) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char env[16];
  snprintf(env, sizeof(env), "%d", p[1]);
  setenv("FERRY_UPGRADE_READY_FD", env, 1);
  struct upgrade_inherit in;
  char err[256];
  cr_assert_eq(upgrade_inherit_load(&in, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(in.ready_fd, p[1]);
  upgrade_inherit_ready(&in);
  cr_assert_eq(in.ready_fd, -1);
  char buf[16] = "";
  cr_assert_eq(read(p[0], buf, sizeof(buf) - 1), 6);
  cr_assert_str_eq(buf, "ready\n");
  cr_assert_eq(read(p[0], buf, sizeof(buf)), 0, "the write end was closed");
  close(p[0]);
}

/* --- old process: a new process that exits before it is ready ----------- */

struct outcome {
  int calls;
  bool ok;
  char why[200];
};

static void on_done(struct upgrade *u, bool ok, int pid, const char *why) {
  (void)pid;
  struct outcome *o = u->data;
  o->calls++;
  o->ok = ok;
  snprintf(o->why, sizeof(o->why), "%s", why);
  upgrade_close(u);
}

Test(upgrade, a_new_process_that_exits_early_is_reported_as_a_failure) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
  struct upgrade u;
  struct outcome o = {0};
  upgrade_init(&u, &loop, argv, on_done, &o);
  snprintf(u.exe, sizeof(u.exe), "/bin/sh"); /* stands in for the installed binary */
  char err[256];
  cr_assert_eq(upgrade_start(&u, NULL, 0, err, sizeof(err)), 0, "%s", err);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(o.calls, 1);
  cr_assert(!o.ok);
  cr_assert(strstr(o.why, "exited with status 3 before it was ready") != NULL, "%s", o.why);
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

Test(upgrade, a_new_process_that_says_ready_is_reported_as_ready) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  char *argv[] = {"/bin/sh", "-c", "echo ready >&$FERRY_UPGRADE_READY_FD", NULL};
  struct upgrade u;
  struct outcome o = {0};
  upgrade_init(&u, &loop, argv, on_done, &o);
  snprintf(u.exe, sizeof(u.exe), "/bin/sh");
  char err[256];
  cr_assert_eq(upgrade_start(&u, NULL, 0, err, sizeof(err)), 0, "%s", err);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(o.calls, 1);
  cr_assert(o.ok, "%s", o.why);
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

Test(upgrade, a_missing_executable_fails_at_once_with_its_path) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  char *argv[] = {"ferry", NULL};
  struct upgrade u;
  struct outcome o = {0};
  upgrade_init(&u, &loop, argv, on_done, &o);
  snprintf(u.exe, sizeof(u.exe), "/nonexistent-dir/ferry");
  char err[256];
  cr_assert_eq(upgrade_start(&u, NULL, 0, err, sizeof(err)), -1);
  cr_assert(strstr(err, "cannot start /nonexistent-dir/ferry: no such file or directory") != NULL,
            "%s", err);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(o.calls, 0, "no outcome callback for a start that failed at once");
  cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

/* upgrade: binary upgrade (SIGUSR2), both halves.
 *
 * The old process (upgrade_start) starts the executable it was started
 * from, with its own command line, and hands it every listening socket it
 * has (each worker's SO_REUSEPORT socket per listener, and the admin's) as
 * inherited file descriptors, plus the write end of a pipe. The new process
 * (upgrade_inherit_load) finds them in its environment, adopts the ones
 * whose address its configuration listens on instead of binding them, and
 * writes "ready" on the pipe once it serves (upgrade_inherit_ready). The
 * old process then drains; if the new one exits, closes the pipe or stays
 * silent for UPGRADE_START_MS first, the old one keeps serving and says why.
 *
 * Environment (set by the old process, removed by the new one at start):
 *   FERRY_INHERIT_FDS=3,4,5,...   listening sockets, in worker order
 *   FERRY_UPGRADE_READY_FD=N      the pipe to write "ready\n" to
 *
 * Owns: finding the executable, the environment protocol, the child
 * process handle, the pipe and the start timeout. Must not touch: workers,
 * configuration, the admin (main wires them together). Main thread only. */
#ifndef FERRY_UPGRADE_H
#define FERRY_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#define UPGRADE_START_MS 60000u /* the new process must be ready within this */
#define UPGRADE_MAX_FDS 1024u   /* sockets handed over, at most */

/* --- new process ---------------------------------------------------------- */

struct upgrade_sock {
  struct sockaddr_storage addr; /* what the socket is bound to (getsockname) */
  int fd;
  bool taken;
};

struct upgrade_inherit {
  struct upgrade_sock *socks;
  size_t n;
  int ready_fd; /* -1 when this process was not started by an upgrade */
};

/* Reads (and removes) the environment above. Fds that are not listening
 * TCP sockets are closed and skipped with a warning. in is all empty when
 * this process was not started by an upgrade. 0, or -1 with a sentence in
 * err (out of memory, or a malformed variable). */
int upgrade_inherit_load(struct upgrade_inherit *in, char *err, size_t errlen);
/* An inherited socket listens on addr. */
bool upgrade_inherit_has(const struct upgrade_inherit *in, const struct sockaddr_storage *addr);
/* Sockets for one address are dealt out in turn: the k-th to worker
 * k % nworkers (same worker count: worker i gets old worker i's socket;
 * fewer workers: some get several, so none is closed with connections
 * waiting in it). Returns the next fd for worker id, marked taken (the
 * caller owns it), or -1 when there is none left. */
int upgrade_inherit_next(struct upgrade_inherit *in, const struct sockaddr_storage *addr,
                         unsigned id, unsigned nworkers);
/* Close the sockets nobody took (listeners the new configuration dropped)
 * and free the list; the ready pipe stays. */
void upgrade_inherit_release(struct upgrade_inherit *in);
/* Tell the old process that this one serves, and close the pipe. No-op
 * when not started by an upgrade. */
void upgrade_inherit_ready(struct upgrade_inherit *in);

/* --- old process ---------------------------------------------------------- */

struct upgrade;
/* Called once per upgrade_start that returned 0: ok = the new process is
 * ready (pid), or not, with why ("exited with status 1 before it was
 * ready", ...). */
typedef void (*upgrade_done_fn)(struct upgrade *u, bool ok, int pid, const char *why);

struct upgrade {
  uv_loop_t *loop;
  char exe[4096]; /* resolved at start: a binary installed over it later is the one started */
  char **argv;    /* this process's command line (not owned) */
  upgrade_done_fn done;
  void *data;

  bool running; /* between upgrade_start and done */
  bool got_ready, got_eof, exited, reported;
  int pid;
  int64_t exit_status;
  int term_signal;
  char rbuf[16];
  size_t nrbuf;
  uv_process_t proc;
  uv_pipe_t pipe;
  uv_timer_t timer;
  unsigned open_handles; /* of proc, pipe, timer: closing completes at 0 */
};

/* Remember how this process was started: the executable (/proc/self/exe,
 * else argv[0] made absolute) and argv (must outlive u). */
void upgrade_init(struct upgrade *u, uv_loop_t *loop, char **argv, upgrade_done_fn done,
                  void *data);
/* Start the new process with fds[0..n) inherited. 0, or -1 with a sentence
 * in err (an upgrade already running, the executable cannot be started). */
int upgrade_start(struct upgrade *u, const int *fds, size_t n, char *err, size_t errlen);
/* Close the handles (at exit). A new process that is ready goes on; one
 * still starting is stopped (SIGQUIT). */
void upgrade_close(struct upgrade *u);

#endif

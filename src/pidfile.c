/* pidfile: writing, reading and removing the pid file (see
 * include/ferry/pidfile.h). Plain POSIX file calls; no state. */
#include "ferry/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pidfile_write(const char *path, pid_t pid, char *err, size_t errlen) {
  char tmp[4096];
  char text[32];
  int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    snprintf(err, errlen, "cannot write pid_file %s: the path is too long", path);
    return -1;
  }
  int len = snprintf(text, sizeof(text), "%ld\n", (long)pid);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen,
             "cannot write pid_file %s: %s (check that its directory exists and ferry may "
             "write there, or change pid_file)",
             path, strerror(errno));
    return -1;
  }
  ssize_t w = write(fd, text, (size_t)len);
  int e = w == len ? 0 : w < 0 ? errno : EIO;
  if (close(fd) != 0 && e == 0)
    e = errno;
  if (e == 0 && rename(tmp, path) != 0)
    e = errno;
  if (e != 0) {
    unlink(tmp);
    snprintf(err, errlen, "cannot write pid_file %s: %s (check the file system and pid_file)", path,
             strerror(e));
    return -1;
  }
  return 0;
}

pid_t pidfile_read(const char *path) {
  char buf[32];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  char *end;
  long v = strtol(buf, &end, 10);
  if (end == buf || (*end != '\n' && *end != '\0') || v <= 0 || v > 0x7fffffffL)
    return 0;
  return (pid_t)v;
}

bool pidfile_remove_own(const char *path, pid_t pid) {
  if (pidfile_read(path) != pid)
    return false;
  return unlink(path) == 0;
}

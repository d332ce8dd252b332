/* pidfile: the file named by the top-level `pid_file` key.
 *
 * Owns writing the process id into that file and removing it at a clean
 * exit. Must not touch: the configuration, signals, sockets. A binary
 * upgrade hands the file over simply: the new process writes its own pid
 * there before it tells the old one it is ready, and the old one removes
 * the file at exit only when it still holds the old pid. Main thread only. */
#ifndef FERRY_PIDFILE_H
#define FERRY_PIDFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Write pid and a newline to path, replacing the file atomically (a
 * temporary file next to it, renamed over it), so a reader never sees a
 * half-written file. 0, or -1 with "cannot write pid_file PATH: why" in
 * err. */
int pidfile_write(const char *path, pid_t pid, char *err, size_t errlen);
/* The pid in path: > 0, or 0 when the file is missing or holds no pid. */
pid_t pidfile_read(const char *path);
/* Remove path when it holds pid (a newer process may own it by now).
 * true when it was removed. */
bool pidfile_remove_own(const char *path, pid_t pid);

#endif

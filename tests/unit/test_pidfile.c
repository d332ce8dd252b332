/* pidfile: written whole, read back, removed only by its owner. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/pidfile.h"

static char dir[64];
static char path[128];

static void setup(void) {
  strcpy(dir, "/tmp/ferry-pidfile-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/ferry.pid", dir);
}

static void teardown(void) {
  unlink(path);
  rmdir(dir);
}

TestSuite(pidfile, .init = setup, .fini = teardown);

Test(pidfile, written_as_decimal_with_newline_and_read_back) {
  char err[256] = "";
  cr_assert_eq(pidfile_write(path, 12345, err, sizeof(err)), 0, "%s", err);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char buf[32] = "";
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  cr_assert_str_eq(buf, "12345\n");
  cr_assert_eq(n, 6);
  cr_assert_eq(pidfile_read(path), 12345);
}

Test(pidfile, rewrite_replaces_the_pid_and_leaves_no_temporary) {
  char err[256] = "";
  cr_assert_eq(pidfile_write(path, 99999, err, sizeof(err)), 0);
  cr_assert_eq(pidfile_write(path, 7, err, sizeof(err)), 0);
  cr_assert_eq(pidfile_read(path), 7);
  char tmp[160];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  struct stat st;
  cr_assert_neq(stat(tmp, &st), 0, "the temporary file was renamed away");
}

Test(pidfile, removed_only_while_it_holds_the_callers_pid) {
  char err[256] = "";
  cr_assert_eq(pidfile_write(path, 200, err, sizeof(err)), 0);
  cr_assert(!pidfile_remove_own(path, 100), "another pid: the file stays");
  cr_assert_eq(pidfile_read(path), 200);
  cr_assert(pidfile_remove_own(path, 200));
  struct stat st;
  cr_assert_neq(stat(path, &st), 0, "removed");
  cr_assert_eq(pidfile_read(path), 0, "a missing file reads as no pid");
}

Test(pidfile, unwritable_directory_is_an_error_that_names_the_file) {
  char err[256] = "";
  cr_assert_eq(pidfile_write("/nonexistent-dir/ferry.pid", 1, err, sizeof(err)), -1);
  cr_assert(strstr(err, "cannot write pid_file /nonexistent-dir/ferry.pid: No such file") != NULL,
            "%s", err);
}

Test(pidfile, garbage_reads_as_no_pid) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("not a pid\n", f);
  fclose(f);
  cr_assert_eq(pidfile_read(path), 0);
}

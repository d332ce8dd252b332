/* err: one table of ferry's error codes, their names and text, and the one
 * mapping from errors to HTTP statuses. */
#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "ferry/err.h"
#include "ferry/request.h"
#include "leak_check.h"

static const struct {
  int code;
  const char *name;
} own[] = {
#define ROW(name, code, status, text) {code, "FERRY_E_" #name},
    FERRY_ERRORS(ROW)
#undef ROW
};

Test(err, own_codes_are_distinct_and_outside_libuv) {
  size_t n = sizeof own / sizeof own[0];
  for (size_t i = 0; i < n; i++) {
    char buf[64];
    cr_assert_lt(own[i].code, 0);
    uv_err_name_r(own[i].code, buf, sizeof buf);
    cr_assert(strncmp(buf, "Unknown system error", 20) == 0, "%s collides with libuv's %s",
              own[i].name, buf);
    for (size_t j = i + 1; j < n; j++)
      cr_assert_neq(own[i].code, own[j].code, "%s and %s", own[i].name, own[j].name);
    cr_assert_str_eq(ferry_err_name(own[i].code), own[i].name);
    cr_assert_str_neq(ferry_strerror(own[i].code), "unknown error");
  }
}

Test(err, libuv_codes_pass_through) {
  cr_assert_str_eq(ferry_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_assert_str_eq(ferry_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
  cr_assert_str_eq(ferry_err_name(UV_EOF), "EOF");
  cr_assert_str_eq(ferry_strerror(UV_EMFILE), uv_strerror(UV_EMFILE));
  cr_assert_str_eq(ferry_err_name(0), "OK");
  cr_assert_str_eq(ferry_strerror(0), "ok");
  /* codes nobody defines: static text, nothing allocated (LeakSanitizer) */
  cr_assert_str_eq(ferry_err_name(-99999), "UNKNOWN");
  cr_assert_str_eq(ferry_strerror(-99999), "unknown error");
  cr_assert_str_eq(ferry_strerror(7), "unknown error");
  cr_assert_str_eq(ferry_strerror(FERRY_E_HEAD_TOO_LARGE), "request head too large");
  check_leaks();
}

Test(err, http_status_for_each_kind_of_failure) {
  static const struct {
    int err, status;
  } cases[] = {
      /* the upstream answered badly or not at all */
      {UV_ECONNREFUSED, 502},
      {UV_ECONNRESET, 502},
      {UV_EPIPE, 502},
      {UV_EOF, 502},
      {UV_EPROTO, 502},
      {UV_EHOSTUNREACH, 502},
      {UV_ENETUNREACH, 502},
      {FERRY_E_INVALID_RESPONSE, 502},
      {FERRY_E_RESPONSE_HEAD_TOO_LARGE, 502},
      {FERRY_E_RESOLVE, 502},
      /* too slow */
      {UV_ETIMEDOUT, 504},
      {FERRY_E_CONNECT_TIMEOUT, 504},
      {FERRY_E_RESPONSE_TIMEOUT, 504},
      /* this host is short of something, or no server may be tried */
      {UV_EMFILE, 503},
      {UV_ENFILE, 503},
      {UV_ENOMEM, 503},
      {UV_ENOBUFS, 503},
      {UV_EADDRNOTAVAIL, 503},
      {FERRY_E_NO_SERVER, 503},
      /* the client's request */
      {FERRY_E_BAD_REQUEST, 400},
      {FERRY_E_REQUEST_TIMEOUT, 408},
      {FERRY_E_BODY_TOO_LARGE, 413},
      {FERRY_E_URI_TOO_LONG, 414},
      {FERRY_E_HEAD_TOO_LARGE, 431},
      {FERRY_E_UNKNOWN_CODING, 501},
      {FERRY_E_VERSION, 505},
      {FERRY_E_PP_V1_SYNTAX, 400},
      /* not an error */
      {0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_assert_eq(ferry_err_http_status(cases[i].err), cases[i].status, "%s: %d, want %d",
                 ferry_err_name(cases[i].err), ferry_err_http_status(cases[i].err),
                 cases[i].status);
}

Test(err, local_shortages_are_not_the_peers_fault) {
  cr_assert(ferry_err_is_local(UV_EMFILE));
  cr_assert(ferry_err_is_local(UV_ENFILE));
  cr_assert(ferry_err_is_local(UV_ENOMEM));
  cr_assert(ferry_err_is_local(UV_ENOBUFS));
  cr_assert(ferry_err_is_local(UV_EADDRNOTAVAIL));
  cr_assert_not(ferry_err_is_local(UV_ECONNREFUSED));
  cr_assert_not(ferry_err_is_local(UV_ETIMEDOUT));
  cr_assert_not(ferry_err_is_local(FERRY_E_INVALID_RESPONSE));
  cr_assert_not(ferry_err_is_local(0));
}

Test(err, request_checks_share_the_one_table) {
  cr_assert_eq(ferry_err_http_status(request_err_code(REQUEST_E_HOST_BAD)), 400);
  cr_assert_eq(ferry_err_http_status(request_err_code(REQUEST_E_TE_CODING)), 501);
  cr_assert_eq(ferry_err_http_status(request_err_code(REQUEST_E_VERSION)), 505);
  cr_assert_eq(request_status(REQUEST_E_TOO_LONG), 414);
  cr_assert_str_eq(ferry_err_name(request_err_code(REQUEST_E_HOST_BAD)),
                   "FERRY_E_REQUEST_HOST_BAD");
  cr_assert_str_eq(request_message(REQUEST_E_CONNECT),
                   ferry_strerror(request_err_code(REQUEST_E_CONNECT)));
  cr_assert_eq(request_err_code(REQUEST_OK), 0);
  /* no overlap with ferry's other codes or libuv's */
  cr_assert_lt(request_err_code(REQUEST_E_CONNECT), FERRY_E_PP_V2_LENGTH);
}

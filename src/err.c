/* err: names, descriptions and HTTP statuses of error codes
 * (include/ferry/err.h). Owns the FERRY_ERRORS table's expansion; must not
 * touch anything else: pure, no state, no allocation. */
#include "ferry/err.h"

#include <string.h>
#include <uv.h>

/* The request checks' rows, by index (code FERRY_E_REQUEST_BASE - 1 - i). */
static const struct {
  const char *name;
  int status;
  const char *text;
} request_rows[] = {
#define FERRY_REQUEST_ROW(name, status, text) {"FERRY_E_REQUEST_" #name, status, text},
    FERRY_REQUEST_ERRORS(FERRY_REQUEST_ROW)
#undef FERRY_REQUEST_ROW
};
#define NREQUEST (sizeof request_rows / sizeof request_rows[0])

/* The row of a request-check code, or -1. */
static int request_row(int err) {
  int i = FERRY_E_REQUEST_BASE - 1 - err;
  return i >= 0 && (size_t)i < NREQUEST ? i : -1;
}

/* libuv allocates (and never frees) a string for codes it does not know;
 * ask with the _r variant first so that never happens. */
static bool uv_knows(int err) {
  char buf[64];
  uv_err_name_r(err, buf, sizeof buf);
  return strncmp(buf, "Unknown system error", 20) != 0;
}

const char *ferry_err_name(int err) {
  if (request_row(err) >= 0)
    return request_rows[request_row(err)].name;
  switch (err) {
  case 0:
    return "OK";
#define FERRY_ERR_NAME(name, code, status, text)                                                   \
  case code:                                                                                       \
    return "FERRY_E_" #name;
    FERRY_ERRORS(FERRY_ERR_NAME)
#undef FERRY_ERR_NAME
  default:
    return err < 0 && uv_knows(err) ? uv_err_name(err) : "UNKNOWN";
  }
}

const char *ferry_strerror(int err) {
  if (request_row(err) >= 0)
    return request_rows[request_row(err)].text;
  switch (err) {
  case 0:
    return "ok";
#define FERRY_ERR_TEXT(name, code, status, text)                                                   \
  case code:                                                                                       \
    return text;
    FERRY_ERRORS(FERRY_ERR_TEXT)
#undef FERRY_ERR_TEXT
  default:
    return err < 0 && uv_knows(err) ? uv_strerror(err) : "unknown error";
  }
}

bool ferry_err_is_local(int err) {
  switch (err) {
  case UV_EMFILE:
  case UV_ENFILE:
  case UV_ENOMEM:
  case UV_ENOBUFS:
  case UV_EADDRNOTAVAIL:
  case UV_EAI_MEMORY:
    return true;
  default:
    return false;
  }
}

int ferry_err_http_status(int err) {
  if (err >= 0)
    return 0;
  if (request_row(err) >= 0)
    return request_rows[request_row(err)].status;
  switch (err) {
#define FERRY_ERR_STATUS(name, code, status, text)                                                 \
  case code:                                                                                       \
    return status;
    FERRY_ERRORS(FERRY_ERR_STATUS)
#undef FERRY_ERR_STATUS
  case UV_ETIMEDOUT:
    return 504;
  default:
    return ferry_err_is_local(err) ? 503 : 502;
  }
}

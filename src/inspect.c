/* inspect: capture of exchanges for the inspector, on the worker.
 *
 * Owns: each captured exchange's capture state (struct inspect_ex: the
 * response heads, body prefixes, WebSocket frames, timestamps) and the
 * worker's batch of records handed to the admin thread once per loop
 * turn. It only reads the exchange's fields (never its session or
 * upstream connection) and never does I/O; the records themselves, the
 * store and the renderings are src/insprec.c's. */
#include "ferry/inspect.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/exchange.h"
#include "ferry/explain.h"
#include "ferry/filter.h"
#include "ferry/inspector.h"
#include "ferry/request.h"
#include "ferry/router.h"
#include "ferry/snapshot.h"
#include "ferry/tls.h"
#include "ferry/upstream.h"
#include "ferry/wctx.h"

void inspect_tunnel_bytes(struct exchange *ex, int dir, const char *p, size_t n) {
  struct inspect_ws_log *log = &ex->insp.ws;
  if (ex->insp.ws_off)
    return;
  if (!log->frames) {
    /* Arena memory is aligned to its block's data, not to 8 bytes: align here. */
    char *mem = arena_alloc(&ex->arena, INSPECT_WS_MAX_FRAMES * sizeof *log->frames + 8);
    log->frames =
        mem ? (struct inspect_ws_frame *)(void *)(mem + ((8 - ((uintptr_t)mem & 7)) & 7)) : NULL;
    if (!log->frames) {
      ex->insp.ws_off = true; /* no room in this exchange's arena: frames are not shown */
      return;
    }
    log->preview_left = ex->w->cfg->admin.inspect_body_bytes;
    log->dir[0].frame = log->dir[1].frame = -1;
  }
  inspect_ws_feed(log, dir, p, n);
}

/* --- capture on the worker ------------------------------------------------- */

/* End of a loop turn: hand this turn's records to the admin thread. */
static void inspect_batch_flush(uv_check_t *h) {
  struct worker *w = h->data;
  struct inspect_batch *b = &w->insp_batch;
  if (!b->head)
    return;
  struct inspect_rec *list = b->head;
  b->head = b->tail = NULL;
  inspector_post(w->insp, list);
}

void inspect_batch_init(struct worker *w) {
  struct inspect_batch *b = &w->insp_batch;
  memset(b, 0, sizeof *b);
  uv_check_init(&w->loop, &b->check);
  b->check.data = w;
  uv_unref((uv_handle_t *)&b->check);
}

void inspect_batch_close(struct worker *w) {
  struct inspect_batch *b = &w->insp_batch;
  inspect_batch_flush(&b->check);
  if (!uv_is_closing((uv_handle_t *)&b->check))
    uv_close((uv_handle_t *)&b->check, NULL);
}

void inspect_begin(struct exchange *ex, const struct cfg_route *r) {
  if (!inspect_wanted(ex->w->cfg, r))
    return;
  ex->insp.on = true;
  ex->insp.t_head = uv_hrtime();
  ex->insp.req_head_bytes = ex->req_head_bytes;
}

void inspect_note_response(struct exchange *ex, struct iobuf *b, bool from_upstream) {
  if (ex->insp.client_head)
    iobuf_unref(ex->insp.client_head);
  iobuf_ref(b);
  ex->insp.client_head = b;
  if (from_upstream) {
    ex->insp.upstream_responded = true;
    ex->insp.t_response = uv_hrtime();
    ex->insp.upstream_minor = ex->resp_minor;
  }
}

void inspect_body(struct exchange *ex, int dir, const char *p, size_t n) {
  uint64_t max = ex->w->cfg->admin.inspect_body_bytes;
  if (max == 0 || ex->insp.body_n[dir] >= max)
    return;
  if (!ex->insp.body[dir]) {
    ex->insp.body[dir] = arena_alloc(&ex->arena, (size_t)max);
    if (!ex->insp.body[dir])
      return;
  }
  size_t room = (size_t)max - ex->insp.body_n[dir];
  size_t k = n < room ? n : room;
  memcpy(ex->insp.body[dir] + ex->insp.body_n[dir], p, k);
  ex->insp.body_n[dir] += (uint32_t)k;
}

void inspect_release(struct exchange *ex) {
  if (ex->insp.client_head) {
    iobuf_unref(ex->insp.client_head);
    ex->insp.client_head = NULL;
  }
}

static int64_t span_us(uint64_t from, uint64_t to) {
  if (!from || !to || to < from)
    return -1;
  return (int64_t)((to - from) / 1000);
}

/* Decimal digits of v at out (at most 20); returns how many. */
static size_t put_uint(char *out, uint64_t v) {
  char tmp[20];
  size_t k = 0;
  do {
    tmp[k++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < k; i++)
    out[i] = tmp[k - 1 - i];
  return k;
}

/* "Why this route": for each route before the one that matched (every
 * route when none did), the first condition the request fails, as
 * `ferry explain` words it, into out as "INDEX LINE REASON\n" lines. Runs
 * the router's own check (router_route_check) on the host and path the
 * exchange was matched with, only for captured exchanges. Returns the
 * length; *more gets the routes left out when out is full. */
static size_t why_this_route(struct exchange *ex, char *out, size_t cap, uint32_t *more) {
  const struct config *cfg = ex->gen ? ex->gen->snap->cfg : ex->w->cfg;
  size_t n = 0, upto = ex->route ? ex->route->index : cfg->nroutes;
  *more = 0;
  if (upto == 0)
    return 0;
  if (!ex->norm.p)
    return 0; /* refused before routing: no route was tried */
  struct route_query q = {router_host_strip_port(ex->host), ex->norm, ex->method, &ex->req_hdrs};
  for (size_t i = 0; i < upto; i++) {
    if (cap - n < 320) {
      *more = (uint32_t)(upto - i);
      break;
    }
    size_t hi;
    enum router_skip why = router_route_check(&cfg->routes[i], &q, &hi);
    n += put_uint(out + n, i);
    out[n++] = ' ';
    n += put_uint(out + n, (uint64_t)(cfg->routes[i].line > 0 ? cfg->routes[i].line : 0));
    out[n++] = ' ';
    n += explain_skip_reason(out + n, cap - n - 1 < 256 ? cap - n - 1 : 256, &cfg->routes[i], &q,
                             why, hi);
    out[n++] = '\n';
  }
  return n;
}

/* Each server tried, "SERVER RESULT\n": why it was retried (src/retry.c
 * records it), else "answered" for the one whose response went to the
 * client, or "failed". */
static size_t tries_text(const struct exchange *ex, char *out, size_t cap) {
  size_t n = 0;
  uint32_t upto = ex->ntried < EX_MAX_TRIED ? ex->ntried : EX_MAX_TRIED;
  if (!ex->insp.t_connect)
    return 0;
  for (uint32_t i = 0; i < upto && cap - n > 96; i++) {
    unsigned why = ex->tried_why[i];
    char st[8];
    const char *res = why ? retry_reason_name((enum retry_reason)(why - 1))
                      : ex->insp.upstream_responded && i + 1 == upto ? "answered"
                                                                     : "failed";
    if (why == RETRY_STATUS + 1) {
      snprintf(st, sizeof st, "%u", (unsigned)ex->tried_status[i]);
      res = st;
    }
    int k = snprintf(out + n, cap - n, "%.64s %s\n", ex->tried[i]->name, res);
    n += k > 0 ? (size_t)k : 0;
  }
  return n;
}

void inspect_capture(struct exchange *ex) {
  struct worker *w = ex->w;
  const struct config *cfg = w->cfg;
  uint64_t now = uv_hrtime();
  struct inspect_kv req[EX_MAX_HEADERS], up[EX_MAX_HEADERS];
  for (uint32_t i = 0; i < ex->req_hdrs.n; i++)
    req[i] = (struct inspect_kv){ex->req_hdrs.v[i].name, ex->req_hdrs.v[i].value};
  uint32_t nup = ex->insp.upstream_responded ? ex->resp_hdrs.n : 0;
  for (uint32_t i = 0; i < nup; i++)
    up[i] = (struct inspect_kv){ex->resp_hdrs.v[i].name, ex->resp_hdrs.v[i].value};

  const char *method = llhttp_method_name((llhttp_method_t)ex->method);
  char version[16], client[INET6_ADDRSTRLEN + 8], label[512], rline[64 + 1024];
  snprintf(version, sizeof version, "HTTP/1.%d", ex->minor);
  snprintf(client, sizeof client, "%s:%u", ex->peer_ip, (unsigned)ex->peer_port);
  struct slice req_line;
  {
    /* "METHOD target HTTP/1.x", built in the arena when long */
    size_t need = strlen(method) + ex->url.n + 12;
    char *lb = need <= sizeof rline ? rline : arena_alloc(&ex->arena, need);
    int k = lb ? snprintf(lb, need, "%s %.*s %s", method, (int)ex->url.n, ex->url.p, version) : 0;
    req_line = (struct slice){lb, k > 0 ? (size_t)k : 0};
  }
  char upline[128 + 256];
  struct slice up_line = {NULL, 0};
  if (ex->insp.upstream_responded) {
    int k = snprintf(upline, sizeof upline, "HTTP/1.%u %d %.*s", (unsigned)ex->insp.upstream_minor,
                     ex->status, (int)(ex->reason.n > 256 ? 256 : ex->reason.n), ex->reason.p);
    up_line = (struct slice){upline, k > 0 ? (size_t)k : 0};
  }
  size_t nlabel = ex->route ? router_route_label(ex->route, label, sizeof label) : 0;
  char tries[EX_MAX_TRIED * 96];
  size_t ntries = tries_text(ex, tries, sizeof tries);
  char why[8192], auth[32];
  size_t nauth = 0;
  if (ex->auth_note) {
    int k = ex->auth_status ? snprintf(auth, sizeof auth, "%s %d", ex->auth_note, ex->auth_status)
                            : snprintf(auth, sizeof auth, "%s", ex->auth_note);
    nauth = k > 0 ? (size_t)k : 0;
  }
  uint32_t why_more = 0;
  size_t nwhy = why_this_route(ex, why, sizeof why, &why_more);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t wall_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  int64_t total_us = span_us(ex->insp.t_head, now);

  struct inspect_src src = {
      .time_us = wall_us - (total_us > 0 ? total_us : 0),
      .request_id = ex->rid,
      .trace_id = slice_cstr(ex->trace_id),
      .tls = ex->tls_info != NULL,
      .tls_version = ex->tls_info ? slice_cstr(ex->tls_info->version) : (struct slice){NULL, 0},
      .tls_cipher = ex->tls_info ? slice_cstr(ex->tls_info->cipher) : (struct slice){NULL, 0},
      .tls_sni = ex->tls_info ? slice_cstr(ex->tls_info->sni) : (struct slice){NULL, 0},
      .tls_alpn = ex->tls_info ? ex->tls_info->alpn : (struct slice){NULL, 0},
      .tls_client_subject =
          ex->tls_info ? slice_cstr(ex->tls_info->client_subject) : (struct slice){NULL, 0},
      .auth = (struct slice){auth, nauth},
      .mirror = slice_cstr(ex->mirror_note),
      .client = slice_cstr(client),
      .listener = slice_cstr(ex->listener),
      .method = slice_cstr(method),
      .target = ex->url,
      .host = ex->host,
      .version = slice_cstr(version),
      .route_index = ex->route ? (int)ex->route->index : -1,
      .route_line = ex->route ? ex->route->line : 0,
      .route_label = (struct slice){label, nlabel},
      .config_file = slice_cstr(cfg->file),
      .skipped = {why, nwhy},
      .skipped_more = why_more,
      .upstream = ex->up ? slice_cstr(ex->up->cfg->name) : (struct slice){NULL, 0},
      .server = ex->srv ? slice_cstr(ex->srv->name) : (struct slice){NULL, 0},
      .error = slice_cstr(ex->error_note),
      /* servers tried, plus the keep-alive race retry on the same one */
      .attempts = ex->insp.t_connect ? ex->ntried + (ex->retried ? 1u : 0u) : 0u,
      .tries = {tries, ntries},
      .status = ex->resp_started ? ex->status : 0,
      .complete = ex->resp_started && ex->resp_done,
      .req_head_bytes = ex->insp.req_head_bytes,
      .req_body_bytes = ex->req_body_bytes,
      .resp_body_bytes = ex->resp_body_bytes,
      .queue_us = span_us(ex->insp.t_head, ex->insp.t_connect),
      .connect_us = span_us(ex->insp.t_connect, ex->insp.t_connected),
      .ttfb_us = span_us(ex->insp.t_connected, ex->insp.t_response),
      .total_us = total_us,
      .has_body = ex->req_chunked || (ex->req_has_length && ex->req_length > 0),
      .body = {{ex->insp.body[0], ex->insp.body_n[0]}, {ex->insp.body[1], ex->insp.body_n[1]}},
      .req_line = req_line,
      .req = req,
      .nreq = ex->req_hdrs.n,
      .fwd_head = ex->uhead_buf && ex->insp.t_connect
                      ? (struct slice){ex->uhead_buf->data, ex->uhead_buf->len}
                      : (struct slice){NULL, 0},
      .up_line = up_line,
      .up = up,
      .nup = nup,
      .up_present = ex->insp.upstream_responded,
      .client_head = ex->insp.client_head
                         ? (struct slice){ex->insp.client_head->data, ex->insp.client_head->len}
                         : (struct slice){NULL, 0},
      .redact = cfg->admin.redact ? cfg->admin.redact_headers : NULL,
      .nredact = cfg->admin.redact ? cfg->admin.nredact_headers : 0,
  };
  struct inspect_out frames = {0};
  if (ex->insp.ws.frames && (ex->insp.ws.nframes || ex->insp.ws.dropped)) {
    inspect_ws_render(&frames, &ex->insp.ws);
    if (ex->insp.ws.dropped) {
      char more[64];
      snprintf(more, sizeof more, ",\"frames_dropped\":%u", (unsigned)ex->insp.ws.dropped);
      inspect_out_puts(&frames, more);
    }
    if (!frames.oom)
      src.frames_json = (struct slice){frames.p, frames.n};
  }
  struct inspect_rec *rec = inspect_rec_build(&src);
  free(frames.p);
  if (!rec)
    return;
  struct inspect_batch *b = &w->insp_batch;
  rec->next = NULL;
  if (b->tail)
    b->tail->next = rec;
  else
    b->head = rec;
  b->tail = rec;
  if (!b->started) {
    b->started = true;
    uv_check_start(&b->check, inspect_batch_flush);
  }
}

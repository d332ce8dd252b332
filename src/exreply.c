/* exreply: the exchange's own answers: a complete response ferry makes
 * itself (an error status, a redirect, a route's `respond`, a relayed
 * auth answer), whether the client connection stays open after it, and
 * handing it to the session. Owns nothing of its own; the exchange's
 * fields are src/exchange.c's and the bytes are built by src/reply.c.
 * Must not free the session or the upstream connection: it asks
 * session_close / connpool_close. Its functions keep the exchange_ names
 * they are declared under in exchange.h. */
#include "ferry/connpool.h"
#include "ferry/exchange.h"
#include "ferry/reply.h"
#include "ferry/session.h"
#include "ferry/wctx.h"

bool exchange_reply_keep(const struct exchange *ex, bool close) {
  const struct session *s = ex->s;
  bool no_body_left = ex->req_done || (!ex->req_chunked && ex->req_length == 0);
  bool in_head = ex->state == EX_HEAD || ex->state == EX_CONNECTING;
  return !close && ex->client_keepalive && !s->peer_eof && !ex->w->stopping &&
         (ex->req_done || (in_head && no_body_left));
}

void exchange_reply_block(struct exchange *ex, int status, struct iobuf *b, uint64_t body_n,
                          bool keep) {
  struct session *s = ex->s;
  int r = stream_add(&s->st, b->data, b->len, b);
  if (ex->insp.on)
    inspect_note_response(ex, b, false);
  if (r != 0) {
    session_close(s);
    return;
  }
  ex->status = status;
  ex->resp_started = true;
  ex->resp_done = true;
  ex->resp_body_bytes = body_n;
  ex->state = EX_DONE;
  exchange_log(ex);
  session_exchange_done(s, keep);
}

void exchange_reply_full(struct exchange *ex, int status, struct slice content_type,
                         struct slice body, struct slice location, bool close) {
  struct session *s = ex->s;
  if (ex->uc) {
    connpool_close(ex->uc);
    ex->uc = NULL;
  }
  if (ex->resp_started) {
    /* Part of a response already went out: the only honest signal left is
     * to cut the connection. */
    exchange_log(ex);
    session_close(s);
    return;
  }
  bool keep = exchange_reply_keep(ex, close);
  if (!ex->rid.n) {
    wctx_request_id(ex->w, ex->request_id);
    ex->rid = slice_cstr(ex->request_id);
  }
  bool head_only = ex->method == HTTP_HEAD;
  struct reply rp = {.status = status,
                     .content_type = content_type,
                     .body = body,
                     .location = location,
                     .request_id = ex->rid,
                     .date = wctx_http_date(ex->w),
                     .minor = ex->minor,
                     .keep_alive = keep,
                     .head_only = head_only,
                     .retry_after = ex->retry_after,
                     .route_hdrs = ex->route && ex->route->action != ACTION_UPSTREAM
                                       ? &ex->route->response_headers
                                       : NULL};
  size_t need = reply_build(NULL, 0, &rp);
  struct iobuf *b = iobuf_get(&ex->w->bufs, need);
  if (!b) {
    session_close(s);
    return;
  }
  reply_build(b->data, need, &rp);
  b->len = (uint32_t)need;
  exchange_reply_block(ex, status, b, head_only ? 0 : body.n, keep);
  iobuf_unref(b);
}

void exchange_reply(struct exchange *ex, int status, const char *body, bool close) {
  exchange_reply_full(ex, status, SLICE_LIT("text/plain; charset=utf-8"),
                      slice_cstr(body ? body : reply_default_body(status)), (struct slice){NULL, 0},
                      close);
}

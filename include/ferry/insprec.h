/* insprec: the inspector's records (one allocation each, owning all
 * their bytes), WebSocket frame logs, the store of recent records,
 * filters and renderings (JSON, Server-Sent Events, replay). Pure over
 * records; the store is the admin thread's. The capture on the worker is
 * src/inspect.c's. */
#ifndef FERRY_INSPREC_H
#define FERRY_INSPREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/config.h"
#include "ferry/slice.h"

struct inspect_rec;
struct inspect_out;
struct filter;

/* --- WebSocket frames of an upgraded exchange ------------------------------ *
 * For a captured exchange that became a tunnel after a 101 (WebSocket), the
 * bytes each way are read as WebSocket frames (RFC 6455 5.2): direction,
 * opcode, FIN, payload size and the first bytes of text frames (unmasked).
 * At most INSPECT_WS_MAX_FRAMES frames are kept (the rest are counted), and
 * the text previews together stay within admin.inspect_body_bytes. The
 * parser only reads; a stream that is not WebSocket framing stops it. */
#define INSPECT_WS_MAX_FRAMES 100
#define INSPECT_WS_PREVIEW 64

struct inspect_ws_frame {
  uint8_t dir;    /* 0: client -> upstream, 1: upstream -> client */
  uint8_t opcode; /* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
  bool fin;
  uint16_t npreview;
  uint64_t size; /* payload bytes */
  char preview[INSPECT_WS_PREVIEW];
};

/* One direction's frame parser. */
struct inspect_ws_dir {
  uint8_t hdr[14];
  uint8_t hlen, need; /* header bytes held / needed (0: not started) */
  bool broken;        /* not WebSocket framing: parsing stopped */
  bool in_payload;
  uint64_t left, done; /* payload bytes left / seen in the current frame */
  int32_t frame;       /* the frame taking a preview, -1 none */
};

struct inspect_ws_log {
  struct inspect_ws_dir dir[2];
  struct inspect_ws_frame *frames; /* INSPECT_WS_MAX_FRAMES, the caller's memory */
  uint32_t nframes, dropped;
  uint64_t preview_left; /* bytes of preview still allowed */
};

/* Read n bytes going dir (0 client -> upstream, 1 upstream -> client).
 * Pure: fills log->frames (which must point at INSPECT_WS_MAX_FRAMES
 * entries). */
void inspect_ws_feed(struct inspect_ws_log *log, int dir, const char *p, size_t n);
/* log's frames as a JSON array (for the record and tests). */
void inspect_ws_render(struct inspect_out *o, const struct inspect_ws_log *log);

/* --- records -------------------------------------------------------------- */

struct inspect_kv {
  struct slice name, value;
};

enum inspect_head_kind {
  INSPECT_REQUEST_CLIENT,    /* the request as the client sent it */
  INSPECT_REQUEST_UPSTREAM,  /* the request as ferry forwarded it */
  INSPECT_RESPONSE_UPSTREAM, /* the response as the upstream sent it */
  INSPECT_RESPONSE_CLIENT,   /* the response as ferry returned it */
  INSPECT_NHEADS
};

struct inspect_head {
  bool present;
  struct slice line; /* request or status line, without CRLF */
  struct inspect_kv *h;
  uint32_t n;
};

struct inspect_rec {
  struct inspect_rec *next; /* handoff list; not used once stored */
  uint64_t id;              /* set by the store: 1, 2, ... in arrival order */
  size_t size;              /* bytes of this allocation */
  int64_t time_us;          /* wall clock (Unix, microseconds) when the head was complete */
  struct slice request_id, client, listener, method, target, host, version;
  int route_index; /* -1: no route matched */
  int route_line;
  struct slice route_label; /* e.g. "host api.example.com, path_prefix /api" */
  struct slice config_file; /* the configuration file the route is in (-c FILE) */
  struct slice frames_json; /* WebSocket frames as a JSON array (inspect_ws_render); n == 0: none */
  struct slice skipped;     /* why this route: "INDEX LINE REASON\n" for each earlier route (every
                               route when none matched), as `ferry explain` says it */
  uint32_t skipped_more;    /* earlier routes left out of skipped to bound its size */
  struct slice upstream, server, error;
  struct slice trace_id; /* W3C trace id sent upstream; n == 0: not forwarded */
  /* The client connection's TLS (tls false: plain): version, cipher, SNI,
   * ALPN and the verified client certificate's subject (n == 0: none). */
  bool tls;
  struct slice tls_version, tls_cipher, tls_sni, tls_alpn, tls_client_subject;
  struct slice auth;   /* auth_request's decision ("allowed 200", "denied 401", "error");
                          n == 0: no check */
  struct slice mirror; /* the mirror copy: "sent", "dropped", "failed"; n == 0: not sampled */
  uint32_t attempts;   /* upstream connections tried (0: answered by ferry itself) */
  struct slice tries;  /* each server tried: "SERVER RESULT\n", RESULT connect_failure,
                          reset, a status retried, "answered" or "failed" (n == 0: none) */
  int status;          /* 0: no response was sent */
  bool complete;       /* the whole response reached the client's queue; false when it was
                          cut short (client gone, upstream failed mid-body, a timeout) */
  uint64_t req_head_bytes, req_body_bytes;   /* from the client */
  uint64_t resp_head_bytes, resp_body_bytes; /* to the client (body: as received upstream) */
  /* microseconds; -1: that phase did not happen */
  int64_t queue_us, connect_us, ttfb_us, total_us;
  bool redacted;        /* at least one value was replaced by "[redacted]" */
  bool has_body;        /* the request carried a body */
  struct slice body[2]; /* first admin.inspect_body_bytes: request, response */
  struct inspect_head heads[INSPECT_NHEADS];
};

/* What a record is built from; every slice is copied. Pure input, so the
 * builder can be tested without an exchange. */
struct inspect_src {
  int64_t time_us;
  struct slice request_id, client, listener, method, target, host, version;
  int route_index, route_line;
  struct slice route_label, config_file, skipped, frames_json, upstream, server, error;
  struct slice trace_id, tries, auth, mirror;
  bool tls;
  struct slice tls_version, tls_cipher, tls_sni, tls_alpn, tls_client_subject;
  uint32_t skipped_more;
  uint32_t attempts;
  int status;
  bool complete;
  uint64_t req_head_bytes, req_body_bytes, resp_body_bytes;
  int64_t queue_us, connect_us, ttfb_us, total_us;
  bool has_body;
  struct slice body[2];
  /* heads: the client's request as a parsed list (line + req), the others
   * as serialised heads ("LINE\r\nName: value\r\n...\r\n", anything after
   * the blank line ignored); n == 0: absent. */
  struct slice req_line;
  const struct inspect_kv *req;
  uint32_t nreq;
  struct slice fwd_head;
  struct slice up_line; /* upstream status line */
  const struct inspect_kv *up;
  uint32_t nup;
  bool up_present;
  struct slice client_head;
  /* redaction: names whose values become "[redacted]" (nredact 0: none) */
  char *const *redact;
  size_t nredact;
};

/* One malloc holding the record and copies of everything in src. NULL on
 * out of memory. Free with free(). */
struct inspect_rec *inspect_rec_build(const struct inspect_src *src);

/* --- the store (admin thread only) --------------------------------------- */

struct inspect_store {
  struct inspect_rec **ring;
  uint32_t cap;   /* admin.inspect_keep */
  uint32_t first; /* index of the oldest record */
  uint32_t n;
  uint64_t bytes, max_bytes;
  uint64_t next_id;
  uint64_t evicted; /* records dropped to stay within the bounds */
};

int inspect_store_init(struct inspect_store *st, uint32_t keep, uint64_t max_bytes);
/* Takes ownership of rec: assigns rec->id, evicts the oldest records while
 * over either bound. Returns true when rec is kept, false when it was
 * dropped (freed: alone over max_bytes, or keep 0). */
bool inspect_store_push(struct inspect_store *st, struct inspect_rec *rec);
/* i-th newest record (0 = newest), NULL past the end. */
const struct inspect_rec *inspect_store_newest(const struct inspect_store *st, uint32_t i);
const struct inspect_rec *inspect_store_find(const struct inspect_store *st, uint64_t id);
void inspect_store_destroy(struct inspect_store *st);

/* --- filters and renderings ----------------------------------------------- */

struct inspect_filter {
  uint32_t limit;      /* default 100 */
  char route[64];      /* "" any; a route index ("2") or an upstream name */
  char status[8];      /* "" any; "200", or a class "5xx" / "5" */
  char path[256];      /* "" any; a substring of the target */
  uint64_t after;      /* only ids greater than this (SSE Last-Event-ID) */
  struct filter *expr; /* filter=EXPR (src/filter.c), owned; NULL: none */
};

/* Parse a query string ("limit=10&route=api&status=5xx&path=%2Fapi&
 * filter=~c%205.."; the leading '?' optional). Unknown keys are ignored.
 * Returns 0, or -1 with a message in err for a bad value (nothing to
 * release then). After 0, inspect_filter_release frees what f holds. */
int inspect_filter_parse(struct slice query, struct inspect_filter *f, char *err, size_t errlen);
void inspect_filter_release(struct inspect_filter *f);
bool inspect_filter_match(const struct inspect_filter *f, const struct inspect_rec *r);

/* A growable output buffer; oom is set (and writes stop) on allocation
 * failure. free(b.p) when done. */
struct inspect_out {
  char *p;
  size_t n, cap;
  bool oom;
};
void inspect_out_put(struct inspect_out *o, const char *p, size_t n);
void inspect_out_puts(struct inspect_out *o, const char *s);
/* printf into o (at most 255 bytes per call). */
void inspect_out_printf(struct inspect_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* s as a JSON string (quotes included): ASCII only, bytes >= 0x80 and '<'
 * as \u00XX, so it is valid JSON and safe inside HTML. */
void inspect_json_str(struct inspect_out *o, struct slice s);

/* Whether the inspector may resend this record (admin.replay must be on
 * too): not redacted, no request body, and a client request head. */
bool inspect_replayable(const struct inspect_rec *r);

/* One record as a JSON object. replay: admin.replay is on. */
void inspect_render_json(struct inspect_out *o, const struct inspect_rec *r, bool replay);
/* {"requests":[...newest first, filtered, at most f->limit...],"count":N,
 *  "kept":N,"evicted":N} */
void inspect_render_list(struct inspect_out *o, const struct inspect_store *st,
                         const struct inspect_filter *f, bool replay);
/* One Server-Sent Event: "id: ID\nevent: exchange\ndata: JSON\n\n". */
void inspect_render_event(struct inspect_out *o, const struct inspect_rec *r, bool replay);

/* The request head to resend for a replay ("METHOD target HTTP/1.1",
 * the client's headers minus hop-by-hop ones and X-Request-Id, plus
 * "X-Ferry-Replay-Of: ID" and "Connection: close"). */
void inspect_render_replay(struct inspect_out *o, const struct inspect_rec *r);

/* Edits for a replay ("edit and replay"), from the query string of
 * POST /inspect/requests/ID/replay: method=, target=, h=Name: value
 * (repeatable; any h= or headers=replace makes them the whole header
 * list), body=. Values are percent-decoded into mem (owned). */
struct inspect_replay_edit {
  struct slice method, target; /* n == 0: as captured */
  bool headers_given;
  struct slice *names, *values;
  size_t nheaders;
  bool body_given;
  struct slice body;
  char *mem;
};

/* Parse and check (method a token, target a path of visible ASCII, header
 * names tokens and values without CR/LF/NUL). Returns 0 (free with
 * inspect_replay_edit_free), or -1 with a sentence in err. */
int inspect_replay_edit_parse(struct slice query, struct inspect_replay_edit *e, char *err,
                              size_t errlen);
void inspect_replay_edit_free(struct inspect_replay_edit *e);

/* The request to resend for r with edits e: as inspect_render_replay,
 * with e's method, target and headers in place of the captured ones and
 * e's body (with Content-Length). Returns 0, or -1 with a sentence in err
 * when what would be sent is not a real request: a header left with the
 * redacted value, or a request that had a body and no body given. */
int inspect_render_replay_edited(struct inspect_out *o, const struct inspect_rec *r,
                                 const struct inspect_replay_edit *e, char *err, size_t errlen);

/* The self-contained /inspect page (HTML, CSS and script inline). */
extern const char inspect_page_html[];
extern const size_t inspect_page_html_len;

#endif

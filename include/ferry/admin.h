/* admin: the admin listener (SPEC §5) on its own thread and uv loop.
 *
 * The admin loop never serves client traffic and client loops never run
 * admin code. Built in: GET /healthz (200 "ok"), GET /readyz (200 while
 * accepting, 503 once admin_set_ready(a, false) was called), and 404 for
 * every path nobody registered. Everything else (/metrics, /inspect...)
 * is plugged in by other modules through admin_route().
 *
 * Threads and lifetime
 *   main thread:  admin_new -> admin_route()... -> admin_start
 *                 ... workers run and drain ...
 *                 admin_stop -> admin_join -> admin_free
 *   admin thread: every handler, every event function posted with
 *                 admin_post, every admin_stream_* call, every on_closed.
 *   any thread:   admin_post, admin_set_ready, admin_events_dropped.
 * admin_post may be called from a worker between admin_start and
 * admin_stop; main stops the admin only after the workers have been
 * joined, so a worker never posts to a stopped admin.
 *
 * HTTP: one request per connection (the answer carries Connection: close),
 * request head up to 8 KiB (else 431) within 10 s (else the connection is
 * closed), any body is ignored; HEAD gets the head of the GET answer.
 *
 * Host guard (DNS rebinding): a request whose Host is not allowed by
 * admin_host_allowed() gets 403 before any route runs, so a web page whose
 * own name was made to resolve to the admin address cannot read from it or
 * drive it as a same-origin page. */
#ifndef FERRY_ADMIN_H
#define FERRY_ADMIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "ferry/slice.h"

#define ADMIN_MAX_HEADERS 64
/* Default bound on bytes queued to one streaming client. */
#define ADMIN_STREAM_MAX_QUEUED (1024u * 1024u)
/* Capacity of the cross-thread event queue (a power of two). */
#define ADMIN_QUEUE_CAP 4096u

/* Error codes (negative, distinct from libuv's). */
#define ADMIN_EFULL (-10001)   /* admin_post: the queue is full, nothing was queued */
#define ADMIN_ESLOW (-10002)   /* admin_stream_write: client too slow, stream closed */
#define ADMIN_ECLOSED (-10003) /* admin_stream_write: the stream is closing */

struct admin;
struct admin_reply;
struct admin_stream;

struct admin_header {
  struct slice name, value;
};

/* One parsed request. Every slice points into the connection's read buffer
 * and is valid only during the handler call: copy what you keep. */
struct admin_request {
  struct slice method; /* "GET" */
  struct slice path;   /* "/inspect/requests", without the query */
  struct slice query;  /* "limit=10" (no '?'); empty when absent */
  const struct admin_header *headers;
  size_t nheaders;
  const char *client; /* peer address, e.g. "127.0.0.1" */
};

/* Value of header name (case-insensitive), or an empty slice with p NULL. */
struct slice admin_request_header(const struct admin_request *req, const char *name);
/* Value of query parameter name ("limit" in "limit=10&x=y"), raw (not
 * percent-decoded); found reports presence. */
struct slice admin_request_param(const struct admin_request *req, const char *name, bool *found);

/* A handler runs on the admin thread for each request whose path matches
 * its registration. It answers in one of two ways before returning:
 *
 * 1. At once: set the status and content type with admin_reply_status()
 *    (default 200, "text/plain; charset=utf-8") and append the body with
 *    admin_reply_append()/admin_reply_printf(). When the handler returns,
 *    ferry sends the response with Content-Length and closes.
 *
 * 2. Streaming (Server-Sent Events or any long response): call
 *    admin_reply_stream(). The head (status 200, the given content type,
 *    Cache-Control: no-cache, no length: the body ends when the connection
 *    closes) is sent; the returned stream stays open after the handler
 *    returns. Write to it later from the admin thread (e.g. from an event
 *    function posted with admin_post) with admin_stream_write().
 *
 * ud is the pointer given to admin_route. */
typedef void (*admin_handler_fn)(void *ud, const struct admin_request *req,
                                 struct admin_reply *rep);

/* Register handler for path: exact match, or (prefix true) path itself and
 * anything under "path/". Longest registration wins. Only before
 * admin_start. Returns 0 or UV_ENOMEM. */
int admin_route(struct admin *a, const char *path, bool prefix, admin_handler_fn fn, void *ud);

void admin_reply_status(struct admin_reply *rep, int status, const char *content_type);
/* Extra response header line, e.g. "Access-Control-Allow-Origin: *"
 * (without CRLF); copied. */
void admin_reply_header(struct admin_reply *rep, const char *line);
void admin_reply_append(struct admin_reply *rep, const char *p, size_t n);
void admin_reply_printf(struct admin_reply *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void admin_reply_vprintf(struct admin_reply *rep, const char *fmt, va_list ap);

/* Called exactly once when a stream ends for any reason: the client went
 * away, it was too slow (ADMIN_ESLOW), admin_stream_close(), or the admin
 * is stopping. The stream pointer is invalid once it returns. Runs from a
 * libuv close callback on the admin thread; it may not call
 * admin_stream_* on this stream. */
typedef void (*admin_stream_closed_fn)(void *ud, struct admin_stream *s);

/* Turn this request into a stream. content_type e.g. "text/event-stream";
 * max_queued bounds the bytes queued to the client (0: the default
 * ADMIN_STREAM_MAX_QUEUED); a write that would pass it drops the client.
 * Returns the stream, or NULL (out of memory: the request gets a 500 and
 * on_closed is never called). */
struct admin_stream *admin_reply_stream(struct admin_reply *rep, const char *content_type,
                                        size_t max_queued, admin_stream_closed_fn on_closed,
                                        void *ud);

/* Admin thread only. Queue n bytes (copied) to the client. Returns 0;
 * ADMIN_ESLOW when the queued bytes would pass the bound (the stream is
 * then closed; on_closed follows from the loop, not from inside this
 * call); ADMIN_ECLOSED when it is already closing; or a uv error. */
int admin_stream_write(struct admin_stream *s, const char *p, size_t n);
/* Bytes queued to the client and not yet written. */
size_t admin_stream_queued(const struct admin_stream *s);
/* Admin thread only. Close after the bytes already queued are written. */
void admin_stream_close(struct admin_stream *s);

/* An event function runs on the admin thread with the arg given to
 * admin_post; arg is then its to free. */
typedef void (*admin_event_fn)(void *arg);

/* Any thread; never blocks, never allocates. Queue fn(arg) to run on the
 * admin loop. Returns 0, or ADMIN_EFULL when ADMIN_QUEUE_CAP events are
 * waiting (then nothing was queued, the caller still owns arg, and the
 * drop is counted in admin_events_dropped). Events still queued at
 * admin_stop run before the admin loop ends. */
int admin_post(struct admin *a, admin_event_fn fn, void *arg);
uint64_t admin_events_dropped(const struct admin *a);

/* Admin thread only: the admin loop, for timers of plugged-in modules.
 * Handles created on it must be closed by the module before admin_stop
 * completes: register a stop hook. */
uv_loop_t *admin_loop(struct admin *a);
/* Run fn(ud) on the admin thread when the admin stops, before it closes
 * its own handles (close your timers there). Only before admin_start. */
int admin_on_stop(struct admin *a, void (*fn)(void *ud), void *ud);

/* The Host guard, a pure function. host is the Host header value with
 * host.p NULL when the request had no Host header (HTTP/1.0 tools; browsers
 * always send one): that is allowed. Otherwise the host part (an optional
 * ":PORT" of 1..5 digits, up to 65535, stripped; any other port text makes
 * the value malformed) must be an IPv4 literal in dotted-decimal form, a
 * bracketed IPv6 literal ("[::1]"), "localhost" (any case), or one of the
 * n names in allowed (compared case-insensitively). A name "*" in allowed
 * lets any value through, malformed or not. */
bool admin_host_allowed(struct slice host, const char *const *allowed, size_t n);

/* Create the admin for addr (address text for messages). NULL on OOM. */
struct admin *admin_new(const struct sockaddr_storage *addr, const char *address);
/* Host names the guard accepts besides IP literals and localhost
 * (admin.allowed_hosts; "*" turns the guard off). Copied: the caller keeps
 * names. Only before admin_start. Returns 0 or UV_ENOMEM. */
int admin_set_allowed_hosts(struct admin *a, char *const *names, size_t n);
/* Bind and listen now (errors reported to the caller: *msg gets a
 * sentence naming the address and what to do), then run the loop on a new
 * thread. Returns 0 or a negative uv error. */
int admin_start(struct admin *a, char *msg, size_t msglen);
/* Any thread: /readyz answers 200 (ready) or 503 (not ready). */
void admin_set_ready(struct admin *a, bool ready);
bool admin_is_ready(const struct admin *a);
/* Before admin_start: listen on fd (a listening socket for the admin
 * address, handed over by a binary upgrade) instead of binding. The admin
 * owns fd from now on. */
void admin_adopt_fd(struct admin *a, int fd);
/* The listening socket while the admin runs (for a binary upgrade to hand
 * over), or -1. */
int admin_listen_fd(const struct admin *a);
/* Ask the admin loop to stop: streams end, connections close. */
void admin_stop(struct admin *a);
/* Wait for the admin thread after admin_stop (no-op if never started). */
void admin_join(struct admin *a);
void admin_free(struct admin *a);

#endif

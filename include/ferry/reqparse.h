/* reqparse: the llhttp callbacks that read a client's request into its
 * exchange (see src/reqparse.c). */
#ifndef FERRY_REQPARSE_H
#define FERRY_REQPARSE_H

#include <llhttp.h>

struct session;
struct exchange;

/* Why llhttp paused (session_rx.pause_reason). */
enum reqparse_pause { REQPARSE_NONE, REQPARSE_HEAD, REQPARSE_DONE };

/* The settings every client parser runs with. */
extern const llhttp_settings_t reqparse_settings;

/* A request begins on ex (from exchange_new): the header deadline runs
 * until its head is complete. */
void reqparse_begin(struct session *s, struct exchange *ex);

/* The request head is complete and within limits: the exchange takes
 * over. */
void reqparse_head_done(struct session *s);

#endif

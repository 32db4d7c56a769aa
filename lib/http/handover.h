/*
 * http/handover.h -- passing listening sockets from a server to its successor.
 *
 * A zero-downtime restart starts the new server beside the old one on the
 * same port, then sends the old one SIGTERM.  Two sockets bound with
 * SO_REUSEPORT would do for the binding, but not for the close: when the
 * old server closes its listeners, Linux resets every connection still
 * queued on them (unless net.ipv4.tcp_migrate_req is 1), and connections
 * keep arriving in those queues until the very close.  So, as nginx's
 * binary upgrade and HAProxy's -x do, the new server takes the old one's
 * listening sockets themselves: both processes then accept from the same
 * queues, and when the old one closes its descriptors the sockets live on
 * in the new one -- nothing is reset, nothing is lost.
 *
 * The channel is a Unix stream socket in the abstract namespace (no file
 * to clean up), named after the user and the bound address:
 * "@dsys-handover/UID/127.0.0.1:8080".  A server started with --reuse-port
 * opens it when it listens; a server started with --reuse-port on a fixed
 * port asks it before it binds.  The old server answers one request: it
 * sends "DSH1", the count, and its listening descriptors (SCM_RIGHTS), then
 * closes the channel, so that the new server can open it under the same
 * name for the restart after.  Both sides check with SO_PEERCRED that the
 * other runs as the same user (what SO_REUSEPORT asks too); the receiver
 * checks that each descriptor is a listening TCP socket on the port.  The
 * channel also closes when the drain starts, so a server that is going
 * away never hands out sockets it is about to close.
 *
 * Threads: http_handover_open and _close run on thread 0's loop thread (or
 * before http_server_run, on the caller's); http_handover_fetch is plain
 * blocking code for start-up, bounded by a one-second timeout.
 */
#ifndef DSYS_HTTP_HANDOVER_H
#define DSYS_HTTP_HANDOVER_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct http_server;

#define HTTP_HANDOVER_MAX_FDS 256     /* listeners one server may pass on */

/* The channel's name for a bound address: "\0dsys-handover/UID/ADDR" in
 * name (cap bytes); returns the sockaddr_un length to bind or connect
 * with, or -ENAMETOOLONG. */
int http_handover_name(const struct sockaddr *sa, char *name, size_t cap);

/*
 * The successor's side: connect to the channel for host:port (resolved as
 * http_server_listen does: a numeric address, else the first the name
 * gives) and receive the listening sockets (close-on-exec, at most max)
 * into fds.  Returns how many (>= 1) with the old server's pid in *pid, 0
 * when no server of ours offers any (nobody listens on the channel, or
 * the name does not resolve: listen says so), or a negative errno value
 * when one answered wrongly (then nothing is kept open).
 */
int http_handover_fetch(const char *host, uint16_t port, int *fds, unsigned max, pid_t *pid);

/* The old server's side: open the channel for srv's address on thread 0's
 * loop; 0, or a negative errno value (-EADDRINUSE: another server of ours
 * offers this address already).  Called by http_server_listen when
 * cfg.reuse_port is set. */
int http_handover_open(struct http_server *srv);

/* Close the channel (no-op when none is open): at the start of a drain
 * and in http_server_free. */
void http_handover_close(struct http_server *srv);

#endif

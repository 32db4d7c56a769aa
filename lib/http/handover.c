/*
 * http/handover.c -- the old server hands its listening sockets to the new.
 *
 * See handover.h for why.  The wire format is one message from the old
 * server: 4 bytes "DSH1", a uint32 count in host order (both ends are one
 * machine), and that many descriptors in one SCM_RIGHTS control message.
 * The new server sends nothing: connecting is the request.
 *
 * The old side lives on thread 0's loop as a uv_poll_t on the channel's
 * listening socket; answering is a non-blocking accept, a credentials
 * check and one sendmsg of a few bytes into an empty socket buffer, so
 * the loop never waits on a peer.  The descriptors it sends are its
 * listeners' own (uv_fileno), read on thread 0: every listener is set up
 * at listen and closed only by the drain, and the drain closes this
 * channel on thread 0 before it tells any thread to close its listener.
 */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/invariant.h"
#include "base/log.h"
#include "http/handover.h"
#include "http/server.h"
#include "http/server_internal.h"

#define HANDOVER_MAGIC "DSH1"
#define HANDOVER_TIMEOUT_MS 1000

struct http_handover {
	uv_poll_t poll;
	int fd;                    /* the channel's listening socket */
	struct http_server *srv;
};

int http_handover_name(const struct sockaddr *sa, char *name, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	/* the leading NUL puts the name in the abstract namespace */
	int n = snprintf(name, cap, "%cdsys-handover/%u/%s:%u", 0, (unsigned)geteuid(), host, port);
	if (n < 0 || (size_t)n >= cap || (size_t)n > sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return n;
}

/* The sockaddr_un of the channel for sa, and its length. */
static int channel_addr(const struct sockaddr *sa, struct sockaddr_un *un, socklen_t *len)
{
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	char name[sizeof un->sun_path + 1];
	int n = http_handover_name(sa, name, sizeof name);
	if (n < 0)
		return n;
	memcpy(un->sun_path, name, (size_t)n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
	return 0;
}

/* Does the peer of a Unix socket run as our user?  Its pid in *pid. */
static bool peer_is_us(int fd, pid_t *pid)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	if (pid)
		*pid = cr.pid;
	return cr.uid == geteuid();
}

/* ------------------------------------------------------------ new server */

/* A descriptor received: a listening TCP socket of the family and port asked for? */
static bool fd_fits(int fd, const struct sockaddr *want)
{
	int on = 0;
	socklen_t len = sizeof on;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on)
		return false;
	struct sockaddr_storage ss;
	len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != want->sa_family)
		return false;
	if (want->sa_family == AF_INET)
		return ((struct sockaddr_in *)&ss)->sin_port == ((const struct sockaddr_in *)want)->sin_port;
	return ((struct sockaddr_in6 *)&ss)->sin6_port == ((const struct sockaddr_in6 *)want)->sin6_port;
}

int http_handover_fetch(const char *host, uint16_t port, int *fds, unsigned max, pid_t *pid)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (server_resolve(host, port, &ss, &sslen) < 0)
		return 0;
	const struct sockaddr *sa = (const struct sockaddr *)&ss;
	struct sockaddr_un un;
	socklen_t ulen;
	int r = channel_addr(sa, &un, &ulen);
	if (r < 0)
		return r;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&un, ulen) < 0) {
		int e = errno;
		close(s);
		/* nobody offers sockets for this address: bind as usual */
		return e == ECONNREFUSED || e == ENOENT ? 0 : -e;
	}
	int n = 0;
	if (!peer_is_us(s, pid)) {
		r = -EPERM;
		goto out;
	}
	struct pollfd p = {.fd = s, .events = POLLIN};
	if (poll(&p, 1, HANDOVER_TIMEOUT_MS) != 1) {
		r = -ETIMEDOUT;
		goto out;
	}
	char head[8];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * HTTP_HANDOVER_MAX_FDS)];
	} ctl;
	struct iovec iov = {head, sizeof head};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
	                     .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
	ssize_t got = recvmsg(s, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	/* every descriptor that arrived is ours to close from here on */
	int *in = NULL;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			in = (int *)(void *)CMSG_DATA(c);
			n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			break;
		}
	uint32_t count = 0;
	if (got == (ssize_t)sizeof head)
		memcpy(&count, head + 4, 4);
	r = n;
	if (got != (ssize_t)sizeof head || memcmp(head, HANDOVER_MAGIC, 4) != 0 ||
	    (msg.msg_flags & MSG_CTRUNC) || count != (uint32_t)n || n == 0 || (unsigned)n > max)
		r = -EPROTO;
	for (int i = 0; r > 0 && i < n; i++)
		if (!fd_fits(in[i], sa))
			r = -EPROTO;
	for (int i = 0; i < n; i++) {
		if (r > 0)
			fds[i] = in[i];
		else
			close(in[i]);
	}
out:
	close(s);
	return r;
}

/* ------------------------------------------------------------ old server */

static void on_close(uv_handle_t *h)
{
	struct http_handover *ho = h->data;
	if (ho->fd >= 0)
		close(ho->fd);
	free(ho);
}

/* Send our listeners to the peer on fd; true when they went. */
static bool send_listeners(struct http_server *srv, int fd)
{
	unsigned n = 0;
	int fds[HTTP_HANDOVER_MAX_FDS];
	for (unsigned i = 0; i < srv->nthreads && n < HTTP_HANDOVER_MAX_FDS; i++) {
		uv_os_fd_t lfd;
		struct http_thread *t = srv->threads[i];
		if (t->listening && uv_fileno((uv_handle_t *)&t->listener, &lfd) == 0)
			fds[n++] = lfd;
	}
	if (n == 0)
		return false;
	char head[8];
	uint32_t count = n;
	memcpy(head, HANDOVER_MAGIC, 4);
	memcpy(head + 4, &count, 4);
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * HTTP_HANDOVER_MAX_FDS)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {head, sizeof head};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
	                     .msg_control = ctl.space, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	ssize_t w;
	do
		w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof head;
}

static void on_request(uv_poll_t *h, int status, int events)
{
	struct http_handover *ho = h->data;
	struct http_server *srv = ho->srv;
	if (status < 0)
		return;
	int fd = accept4(ho->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pid_t pid = 0;
	if (!peer_is_us(fd, &pid)) {
		log_warn("handover: refused a request from another user (pid %d)", (int)pid);
		close(fd);
		return;
	}
	/* One successor, and it opens the channel under this name for the
	 * restart after as soon as it has our listeners: free the name before
	 * they go, or its bind may find it still taken (a uv_close ends the
	 * socket only at the end of this loop turn). */
	uv_poll_stop(&ho->poll);
	close(ho->fd);
	ho->fd = -1;
	http_handover_close(srv);
	bool sent = send_listeners(srv, fd);
	close(fd);
	if (!sent) {
		log_warn("handover: could not send the listeners to pid %d", (int)pid);
		int r = http_handover_open(srv);   /* offer them again */
		if (r < 0)
			log_warn("cannot offer the listeners of %s to a successor: %s", srv->address, strerror(-r));
		return;
	}
	log_info("handover: listeners of %s passed to pid %d", srv->address, (int)pid);
}

int http_handover_open(struct http_server *srv)
{
	INVARIANT(srv->handover == NULL);
	uv_os_fd_t lfd;
	if (uv_fileno((uv_handle_t *)&srv->threads[0]->listener, &lfd) != 0)
		return -EBADF;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	struct sockaddr_un un;
	socklen_t ulen;
	int r = channel_addr((struct sockaddr *)&ss, &un, &ulen);
	if (r < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&un, ulen) < 0 || listen(fd, 8) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	struct http_handover *ho = calloc(1, sizeof *ho);
	INVARIANT(ho != NULL);
	ho->fd = fd;
	ho->srv = srv;
	ho->poll.data = ho;
	r = uv_poll_init(&srv->threads[0]->loop, &ho->poll, fd);
	if (r < 0) {
		close(fd);
		free(ho);
		return r;
	}
	uv_poll_start(&ho->poll, UV_READABLE, on_request);
	srv->handover = ho;
	return 0;
}

void http_handover_close(struct http_server *srv)
{
	struct http_handover *ho = srv->handover;
	if (!ho)
		return;
	srv->handover = NULL;
	uv_close((uv_handle_t *)&ho->poll, on_close);
}

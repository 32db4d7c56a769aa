/*
 * loopback.h -- a scripted server on 127.0.0.1, on a port the kernel
 * picks, for the unit tests (test_etcd's gateway members, test_etcd_grpc's
 * h2c members): a thread accepts one connection at a time and hands it to
 * the test's serve function.  A socket that cannot be made ends the test
 * program: nothing can be checked without it.
 */
#ifndef DSYS_TEST_LOOPBACK_H
#define DSYS_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* The listening descriptor; its port in *port. */
static int loopback_listen(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		perror("loopback_listen");
		exit(1);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

struct loopback_server {
	int fd, port;
	int conn;                          /* the connection being served, or -1 */
	void (*serve)(void *arg, int conn);
	void *arg;
	pthread_t thread;
};

static void *loopback_main(void *p)
{
	struct loopback_server *s = p;
	int c;
	while ((c = accept(s->fd, NULL, NULL)) >= 0) {
		__atomic_store_n(&s->conn, c, __ATOMIC_SEQ_CST);
		s->serve(s->arg, c);
		__atomic_store_n(&s->conn, -1, __ATOMIC_SEQ_CST);
		close(c);
	}
	return NULL;
}

/* Listen (s->port is the port) and serve each connection with serve(arg,
 * fd) until the client closes it or loopback_stop. */
static void loopback_start(struct loopback_server *s, void (*serve)(void *, int), void *arg)
{
	s->fd = loopback_listen(&s->port);
	s->conn = -1;
	s->serve = serve;
	s->arg = arg;
	if (pthread_create(&s->thread, NULL, loopback_main, s) != 0) {
		perror("loopback_start");
		exit(1);
	}
}

/* Stop listening, end the connection in service, join the thread. */
static void loopback_stop(struct loopback_server *s)
{
	shutdown(s->fd, SHUT_RDWR);  /* accept returns */
	int c = __atomic_load_n(&s->conn, __ATOMIC_SEQ_CST);
	if (c >= 0)
		shutdown(c, SHUT_RDWR);  /* a read in serve returns 0 */
	pthread_join(s->thread, NULL);
	close(s->fd);
}

#endif

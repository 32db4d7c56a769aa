/*
 * loopback.h -- a listening TCP socket on 127.0.0.1, on a port the kernel
 * picks, for the unit tests' scripted servers (test_etcd's gateway
 * members, test_etcd_grpc's h2c members).  A socket that cannot be made
 * ends the test program: nothing can be checked without it.
 */
#ifndef DSYS_TEST_LOOPBACK_H
#define DSYS_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

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

#endif

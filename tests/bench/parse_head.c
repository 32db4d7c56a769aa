/*
 * parse_head -- the user-space cost of http_parse_request on typical heads.
 *
 * The servers' CPU per request is mostly the kernel's; what the parser adds
 * is measured in instructions, which valgrind counts exactly where timers
 * on a shared machine do not.  This program parses a few typical request
 * heads (what wrk and dsys-bench send, a browser-like one, a POST with a
 * body) N times each, and prints a checksum of the results so the work
 * cannot be optimised away:
 *
 *   for n in 10000 20000; do
 *     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \
 *         build/bench/parse_head $n 0
 *   done
 *   callgrind_annotate /tmp/cg.10000 | grep TOTALS   # and /tmp/cg.20000
 *
 * The instructions per parse are the difference of the two totals over
 * 10000 (start-up cancels; the loop here adds about 15).  Do not read the
 * inclusive count of http_parse_request instead: callgrind files the SSE2
 * intrinsics inlined into it under emmintrin.h, apart from it.  The second
 * argument picks one head (0 is wrk's); without it every head is parsed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

static const char *const heads[] = {
	/* wrk and dsys-bench: the head behind every number in make bench */
	"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
	/* curl */
	"GET /health HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\n"
	"Accept: */*\r\n\r\n",
	/* a browser behind a proxy */
	"GET /static/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
	"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
	"Connection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\n"
	"Upgrade-Insecure-Requests: 1\r\nIf-None-Match: \"abc\"\r\n\r\n",
	/* a JSON POST */
	"POST /counters/hits/incr HTTP/1.1\r\nHost: 10.0.0.7:7000\r\n"
	"Content-Type: application/json\r\nContent-Length: 11\r\n\r\n",
};
#define N_HEADS (sizeof heads / sizeof heads[0])

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	long only = argc > 2 ? strtol(argv[2], NULL, 10) : -1;
	if (n <= 0 || only >= (long)N_HEADS) {
		fprintf(stderr, "usage: parse_head [N [HEAD-INDEX]]\n");
		return 2;
	}
	struct http_request req;
	unsigned long sum = 0;
	for (size_t h = 0; h < N_HEADS; h++) {
		if (only >= 0 && (size_t)only != h)
			continue;
		size_t len = strlen(heads[h]);
		for (long i = 0; i < n; i++) {
			int r = http_parse_request(heads[h], len, NULL, &req);
			if (r != (int)len) {
				fprintf(stderr, "parse_head: head %zu: %d\n", h, r);
				return 1;
			}
			sum += (unsigned long)r + req.m.n_headers + req.path_len;
		}
	}
	printf("{\"parses\":%ld,\"checksum\":%lu}\n", only >= 0 ? n : n * (long)N_HEADS, sum);
	return 0;
}

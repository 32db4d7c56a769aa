/*
 * fuzz_etcd.c -- libFuzzer target for lib/store/etcd's answer parsers.
 *
 * The input is read as a unary answer (etcd_parse) and as watch lines
 * (etcd_parse_watch on each newline-separated piece, as the stream reader
 * splits them).  Properties (trap on violation): each returns 0 or one of
 * its documented codes; an error from etcd carries a message; every kv's
 * key and value are NUL-terminated at their length; a txn's responses and
 * their kinds agree; freeing twice is harmless.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/etcd.h"

#include "etcd_resp_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	const char *text = (const char *)data;
	struct etcd_resp r;
	int rc = etcd_parse(text, size, &r);
	CHECK(rc == 0 || rc == ETCD_E_SERVER || rc == ETCD_E_PROTOCOL);
	if (rc == ETCD_E_SERVER)
		CHECK(r.error_message != NULL);
	if (rc == 0)
		check_resp(&r);
	etcd_resp_free(&r);
	etcd_resp_free(&r);

	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		struct etcd_watch_msg m;
		rc = etcd_parse_watch(text + start, i - start, &m);
		CHECK(rc == 0 || rc == ETCD_E_SERVER || rc == ETCD_E_PROTOCOL || rc == ETCD_E_COMPACTED);
		if (rc == ETCD_E_COMPACTED)
			CHECK(m.compact_revision > 0);
		for (size_t k = 0; rc == 0 && k < m.n_events; k++) {
			check_kvs(&m.events[k].kv, 1);
			if (m.events[k].has_prev)
				check_kvs(&m.events[k].prev_kv, 1);
		}
		etcd_watch_msg_free(&m);
		start = i + 1;
	}
	return 0;
}

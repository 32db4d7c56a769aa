/*
 * fuzz_etcd_pb.c -- libFuzzer target for lib/store/etcd_pb's gRPC answer
 * decoder (etcd_parse_grpc), what the etcd client reads from etcd.
 *
 * The first byte picks the call (its unary gRPC answer type), the rest is
 * the protobuf message.  Properties (trap on violation): the decoder
 * returns 0 or ETCD_E_PROTOCOL (or -ENOMEM); every kv's key and value
 * are NUL-terminated at their length; a txn's responses and their kinds
 * agree; freeing twice is harmless.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/etcd.h"
#include "store/etcd_pb.h"

#include "etcd_resp_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
		ETCD_PATH_RANGE, ETCD_PATH_PUT, ETCD_PATH_DELETE, ETCD_PATH_TXN, ETCD_PATH_GRANT,
		ETCD_PATH_REVOKE, ETCD_PATH_TTL, ETCD_PATH_KEEPALIVE, ETCD_PATH_LEASES,
	};
	if (size < 1 || size > 65536)
		return 0;
	const char *path = paths[data[0] % (sizeof paths / sizeof paths[0])];
	struct etcd_resp r;
	int rc = etcd_parse_grpc(path, data + 1, size - 1, &r);
	CHECK(rc == 0 || rc == ETCD_E_PROTOCOL || rc == -ENOMEM);
	if (rc == 0)
		check_resp(&r);
	etcd_resp_free(&r);
	etcd_resp_free(&r);
	return 0;
}

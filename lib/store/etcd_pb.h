/*
 * store/etcd_pb.h -- etcd's v3 gRPC messages (store/etcd_rpc.proto, compiled
 * by protoc-c) as the etcd client (store/etcd.c) and dsys-raft's gRPC front
 * end (bin/dsys-raft/grpc.c) use them.
 *
 * Three things, all pure (no I/O; unit-tested in tests/unit/test_etcd.c,
 * the answer decoder fuzzed in tests/fuzz/fuzz_etcd_pb.c):
 *
 * 1. The unary calls: etcd_grpc_method maps a gateway path (ETCD_PATH_*)
 *    to its gRPC method ("/etcdserverpb.KV/Range") and message types.
 *    Watch has none here (the client keeps it on the gateway's stream).
 *
 * 2. The generic translation between etcd's gateway JSON and the
 *    protobuf wire, driven by protobuf-c's descriptors: a field's proto
 *    name is its gateway JSON name (etcd's gateway keeps proto names),
 *    bytes are base64, 64-bit integers decimal strings, enums their
 *    names.  etcd_pb_from_json writes the message's wire bytes from a
 *    JSON object (unknown members ignored, as protobuf does);
 *    etcd_pb_to_json writes a decoded message as the gateway would.
 *    The client's requests are built once, as gateway JSON (etcd_req_*),
 *    and etcd_grpc_request turns one into its gRPC message: the bodies
 *    are small, and one builder serves both transports.
 *
 * 3. etcd_parse_grpc reads a unary call's protobuf answer straight into
 *    struct etcd_resp (no JSON in between: a range of 1000 keys is the
 *    answer that matters), with the same meaning etcd_parse gives the
 *    gateway's answer of that call.  A range is read from the wire bytes
 *    by our own reader, every other answer (and any range that reader is
 *    unsure of) through protobuf-c's unpacking.
 *
 * Ownership: out buffers and *resp are the caller's; etcd_resp_free
 * frees a filled answer in every case.
 */
#ifndef DSYS_STORE_ETCD_PB_H
#define DSYS_STORE_ETCD_PB_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/buf.h"
#include "base/json.h"
#include "store/etcd.h"
#include "store/etcd_rpc.pb-c.h"

struct etcd_grpc_method {
	const char *path;        /* the gateway's: ETCD_PATH_* */
	const char *grpc_path;   /* "/etcdserverpb.KV/Range" */
	const ProtobufCMessageDescriptor *req, *resp;
};

/* The unary gRPC method of gateway path, or NULL (watch, or unknown). */
const struct etcd_grpc_method *etcd_grpc_method(const char *path);

/* obj's fields as message d's wire bytes, appended to out.  Returns 0,
 * or -1 when a member has the wrong type or bad base64 / integer text. */
int etcd_pb_from_json(struct buf *out, const json_value *obj, const ProtobufCMessageDescriptor *d);
/* m as the gateway's JSON object (zero-valued fields left out, a chosen
 * oneof member written even at zero). */
void etcd_pb_to_json(struct json_writer *w, const ProtobufCMessage *m);

/* The gRPC message (without gRPC's 5-byte prefix) for the gateway body
 * body[0..len) of path; appended to out.  Returns 0, -EINVAL (not JSON
 * of that call) or -ENOENT (path has no unary gRPC method). */
int etcd_grpc_request(struct buf *out, const char *path, const char *body, size_t len);

/* A unary answer to path: msg[0..len) is the protobuf message (the
 * prefix taken off).  Returns 0 with *resp filled, ETCD_E_PROTOCOL (not
 * that message), or -ENOMEM; *resp is the caller's in every case.  A
 * range's kvs lie in one block, resp->kv_block (see struct etcd_kv). */
int etcd_parse_grpc(const char *path, const uint8_t *msg, size_t len, struct etcd_resp *resp);

/* etcd_parse_grpc's two paths, apart for the tests (fuzz_etcd_pb compares
 * them).  etcd_pb_range_direct reads a Range answer from the wire bytes:
 * 0, -ENOMEM, or ETCD_PB_FALLBACK when it is not sure to read it as
 * protobuf-c would (*resp then zeroed: the caller asks protobuf-c).
 * etcd_pb_parse_unpacked reads any answer through protobuf-c's unpacking,
 * with etcd_parse_grpc's results. */
#define ETCD_PB_FALLBACK 1
int etcd_pb_range_direct(const uint8_t *msg, size_t len, struct etcd_resp *resp);
int etcd_pb_parse_unpacked(const char *path, const uint8_t *msg, size_t len, struct etcd_resp *resp);

#endif

#!/usr/bin/python3
# etcd_watch_stream.py HOST:PORT PREFIX -- one gRPC Watch stream driven
# through etcd's wire API (python3-etcd3's generated stubs, grpcio), for
# tests/raft_grpc_watch.bats.  It prints one line per response the server
# sent, with what a client can tell apart but not the ids or revisions
# that differ between servers (revisions relative to the first created
# reply's), so the same run against a real etcd and against dsys-raft
# prints the same lines.
#
# The script: three watches created on one stream (an id asked for, two
# numbered by the server), an event for each, a progress request, a
# cancel (no events after it), a cancel of an unknown id (no answer), a
# duplicate id, a watch from a past revision whose 3 large events need
# fragmenting (fragment asked) and the same watch without it.
import queue
import sys

import grpc
from etcd3.etcdrpc import auth_pb2, kv_pb2
from etcd3.etcdrpc import rpc_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# python3-etcd3's rpc.proto predates etcd 3.4's watch fields: the same
# file with them added (watch_id, fragment, progress_request; numbers as
# etcd's rpc.proto), in a pool of its own.
F = descriptor_pb2.FieldDescriptorProto
pool = descriptor_pool.DescriptorPool()
for mod in (kv_pb2, auth_pb2, rpc_pb2):
    fdp = descriptor_pb2.FileDescriptorProto()
    mod.DESCRIPTOR.CopyToProto(fdp)
    if mod is rpc_pb2:
        msgs = {m.name: m for m in fdp.message_type}
        msgs["WatchCreateRequest"].field.add(name="watch_id", number=7, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
        msgs["WatchCreateRequest"].field.add(name="fragment", number=8, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
        msgs["WatchResponse"].field.add(name="fragment", number=7, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
        fdp.message_type.add(name="WatchProgressRequest")
        msgs["WatchRequest"].field.add(name="progress_request", number=3, type=F.TYPE_MESSAGE,
                                       type_name=".etcdserverpb.WatchProgressRequest",
                                       label=F.LABEL_OPTIONAL, oneof_index=0)
    pool.Add(fdp)


factory = message_factory.MessageFactory(pool)


class pb:
    pass


for name in ("WatchRequest", "WatchCreateRequest", "WatchCancelRequest", "WatchProgressRequest",
             "WatchResponse", "PutRequest", "PutResponse", "RangeRequest", "RangeResponse"):
    setattr(pb, name, factory.GetPrototype(pool.FindMessageTypeByName("etcdserverpb." + name)))

ep, prefix = sys.argv[1], sys.argv[2].encode()
chan = grpc.insecure_channel(ep, options=[("grpc.max_receive_message_length", 64 << 20)])
put_call = chan.unary_unary("/etcdserverpb.KV/Put", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=pb.PutResponse.FromString)
range_call = chan.unary_unary("/etcdserverpb.KV/Range", request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=pb.RangeResponse.FromString)
reqs = queue.Queue()
stream = chan.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=pb.WatchResponse.FromString)(iter(reqs.get, None), timeout=60)
base = None


def show(r):
    rev = r.header.revision - base if base is not None and r.header.revision else None
    parts = ["watch_id=%d" % r.watch_id]
    for flag in ("created", "canceled", "fragment"):
        if getattr(r, flag):
            parts.append(flag)
    if r.cancel_reason:
        parts.append("reason=%r" % r.cancel_reason)
    if r.compact_revision:
        parts.append("compact_revision")
    if not r.events:
        parts.append("rev=%s" % rev)
    for e in r.events:
        parts.append("%s %s=%s" % ("DELETE" if e.type else "PUT", e.kv.key.decode(), e.kv.value[:8].decode()))
    print(" ".join(parts), flush=True)


def recv():
    r = next(stream)
    show(r)
    return r


def create(key, **kw):
    reqs.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=prefix + key, **kw)))


def put(key, value):
    return put_call(pb.PutRequest(key=prefix + key, value=value), timeout=10).header.revision


create(b"/a", watch_id=7)
create(b"/b", range_end=prefix + b"/c")
create(b"/c")
first = recv()
base = first.header.revision
recv()
recv()
print("-- one event each", flush=True)
put(b"/a", b"1")
recv()
put(b"/b1", b"2")
recv()
put(b"/c", b"3")
recv()
print("-- progress", flush=True)
reqs.put(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
recv()
print("-- cancel watch 7, then unknown 99", flush=True)
reqs.put(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=7)))
recv()
reqs.put(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=99)))
put(b"/a", b"after")      # no event: its watch is canceled
put(b"/c", b"4")
recv()                    # only /c's
print("-- duplicate id", flush=True)
create(b"/d", watch_id=1)
recv()
print("-- fragmented and whole", flush=True)
start = put(b"/f0", b"x")
big = b"v" * (700 * 1024)
for i in range(3):
    put(b"/f%d" % (i + 1), big)
# a linearizable read: this member has applied the puts (a follower may trail)
range_call(pb.RangeRequest(key=prefix + b"/f0"), timeout=10)
create(b"/f1", range_end=prefix + b"/f9", start_revision=start + 1, fragment=True)
recv()
n = 0
while n < 3:
    n += len(recv().events)
create(b"/f1", range_end=prefix + b"/f9", start_revision=start + 1)
recv()
n = 0
while n < 3:
    n += len(recv().events)
reqs.put(None)
chan.close()

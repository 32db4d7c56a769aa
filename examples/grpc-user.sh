#!/usr/bin/env bash
# The tutorial's UserService over gRPC: dsys-serve answers
# /UserService/GetUser (lib/http/user_service.proto) beside HTTP/1.1 on one
# port, and a third-party client -- Python's grpcio, with stubs that protoc
# generates from the same .proto into a scratch folder -- calls it.
# Prints one JSON line per call.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DSYS_BIN:-$here/build/bin}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$bin/dsys-serve" --listen 127.0.0.1:0 --threads 1 >"$tmp/ready" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/ready" 2>/dev/null && break; sleep 0.05; done
addr=$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$tmp/ready")

# the client's stubs, from the one .proto the server was built from
protoc --proto_path="$here/lib/http" --python_out="$tmp" "$here/lib/http/user_service.proto"

PYTHONPATH=$tmp "$py" - "$addr" <<'PY'
import json, sys, grpc
import user_service_pb2 as pb
ch = grpc.insecure_channel(sys.argv[1])
get_user = ch.unary_unary("/UserService/GetUser",
                          request_serializer=pb.UserRequest.SerializeToString,
                          response_deserializer=pb.UserResponse.FromString)
for uid in ("42", "0"):
    try:
        u = get_user(pb.UserRequest(user_id=uid), timeout=10)
        print(json.dumps({"user_id": uid, "name": u.name, "age": u.age}), flush=True)
    except grpc.RpcError as e:
        print(json.dumps({"user_id": uid, "error": e.code().name, "message": e.details()}), flush=True)
PY

#!/usr/bin/python3
"""A misbehaving h2c server for dsys-bench's tests (tests/dsys-bench_h2.bats).

Usage: h2_bad_server.py MODE

Listens on 127.0.0.1:0, prints a ready line as dsys's servers do
({"event":"ready","listen":"127.0.0.1:PORT"}, for start_server in
tests/helpers.bash), and answers every connection in MODE:
  rst       every request is answered with RST_STREAM (CANCEL)
  goaway    the first request of a connection is answered 200, then
            GOAWAY naming it as the last stream; later ones are refused
  grpcfail  a gRPC answer: 200, no message, trailers grpc-status 13
  trailersonly  a trailers-only gRPC answer: grpc-status 7 in the HEADERS
  nostatus  a gRPC answer whose trailers have no grpc-status
  garbage   bytes that are not HTTP/2 frames, then close
  hang      requests are read and never answered
Frames are written by hand (HPACK: the static table's :status 200, and
literal fields without indexing), so nothing here needs an h2 library.
"""
import socket
import struct
import sys
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def literal(name, value):
    # literal field, new name, not indexed: 0x00, then the name and value
    # as plain (not Huffman) strings of fewer than 127 bytes
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


STATUS_200 = b"\x88"
GRPC_CT = literal(b"content-type", b"application/grpc")
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def answer(mode, conn, stream, answered):
    if mode == "rst":
        conn.sendall(frame(3, 0, stream, struct.pack(">I", 8)))
    elif mode == "goaway":
        if answered == 0:
            conn.sendall(frame(1, END_HEADERS | END_STREAM, stream, STATUS_200) +
                         frame(7, 0, 0, struct.pack(">II", stream, 0)))
        # later streams are above the GOAWAY's last id: ignored
    elif mode == "grpcfail":
        conn.sendall(frame(1, END_HEADERS, stream, STATUS_200 + GRPC_CT) +
                     frame(1, END_HEADERS | END_STREAM, stream,
                           literal(b"grpc-status", b"13") + literal(b"grpc-message", b"boom")))
    elif mode == "trailersonly":
        conn.sendall(frame(1, END_HEADERS | END_STREAM, stream,
                           STATUS_200 + GRPC_CT + literal(b"grpc-status", b"7")))
    elif mode == "nostatus":
        conn.sendall(frame(1, END_HEADERS, stream, STATUS_200 + GRPC_CT) +
                     frame(0, 0, stream, b"\x00\x00\x00\x00\x00") +
                     frame(1, END_HEADERS | END_STREAM, stream, literal(b"x-other", b"1")))


def serve(mode, conn):
    try:
        data = b""
        while len(data) < len(PREFACE):
            got = conn.recv(65536)
            if not got:
                return
            data += got
        if data[:len(PREFACE)] != PREFACE:
            return
        if mode == "garbage":
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nthis is not HTTP/2 at all")
            return
        conn.sendall(frame(4, 0, 0, struct.pack(">HI", 3, 100)))  # MAX_CONCURRENT_STREAMS
        data = data[len(PREFACE):]
        answered = 0
        while True:
            while len(data) >= 9:
                length = int.from_bytes(data[:3], "big")
                if len(data) < 9 + length:
                    break
                ftype, flags = data[3], data[4]
                stream = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
                data = data[9 + length:]
                if ftype == 4 and not flags & ACK:
                    conn.sendall(frame(4, ACK, 0))
                elif ftype == 6 and not flags & ACK:
                    conn.sendall(frame(6, ACK, 0, b"\x00" * 8))
                elif ftype == 1:
                    answer(mode, conn, stream, answered)
                    answered += 1
            got = conn.recv(65536)
            if not got:
                return
            data += got
    except OSError:
        pass
    finally:
        conn.close()


def main():
    mode = sys.argv[1]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    print('{"event":"ready","listen":"127.0.0.1:%d"}' % ls.getsockname()[1], flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(mode, conn), daemon=True).start()


if __name__ == "__main__":
    main()

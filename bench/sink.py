#!/usr/bin/python3
"""The client's ceiling for bench/run.py: an HTTP/1.1 server on 127.0.0.1
that reads a request body of Content-Length bytes into one reused buffer
and discards it, then answers 204 with X-Discarded: <bytes>.

    bench/sink.py PORT

One connection at a time (the suite sends one upload at a time to it).
"""
import socket
import sys

BUF = 1 << 20


def serve(conn):
    buf = bytearray(BUF)
    view = memoryview(buf)
    pending = b''
    while True:
        while b'\r\n\r\n' not in pending:
            b = conn.recv(65536)
            if not b:
                return
            pending += b
        head, pending = pending.split(b'\r\n\r\n', 1)
        length = 0
        for line in head.split(b'\r\n')[1:]:
            k, _, v = line.partition(b':')
            if k.strip().lower() == b'content-length':
                length = int(v)
        got = min(len(pending), length)
        pending = pending[got:]
        while got < length:
            n = conn.recv_into(view, min(BUF, length - got))
            if not n:
                return
            got += n
        conn.sendall(b'HTTP/1.1 204 No Content\r\nX-Discarded: %d\r\n\r\n' % got)


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', int(sys.argv[1])))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        with conn:
            serve(conn)


if __name__ == '__main__':
    main()

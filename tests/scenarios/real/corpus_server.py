#!/usr/bin/env python3
"""A real kernel TCP listener for the capture corpus: accepts, sends an FTP-like banner, closes.

Usage: corpus_server.py ADDR PORT [ADDR PORT ...]   (runs until killed)
Listening is done before the script prints "ready", so the caller can wait for that line.
"""
import selectors
import socket
import sys


def main() -> None:
    sel = selectors.DefaultSelector()
    args = sys.argv[1:]
    for addr, port in zip(args[0::2], args[1::2]):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port)))
        s.listen(1024)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept()
            except OSError:
                continue
            try:
                conn.send(b"220 corpus\r\n")
            except OSError:
                pass
            conn.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A real kernel TCP client for the capture corpus: N connect() attempts, started every INTERVAL
seconds in their own threads (so the kernel's SYN retransmissions of one attempt interleave with the
next attempts' first SYNs), each with a connect timeout. Writes one JSON object with every attempt's
local port, result (connected / timeout / refused / reset / error) and times (epoch seconds).

Usage: corpus_client.py --target ADDR --port P --attempts N [--interval S] [--timeout S]
                        [--bind ADDR] [--tos N] [--label L] --out FILE
"""
import argparse
import errno
import json
import socket
import threading
import time


def attempt(args, i, results):
    fam = socket.AF_INET6 if ":" in args.target else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if args.tos:
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, args.tos)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, args.tos)
    s.bind((args.bind or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
    sport = s.getsockname()[1]
    s.settimeout(args.timeout)
    t0 = time.time()
    try:
        s.connect((args.target, args.port))
        result = "connected"
    except socket.timeout:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except ConnectionResetError:
        result = "reset"
    except OSError as e:
        result = "error:" + (errno.errorcode.get(e.errno, str(e.errno)))
    t1 = time.time()
    if result == "connected":
        try:
            s.recv(64)
        except OSError:
            pass
    s.close()
    results[i] = {"attempt": i, "label": args.label, "src": args.bind or "", "sport": sport,
                  "result": result, "t_start": round(t0, 6), "t_end": round(t1, 6)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--attempts", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--timeout", type=float, default=8.0)
    ap.add_argument("--bind", default="")
    ap.add_argument("--tos", type=int, default=0)
    ap.add_argument("--label", default="main")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = [None] * args.attempts
    threads = []
    for i in range(args.attempts):
        t = threading.Thread(target=attempt, args=(args, i, results))
        t.start()
        threads.append(t)
        time.sleep(args.interval)
    for t in threads:
        t.join()
    with open(args.out, "w") as f:
        json.dump({"target": args.target, "port": args.port, "attempts": results}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A local HTTP server that serves a repository directory with injected faults, for the fetch
tests. The first path component picks the behaviour:

  /ok/...           the file
  /flaky/...        503 twice per path, then the file
  /drop/...         the first response per path breaks off after half the body, then the file
  /badsum/...       RPMs with one byte flipped, every time
  /always500/...    500, every time
  /truncrepomd/...  repomd.xml cut in half (everything else is fine)

Usage: fault_server.py ROOT  — prints the port, then serves on 127.0.0.1 until killed.
"""
import collections
import http.server
import os
import sys

root = sys.argv[1]
seen = collections.Counter()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = self.path.lstrip("/").split("/", 1)
        mode, rel = parts[0], parts[1] if len(parts) > 1 else ""
        seen[self.path] += 1
        n = seen[self.path]
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            return self.send_error(404)
        if mode == "always500" or (mode == "flaky" and n <= 2):
            return self.send_error(503 if mode == "flaky" else 500)
        with open(path, "rb") as f:
            data = f.read()
        if mode == "badsum" and rel.endswith(".rpm"):
            data = bytearray(data)
            data[len(data) // 2] ^= 0xFF
            data = bytes(data)
        if mode == "truncrepomd" and rel.endswith("repomd.xml"):
            data = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "drop" and n == 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()

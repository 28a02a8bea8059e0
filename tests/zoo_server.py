"""A local HTTP file server for the zoo's download tests (127.0.0.1 only, no internet).

Serves byte strings by path, honours ``Range: bytes=N-`` (206 with Content-Range, as GitHub,
Hugging Face and Meta's bucket do), records each request's Range header, and can cut a response
short after a number of bytes once (an interrupted download: the full Content-Length is sent,
then the connection closes).
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self):
        self.files, self.cut_once, self.ranges = {}, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet test output
                pass

            def do_GET(self):
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                start = int(requested.split("=")[1].rstrip("-")) if requested else 0
                if start >= len(data) and requested:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if requested else 200)
                if requested:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

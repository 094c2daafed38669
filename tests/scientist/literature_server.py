"""A local HTTP server on 127.0.0.1 that stands in for Semantic Scholar and OpenAlex: canned results, and
scripted failures (429, 500, 403, hanging) one per request."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

LONG_ABSTRACT = "Sparse autoencoders find interpretable features. " + "More words here. " * 60 + "TAILWORD"

S2_BODY = {"total": 2, "offset": 0, "data": [
    {"paperId": "a1", "title": "Scaling and evaluating sparse autoencoders",
     "authors": [{"authorId": "1", "name": "Leo Gao"}, {"authorId": "2", "name": "Jeffrey Wu"}],
     "venue": "ICLR", "year": 2025, "abstract": LONG_ABSTRACT, "citationCount": 250,
     "url": "https://www.semanticscholar.org/paper/a1"},
    {"paperId": "b2", "title": "A paper with little metadata", "authors": [], "venue": None, "year": None,
     "abstract": None, "citationCount": None, "url": "https://www.semanticscholar.org/paper/b2"},
]}
OPENALEX_BODY = {"meta": {"count": 2}, "results": [
    {"id": "https://openalex.org/W1", "doi": "https://doi.org/10.1/batchtopk", "title": "BatchTopK Sparse Autoencoders",
     "display_name": "BatchTopK Sparse Autoencoders", "publication_year": 2024, "cited_by_count": 12,
     "authorships": [{"author": {"display_name": "Bart Bussmann"}}, {"author": {"display_name": "Neel Nanda"}}],
     "primary_location": {"source": {"display_name": "arXiv"}},
     "abstract_inverted_index": {"TopK": [0], "SAEs": [1, 4], "are": [2], "sparse;": [3], "scale.": [5]}},
    {"id": "https://openalex.org/W2", "doi": None, "title": None, "display_name": "Only a display name",
     "publication_year": None, "cited_by_count": 0, "authorships": [], "primary_location": None,
     "abstract_inverted_index": None},
]}
EMPTY_BODIES = {"/graph/v1/paper/search": {"total": 0, "offset": 0}, "/works": {"meta": {"count": 0}, "results": []}}
BODIES = {"/graph/v1/paper/search": S2_BODY, "/works": OPENALEX_BODY}


class FakeServices:
    """What the local server answers: its scripted failures first (one per request), then the canned results."""

    def __init__(self) -> None:
        self.failures: list[str] = []  # "429", "500", "403", "hang", or "ok" for a normal answer
        self.retry_after = "0"
        self.empty = False
        self.body: dict | None = None  # answered instead of the canned results when set
        self.requests: list[dict] = []
        self.release = threading.Event()  # lets hanging handlers finish when the test ends
        self.base_url = ""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        services: FakeServices = self.server.services
        url = urlsplit(self.path)
        services.requests.append({"path": url.path, "params": {k: v[0] for k, v in parse_qs(url.query).items()},
                                  "headers": {k.lower(): v for k, v in self.headers.items()}})
        failure = services.failures.pop(0) if services.failures else None
        if failure == "hang":
            services.release.wait(2.0)
            return  # the client has given up; closing without an answer is all that is left
        if failure == "429":
            self._answer(429, {"message": "Too Many Requests"}, {"Retry-After": services.retry_after})
        elif failure in ("500", "403"):
            self._answer(int(failure), {"message": "Forbidden" if failure == "403" else "Internal error"})
        else:
            self._answer(200, services.body or (EMPTY_BODIES if services.empty else BODIES)[url.path])

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def services():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.services = FakeServices()
    server.services.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.services
    server.services.release.set()
    server.shutdown()
    server.server_close()

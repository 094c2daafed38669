"""Literature search for the novelty check: Semantic Scholar and OpenAlex behind one `search(query, limit)`.

Both clients retry what is transient (HTTP 429, 5xx, timeouts, dropped connections) with exponential backoff,
fail at once on any other refusal, and keep every successful answer in a disk cache, so a restarted launch asks
the same question only once. API keys are sent with each request and nowhere else: not in the cache, not in logs,
not in error messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
import tenacity

from scientist.store.files import atomic_write_text

logger = logging.getLogger(__name__)

CACHE_DIR = ".literature_cache"
"""Where a launch keeps the services' answers, under its results folder (results/.literature_cache)."""
URL_VARIABLE = "LITERATURE_API_URL"
"""Points the clients at a mirror (or at the tests' local server) instead of each service's own address."""


class LiteratureError(Exception):
    """The service could not be reached or kept failing; the message says which service, what failed, what to do."""


@dataclass(frozen=True)
class Paper:
    """One search result, as both services can describe it."""

    title: str
    year: int | None
    venue: str
    authors: tuple[str, ...]
    abstract: str
    citations: int | None
    url: str

    def to_json(self) -> dict:
        return {**asdict(self), "authors": list(self.authors)}

    @classmethod
    def from_json(cls, raw: dict) -> Paper:
        return cls(**{**raw, "authors": tuple(raw["authors"])})


class _Transient(Exception):
    """A failure worth another attempt; `retry_after_s` is the wait the server asked for, if it asked."""

    def __init__(self, what: str, retry_after_s: float | None = None) -> None:
        super().__init__(what)
        self.retry_after_s = retry_after_s


class LiteratureClient:
    """The request, retry and cache machinery; a subclass says how to ask its service and how to read the answer."""

    name: str
    display_name: str
    default_base_url: str
    key_variable: str
    key_hint: str

    def __init__(
        self,
        cache_dir: Path,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        initial_wait_s: float = 1.0,
        max_wait_s: float = 30.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.cache_dir = Path(cache_dir)
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get(self.key_variable) or None
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.initial_wait_s = initial_wait_s
        self.max_wait_s = max_wait_s
        self._session = requests.Session()

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, key={'set' if self._api_key else 'unset'})"

    # --- what a subclass provides ---

    def _request(self, query: str, limit: int) -> tuple[str, dict, dict]:
        """The URL, query parameters and headers of one search."""
        raise NotImplementedError

    def _papers(self, body: Any) -> list[Paper]:
        """The papers in a successful answer."""
        raise NotImplementedError

    # --- search ---

    def search(self, query: str, limit: int = 10) -> list[Paper]:
        """The service's top `limit` papers for `query`, from the cache when this question was answered before."""
        cached = self.cached(query, limit)
        if cached is not None:
            return cached
        papers = self._papers(self._get_with_retries(*self._request(query, limit)))
        record = {"engine": self.name, "query": query, "limit": limit, "papers": [p.to_json() for p in papers]}
        atomic_write_text(self._cache_file(query, limit), json.dumps(record, indent=1) + "\n")
        return papers

    def cached(self, query: str, limit: int = 10) -> list[Paper] | None:
        """The answer to this question kept in the cache; None when it was never answered (no request is made)."""
        return self._read_cache(self._cache_file(query, limit))

    def _cache_file(self, query: str, limit: int) -> Path:
        key = json.dumps([self.name, query, limit])
        return self.cache_dir / f"{self.name}-{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _read_cache(self, cache_file: Path) -> list[Paper] | None:
        if not cache_file.exists():
            return None
        try:
            return [Paper.from_json(raw) for raw in json.loads(cache_file.read_text(encoding="utf-8"))["papers"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("Ignoring the unreadable cache file %s (%s); asking %s again.",
                           cache_file, type(err).__name__, self.display_name)
            return None

    # --- one request, retried ---

    def _get_with_retries(self, url: str, params: dict, headers: dict) -> Any:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait_s,
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._get_once, url, params, headers)
        except _Transient as err:
            key_hint = "" if self._api_key else f" {self.key_hint}"
            raise LiteratureError(
                f"{self.display_name} kept failing: {self.max_attempts} attempts, the last one {err}. "
                f"Try again later, or switch to the other literature engine.{key_hint}"
            ) from None  # the chained requests error would carry the URL, and with it an API key sent as a parameter

    def _get_once(self, url: str, params: dict, headers: dict) -> Any:
        try:
            response = self._session.get(url, params=params, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise _Transient(f"timed out after {self.timeout_s:g} s") from None
        except requests.ConnectionError as err:
            raise _Transient(f"could not connect ({self._redacted(str(err))[:300]})") from None
        except requests.RequestException as err:  # a malformed URL and the like: retrying cannot help
            raise LiteratureError(
                f"{self.display_name} could not be asked: {type(err).__name__}: {self._redacted(str(err))[:300]}. "
                f"Check the service's base URL ({self.base_url})."
            ) from None
        status = response.status_code
        if status == 429:
            raise _Transient("was rate limited (HTTP 429)", _retry_after_s(response))
        if status >= 500:
            raise _Transient(f"failed with HTTP {status}")
        if status >= 400:
            raise LiteratureError(self._refusal(status, response.text))
        try:
            return response.json()
        except ValueError:
            raise LiteratureError(
                f"{self.display_name} answered HTTP {status} with a body that is not JSON: "
                f"{self._redacted(response.text)[:200]!r}. Check the service's base URL ({self.base_url})."
            ) from None

    def _refusal(self, status: int, body: str) -> str:
        detail = self._redacted(body.strip())[:200]
        if status in (401, 403):
            return (f"{self.display_name} refused the request (HTTP {status}: {detail}). Check {self.key_variable}, "
                    f"or unset it to search without a key.")
        return f"{self.display_name} rejected the request as invalid (HTTP {status}: {detail})."

    def _wait_s(self, state: tenacity.RetryCallState) -> float:
        """The server's Retry-After when it gave one, else initial_wait_s doubling; never above max_wait_s."""
        asked = state.outcome.exception().retry_after_s
        backoff = self.initial_wait_s * 2 ** (state.attempt_number - 1)
        return min(asked if asked is not None else backoff, self.max_wait_s)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        logger.warning("%s %s; retrying in %.1f s (attempt %d of %d).", self.display_name,
                       state.outcome.exception(), state.upcoming_sleep, state.attempt_number, self.max_attempts)

    def _redacted(self, text: str) -> str:
        return text.replace(self._api_key, "<api key>") if self._api_key else text


def _retry_after_s(response: requests.Response) -> float | None:
    """Retry-After in seconds; None when absent or given as an HTTP date (then the backoff decides)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


class SemanticScholar(LiteratureClient):
    """The Semantic Scholar Graph API's paper search."""

    name = "semanticscholar"
    display_name = "Semantic Scholar"
    default_base_url = "https://api.semanticscholar.org"
    key_variable = "S2_API_KEY"
    key_hint = "An API key in S2_API_KEY raises the rate limit (the keyless pool is shared by everyone)."
    FIELDS = "title,authors,venue,year,abstract,citationCount,url"

    def _request(self, query: str, limit: int) -> tuple[str, dict, dict]:
        params = {"query": query, "limit": limit, "fields": self.FIELDS}
        headers = {"x-api-key": self._api_key} if self._api_key else {}
        return f"{self.base_url}/graph/v1/paper/search", params, headers

    def _papers(self, body: Any) -> list[Paper]:
        # With no match the answer has no "data" at all.
        return [
            Paper(
                title=raw.get("title") or "",
                year=raw.get("year"),
                venue=raw.get("venue") or "",
                authors=tuple(author.get("name") or "" for author in raw.get("authors") or ()),
                abstract=raw.get("abstract") or "",
                citations=raw.get("citationCount"),
                url=raw.get("url") or "",
            )
            for raw in body.get("data") or ()
        ]


class OpenAlex(LiteratureClient):
    """OpenAlex's works search."""

    name = "openalex"
    display_name = "OpenAlex"
    default_base_url = "https://api.openalex.org"
    key_variable = "OPENALEX_API_KEY"
    key_hint = "A free API key in OPENALEX_API_KEY (openalex.org/settings/api) lifts the keyless daily allowance."

    def _request(self, query: str, limit: int) -> tuple[str, dict, dict]:
        params = {"search": query, "per-page": limit}
        if self._api_key:
            params["api_key"] = self._api_key
        if os.environ.get("OPENALEX_MAILTO"):
            params["mailto"] = os.environ["OPENALEX_MAILTO"]
        return f"{self.base_url}/works", params, {}

    def _papers(self, body: Any) -> list[Paper]:
        return [
            Paper(
                title=raw.get("title") or raw.get("display_name") or "",
                year=raw.get("publication_year"),
                venue=((raw.get("primary_location") or {}).get("source") or {}).get("display_name") or "",
                authors=tuple((a.get("author") or {}).get("display_name") or "" for a in raw.get("authorships") or ()),
                abstract=abstract_from_inverted_index(raw.get("abstract_inverted_index")),
                citations=raw.get("cited_by_count"),
                url=raw.get("doi") or raw.get("id") or "",
            )
            for raw in body.get("results") or ()
        ]


def abstract_from_inverted_index(index: dict[str, list[int]] | None) -> str:
    """OpenAlex stores an abstract as {word: [positions]}; put each word back at its positions."""
    placed = sorted((position, word) for word, positions in (index or {}).items() for position in positions)
    return " ".join(word for _, word in placed)


ENGINES: dict[str, type[LiteratureClient]] = {
    SemanticScholar.name: SemanticScholar,
    OpenAlex.name: OpenAlex,
}


def make_client(engine: str, cache_dir: Path, **kwargs: Any) -> LiteratureClient:
    """The client of `engine` (a key of ENGINES); keyword arguments go to its constructor."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown literature engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    return ENGINES[engine](cache_dir, **kwargs)


def make_clients(primary: str, cache_dir: Path, **kwargs: Any) -> list[LiteratureClient]:
    """A client of every engine, `primary`'s first: the others are asked when it fails."""
    order = [primary, *(name for name in ENGINES if name != primary)]  # an unknown primary fails in make_client
    return [make_client(name, cache_dir, **kwargs) for name in order]

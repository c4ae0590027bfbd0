"""HTTP scoring over one loaded ensemble: ``POST /score`` and ``GET /health`` (FastAPI).

The request body is checked here, by hand, rather than by FastAPI's models: every refusal is one
JSON object ``{"error": ..., "field": ...}`` naming the field as a client writes it
(``essays[3].text``), with 400 (not JSON), 413 (over a limit) or 422 (a wrong value); an
unexpected failure is a 500 with one line, its traceback only in the server's log.

Scoring is CPU-bound, so it runs in a worker thread, never on the event loop; a lock lets one
request at a time use the models (feature pipelines, LightGBM boosters and torch modules are not
all safe to share between threads), so concurrent requests score exactly as sequential ones.
FastAPI and uvicorn are an optional extra: importing this module does not need them. No
``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations
(``request: Request``) as classes, and those are imported inside :func:`create_app`.
"""

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from aes_ensemble.errors import AesError, did_you_mean

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aes_ensemble.scoring.ensemble import Ensemble

INSTALL_HINT = "pip install 'aes-ensemble[serve]'"
ESSAY_FIELDS = ("id", "text", "prompt")
EXAMPLE = '{"essays": [{"id": "e1", "text": "...", "prompt": "optional"}]}'


def require_serve() -> None:
    """Refuse early, in one line, where the optional ``serve`` extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise AesError(f"serving needs FastAPI and uvicorn ({exc}): {INSTALL_HINT}") from None


@dataclass(frozen=True)
class Limits:
    """What one request may hold; the body limit follows from the other two (JSON may spell a
    character as a 12-byte surrogate pair escape)."""

    max_essays: int = 1000
    max_chars: int = 50_000

    @property
    def max_body_bytes(self) -> int:
        return self.max_essays * (12 * self.max_chars + 1024) + 65_536


class RequestError(Exception):
    """A refused request: the HTTP status, the field as the client names it, and why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        self.status = status
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def body(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True)
class ScoreRequest:
    """A checked request: the ids as sent (returned unchanged) and the frame to score."""

    ids: list[str | int]
    frame: pl.DataFrame


def _key(value: Any) -> str | int:
    """An id as the client sent it: a non-empty string or an integer (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError
    return value


def _essay(item: Any, where: str, limits: Limits) -> tuple[str | int, str, str | None]:
    if not isinstance(item, dict):
        raise RequestError(422, where, 'must be an object like {"id": ..., "text": ...}')
    for key in item:
        if key not in ESSAY_FIELDS:
            raise RequestError(
                422, f"{where}.{key}", f"unknown field{did_you_mean(key, ESSAY_FIELDS)}"
            )
    for key in ("id", "text"):
        if key not in item:
            raise RequestError(422, f"{where}.{key}", "missing")
    try:
        essay_id = _key(item["id"])
    except TypeError:
        raise RequestError(422, f"{where}.id", "must be a string or an integer") from None
    if isinstance(essay_id, str) and not essay_id.strip():
        raise RequestError(422, f"{where}.id", "is empty")
    text = item["text"]
    if not isinstance(text, str):
        raise RequestError(422, f"{where}.text", "must be a string")
    if not text.strip():
        raise RequestError(422, f"{where}.text", "is empty; send the essay's text")
    if len(text) > limits.max_chars:
        raise RequestError(
            413,
            f"{where}.text",
            f"has {len(text):,} characters, over the limit of {limits.max_chars:,} "
            "(the server's --max-chars)",
        )
    prompt = item.get("prompt")
    if prompt is not None:
        try:
            prompt = str(_key(prompt))
        except TypeError:
            raise RequestError(422, f"{where}.prompt", "must be a string or null") from None
    return essay_id, text, prompt


def parse_request(raw: bytes, limits: Limits) -> ScoreRequest:
    """Check a ``POST /score`` body; the first problem found is raised as a RequestError."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "body", f"is not valid JSON ({exc}); send {EXAMPLE}") from None
    if not isinstance(body, dict):
        raise RequestError(422, "body", f"must be a JSON object; send {EXAMPLE}")
    for key in body:
        if key != "essays":
            raise RequestError(422, key, f"unknown field{did_you_mean(key, ['essays'])}")
    if "essays" not in body:
        raise RequestError(422, "essays", f"missing; send {EXAMPLE}")
    items = body["essays"]
    if not isinstance(items, list):
        raise RequestError(422, "essays", "must be a list of essays")
    if not items:
        raise RequestError(422, "essays", "is empty; send at least one essay")
    if len(items) > limits.max_essays:
        raise RequestError(
            413,
            "essays",
            f"{len(items):,} essays are over the limit of {limits.max_essays:,} per request "
            "(the server's --max-essays); send them in smaller requests",
        )
    ids: list[str | int] = []
    texts: list[str] = []
    prompts: list[str | None] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        essay_id, text, prompt = _essay(item, f"essays[{i}]", limits)
        first = seen.setdefault(str(essay_id), i)
        if first != i:
            raise RequestError(
                422, f"essays[{i}].id", f"'{essay_id}' is also the id of essays[{first}]"
            )
        ids.append(essay_id)
        texts.append(text)
        prompts.append(prompt)
    columns: dict[str, Any] = {"essay_id": [str(i) for i in ids], "full_text": texts}
    if any(p is not None for p in prompts):
        columns["prompt"] = pl.Series(prompts, dtype=pl.String)
    return ScoreRequest(ids, pl.DataFrame(columns))


def blame(exc: AesError, frame: pl.DataFrame) -> RequestError:
    """The field of an essay the ensemble refused: the row the error names, else the essay whose
    prompt it quotes (or the first without one, where it wants a prompt), else all essays."""
    prompts = frame["prompt"].to_list() if "prompt" in frame.columns else [None] * frame.height
    about_prompt = "prompt" in exc.message
    if exc.row is not None and 0 < exc.row <= frame.height:
        field = f"essays[{exc.row - 1}]" + (".prompt" if about_prompt else "")
        return RequestError(422, field, exc.message)
    if about_prompt:
        for i, prompt in enumerate(prompts):
            if (f"'{prompt}'" if prompt is not None else "without a prompt") in exc.message:
                return RequestError(422, f"essays[{i}].prompt", exc.message)
    return RequestError(422, "essays", exc.message)


class Service:
    """The loaded ensemble behind the endpoints: one scoring call at a time, off the loop."""

    def __init__(self, ensemble: "Ensemble", limits: Limits) -> None:
        self.ensemble = ensemble
        self.limits = limits
        self._lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "stack": self.ensemble.stack_name,
            "learners": list(self.ensemble.learners),
            "limits": {"max_essays": self.limits.max_essays, "max_chars": self.limits.max_chars},
            "manifest": self.ensemble.manifest,
        }

    def score(self, raw: bytes) -> dict[str, Any]:
        """The answer to a ``POST /score`` body (a worker thread runs it: parsing a large
        body takes CPU too)."""
        started = time.perf_counter()
        request = parse_request(raw, self.limits)
        with self._lock:
            try:
                scored = self.ensemble.score(request.frame)
            except AesError as exc:
                raise blame(exc, request.frame) from None
        by_id = dict(zip(scored["essay_id"].to_list(), scored["score"].to_list(), strict=True))
        return {
            "scores": [{"id": i, "score": by_id[str(i)]} for i in request.ids],
            "stack": self.ensemble.stack_name,
            "seconds": round(time.perf_counter() - started, 4),
        }


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` bytes (a client need not send a
    Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, "body", f"is over {limit:,} bytes; send fewer or shorter essays per request"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(ensemble: "Ensemble", limits: Limits = Limits()) -> "FastAPI":
    """The ASGI app serving ``ensemble``; run it with ``serve`` or any ASGI server."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    service = Service(ensemble, limits)
    app = FastAPI(title="aes-ensemble", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestError)
    async def refused(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        error = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse({"error": error, "field": None}, status_code=exc.status_code)

    # Starlette re-raises the exception after this answer, so the server logs its traceback.
    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        line = " ".join(f"{type(exc).__name__}: {exc}".split())
        return JSONResponse({"error": f"internal error: {line}", "field": None}, status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        raw = await _read_body(request, limits.max_body_bytes)
        return await run_in_threadpool(service.score, raw)

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), bound before the models load so
    a busy port is reported at once."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise AesError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another "
            "--host or --port",
            key="--port",
        ) from None


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(sock: socket.socket, ensemble: "Ensemble", limits: Limits, *, log_level: str) -> None:
    """Answer requests on ``sock`` until interrupted (Ctrl-C or SIGTERM end it cleanly)."""
    import uvicorn

    config = uvicorn.Config(create_app(ensemble, limits), log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])

"""`aes-ensemble serve`, started for real and called over HTTP: the scores are `Ensemble.score`'s,
bad requests are refused naming the field, and concurrent requests score as sequential ones."""

from __future__ import annotations

import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'aes-ensemble[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra")

from aes_ensemble.data import load_workspace_dataset  # noqa: E402
from aes_ensemble.engine import fit_learner  # noqa: E402
from aes_ensemble.folds import assign_folds, save_folds  # noqa: E402
from aes_ensemble.sample import TEST, TRAIN, sample_path  # noqa: E402
from aes_ensemble.scoring.ensemble import Ensemble, export_bundle  # noqa: E402
from aes_ensemble.scoring.server import Limits, address, bind, create_app  # noqa: E402
from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace  # noqa: E402
from aes_ensemble.workspace import Workspace  # noqa: E402

MAX_ESSAYS = 40
MAX_CHARS = 8_000  # the sample's longest essay has about 6,000
STARTUP_SECONDS = 180
TFIDF = "  tfidf: {word_ngram_range: [1, 2], char_ngram_range: null, max_features: 2000}\n"
RIDGE = "kind: ridge\nfeatures:\n  handcrafted: true\n" + TFIDF + "params: {alpha: 3.0}\n"
LGBM = (
    "kind: lgbm\nfeatures:\n  handcrafted: true\n"
    + TFIDF
    + "  svd_components: 8\nparams: {n_estimators: 30, learning_rate: 0.2, num_leaves: 7}\n"
)
RIDGE_PER_PROMPT = RIDGE.replace("kind: ridge\n", "kind: ridge\nper_prompt: true\n")


def _fitted(root: Path, train: pl.DataFrame, learners: dict[str, str], meta: str) -> Path:
    """A workspace on ``train`` with ``learners`` fitted over 3 folds and one stack."""
    (root / "configs").mkdir(parents=True)
    train.write_csv(root / "essays.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: essays.csv\nformat: ellipse\n", encoding="utf-8"
    )
    for name, text in learners.items():
        (root / "configs" / f"{name}.yaml").write_text(text, encoding="utf-8")
    ws = Workspace.at(root)
    essays, _ = load_workspace_dataset(ws)
    # Stratified: a per-prompt learner needs every prompt in every fold's training rows.
    save_folds(ws, assign_folds(essays, 3, seed=0, method="stratified"))
    for name in learners:
        fit_learner(ws, name, progress=False)
    stack_workspace(ws, stack_config(ws, overrides={"meta": meta, "models": list(learners)}))
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample, ridge_tfidf + a 30-tree lgbm, stacked by nnls."""
    train = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    learners = {"ridge_tfidf": RIDGE, "lgbm": LGBM}
    return _fitted(tmp_path_factory.mktemp("serve_ws"), train, learners, "nnls")


@pytest.fixture(scope="module")
def essays() -> pl.DataFrame:
    """New essays to score: the sample's test file (80 essays, 10 prompts)."""
    test = pl.read_csv(sample_path(TEST), infer_schema=False)
    return test.select(essay_id="text_id_kaggle", full_text="full_text", prompt="prompt")


def _wait_healthy(url: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url}/health did not answer within {STARTUP_SECONDS} s")


def _served_url(process: subprocess.Popen[str]) -> str:
    """The address the `serve` command prints once its models are loaded (it binds port 0)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    deadline = time.monotonic() + STARTUP_SECONDS
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if " on http://" in line:
            return line.rsplit(" on ", 1)[1].strip()
    raise AssertionError(f"serve printed no address (exit {process.poll()}): {''.join(seen)}")


@contextmanager
def _serve_cli(*args: str | Path, log: Path) -> Iterator[str]:
    """`aes-ensemble serve ARGS` in a subprocess on a free port, as a user starts it; its
    stderr (uvicorn's log) goes to ``log``; stopped on leaving."""
    command = [sys.executable, "-m", "aes_ensemble.cli.main", "serve", *map(str, args)]
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        url = _served_url(process)
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(workspace: Path) -> Iterator[str]:
    """`serve -w` on the fitted workspace, with small limits."""
    limits = ["--max-essays", str(MAX_ESSAYS), "--max-chars", str(MAX_CHARS)]
    with _serve_cli("-w", workspace, *limits, log=workspace.parent / "serve.log") as url:
        yield url


def _request(url: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _payload(frame: pl.DataFrame) -> dict[str, Any]:
    keys = {"essay_id": "id", "full_text": "text", "prompt": "prompt"}
    return {"essays": frame.select(list(keys)).rename(keys).to_dicts()}


def _scores(response: dict[str, Any]) -> dict[str, float]:
    return {str(s["id"]): s["score"] for s in response["scores"]}


def test_scores_equal_the_library(workspace: Path, server: str, essays: pl.DataFrame) -> None:
    expected = Ensemble.load(workspace).score(essays)
    status, body = _request(server, "/score", _payload(essays.head(MAX_ESSAYS)))
    assert status == 200, body
    assert [s["id"] for s in body["scores"]] == essays["essay_id"].head(MAX_ESSAYS).to_list()
    wanted = dict(zip(expected["essay_id"].to_list(), expected["score"].to_list(), strict=True))
    assert _scores(body) == {i: wanted[i] for i in _scores(body)}
    assert len(set(_scores(body).values())) > 1

    # Prompts are optional for learners fitted on all prompts at once; ids come back as sent.
    unprompted = essays.tail(5).drop("prompt")
    status, body = _request(
        server,
        "/score",
        {"essays": [{"id": n, "text": t} for n, t in enumerate(unprompted["full_text"])]},
    )
    assert status == 200, body
    library = Ensemble.load(workspace).score(unprompted)["score"].to_list()
    assert [s["id"] for s in body["scores"]] == list(range(5))
    assert [s["score"] for s in body["scores"]] == library


def test_serves_a_bundle_without_the_workspace(
    workspace: Path, server: str, essays: pl.DataFrame, tmp_path: Path
) -> None:
    bundle = export_bundle(Workspace.at(workspace), tmp_path / "bundle")
    with _serve_cli("--bundle", bundle, log=tmp_path / "serve.log") as url:
        status, body = _request(url, "/health")
        assert status == 200
        assert body["manifest"] == json.loads((bundle / "manifest.json").read_text("utf-8"))
        status, from_bundle = _request(url, "/score", _payload(essays.head(20)))
    assert status == 200, from_bundle
    assert (
        from_bundle["scores"] == _request(server, "/score", _payload(essays.head(20)))[1]["scores"]
    )


def test_health_gives_the_manifest(workspace: Path, server: str) -> None:
    status, body = _request(server, "/health")
    assert status == 200
    ensemble = Ensemble.load(workspace)
    assert body["status"] == "ok"
    assert body["manifest"] == json.loads(json.dumps(ensemble.manifest))
    assert body["stack"] == ensemble.stack_name == "stack_nnls"
    assert body["learners"] == ["ridge_tfidf", "lgbm"]
    assert body["limits"] == {"max_essays": MAX_ESSAYS, "max_chars": MAX_CHARS}


def test_serving_leaves_the_workspace_cache_alone(
    workspace: Path, server: str, essays: pl.DataFrame
) -> None:
    cache = Workspace.at(workspace).cache_dir
    before = sorted(cache.rglob("*"))
    assert before, "fitting caches the handcrafted features"
    text = essays["full_text"][0] + " A sentence no essay scored so far has."
    status, body = _request(server, "/score", {"essays": [{"id": "new", "text": text}]})
    assert status == 200, body
    assert sorted(cache.rglob("*")) == before


ESSAY = {"id": "a", "text": "A short essay about school."}
BAD_REQUESTS = [
    (b'{"essays": [', None, 400, "body"),
    (None, [ESSAY], 422, "body"),
    (None, {}, 422, "essays"),
    (None, {"essays": ESSAY}, 422, "essays"),
    (None, {"essays": []}, 422, "essays"),
    (None, {"essays": [ESSAY], "stack": "x"}, 422, "stack"),
    (None, {"essays": [ESSAY] * (MAX_ESSAYS + 1)}, 413, "essays"),
    (None, {"essays": [ESSAY, "text"]}, 422, "essays[1]"),
    (None, {"essays": [{"text": "An essay."}]}, 422, "essays[0].id"),
    (None, {"essays": [{"id": "a"}]}, 422, "essays[0].text"),
    (None, {"essays": [{"id": "a", "txt": "An essay."}]}, 422, "essays[0].txt"),
    (None, {"essays": [{"id": "a", "text": " \n "}]}, 422, "essays[0].text"),
    (None, {"essays": [{"id": "a", "text": 3}]}, 422, "essays[0].text"),
    (None, {"essays": [{"id": None, "text": "An essay."}]}, 422, "essays[0].id"),
    (None, {"essays": [ESSAY, {"id": "b", "text": "x"}, ESSAY]}, 422, "essays[2].id"),
    (None, {"essays": [{"id": 7, "text": "x"}, {"id": "7", "text": "y"}]}, 422, "essays[1].id"),
    (None, {"essays": [ESSAY, {"id": "b", "text": "x" * (MAX_CHARS + 1)}]}, 413, "essays[1].text"),
    (None, {"essays": [{**ESSAY, "prompt": ["a"]}]}, 422, "essays[0].prompt"),
]


@pytest.mark.parametrize(("raw", "body", "status", "field"), BAD_REQUESTS)
def test_bad_requests_are_refused_naming_the_field(
    server: str, raw: bytes | None, body: Any, status: int, field: str
) -> None:
    got, answer = _request(server, "/score", body, raw)
    assert (got, answer["field"]) == (status, field), answer
    assert answer["error"].startswith(f"{field}: ")
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]


def test_concurrent_requests_score_as_sequential_ones(server: str, essays: pl.DataFrame) -> None:
    batches = [_payload(essays.slice(10 * i, 10)) for i in range(8)]
    sequential = [_request(server, "/score", b) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda b: _request(server, "/score", b), batches))
    assert all(status == 200 for status, _ in sequential + concurrent)
    assert [_scores(b) for _, b in concurrent] == [_scores(b) for _, b in sequential]


def test_missing_serve_extra_is_one_line(
    run_cli: Callable[..., Any], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed: import fails
    result = run_cli("serve", "-w", workspace, "--port", "0")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "pip install 'aes-ensemble[serve]'" in result.stderr


def test_busy_port_is_one_line(run_cli: Callable[..., Any], workspace: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", "-w", workspace, "--port", port)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


class _Serving:
    """``create_app`` under uvicorn in a thread, for an ensemble built in the test."""

    def __init__(self, ensemble: Any, limits: Limits = Limits()) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = address(self.sock)
        config = uvicorn.Config(create_app(ensemble, limits), log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        _wait_healthy(self.url)
        return self.url

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def test_unknown_prompt_of_a_per_prompt_learner(tmp_path: Path, essays: pl.DataFrame) -> None:
    train = pl.read_csv(sample_path(TRAIN), infer_schema=False)
    prompts = sorted(set(train["prompt"].to_list()))[:2]
    root = _fitted(
        tmp_path / "ws",
        train.filter(pl.col("prompt").is_in(prompts)),
        {"ridge_prompt": RIDGE_PER_PROMPT, "ridge_tfidf": RIDGE},
        "mean",
    )
    known = essays.filter(pl.col("prompt") == prompts[0]).head(2)
    other = essays.filter(~pl.col("prompt").is_in(prompts)).head(1)
    with _Serving(Ensemble.load(root)) as url:
        status, body = _request(url, "/score", _payload(known))
        assert status == 200, body
        assert _scores(body) == _scores(
            {"scores": Ensemble.load(root).score(known).rename({"essay_id": "id"}).to_dicts()}
        )
        status, body = _request(url, "/score", _payload(pl.concat([known, other])))
    assert (status, body["field"]) == (422, "essays[2].prompt"), body
    assert other["prompt"][0] in body["error"] and prompts[0] in body["error"]


class _Broken:
    """A real ensemble whose scoring fails as a bug would: the server must stay one line."""

    def __init__(self, ensemble: Ensemble) -> None:
        self.stack_name, self.learners, self.manifest = (
            ensemble.stack_name,
            ensemble.learners,
            ensemble.manifest,
        )

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        raise ValueError("an unexpected failure\nover two lines")


def test_unexpected_error_is_a_one_line_500_and_logged(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), _Serving(_Broken(Ensemble.load(workspace))) as url:
        status, body = _request(url, "/score", {"essays": [ESSAY]})
    assert status == 500
    assert body == {
        "error": "internal error: ValueError: an unexpected failure over two lines",
        "field": None,
    }
    assert any(r.exc_info and "unexpected failure" in str(r.exc_info[1]) for r in caplog.records)


def test_a_body_over_the_limit_is_refused_before_parsing(workspace: Path) -> None:
    limits = Limits(max_essays=1, max_chars=10)
    padding = b" " * (limits.max_body_bytes + 1)
    with _Serving(Ensemble.load(workspace), limits) as url:
        status, body = _request(url, "/score", raw=b'{"essays": [' + padding + b"]}")
    assert (status, body["field"]) == (413, "body"), body

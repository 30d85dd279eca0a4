"""The log filter ``logs.configure`` installs: aiohttp's and asyncio's records keep only safe
facts (the message quoting a request, its arguments, extra fields and exception messages go);
every other record is left alone, and the fast access-line path is still taken."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.test_utils import make_mocked_request

from service import logs
from service.api.errors import _from_exception
from service.redaction import REFUSED, WITHHELD, RequestDataFilter, safe_traceback

SECRET = "tks_REDACTME_0123456789abcdef"


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``logs.configure("DEBUG")`` for one test; returns a reader of the JSON lines written."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads)
    saved_mp, access = logging.logMultiprocessing, logging.getLogger("aiohttp.access")
    saved_access = access.level
    logs.configure("DEBUG")
    ours = root.handlers[0]  # pytest adds its own capture handler for the test's call

    def lines() -> list[dict[str, Any]]:
        ours.flush()
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]

    try:
        yield lines
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging._srcfile, logging.logThreads, logging.logMultiprocessing = (
            saved[2],
            saved[3],
            saved_mp,
        )
        access.setLevel(saved_access)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_configure_installs_the_filter_and_keeps_the_fast_path(
    configured: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    (handler,) = [h for h in root.handlers if type(h) is logs.BufferedStderrHandler]
    assert [type(f) for f in handler.filters] == [RequestDataFilter]
    monkeypatch.setattr(root, "handlers", [handler])  # as in the service: ours alone
    assert logs._sole_handler(logging.getLogger("tokenstore.access"), logging.INFO) is handler


def test_a_refused_request_keeps_its_class_status_and_peer_only(configured: Any) -> None:
    exc = _raised(
        BadHttpMessage(f"Invalid header value char:\n\n  b'Authorization: {SECRET}\\x01'")
    )
    server = logging.getLogger("aiohttp.server")
    server.error("Error handling request from %s", "10.1.2.3", exc_info=exc)
    too_long = _raised(LineTooLong(f"Bearer {SECRET}".encode(), 8190))
    server.debug("Error handling request from %s", "<not an address>", exc_info=too_long)
    first, second = configured()
    assert first == first | {"logger": "aiohttp.server", "level": "INFO", "msg": REFUSED}
    assert (first["error"], first["status"], first["remote"]) == ("BadHttpMessage", 400, "10.1.2.3")
    assert (second["level"], second["error"], "remote" in second) == ("DEBUG", "LineTooLong", False)
    assert "exc" not in first and SECRET not in json.dumps([first, second])


def test_other_aiohttp_records_lose_messages_arguments_and_extra_fields(configured: Any) -> None:
    logging.getLogger("aiohttp.access").warning(
        f'127.0.0.1 "GET /x?token={SECRET} HTTP/1.1" 200', extra={"first_request_line": SECRET}
    )
    logging.getLogger("aiohttp.web").error(
        f"Web-handler should return a response instance, got {SECRET!r}",
        exc_info=_raised(ValueError(f"invalid literal for int(): {SECRET!r}")),
    )
    logging.getLogger("aiohttp.not_yet_written").info("%s", SECRET)  # any child logger
    logging.getLogger("aiohttp.server").error("Unhandled exception", exc_info=_raised(KeyError(1)))
    access, web, child, unhandled = configured()
    assert SECRET not in json.dumps([access, web, child, unhandled])
    assert (access["msg"], "first_request_line" in access) == (WITHHELD, False)
    assert (web["msg"], web["level"], web["error"]) == (WITHHELD, "ERROR", "ValueError")
    assert "in _raised" in web["exc"] and "ValueError (message withheld)" in web["exc"]
    assert child["msg"] == WITHHELD
    assert (unhandled["msg"], unhandled["error"]) == ("unhandled exception", "KeyError")


def test_asyncio_records_keep_their_first_line_only(configured: Any) -> None:
    logging.getLogger("asyncio").error(
        f"Fatal error: protocol.data_received() call failed.\nprotocol: <P {SECRET}>",
        exc_info=_raised(RuntimeError(SECRET)),
    )
    (line,) = configured()
    assert line["msg"] == "Fatal error: protocol.data_received() call failed."
    assert line["error"] == "RuntimeError" and SECRET not in json.dumps(line)


def test_the_services_own_records_are_untouched(configured: Any) -> None:
    logging.getLogger("tokenstore.sweeper").warning("sweep %s", "web", extra={"app_id": "web"})
    (line,) = configured()
    assert (line["msg"], line["app_id"]) == ("sweep web", "web")


def test_a_refusal_below_the_configured_level_is_not_written(configured: Any) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    exc = _raised(BadHttpMessage(SECRET))
    logging.getLogger("aiohttp.server").error("Error handling request from %s", "::1", exc_info=exc)
    assert configured() == []


def test_an_unexpected_error_is_logged_without_its_message(configured: Any) -> None:
    request = make_mocked_request("GET", "/v1/apps/a/tokens")
    error = _from_exception(request, _raised(ValueError(f"invalid literal: {SECRET!r}")))
    assert error.status == 500 and SECRET not in error.message
    (line,) = configured()
    assert (line["msg"], line["error"]) == ("unexpected error", "ValueError")
    assert "ValueError (message withheld)" in line["exc"] and SECRET not in line["exc"]


def test_safe_traceback_follows_the_chain_without_messages() -> None:
    try:
        try:
            raise KeyError(SECRET)
        except KeyError as inner:
            raise RuntimeError(SECRET) from inner
    except RuntimeError as outer:
        text = safe_traceback(outer)
    assert text.index("KeyError (message withheld)") < text.index("RuntimeError (message")
    assert text.count("Traceback (most recent call last)") == 2 and SECRET not in text

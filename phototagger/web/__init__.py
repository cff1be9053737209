"""The local web app: predict one photo, browse and correct the library, read about the model.

Flask with Jinja templates: small, mature, a test client built in, and nothing here needs async.
The routes stay thin and call the same core as the CLI (``predict``, ``corrections``, ``index``).
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import (
    Flask,
    Request,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
)
from werkzeug.exceptions import (
    Forbidden,
    HTTPException,
    InternalServerError,
    ServiceUnavailable,
)

from phototagger.errors import BusyError, cut
from phototagger.index import Library
from phototagger.model import LandmarkModel
from phototagger.web.images import DecodeSlots

#: Default upload limit: a 24 MP JPEG straight from a camera is 10-15 MB.
UPLOAD_LIMIT = 25 * 1024 * 1024
#: Default limit of an upload's pixels, read from its header before anything is decoded: a
#: file of a few hundred kB can claim 225 MP, which decoded whole takes gigabytes.
UPLOAD_PIXELS = 50_000_000
log = logging.getLogger("phototagger.web")


class InMemoryRequest(Request):
    """Keeps uploaded files in memory: uploads are bounded and must never touch the disk."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return io.BytesIO()


def create_app(
    model: LandmarkModel,
    library: Library,
    *,
    upload_limit: int = UPLOAD_LIMIT,
    upload_pixels: int = UPLOAD_PIXELS,
    decoding: DecodeSlots | None = None,
    host_names: Iterable[str] = (),
    write: str = "embed",
    estimate_position: bool = True,
) -> Flask:
    """The app for one model and one index; ``upload_limit`` bounds a request's body in bytes,
    ``upload_pixels`` an uploaded image's size, ``decoding`` how many images decode at once;
    ``host_names`` are the names it answers to besides localhost and IP addresses
    (:func:`own_host_names`); ``write`` and ``estimate_position``: how a person's tags reach
    the files (``serve --write``, ``--no-position``, or the config file), as for ``tag``."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = upload_limit
    app.json.sort_keys = False
    app.extensions["phototagger"] = {
        "model": model,
        "library": library,
        "upload_pixels": upload_pixels,
        "decoding": decoding or DecodeSlots(),
        "host_names": frozenset({"localhost", *map(_plain_name, host_names)}),
        "write": write,
        "estimate_position": estimate_position,
    }

    from phototagger.web.routes import blueprint

    app.register_blueprint(blueprint)
    app.before_request(_refuse_foreign_requests)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(BusyError, _busy)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def own_host_names(host: str, allowed: Iterable[str] = ()) -> frozenset[str]:
    """The names a server bound to ``host`` answers to: ``host`` itself when it is a name,
    this machine's (its host name, fully qualified too) and those ``allowed`` (--allow-host)."""
    names = {socket.gethostname(), socket.getfqdn(), *allowed}
    if not _is_address(host):
        names.add(host)
    return frozenset(_plain_name(name) for name in names if name)


def _plain_name(name: str) -> str:
    return name.rstrip(".").lower()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_name(netloc: str) -> str:
    try:
        return urlsplit(f"//{netloc}").hostname or ""
    except ValueError:  # "[not an address": no name of the app's
        return ""


def _refuse_foreign_requests(_=None) -> None:
    """Refuse foreign Host names (DNS rebinding) and cross-site writes (CSRF), on any binding.

    DNS rebinding points another site's name at this server, so that its pages may read the
    library: the request then names that site in its Host header. An IP address there cannot
    be such a name, so any is accepted; a name must be one of the app's own. A browser sends
    ``Origin`` (or at least ``Referer``) with every cross-site POST, so a write whose origin
    is another host is refused.
    """
    host = _plain_name(_host_name(request.host))
    if not (_is_address(host) or host in current_app.extensions["phototagger"]["host_names"]):
        raise Forbidden(
            f"this app does not answer to the name {cut(host)!r}: use its address, or start "
            "it with `phototagger serve --allow-host NAME`"
        )
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is not None and urlsplit(source).netloc != request.host:
        raise Forbidden("cross-site request refused")


def content_security_policy(images: Iterable[str] = ()) -> str:
    """The app's policy: everything from the app itself, no inline script or style; a page
    may add where its ``images`` come from (the Map page: online map tiles)."""
    sources = " ".join(("'self'", "data:", *images))
    return (f"default-src 'self'; img-src {sources}; style-src 'self'; script-src 'self'; "
            "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _security_headers(response):
    """No inline script or style, no framing, no MIME sniffing, no embedding by another site:
    cheap defences for a local app."""
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Another site's page may not even embed the library's photos (<img src=...>).
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _http_error(error: HTTPException):
    """A message, as JSON for the API and as a page otherwise; never a traceback."""
    message = error.description or error.name
    if error.code == 413:
        message = _too_large()
    if _wants_json():
        return jsonify(error=message), error.code
    return render_template("error.html", title=error.name, message=message), error.code


def _too_large() -> str:
    """What a 413 refused: the body's size, or, within it, a form of too many parts or too
    long a field (Werkzeug says the same 413 for all three)."""
    limit = request.max_content_length or 0
    if request.content_length is None or request.content_length > limit:
        return f"the upload is too large: the limit is {_size(limit)}"
    return (
        f"the form has too many parts or too long a field (at most {request.max_form_parts} "
        f"parts, {request.max_form_memory_size:,} bytes a field): send one photo, in the "
        "field 'photo'"
    )


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:.0f} MB" if count >= 1024 * 1024 else f"{count / 1024:.0f} kB"


#: Seconds a client told "busy" (503) should wait before it tries again.
RETRY_AFTER = 5


def _busy(error: BusyError):
    response = make_response(_http_error(ServiceUnavailable(str(error))))
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _unexpected_error(error: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _http_error(InternalServerError("something went wrong; the server log has details"))

"""The HTML report: one self-contained file a responder opens offline.

The page is its data (one JSON document), Cytoscape.js (shipped in ``report_assets``, from the
npm registry, with its licence) and the page's own script and style, all inlined. Its
Content-Security-Policy allows those inlined scripts and style (by their hashes) and nothing
else: no request leaves the page, and no script an input could smuggle in would run.

Every name comes from an attacker (file, share, user and host names): the data is JSON inside a
``<script type="application/json">`` element with ``<``, ``>``, ``&`` and the line separators
escaped (so ``</script>`` in a file name cannot close it), and the page's script sets each value
as text, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import cache
from importlib import resources
from typing import Any, Final, TextIO

ASSETS: Final = "report_assets"
LIBRARY: Final = "cytoscape.min.js"
# The rule Cytoscape.js adds in a <style> of this id unless the page has one: here, so that the
# policy can allow it by its hash like the page's own style.
LIBRARY_STYLE: Final = ".__________cytoscape_container { position: relative; }"
_ESCAPES: Final = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<style id="__________cytoscape_stylesheet">{library_style}</style>
</head>
<body>
<header><h1>{title}</h1><div class="meta" id="report-meta"></div></header>
<nav>
<button class="active" data-section="graph">Hosts and moves</button>
<button data-section="incidents">Incidents</button>
<button data-section="alerts">Alerts</button>
<button data-section="timeline">Timeline</button>
<button data-section="files">Files</button>
</nav>
<main>
<div class="summary" id="summary"></div>
<section id="graph" class="active">
<div class="legend">moves (admin share writes, services and tasks created, logons), by the
highest risk of their incidents:<span class="r80"></span>80+<span class="r50"></span>50+<span
class="r25"></span>25+<span class="r0"></span>lower; click a move for its events</div>
<div id="graph-note"></div>
<div id="graph-area"><div id="cy"></div><aside id="edge-detail"><p class="muted">Click a move
(an arrow, or a row below) to see its events.</p></aside></div>
<h2>Moves, those that matter most first</h2><div id="moves"></div>
</section>
<section id="incidents"><h2>Incidents, highest risk first</h2><div id="incident-list"></div>
</section>
<section id="alerts"><h2>Alerts, highest risk first</h2><div id="alerts-note"></div>
<div id="alert-list"></div></section>
<section id="timeline"><h2>Timeline</h2><div id="timeline-note"></div>
<div class="filters">
<label>host <select id="filter-host"><option value="">any</option></select></label>
<label>user <select id="filter-user"><option value="">any</option></select></label>
<label>since (UTC) <input id="filter-since" placeholder="2020-09-20T16:16"></label>
<label>until (UTC) <input id="filter-until" placeholder="2020-09-20T17:00"></label>
<span id="timeline-count" class="muted"></span>
</div>
<div id="timeline-table"></div><button class="more" id="timeline-more" hidden>more</button>
</section>
<section id="files"><h2>Files that crossed the wire</h2><div id="file-list"></div></section>
</main>
<script type="application/json" id="smbwatch-data">{data}</script>
<script>{library}</script>
<script>{script}</script>
</body>
</html>
"""


@cache
def asset(name: str) -> str:
    """A file shipped in ``report_assets``."""
    return (resources.files(__package__) / ASSETS / name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON to put inside a ``<script>`` element: nothing in it can end the element or be read
    as markup (``</script>``, ``<!--``), whatever strings it holds."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)
    return text.translate(_ESCAPES)


def _digest(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def write_report(out: TextIO, title: str, data: dict[str, Any]) -> int:
    """Write the page for ``data`` (see ``case.story`` and the CLI's ``report`` verb); the
    characters written."""
    library, script, style = asset(LIBRARY), asset("report.js"), asset("report.css")
    policy = (
        "default-src 'none'; "
        f"script-src 'sha256-{_digest(library)}' 'sha256-{_digest(script)}'; "
        f"style-src 'sha256-{_digest(style)}' 'sha256-{_digest(LIBRARY_STYLE)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return out.write(
        _PAGE.format(
            policy=policy,
            title=html.escape(title),
            style=style,
            library_style=LIBRARY_STYLE,
            data=script_json(data),
            library=library,
            script=script,
        )
    )

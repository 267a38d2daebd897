"""Pages built from plain blocks (headings, paragraphs, tables, figures), rendered both as Markdown and as a
static HTML page in the leaderboard's style (images embedded, no script, no network): the published index
and the stability page say each thing once and get both forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ganbench.reporting.render import CSS, generated_line, image_src, shrink_png


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = ""  # "" | "verdict" (a boxed conclusion) | "muted"


@dataclass(frozen=True)
class Table:
    head: list[str]
    rows: list[list[str]]
    links: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) -> relative link of the cell


@dataclass(frozen=True)
class Image:
    title: str
    path: Path  # under the page's folder


Block = Heading | Para | Table | Image


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list[Block], folder: Path) -> str:
    parts = [f"# {title}", "", generated_line(), ""]
    for b in blocks:
        if isinstance(b, Heading):
            parts += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            parts += [f"> {b.text}" if b.kind == "verdict" else b.text, ""]
        elif isinstance(b, Table):
            parts += ["| " + " | ".join(_cell(h) for h in b.head) + " |", "|" + "---|" * len(b.head)]
            for i, row in enumerate(b.rows):
                cells = [f"[{_cell(c)}]({b.links[(i, j)]})" if (i, j) in b.links else _cell(c) for j, c in enumerate(row)]
                parts.append("| " + " | ".join(cells) + " |")
            parts.append("")
        else:
            parts += [f"![{b.title}]({b.path.relative_to(folder).as_posix()})", ""]
    return "\n".join(parts)


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganbench: {{ title }}</title><style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<p class="muted">{{ generated }}</p>
{% for b in blocks %}{% if b.type == "heading" %}<h{{ b.level }}>{{ b.text }}</h{{ b.level }}>
{% elif b.type == "para" %}<p{% if b.kind %} class="{{ b.kind }}"{% endif %}>{{ b.text }}</p>
{% elif b.type == "table" %}<table><thead><tr>{% for h in b.head %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in b.rows %}<tr>{% for c in row %}<td>{% if c.href %}<a href="{{ c.href }}">{{ c.text }}</a>{% else %}{{ c.text }}{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% else %}<figure><img src="{{ b.src }}" alt="{{ b.title }}"><figcaption><b>{{ b.title }}</b></figcaption></figure>
{% endif %}{% endfor %}
</body></html>
"""


def _html_link(link: str) -> str:
    """A Markdown page's link as the HTML page's: a folder's README.md becomes its index.html."""
    return link[:-len("README.md")] + "index.html" if link.endswith("README.md") else link.replace(".md", ".html")


def to_html(title: str, blocks: list[Block], base: Path) -> str:
    """The page as HTML, its images addressed relative to ``base`` (the page's folder) and re-encoded small."""
    view = []
    for b in blocks:
        if isinstance(b, Heading):
            view.append({"type": "heading", "text": b.text, "level": b.level})
        elif isinstance(b, Para):
            view.append({"type": "para", "text": b.text, "kind": b.kind})
        elif isinstance(b, Table):
            rows = [[{"text": c, "href": _html_link(b.links[(i, j)]) if (i, j) in b.links else ""}
                     for j, c in enumerate(row)] for i, row in enumerate(b.rows)]
            view.append({"type": "table", "head": b.head, "rows": rows})
        else:
            shrink_png(b.path)
            view.append({"type": "image", "title": b.title, "src": image_src(b.path, base)})
    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(title=title, blocks=view, css=CSS, generated=generated_line())

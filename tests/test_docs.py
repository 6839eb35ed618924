"""The README, the docs pages and the notebooks' text: every relative link leads somewhere."""
import glob
import json
import os
import re

import pytest

from conftest import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_texts():
    """``(path, text)`` of every Markdown file and every notebook's Markdown cells."""
    for path in [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)]:
        with open(path, encoding="utf-8") as f:
            yield path, f.read()
    for path in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")):
        with open(path, encoding="utf-8") as f:  # (nbformat's import alone takes seconds: its schema validator)
            cells = json.load(f)["cells"]
        yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"(?ms)^```.*?^```", "", f.read())  # headings only outside code blocks
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def relative_links():
    for path, text in markdown_texts():
        for target in LINK.findall(text):
            if not re.match(r"[a-z]+:", target):
                yield os.path.relpath(path, ROOT), target


@pytest.mark.parametrize("source, target", sorted(set(relative_links())))
def test_relative_link_resolves(source, target):
    file_part, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(source), file_part)) if file_part \
        else os.path.join(ROOT, source)
    assert os.path.exists(resolved), f"{source}: {target} does not exist"
    if anchor:
        assert anchor in anchors(resolved), f"{source}: {target}: no such heading"


def test_there_are_links_to_check():
    pairs = set(relative_links())
    assert len(pairs) > 20 and any(source == "README.md" for source, _ in pairs)


def test_readme_is_a_front_door():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert len(f.read()) <= 12000

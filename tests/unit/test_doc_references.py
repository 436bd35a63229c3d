"""The docs are self-contained: references to threats and protocol sections point into docs/.

Code, tests and docs cite "docs/threats.md V4" and "protocols.md §2.9"; each cited threat ID must
be a row of docs/threats.md and each cited section a heading of docs/protocols.md, and nothing may
point at documents outside this repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
THREAT_ID = re.compile(r"\b([VLFBA])(\d+)\b")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?")


def tracked_texts() -> dict[str, str]:
    listed = subprocess.run(
        ["git", "ls-files", "src", "tests", "bench", "fuzz", "docs", "scripts", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    texts = {}
    for name in listed:
        if "node_modules" in name or name.startswith("bench/results/"):
            continue
        try:
            texts[name] = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
    return texts


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        name
        for name, text in tracked_texts().items()
        if name != "tests/unit/test_doc_references.py"
        and re.search(r"shared/docs|\.\./shared|testing-webrtc\.md|conventions\.md", text)
    ]
    assert not offenders


def test_code_cites_threats_by_their_path_in_the_repository() -> None:
    bare = [
        name
        for name, text in tracked_texts().items()
        if not name.startswith("docs/")
        and name != "tests/unit/test_doc_references.py"
        and re.search(r"(?<![/\w])threats\.md", text)
    ]
    assert not bare, "cite docs/threats.md"


def test_cited_threat_ids_exist() -> None:
    rows = set(re.findall(r"^\| ([VLFBA]\d+) \|", (DOCS / "threats.md").read_text(), re.M))
    missing = set()
    for name, text in tracked_texts().items():
        for match in re.finditer(r"threats\.md\)?((?: ?[VLFBA]\d+(?:[-/,]| and)?)+)", text):
            for letter, number in THREAT_ID.findall(match.group(1)):
                if letter + number not in rows:
                    missing.add(f"{name}: {letter}{number}")
    assert not missing


def test_cited_protocol_sections_exist() -> None:
    text = (DOCS / "protocols.md").read_text()
    headings = set(re.findall(r"^##+ (\d+(?:\.\d+)?)[. ]", text, re.M))
    missing = set()
    for name, content in tracked_texts().items():
        for line in content.splitlines():
            if "protocols.md" not in line and name != "docs/protocols.md":
                continue
            for first, last in SECTION.findall(line.split("RFC")[0]):
                for section in filter(None, (first, last if "." in last else "")):
                    if section not in headings:
                        missing.add(f"{name}: §{section}")
    assert not missing

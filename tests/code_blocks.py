"""Python code blocks of markdown documents (the README, the docs pages), extracted and run as
scripts, so every example a user copies runs as written (imported as
``from code_blocks import ...``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^(`{3,})\s*\{?([\w-]*)\}?(\s.*)?$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


@dataclass(frozen=True)
class CodeBlock:
    """One python block of a markdown file: its nearest heading, first line and source."""

    path: Path
    heading: str
    line: int
    source: str

    @property
    def id(self) -> str:
        """A test id: the file, the nearest heading (as a slug) and the block's line."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"{self.path.stem}:{slug}:L{self.line}"


def python_blocks(path: str | Path) -> list[CodeBlock]:
    """The fenced ```` ```python ```` blocks of the markdown file ``path``, in order (MyST
    directive fences such as ```` ```{toctree} ```` are skipped like any other language)."""
    path = Path(path)
    blocks: list[CodeBlock] = []
    heading, fence, lang, start, body = "", None, "", 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if fence is None:
            match = _FENCE.match(line)
            if match:
                fence, lang, start, body = match.group(1), match.group(2), number + 1, []
            elif _HEADING.match(line):
                heading = _HEADING.match(line).group(2).replace("`", "")
        elif line.strip() == fence:
            if lang == "python":
                blocks.append(CodeBlock(path, heading, start, "\n".join(body) + "\n"))
            fence = None
        else:
            body.append(line)
    return blocks


_EXPECT = re.compile(r"#\s*->\s*(.*\S)\s*$")


def expected_outputs(source: str) -> list[re.Pattern]:
    """What the ``# -> TEXT`` comments of ``source`` say it prints: one pattern per comment,
    matching a whole line of output, ``...`` standing for any text."""
    patterns = []
    for line in source.splitlines():
        match = _EXPECT.search(line)
        if match:
            parts = [re.escape(part) for part in match.group(1).split("...")]
            patterns.append(re.compile(".*".join(parts)))
    return patterns


def run_python(source: str, cwd: Path, label: str, timeout: float = 300) -> str:
    """Run ``source`` as a script in a fresh interpreter in ``cwd`` (non-interactive
    matplotlib) and return its output; raise ``AssertionError`` with the output when it fails
    or when a line it says it prints (``# -> TEXT``, in order) is missing."""
    script = Path(cwd) / "example.py"
    script.write_text(source, encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, script.name], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=timeout)
    report = f"{label}:\n{source}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    if proc.returncode != 0:
        raise AssertionError(f"{label} failed with status {proc.returncode}\n{report}")
    lines = iter(proc.stdout.splitlines())
    for pattern in expected_outputs(source):
        if not any(pattern.fullmatch(line.strip()) for line in lines):
            raise AssertionError(f"{label} did not print a line like {pattern.pattern!r} "
                                 f"(in order)\n{report}")
    return proc.stdout

"""The extraction and checking of markdown examples (tests/code_blocks.py) on small documents."""

from __future__ import annotations

import pytest
from code_blocks import python_blocks, run_python

DOCUMENT = """# Title

```bash
echo not python
```

## First `part`

```python
print("a")  # -> a
```

```{toctree}
:maxdepth: 1
```

````python
print("b", 12.5)  # -> b ...
````
"""


def test_python_blocks_skip_other_languages_and_keep_the_nearest_heading(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT)
    blocks = python_blocks(path)
    assert [b.source for b in blocks] == ['print("a")  # -> a\n',
                                          'print("b", 12.5)  # -> b ...\n']
    assert [b.heading for b in blocks] == ["First part", "First part"]
    assert blocks[0].id == "doc:first-part:L10"


def test_run_python_checks_the_promised_lines_in_order(tmp_path):
    assert run_python('print("b", 12.5)  # -> b ...\n', tmp_path, "ok") == "b 12.5\n"
    with pytest.raises(AssertionError, match="did not print a line like"):
        run_python('print("c")  # -> d\n', tmp_path, "wrong value")
    with pytest.raises(AssertionError, match="did not print a line like"):  # both, swapped
        run_python('print("a")  # -> b\nprint("b")  # -> a\n', tmp_path, "out of order")
    with pytest.raises(AssertionError, match="failed with status 1"):
        run_python("raise SystemExit(1)\n", tmp_path, "failing")

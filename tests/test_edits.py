"""evolve/edits.py: matching, region enforcement, failure reasons and messages, parsing model answers."""
from __future__ import annotations

import pytest

from evolve.search.edits import (Block, EditError, FullRewrite, SearchReplace, apply_blocks, apply_edit,
                          check_regions, evolve_regions, extract_code, parse_search_replace,
                          unified_diff)

PARENT = """import numpy as np

# EVOLVE-BLOCK-START
def rebalance(weight, n):
    alpha = 0.5
    w = weight * alpha + weight.mean() * (1 - alpha)
    if n < 3:
        return w
    return w * 2
# EVOLVE-BLOCK-END


def helper(w):
    return w * 2
"""


def sr(*pairs: tuple[str, str]) -> SearchReplace:
    return SearchReplace(tuple(Block(s, r) for s, r in pairs))


def reason_of(fn, *args) -> EditError:
    with pytest.raises(EditError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- matching

def test_exact_match_replaces_only_that_text():
    child = apply_edit(PARENT, sr(("    alpha = 0.5\n", "    alpha = 0.7\n")))
    assert child == PARENT.replace("alpha = 0.5", "alpha = 0.7")


def test_trailing_whitespace_tolerant_match():
    search = "    alpha = 0.5   \n    w = weight * alpha + weight.mean() * (1 - alpha)  \n"
    child = apply_edit(PARENT, sr((search, "    alpha = 0.9\n    w = weight * alpha\n")))
    assert "    alpha = 0.9\n    w = weight * alpha\n    if n < 3:" in child


def test_indentation_tolerant_match_reindents_replacement():
    # The model quoted the body dedented; the replacement must land at the found indentation.
    search = "if n < 3:\n    return w\n"
    replace = "if n <= 3:\n    w = w + 1\n    return w\n"
    child = apply_edit(PARENT, sr((search, replace)))
    assert "    if n <= 3:\n        w = w + 1\n        return w\n    return w * 2\n" in child
    compile(child, "child", "exec")


def test_indentation_tolerant_match_with_deeper_search_indent():
    search = "            alpha = 0.5\n            w = weight * alpha + weight.mean() * (1 - alpha)\n"
    replace = "            alpha = 0.25\n            if n:\n                alpha = 0.3\n"
    child = apply_edit(PARENT, sr((search, replace)))
    assert "    alpha = 0.25\n    if n:\n        alpha = 0.3\n    if n < 3:" in child


def test_match_at_end_of_file_without_newline():
    src = "x = 1\ny = 2"
    assert apply_blocks(src, [Block("y = 2  \n", "y = 3\n")]) == "x = 1\ny = 3"


def test_failed_block_is_reported_by_index_with_closest_match():
    edit = sr(("    alpha = 0.5\n", "    alpha = 0.6\n"),
              ("    w = weight * beta + weight.mean() * (1 - alpha)\n", "    w = weight\n"),
              ("    return w * 2\n", "    return w\n"))
    err = reason_of(apply_edit, PARENT, edit)
    assert err.reason == "no_match"
    assert err.message.startswith("block 2 of 3: SEARCH text not found")
    assert "closest match at line 6" in err.message and "weight * alpha" in err.message
    assert "\n" not in err.message


def test_ambiguous_match_is_rejected_with_lines():
    src = "# EVOLVE-BLOCK-START\nx = 1\ny = 2\nx = 1\n# EVOLVE-BLOCK-END\n"
    err = reason_of(apply_edit, src, sr(("x = 1\n", "x = 5\n")))
    assert err.reason == "ambiguous_match"
    assert "block 1 of 1" in err.message and "lines 2, 4" in err.message


def test_exact_single_match_wins_over_several_fuzzy_ones():
    src = "if a:\n  b = 1\nif c:\n    b = 1 \n"
    # Verbatim only at line 2; ignoring whitespace it would also match line 4.
    assert apply_blocks(src, [Block("  b = 1\n", "  b = 2\n")]) == "if a:\n  b = 2\nif c:\n    b = 1 \n"


def test_fuzzy_match_in_several_places_is_ambiguous():
    src = "def f():\n    z = 0  \n    return z\n\ndef g():\n    z = 0 \n    return z\n"
    assert reason_of(apply_blocks, src, [Block("z = 0\nreturn z\n", "return 1\n")]).reason == "ambiguous_match"


def test_duplicate_outside_regions_resolves_to_the_region():
    # `return w * 2` also appears in helper(), outside the region: the region copy is meant.
    child = apply_edit(PARENT, sr(("return w * 2\n", "return w * 3\n")))
    assert "    return w * 3\n# EVOLVE-BLOCK-END" in child
    assert child.endswith("def helper(w):\n    return w * 2\n")


def test_blocks_apply_in_sequence():
    child = apply_edit(PARENT, sr(("alpha = 0.5", "alpha = 0.6"), ("alpha = 0.6", "alpha = 0.65")))
    assert "alpha = 0.65" in child


def test_empty_search_and_empty_edit():
    assert reason_of(apply_blocks, PARENT, [Block("  \n", "x = 1\n")]).reason == "empty"
    assert reason_of(apply_blocks, PARENT, []).reason == "no_blocks"
    assert reason_of(apply_edit, PARENT, FullRewrite("  \n")).reason == "empty"


# ---------------------------------------------------------------- regions

def test_evolve_regions_spans():
    assert evolve_regions(PARENT) == [(3, 9)]
    assert evolve_regions("a = 1\nb = 2\n") == [(0, 2)]
    two = "x = 0\n# EVOLVE-BLOCK-START\na = 1\n# EVOLVE-BLOCK-END\ny = 0\n# EVOLVE-BLOCK-START\nb = 2\n# EVOLVE-BLOCK-END\n"
    assert evolve_regions(two) == [(2, 3), (6, 7)]
    assert reason_of(evolve_regions, "# EVOLVE-BLOCK-START\nx = 1\n").reason == "outside_evolve_block"


def test_search_replace_outside_region_is_rejected():
    err = reason_of(apply_edit, PARENT, sr(("import numpy as np\n", "import numpy as np\nimport os\n")))
    assert err.reason == "outside_evolve_block" and "line 2" in err.message
    err = reason_of(apply_edit, PARENT, sr(("def helper(w):\n    return w * 2\n", "def helper(w):\n    return w\n")))
    assert err.reason == "outside_evolve_block" and "line 14" in err.message


def test_edit_spanning_a_marker_is_rejected():
    edit = sr(("    return w * 2\n# EVOLVE-BLOCK-END\n", "    return w * 2\n"))
    assert reason_of(apply_edit, PARENT, edit).reason == "outside_evolve_block"
    edit = sr(("# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-START (mine)\nx = 1\n"))
    assert reason_of(apply_edit, PARENT, edit).reason == "outside_evolve_block"


def test_full_rewrite_keeping_outside_code_is_accepted():
    rewritten = PARENT.replace("    alpha = 0.5\n", "    alpha = 0.3\n    n = max(n, 1)\n")
    assert apply_edit(PARENT, FullRewrite(rewritten.rstrip("\n"))) == rewritten  # final newline restored


def test_full_rewrite_changing_outside_code_is_rejected():
    rewritten = PARENT.replace("import numpy as np", "import numpy as np\nimport subprocess")
    assert reason_of(apply_edit, PARENT, FullRewrite(rewritten)).reason == "outside_evolve_block"
    only_region = PARENT.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END")[0]
    assert reason_of(apply_edit, PARENT, FullRewrite(only_region)).reason == "outside_evolve_block"


def test_multiple_regions_each_editable_but_not_between():
    src = ("import math\n# EVOLVE-BLOCK-START\nA = 1\n# EVOLVE-BLOCK-END\n\nB = 2\n\n"
           "# EVOLVE-BLOCK-START\ndef f(x):\n    return x + A\n# EVOLVE-BLOCK-END\n")
    child = apply_edit(src, sr(("A = 1", "A = 4"), ("return x + A", "return x * A + B")))
    assert "A = 4" in child and "return x * A + B" in child
    check_regions(src, child)
    assert reason_of(apply_edit, src, sr(("B = 2", "B = 3"))).reason == "outside_evolve_block"


def test_no_markers_means_whole_file_is_evolvable():
    src = "import math\nx = 1\n"
    assert apply_edit(src, sr(("import math\n", "import os\n"))) == "import os\nx = 1\n"


# ---------------------------------------------------------------- child checks

def test_syntax_error_reported_with_line():
    err = reason_of(apply_edit, PARENT, sr(("    if n < 3:\n", "    if n < 3\n")))
    assert err.reason == "syntax_error" and "line 7" in err.message


def test_no_op_edit_rejected():
    assert reason_of(apply_edit, PARENT, sr(("alpha = 0.5", "alpha = 0.5"))).reason == "no_change"
    assert reason_of(apply_edit, PARENT, FullRewrite(PARENT)).reason == "no_change"


def test_edit_error_rejects_unknown_reason():
    with pytest.raises(ValueError):
        EditError("bogus", "x")


# ---------------------------------------------------------------- parsing model answers

ANSWER = """I will raise alpha and guard small n.

```python
<<<<<<< SEARCH
    alpha = 0.5
=======
    alpha = 0.8
>>>>>>> REPLACE
```

Then:

```
<<<<<<<<< SEARCH
    if n < 3:
        return w
=========
    if n <= 3:
        return w
>>>>>>>>> REPLACE"""


def test_parse_blocks_with_fences_prose_and_odd_markers():
    blocks = parse_search_replace(ANSWER)
    assert blocks == [Block("    alpha = 0.5\n", "    alpha = 0.8\n"),
                      Block("    if n < 3:\n        return w\n", "    if n <= 3:\n        return w\n")]
    child = apply_edit(PARENT, SearchReplace(tuple(blocks)))
    assert "alpha = 0.8" in child and "if n <= 3:" in child


def test_parse_empty_replace_deletes():
    blocks = parse_search_replace("<<<<<<< SEARCH\n    alpha = 0.5\n=======\n>>>>>>> REPLACE\n")
    assert blocks == [Block("    alpha = 0.5\n", "")]


def test_parse_rejects_missing_and_truncated_blocks():
    assert reason_of(parse_search_replace, "Here is my idea, no code.").reason == "no_blocks"
    truncated = ANSWER.rsplit(">>>>>>>>> REPLACE", 1)[0]
    err = reason_of(parse_search_replace, truncated)
    assert err.reason == "no_blocks" and "block 2" in err.message
    err = reason_of(parse_search_replace, "<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n")
    assert err.reason == "no_blocks" and "divider" in err.message


def test_extract_code_picks_longest_python_block():
    text = ("Sketch:\n```python\nx = 1\n```\nFull program:\n```python\nimport math\n\ndef f():\n"
            "    return math.pi\n```\n```text\nnot code that is very very very very very long\n```\n")
    assert extract_code(text) == "import math\n\ndef f():\n    return math.pi\n"
    assert extract_code("```\ny = 2\n```") == "y = 2\n"
    assert reason_of(extract_code, "no code here").reason == "empty"
    assert reason_of(extract_code, "```python\nx = 1\n").reason == "empty"  # unclosed: truncated answer


def test_unified_diff():
    child = PARENT.replace("alpha = 0.5", "alpha = 0.7")
    diff = unified_diff(PARENT, child)
    assert "--- parent" in diff and "-    alpha = 0.5\n" in diff and "+    alpha = 0.7\n" in diff
    assert unified_diff(PARENT, PARENT) == ""
    assert unified_diff("a", "b").endswith("\\ No newline at end of file\n")

"""Applying proposed edits to a parent program, with the EVOLVE-BLOCK regions enforced.

Edits come from untrusted proposers (an LLM's SEARCH/REPLACE blocks or full rewrite, the offline
mutator's rewrite). Everything here either returns a child that compiles and differs from its parent
only inside the EVOLVE-BLOCK regions, or raises EditError with a machine-readable reason and a
one-line message the next prompt can quote back to the model. Nothing is ever applied partially.
"""
from __future__ import annotations

import difflib
import re
import textwrap
from dataclasses import dataclass
from typing import Callable, Union

from evolve.terms import EditReason

START_MARK = "EVOLVE-BLOCK-START"
END_MARK = "EVOLVE-BLOCK-END"
REASONS = tuple(EditReason)


class EditError(Exception):
    """An edit that cannot be applied; `reason` is one of REASONS, `message` a single line."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown edit failure reason {reason!r}")
        message = message.replace("\n", " ")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Block:
    search: str
    replace: str


@dataclass(frozen=True)
class SearchReplace:
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class FullRewrite:
    source: str


Edit = Union[SearchReplace, FullRewrite]


def _snippet(text: str, limit: int = 80) -> str:
    """A short single-line rendering of code for an error message."""
    text = text.strip().replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- regions

def _marker(line: str) -> str | None:
    # Only comment lines count, so a string literal mentioning the marker is ordinary code.
    stripped = line.lstrip()
    if not stripped.startswith("#"):
        return None
    if START_MARK in stripped:
        return "start"
    if END_MARK in stripped:
        return "end"
    return None


def _marked_regions(lines: list[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    open_at: int | None = None
    for i, line in enumerate(lines):
        kind = _marker(line)
        if kind == "start":
            if open_at is not None:
                raise EditError("outside_evolve_block", f"nested {START_MARK} at line {i + 1}")
            open_at = i + 1
        elif kind == "end":
            if open_at is None:
                raise EditError("outside_evolve_block", f"{END_MARK} without a start at line {i + 1}")
            spans.append((open_at, i))
            open_at = None
    if open_at is not None:
        raise EditError("outside_evolve_block", f"{START_MARK} at line {open_at} is never closed")
    return spans


def evolve_regions(source: str) -> list[tuple[int, int]]:
    """0-based, end-exclusive line spans of the evolvable code (marker lines excluded).

    A file without markers is evolvable as a whole. Unbalanced markers raise EditError.
    """
    lines = source.splitlines(keepends=True)
    if not any(_marker(line) for line in lines):
        return [(0, len(lines))]
    return _marked_regions(lines)


def _outside_segments(source: str) -> list[tuple[int, list[str]]] | None:
    """(first line index, lines) for each stretch outside the regions; None when no markers."""
    lines = source.splitlines(keepends=True)
    if not any(_marker(line) for line in lines):
        return None
    segments, pos = [], 0
    for start, end in _marked_regions(lines):
        segments.append((pos, lines[pos:start]))
        pos = end
    segments.append((pos, lines[pos:]))
    return segments


def check_regions(parent: str, child: str) -> None:
    """Raise EditError('outside_evolve_block') if the child changed anything outside the parent's regions."""
    parent_out = _outside_segments(parent)
    if parent_out is None:
        return  # whole file is evolvable
    child_out = _outside_segments(child)
    if child_out is None or len(child_out) != len(parent_out):
        found = 0 if child_out is None else len(child_out) - 1
        raise EditError("outside_evolve_block",
                        f"the EVOLVE-BLOCK markers changed: parent has {len(parent_out) - 1} "
                        f"region(s), child has {found}")
    for (_, p_lines), (c_pos, c_lines) in zip(parent_out, child_out):
        if p_lines == c_lines:
            continue
        k = next((k for k, (a, b) in enumerate(zip(p_lines, c_lines)) if a != b),
                 min(len(p_lines), len(c_lines)))
        shown = c_lines[k] if k < len(c_lines) else "<removed>"
        raise EditError("outside_evolve_block",
                        f"line {c_pos + k + 1} is outside the EVOLVE-BLOCK regions and was changed: "
                        f"{_snippet(shown)!r}")


def _region_char_spans(source: str) -> list[tuple[int, int]]:
    offsets = [0]
    for line in source.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    try:
        return [(offsets[s], offsets[e]) for s, e in evolve_regions(source)]
    except EditError:
        return []


# ---------------------------------------------------------------- parsing model output

_SEARCH_RE = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER_RE = re.compile(r"^\s*={5,9}\s*$")
_REPLACE_RE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def parse_search_replace(text: str) -> list[Block]:
    """SEARCH/REPLACE blocks from a model answer; prose and ``` fences around them are ignored.

    Raises EditError('no_blocks') when there is none or a block is malformed (a truncated answer
    must not be applied in part).
    """
    blocks: list[Block] = []
    state, search, replace, opened = "prose", [], [], 0
    for n, line in enumerate(text.splitlines(), 1):
        which = len(blocks) + 1
        if state == "prose":
            if _SEARCH_RE.match(line):
                state, search, replace, opened = "search", [], [], n
        elif state == "search":
            if _DIVIDER_RE.match(line):
                state = "replace"
            elif _SEARCH_RE.match(line) or _REPLACE_RE.match(line):
                raise EditError("no_blocks", f"block {which} (line {opened}) has no ======= divider")
            else:
                search.append(line)
        elif _REPLACE_RE.match(line):
            blocks.append(Block(_join(search), _join(replace)))
            state = "prose"
        else:
            replace.append(line)
    if state != "prose":
        raise EditError("no_blocks", f"block {len(blocks) + 1} (line {opened}) is not closed by >>>>>>> REPLACE")
    if not blocks:
        raise EditError("no_blocks", "no <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block found")
    return blocks


_FENCE_OPEN_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+.-]*)")
_PYTHON_TAGS = ("python", "py", "python3")


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every closed fenced block, in order."""
    found: list[tuple[str, str]] = []
    fence, tag, body = "", "", []
    for line in text.splitlines():
        if not fence:
            m = _FENCE_OPEN_RE.match(line)
            if m:
                fence, tag, body = m.group(2), m.group(3).lower(), []
            continue
        stripped = line.strip()
        if stripped.startswith(fence) and set(stripped) == {fence[0]}:
            found.append((tag, textwrap.dedent(_join(body))))
            fence = ""
        else:
            body.append(line)
    return found  # an unclosed fence (truncated answer) is dropped on purpose


def extract_code(text: str) -> str:
    """The full program in a model answer: the longest ```python block (untagged ones as fallback)."""
    blocks = [(tag, body) for tag, body in _fenced_blocks(text) if body.strip()]
    tagged = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    pool = tagged or [body for tag, body in blocks if tag == ""]
    if not pool:
        raise EditError("empty", "no ```python code block in the answer")
    return max(pool, key=len)  # max keeps the first of equally long blocks


# ---------------------------------------------------------------- matching

@dataclass(frozen=True)
class _Match:
    start: int  # character offsets into the source
    end: int
    replacement: str


def _exact_matches(source: str, block: Block) -> list[_Match]:
    hits, pos = [], source.find(block.search)
    while pos != -1:
        hits.append(_Match(pos, pos + len(block.search), block.replace))
        pos = source.find(block.search, pos + 1)
    return hits


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _indent_of(lines: list[str]) -> str:
    first = next((line for line in lines if line.strip()), "")
    return first[: len(first) - len(first.lstrip())]


def _reindent(text: str, old: str, new: str) -> str:
    """Move `text` from base indentation `old` to `new`, keeping relative indentation."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            out.append("")
        elif line.startswith(old):
            out.append(new + line[len(old):])
        else:  # shallower than the SEARCH base: shift left by the same amount
            lead = len(line) - len(line.lstrip())
            out.append(new[: max(0, len(new) - (len(old) - lead))] + line.lstrip())
    return _join(out)


_LINE_KEYS: tuple[Callable[[str], str], ...] = (str.rstrip, str.strip)


def _line_matches(source: str, block: Block) -> list[_Match]:
    """Line-by-line matches ignoring trailing whitespace, then ignoring indentation too."""
    lines = source.splitlines(keepends=True)
    want = _trim_blank(block.search.splitlines())
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    n = len(want)
    for key in _LINE_KEYS:
        keyed, target = [key(line) for line in lines], [key(line) for line in want]
        starts = [i for i in range(len(lines) - n + 1) if keyed[i:i + n] == target]
        if starts:
            return [_line_match(lines, offsets, i, n, want, block, key is str.strip) for i in starts]
    return []


def _line_match(lines: list[str], offsets: list[int], i: int, n: int, want: list[str],
                block: Block, reindent: bool) -> _Match:
    replacement = block.replace
    if reindent:
        replacement = _reindent(replacement, _indent_of(want), _indent_of(lines[i:i + n]))
    if replacement and not lines[i + n - 1].endswith("\n"):
        replacement = replacement.rstrip("\n")  # the match ended the file without a newline
    elif replacement and not replacement.endswith("\n"):
        replacement += "\n"
    return _Match(offsets[i], offsets[i + n], replacement)


def _closest(source: str, search: str) -> str:
    """'line N: text' for the window most similar to the SEARCH text, to help the model retry."""
    lines = source.splitlines()
    want = [line.strip() for line in _trim_blank(search.splitlines())]
    if not lines or not want:
        return ""
    target = "\n".join(want)

    def window(i: int) -> str:
        return "\n".join(line.strip() for line in lines[i:i + len(want)])

    starts = range(max(1, len(lines) - len(want) + 1))
    # quick_ratio is a cheap upper bound: rank by it, then refine the top few with the real ratio.
    quick = sorted(starts, key=lambda i: (-difflib.SequenceMatcher(None, window(i), target,
                                                                   autojunk=False).quick_ratio(), i))
    best_i = max(quick[:5], key=lambda i: (difflib.SequenceMatcher(None, window(i), target,
                                                                   autojunk=False).ratio(), -i))
    best = lines[best_i:best_i + len(want)]
    k = next((k for k, line in enumerate(best) if line.strip() != want[k]), 0)
    return f"line {best_i + k + 1}: {_snippet(best[k])!r}"


def _choose(source: str, matches: list[_Match], where: str) -> _Match:
    if len(matches) == 1:
        return matches[0]
    # Tie-break: the same text often also appears outside the regions (imports, helpers).
    spans = _region_char_spans(source)
    inside = [m for m in matches if any(s <= m.start and m.end <= e for s, e in spans)]
    if len(inside) == 1:
        return inside[0]
    lines = ", ".join(str(source.count("\n", 0, m.start) + 1) for m in matches[:5])
    raise EditError("ambiguous_match",
                    f"{where}: SEARCH text matches {len(matches)} places (lines {lines}); "
                    "include more surrounding lines to make it unique")


def _apply_one(source: str, block: Block, where: str) -> str:
    if not block.search.strip():
        raise EditError("empty", f"{where}: SEARCH text is empty")
    matches = _exact_matches(source, block) or _line_matches(source, block)
    if not matches:
        hint = _closest(source, block.search)
        raise EditError("no_match", f"{where}: SEARCH text not found"
                        + (f" (closest match at {hint})" if hint else ""))
    m = _choose(source, matches, where)
    return source[:m.start] + m.replacement + source[m.end:]


def apply_blocks(source: str, blocks: list[Block] | tuple[Block, ...]) -> str:
    """Apply blocks in order, each to the result of the previous; all or nothing."""
    if not blocks:
        raise EditError("no_blocks", "the edit has no SEARCH/REPLACE blocks")
    for i, block in enumerate(blocks, 1):
        source = _apply_one(source, block, f"block {i} of {len(blocks)}")
    return source


# ---------------------------------------------------------------- whole edits

def _check_compiles(child: str) -> None:
    try:
        compile(child, "<candidate>", "exec")
    except SyntaxError as e:
        raise EditError("syntax_error", f"line {e.lineno}: {e.msg}"
                        + (f": {_snippet(e.text)!r}" if e.text else "")) from None
    except ValueError as e:  # e.g. null bytes in the source
        raise EditError("syntax_error", str(e)) from None


def _match_final_newline(child: str, parent: str) -> str:
    # Fenced code loses or gains the file's last newline; that is not a change worth rejecting.
    child = child.rstrip("\n")
    return child + "\n" if parent.endswith("\n") else child


def apply_edit(parent: str, edit: Edit) -> str:
    """The child program, or EditError. Regions are enforced and the child must compile and differ."""
    if isinstance(edit, SearchReplace):
        child = apply_blocks(parent, edit.blocks)
    elif isinstance(edit, FullRewrite):
        if not edit.source.strip():
            raise EditError("empty", "the rewritten program is empty")
        child = _match_final_newline(edit.source, parent)
    else:
        raise TypeError(f"not an edit: {type(edit).__name__}")
    if child == parent:
        raise EditError("no_change", "the edit leaves the program unchanged")
    check_regions(parent, child)
    _check_compiles(child)
    return child


def unified_diff(parent: str, child: str) -> str:
    """A unified diff parent -> child; every line ends with a newline so diffs concatenate cleanly."""
    out = difflib.unified_diff(parent.splitlines(keepends=True), child.splitlines(keepends=True),
                               fromfile="parent", tofile="child")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in out)

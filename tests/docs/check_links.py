#!/usr/bin/env python3
"""Checks the relative links of every Markdown file of the repository.

Usage: check_links.py [--self-test] SOURCE_DIR

Every Markdown file (git ls-files '*.md', plus untracked files that are not
ignored; a walk of the tree when SOURCE_DIR is not a git checkout) is read
for links: inline links and images `[text](target)`, reference definitions
`[label]: target`, and HTML `href="..."` / `src="..."`. Code spans, fenced
code blocks and HTML comments are skipped. A target with a scheme (https:,
mailto:, ...) or starting with `//` is external and not checked.

Each relative target must:
  - stay inside the repository once resolved (symbolic links followed), so
    `../shared/SPEC.md` fails even where such a file exists;
  - name an existing file or folder (after percent-decoding);
  - when it has an anchor (`#part`) and names a Markdown file (or is only
    `#part`, the same file), match a heading of that file as GitHub makes
    anchors of headings (lower case, punctuation dropped, spaces to '-',
    "-1", "-2"... for repeats) or an explicit `<a name=...>` / `id=...`.
    Anchors into other files (`main.c#L10`) are not checked.

--self-test first runs the checker on a small made-up repository whose
good and bad links are known, so that a checker that finds nothing fails.
Prints one line per bad link and ends with "N passed, M failed".
"""

import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# [text](target "title"), ![alt](target); text may hold one level of [...].
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*\]"
    r"\(\s*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\([^\s()]*\))+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^<>\n]*>|\S+)", re.M)
HTML_TARGET = re.compile(r"""<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*("[^"]*"|'[^']*')""", re.I)
HTML_ANCHOR = re.compile(r"""<[a-z][^>]*?\b(?:name|id)\s*=\s*("[^"]*"|'[^']*')""", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files(root):
    """Repository-relative paths of the Markdown files, sorted."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.md"],
            check=True, capture_output=True, text=True,
        ).stdout
        files = {f for f in out.split("\0") if f and os.path.isfile(os.path.join(root, f))}
    except (OSError, subprocess.CalledProcessError):
        files = set()
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (".git", "node_modules", "build")]
            for name in names:
                if name.endswith(".md"):
                    files.add(os.path.relpath(os.path.join(folder, name), root))
    return sorted(files)


def prose_lines(text):
    """The lines of `text` with fenced code blocks blanked (line numbers kept)."""
    lines = text.split("\n")
    fence = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            lines[i] = ""
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            lines[i] = ""
    return lines


def blank(match):
    """Replaces a match by as many spaces and newlines (offsets kept)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def heading_text(raw):
    """The text GitHub renders for a heading's Markdown."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "")


def slug(text):
    """GitHub's anchor for a heading's text (before repeats are numbered)."""
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ " or unicode_mark(c))
    return text.replace(" ", "-")


def unicode_mark(c):
    import unicodedata
    return unicodedata.category(c).startswith("M")


def anchors_of(text):
    """Every anchor a Markdown text defines."""
    anchors, seen = set(), {}
    lines = prose_lines(HTML_COMMENT.sub(blank, text))
    for i, line in enumerate(lines):
        raw = None
        m = ATX_HEADING.match(line)
        if m:
            raw = m.group(2) or ""
        elif i + 1 < len(lines) and line.strip() and SETEXT_UNDERLINE.match(lines[i + 1]) \
                and not ATX_HEADING.match(line) and not line.lstrip().startswith(("-", "*", ">", "|")):
            raw = line.strip()
        if raw is None:
            continue
        base = slug(heading_text(raw))
        n = seen.get(base, 0)
        anchors.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    for m in HTML_ANCHOR.finditer(text):
        anchors.add(m.group(1)[1:-1])
    return anchors


def links_of(text):
    """(line number, target) of every link of a Markdown text."""
    text = HTML_COMMENT.sub(blank, text)
    text = "\n".join(prose_lines(text))
    text = CODE_SPAN.sub(blank, text)
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_TARGET):
        for m in pattern.finditer(text):
            target = m.group(1)
            if target[:1] in "<\"'" and target[-1:] in ">\"'":
                target = target[1:-1]
            target = re.sub(r"\\(.)", r"\1", target)
            found.append((text.count("\n", 0, m.start(1)) + 1, target))
    return sorted(found)


def inside(root, path):
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


def check_link(root, source, target, anchor_cache):
    """None when the link from `source` (repository-relative) is fine, else why not."""
    if not target or SCHEME.match(target) or target.startswith("//"):
        return None
    path_part, _, anchor = target.partition("#")
    path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
    anchor = urllib.parse.unquote(anchor)
    if path_part == "":
        resolved = os.path.join(root, source)
    elif path_part.startswith("/"):
        resolved = os.path.join(root, path_part.lstrip("/"))
    else:
        resolved = os.path.normpath(os.path.join(root, os.path.dirname(source), path_part))
    if not inside(root, resolved):
        return "leaves the repository"
    if not os.path.exists(resolved):
        return "no such file or folder"
    if anchor and resolved.endswith(".md") and os.path.isfile(resolved):
        if resolved not in anchor_cache:
            with open(resolved, encoding="utf-8") as f:
                anchor_cache[resolved] = anchors_of(f.read())
        if anchor not in anchor_cache[resolved]:
            return f"no heading or anchor '#{anchor}' in {os.path.relpath(resolved, root)}"
    return None


def check_repository(root):
    """Returns (links checked, list of failure lines)."""
    checked, failures, cache = 0, [], {}
    for source in markdown_files(root):
        with open(os.path.join(root, source), encoding="utf-8") as f:
            text = f.read()
        for line, target in links_of(text):
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            checked += 1
            reason = check_link(root, source, target, cache)
            if reason:
                failures.append(f"{source}:{line}: ({target}): {reason}")
    return checked, failures


SELF_TEST_FILES = {
    "README.md": """# Project

## Getting started: `make` & run!

## Getting started: `make` & run!

Setext heading
--------------

<a name="explicit"></a>

Good: [doc](docs/GUIDE.md), [folder](docs), [again](./docs/GUIDE.md#the-guide),
![image](docs/img.txt), [self](#getting-started-make--run), [repeat](#getting-started-make--run-1),
[setext](#setext-heading), [explicit](#explicit), [web](https://example.com/x.md),
[mail](mailto:a@example.com), [space](docs/a%20file.md), [code line](src/main.c#L10),
[parens](docs/GUIDE.md "title"), <a href="docs/GUIDE.md">html</a>

Bad: [outside](../shared/SPEC.md), [missing](docs/NOPE.md), [anchor](docs/GUIDE.md#nope),
[self anchor](#nope), [deep outside](docs/../../x.md), [root escape](/../x.md)

[ref]: docs/MISSING.md

`[not a link](nowhere.md)`

```md
[not a link either](nowhere.md)
```

<!-- [commented out](nowhere.md) -->
""",
    "docs/GUIDE.md": "# The guide\n\nBack [up](../README.md#project).\n",
    "docs/a file.md": "# Spaces\n",
    "docs/img.txt": "",
    "src/main.c": "int main(void) { return 0; }\n",
}
SELF_TEST_EXPECTED = [
    ("README.md", "../shared/SPEC.md", "leaves the repository"),
    ("README.md", "docs/NOPE.md", "no such file or folder"),
    ("README.md", "docs/GUIDE.md#nope", "no heading or anchor '#nope' in docs/GUIDE.md"),
    ("README.md", "#nope", "no heading or anchor '#nope' in README.md"),
    ("README.md", "docs/../../x.md", "leaves the repository"),
    ("README.md", "/../x.md", "leaves the repository"),
    ("README.md", "docs/MISSING.md", "no such file or folder"),
]


def self_test():
    """Runs the checker on SELF_TEST_FILES; returns failure lines."""
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "repo")
        for name, content in SELF_TEST_FILES.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)
        # a file outside the made-up repository, so "leaves" is not "missing"
        os.makedirs(os.path.join(tmp, "shared"))
        open(os.path.join(tmp, "shared", "SPEC.md"), "w").close()
        checked, found = check_repository(root)
    got = sorted(re.sub(r":\d+: \((.*)\): ", r"\t\1\t", line).split("\t") for line in found)
    expected = sorted(list(e) for e in SELF_TEST_EXPECTED)
    problems = []
    if got != expected:
        problems.append("self-test: the checker's findings differ from the expected ones")
        problems += [f"  expected: {e}" for e in expected if e not in got]
        problems += [f"  unexpected: {g}" for g in got if g not in expected]
    if checked != 20:
        problems.append(f"self-test: {checked} links checked, expected 20")
    return problems


def main(argv):
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    passed, failed = 0, 0
    if "--self-test" in argv:
        problems = self_test()
        for line in problems:
            print(f"FAIL: {line}")
        passed, failed = (0, 1) if problems else (1, 0)
    checked, found = check_repository(args[0])
    for line in found:
        print(f"FAIL: {line}")
    passed += checked - len(found)
    failed += len(found)
    print(f"{checked} relative links checked in {len(markdown_files(args[0]))} Markdown files")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The repository stands alone: no tracked file reads or names a path outside the checkout.

`.ci/run` runs the suite from a fresh clone in an empty temporary folder, which catches a test that
*reads* something outside. This scan catches the rest early and names the line: docs, scripts and
comments that *point* outside (a reader of a clone cannot open those either), and code paths no
test happens to run. It also refuses citations of the project's private reading material (its
protocol, API and behaviours notes, their section numbers and numbered defect labels), which a
reader of a clone cannot look up: a line says the reason itself or cites a public source such as
an Interledger RFC by number. The scanner is tested on planted lines below, so it can fail.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parent.parent

#: First components of absolute paths that name a system location, the same on every machine,
#: rather than somebody's own folders. Anything else (a workspace, a home folder, a mount) is
#: reported.
ALLOWED_ROOTS: dict[str, str] = {
    "tmp": "scratch space that code and tests create and remove again",
    "dev": "device files such as /dev/null",
    "usr": "system programs: the /usr/bin/env shebang, PostgreSQL's binaries under /usr/lib",
    "bin": "the system shell",
    "proc": "the running process's own information",
    "run": "the PostgreSQL socket directory of Debian-style systems",
    "var": "the PostgreSQL socket directory; /var/lib/... as a deployment's data folder in docs",
    "etc": "where a deployment keeps its config file, in the operations guide",
    "opt": "where a deployment installs the package, in the operations guide's service unit",
    "absolute": "the docs' placeholder for any absolute path, as in sqlite:////absolute/path.db",
}

#: Single absolute paths allowed in one file only, with the reason.
ALLOWED_AT: dict[tuple[str, str], str] = {
    ("docs/operations.md", "backup"): "an operator's backup destination in an example command",
}

#: Files that may name the user's home folder, with the reason.
HOME_FILES: dict[str, str] = {
    "src/ilp_paychan/shell/demo_connector.py": "the XDG default of the user's cache folder, "
    "where the demo installs ilp-connector once for every later run",
}

#: Files where a leading slash does not mean the file system root.
ROOT_RELATIVE_FILES: dict[str, str] = {
    ".gitignore": "a leading / anchors a pattern at the repository root",
}

# The sibling folder of reading material next to our checkouts, which a clone does not have.
SIBLING = re.compile(r"\.\.[/\\]+shared\b|(?<![\w-])shared[/\\]+spec\b")
# An absolute path with at least one folder level, not a longer path's tail nor a URL's host (but
# the path of `file:///...` or `sqlite:////...`)
ABSOLUTE = re.compile(
    r"(?:(?<=://)|(?<=:///)|(?<![\w.~:/\]})>$%@*+-]))/(?P<root>[A-Za-z_][\w.+-]*)/"
)
# A home folder by any of its spellings.
HOME = re.compile(
    r"(?<![\w$~])~[/\\]|\$HOM[E]\b|\$\{HOME\}|Path\.home\(|expanduser\(|[A-Za-z]:\\Users\b"
)
# A run of `..` segments, and the name after it if any.
DOTDOT = re.compile(
    r"(?<![\w.])(?P<ups>\.\.(?:[/\\]\.\.)*)(?![\w.])(?:[/\\](?P<next>[\w-][\w.-]*))?"
)
# JavaScript's `path.join(__dirname, '..', ...)`.
JS_DIRNAME = re.compile(
    r"path\.(?:join|resolve)\(\s*__dirname\s*(?P<args>(?:,\s*['\"]\.\.['\"]\s*)*)"
)
# Python functions whose first argument is a regular expression: a path-like fragment in one is
# text to match (part of a frame's file name, say), not a path the file refers to.
REGEX_FUNCTIONS = frozenset(
    f"re.{name}"
    for name in ("compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn")
)

SECTION = "\u00a7"  # the section sign, spelled so that this file passes its own scan
#: Citations of documents a clone does not have, and what each rule says. Those notes were the
#: project's reading material: protocol notes, an API contract, a table of the reference's tests
#: and the README the project started from; their sections are a letter and a number, their
#: defects were numbered. A public RFC's numbered section ("RFC 6455", SECTION, "5.2") is fine.
#: (Patterns spell some words as `[E]` so that this file passes its own scan.)
CITATIONS: dict[str, tuple[re.Pattern[str], str]] = {
    "note": (
        re.compile(r"\b(?:PROTOCOL|API|B[E]HAVIOURS)\.md\b|\bPROTOCOL\s+(?:\u00a7|[a-i]\.\d)"),
        "cites a note outside the repository (protocol, API or behaviours)",
    ),
    "table": (
        re.compile(r"\bB[E]HAVIOURS\b|\bbehaviours\s+table\b"),
        "cites the table of the reference's behaviours",
    ),
    "seed": (
        re.compile(r"\bs[e]ed\s+README\b", re.I),
        "cites the README the project started from (the reference's own is public)",
    ),
    "weakness": (re.compile(r"\bweakness(?:es)?\s+\d", re.I), "cites a numbered defect label"),
    "section": (
        re.compile(r"\u00a7\s*[A-Za-z](?:\.\d+)?\b"),
        "cites a lettered section of an outside note",
    ),
    "sign": (
        re.compile(r"^(?!.*\bRFC\s*\d).*\u00a7"),
        "a section sign without the RFC it belongs to",
    ),
    "tracker": (
        re.compile(r"^(?!.*://).*\bissues?\s+#?\d", re.I),
        "cites an item of the project's tracker (a public issue is cited by its address)",
    ),
}
#: Citations allowed in one file only, keyed by (file, rule), with the reason.
ALLOWED_CITATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Finding:
    """One line that reaches outside the checkout, and which rule says so."""

    path: str
    line: int
    rule: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.text.strip()[:160]}"


def tracked_files() -> list[str]:
    """The files a clone has, plus new files not yet committed (so a developer learns early)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split("\0") if p and (REPO / p).is_file()})


def scan_text(relpath: str, text: str, known: frozenset[str] = frozenset()) -> list[Finding]:
    """Every reference in `text` (the content of `relpath`) that reaches outside the repository.

    `known` holds the repository's files and folders; a `..` path that stays inside but names
    something not in it is reported too (a sibling folder named from the root looks like that).
    """
    findings: list[Finding] = []
    patterns = regex_literals(text) if relpath.endswith(".py") else {}
    parts = PurePosixPath(relpath).parts
    depth = len(parts) - 1  # folders between the repository root and the file
    here = parts[:-1]
    for number, line in enumerate(text.splitlines(), start=1):
        rules: list[str] = []
        add = rules.append
        if SIBLING.search(line):
            add("names the sibling folder outside the checkout")
        if HOME.search(line) and relpath not in HOME_FILES:
            add("names a home folder")
        if relpath not in ROOT_RELATIVE_FILES:
            for match in ABSOLUTE.finditer(line):
                root = match["root"]
                if line[: match.start()].endswith("sqlite://"):
                    continue  # three slashes: SQLAlchemy's form of a *relative* file path
                if any(a <= match.start() < b for a, b in patterns.get(number, ())):
                    continue
                if root not in ALLOWED_ROOTS and (relpath, root) not in ALLOWED_AT:
                    add(f"absolute path under /{root}, which is not a system location")
        for match in DOTDOT.finditer(line):
            ups = match["ups"].count("..")
            if ups > depth:
                add(f"{ups} × '..' from {'/'.join(here) or 'the root'} leaves the repository")
            elif match["next"] and known:
                target = "/".join((*here[: depth - ups], match["next"]))
                if target not in known:
                    add(f"'..' path to {target}, which is not in the repository")
        for match in JS_DIRNAME.finditer(line):
            if match["args"].count("..") > depth:
                add("__dirname joined with '..' leaves the repository")
        for name, (pattern, says) in CITATIONS.items():
            if pattern.search(line) and (relpath, name) not in ALLOWED_CITATIONS:
                add(says)
        findings.extend(Finding(relpath, number, rule, line) for rule in rules)
    if relpath.endswith(".py"):
        findings.extend(scan_python(relpath, text))
    return findings


def regex_literals(text: str) -> dict[int, list[tuple[int, int]]]:
    """Where the string literals given to `re` functions as patterns are: line -> column spans."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}  # scan_python reports it
    lines = text.splitlines()
    spans: dict[int, list[tuple[int, int]]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) in REGEX_FUNCTIONS):
            continue
        literal = node.args[0] if node.args else None
        if not isinstance(literal, ast.Constant) or not isinstance(literal.value, str):
            continue
        last, last_col = literal.end_lineno or literal.lineno, literal.end_col_offset or 0
        for number in range(literal.lineno, last + 1):
            raw = lines[number - 1].encode()  # AST columns count UTF-8 bytes
            start = literal.col_offset if number == literal.lineno else 0
            end = last_col if number == last else len(raw)
            span = (len(raw[:start].decode()), len(raw[:end].decode()))
            spans.setdefault(number, []).append(span)
    return spans


class _Anchored:
    """How many levels above the file an expression built on `__file__` points (None: not one)."""

    def __init__(self, depth: int) -> None:
        self.names: dict[str, int] = {}
        self.root = depth + 1  # levels above the file at which the repository root is

    def levels(self, node: ast.expr) -> int | None:
        if isinstance(node, ast.Name):
            return 0 if node.id == "__file__" else self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.levels(node.value)
            return None if base is None else base + 1 if node.attr == "parent" else None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            base = self.levels(node.value.value)
            index = node.slice
            if node.value.attr != "parents" or base is None or not isinstance(index, ast.Constant):
                return None
            return base + index.value + 1 if isinstance(index.value, int) else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base = self.levels(node.left)
            climbs = isinstance(node.right, ast.Constant) and node.right.value == ".."
            return base + 1 if base is not None and climbs else None
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _call(self, node: ast.Call) -> int | None:
        func = ast.unparse(node.func)
        if func in ("Path.cwd", "os.getcwd", "pathlib.Path.cwd"):
            return self.root  # the suite runs from the root; anything above it is outside
        args = node.args
        if func in ("Path", "pathlib.Path", "PurePath", "os.path.abspath", "os.path.realpath"):
            return self.levels(args[0]) if len(args) == 1 else None
        if func == "os.path.dirname" and len(args) == 1:
            base = self.levels(args[0])
            return None if base is None else base + 1
        if func == "os.path.join" and args:
            base = self.levels(args[0])
            ups = sum(1 for a in args[1:] if isinstance(a, ast.Constant) and a.value == "..")
            return None if base is None else base + ups
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
            return self.levels(node.func.value)
        return None


def scan_python(relpath: str, text: str) -> list[Finding]:
    """Paths computed from `__file__` (or the working folder) that climb above the repository."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return [Finding(relpath, 1, "not valid Python, cannot be checked", "")]
    anchored = _Anchored(len(PurePosixPath(relpath).parts) - 1)
    assignments: list[ast.Assign | ast.AnnAssign] = sorted(
        (n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))),
        key=lambda n: n.lineno,
    )
    for assignment in assignments:
        match assignment:
            case (
                ast.Assign(targets=[ast.Name(id=name)], value=value)
                | ast.AnnAssign(target=ast.Name(id=name), value=ast.expr() as value)
            ):
                level = anchored.levels(value)
                if level is not None:
                    anchored.names[name] = level
    lines = text.splitlines()
    found: dict[int, Finding] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and node.lineno not in found:
            level = anchored.levels(node)
            if level is not None and level > anchored.root:
                up = level - anchored.root
                found[node.lineno] = Finding(
                    relpath,
                    node.lineno,
                    f"path built on __file__ climbs {up} level(s) above the repository",
                    lines[node.lineno - 1],
                )
    return list(found.values())


def known_paths(files: list[str]) -> frozenset[str]:
    """Every tracked file and every folder that holds one."""
    known: set[str] = set()
    for name in files:
        path = PurePosixPath(name)
        known.add(str(path))
        known.update(str(parent) for parent in path.parents if str(parent) != ".")
    return frozenset(known)


def scan_repository() -> Iterator[Finding]:
    """Scan every text file a clone of the repository would have."""
    files = tracked_files()
    known = known_paths(files)
    for name in files:
        data = (REPO / name).read_bytes()
        if b"\0" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield from scan_text(name, text, known)


# -- the repository ---------------------------------------------------------------------------


def test_no_tracked_file_reaches_outside_the_checkout() -> None:
    findings = [str(f) for f in scan_repository()]
    assert not findings, "references outside the checkout:\n" + "\n".join(findings)


def test_the_scan_covers_every_part_of_the_repository() -> None:
    files = tracked_files()
    for expected in (".ci/run", "dev", "pyproject.toml", "tests/conftest.py", "README.md"):
        assert expected in files
    for folder in ("src/", "tests/", "bench/", "examples/", "docs/", "tests/vectors/"):
        assert any(f.startswith(folder) for f in files), folder


def test_the_vectors_are_part_of_the_repository() -> None:
    tracked = [f for f in tracked_files() if f.startswith("tests/vectors/")]
    assert "tests/vectors/README.md" in tracked
    stream = [f for f in tracked if f.startswith("tests/vectors/stream/") and f.endswith(".json")]
    assert len(stream) == 5  # packets, decode edge cases, crypto, tokens, receipts
    v4 = [f for f in tracked if f.startswith("tests/vectors/v4/") and f.endswith(".json")]
    assert len(v4) == 7  # ILPv4 packets, error codes, ILDCP, BTP 2.0, ilp-compat, edge cases, OER
    rest = [f for f in tracked if f.endswith(".json") and f not in stream and f not in v4]
    assert len(rest) == 23


# -- the scanner on planted lines ---------------------------------------------------------------

UP = ".."  # built at run time so this file passes its own scan
WS = "/" + "work"
SH = "shared"
PLANTED_BAD = [
    ("tests/conftest.py", f'SPEC = Path("{UP}/shared") / "spec"'),
    ("tests/conftest.py", f'REPO = Path(__file__).parent.parent\nSPEC = REPO.parent / "{SH}"'),
    ("tests/plugin/conftest.py", 'V = Path(__file__).resolve().parents[2].parent / "x"'),
    ("tests/plugin/conftest.py", "V = Path(__file__).resolve().parents[3]"),
    ("tests/t.py", "V = Path(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))"),
    ("tests/t.py", f'V = os.path.join(os.path.dirname(__file__), "{UP}", "{UP}")'),
    ("tests/t.py", f'V = Path(__file__).parent / "{UP}" / "{UP}"'),
    ("tests/t.py", "V = Path.cwd().parent"),
    ("docs/a.md", f"See {WS}/{SH}/spec/rules.md for the rules."),
    ("docs/a.md", f"[rules]({UP}/{UP}/{SH}/spec/rules.md)"),
    ("docs/a.md", f"[rules]({UP}/notthere/rules.md)"),
    ("src/x.py", 'CACHE = "/' + 'home/alice/.cache/vectors"'),
    ("src/x.py", 'STORE = "sqlite:////' + 'root/data.db"'),
    ("src/x.py", 'CACHE = "' + "~" + '/.cache/vectors"'),
    (".ci/run", f'cd "$(dirname "$0")/{UP}/{UP}"'),
    ("bench/js/a.js", f"const x = path.join(__dirname, '{UP}', '{UP}', '{UP}')"),
    ("bench/p.py", 'X = (re.compile(r"/' + 'sqlite3/"), "/' + 'home/alice/db")'),
]
PLANTED_GOOD = [
    ("tests/conftest.py", "REPO = Path(__file__).resolve().parent.parent"),
    ("tests/shell/conftest.py", "REPO = Path(__file__).resolve().parents[2]"),
    ("tests/plugin/conftest.py", 'VECTORS = Path(__file__).resolve().parents[1] / "vectors"'),
    (".ci/run", f'cd "$(dirname "$0")/{UP}"'),
    ("dev", "#!/usr/bin/env bash"),
    ("dev", "exec 2>/dev/null"),
    ("tests/pgserver.py", 'glob.glob(f"/usr/lib/postgresql/*/bin/{name}")'),
    ("tests/x.py", 'HOST = "/var/run/postgresql/"'),
    ("tests/x.py", 'db = f"sqlite:///{tmp_path}/shared.db"  # a shared/specific folder'),
    ("tests/x.py", 'url = "sqlite:////tmp/ledger.db"'),
    ("examples/a.json", '"store": "sqlite:///ilp-paychan-data/red.db"'),
    ("docs/a.md", "Read the [config](config.md) and https://example.org/home/a/b."),
    ("docs/a.md", f"The [architecture]({UP}/docs/architecture.md), and so on..."),
    ("docs/operations.md", ".backup '/" + "backup/trustline.db'"),
    (".gitignore", "/" + "ilp-paychan-data/"),
    ("bench/js/a.js", f"const x = path.join(__dirname, '{UP}', '{UP}', 'tests')"),
    ("bench/p.py", 'AREA = re.compile(r"/' + 'sqlite3/|(^|/)json/")  # héllo'),
    ("bench/p.py", 'A = re.compile(\n    r"/' + 'asyncio/|/selectors\\.py"\n    r"|/x\\.py"\n)'),
]
KNOWN = frozenset({"docs", "docs/architecture.md", "tests", "src"})


@pytest.mark.parametrize(("relpath", "line"), PLANTED_BAD)
def test_the_scanner_flags_a_planted_reference(relpath: str, line: str) -> None:
    assert scan_text(relpath, line + "\n", KNOWN), line


@pytest.mark.parametrize(("relpath", "line"), PLANTED_GOOD)
def test_the_scanner_leaves_legitimate_paths_alone(relpath: str, line: str) -> None:
    assert scan_text(relpath, line + "\n", KNOWN) == []


def test_a_finding_names_file_line_and_rule() -> None:
    text = f'"""Docs."""\n\nX = Path(__file__).resolve().parents[1].parent / "{UP}"\n'
    (finding,) = scan_text("tests/t.py", text, KNOWN)
    assert (finding.path, finding.line) == ("tests/t.py", 3)
    assert "2 level(s) above the repository" in str(finding)


# -- citations of documents outside the repository, on planted lines ---------------------------

PROTO, API, BEHAV, SEED, TABLE, NUM = "PROTOCOL", "API", "BEHAV" + "IOURS", "seed", "table", "9"
PLANTED_CITATIONS = [
    ("src/x.py", f'"""BTP packets ({PROTO}.md {SECTION}c.3)."""', "note"),
    ("src/x.py", f"# as the reference's decoder does ({PROTO} c.2)", "note"),
    ("tests/t.py", f'"""The rules of {PROTO} {SECTION}b.5."""', "note"),
    ("docs/a.md", f"The options are those of {API}.md.", "note"),
    ("tests/t.py", f'"""{BEHAV}.md {SECTION}6 (clientSpec.js)."""', "note"),
    ("tests/t.py", f"# what the {BEHAV} rows do not cover", "table"),
    ("docs/a.md", f"See the behaviours {TABLE}, row {NUM}.", "table"),
    ("tests/t.py", f"# the {SEED} README's two roles", "seed"),
    ("src/x.py", f"a later call tries again (weakness {NUM}).", "weakness"),
    ("tests/t.py", f'"""Weakness {NUM}: the reference crashed."""', "weakness"),
    ("src/x.py", f"Rules (with weaknesses {NUM}, 3, 4 fixed)", "weakness"),
    ("src/x.py", f"ids must match ({SECTION}i.10)", "section"),
    ("tests/t.py", f"# ---- server handshake ({SECTION} c.9)", "section"),
    ("docs/a.md", f"as the probes show ({SECTION}12)", "sign"),
    ("tests/t.py", f'"""Issue {NUM} item 5: 1,000 transfers in a row."""', "tracker"),
    ("README.md", f"Fixed in issue #{NUM}.", "tracker"),
    ("tests/t.py", f"#: The pairings of issue {NUM} item 5", "tracker"),
]
PLANTED_FINE = [
    ("src/x.py", f'"""Base64url without padding (RFC 4648 {SECTION}5)."""'),
    ("tests/chaos/proxy.py", f"# it reads WebSocket frames (RFC 6455 {SECTION}5.2) just enough"),
    ("docs/a.md", "See docs/api.md, and the reference's README for its own options."),
    ("src/x.py", "context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"),
    ("docs/a.md", f"websockets issue {NUM} (https://github.com/python-websockets/websockets)"),
    ("docs/a.md", "The weakness of a trustline is trust; each row below says what differs."),
    ("docs/modules.md", f"Each side has a 32-byte {SEED} in hex; the README lists the docs."),
    ("tests/t.py", "# RFC 23, Prepare > Idempotency: an identical re-send gets a Response."),
]


@pytest.mark.parametrize(("relpath", "line", "rule"), PLANTED_CITATIONS)
def test_the_scanner_flags_a_planted_citation(relpath: str, line: str, rule: str) -> None:
    found = {f.rule for f in scan_text(relpath, line + "\n", KNOWN)}
    assert CITATIONS[rule][1] in found, (line, found)


@pytest.mark.parametrize(("relpath", "line"), PLANTED_FINE)
def test_the_scanner_leaves_public_citations_alone(relpath: str, line: str) -> None:
    assert scan_text(relpath, line + "\n", KNOWN) == []


def test_an_allowed_citation_is_allowed_in_its_file_only(monkeypatch: pytest.MonkeyPatch) -> None:
    line = f"The upstream {SEED} README explains the two roles.\n"
    monkeypatch.setitem(ALLOWED_CITATIONS, ("docs/upstream.md", "seed"), "planted")
    assert scan_text("docs/upstream.md", line, KNOWN) == []
    assert [f.rule for f in scan_text("docs/other.md", line, KNOWN)] == [CITATIONS["seed"][1]]


def test_every_allowed_citation_is_still_needed() -> None:
    files = set(tracked_files())
    for (path, rule), reason in ALLOWED_CITATIONS.items():
        assert reason, (path, rule)
        assert path in files, f"{path} is allowed a citation but is gone"
        lines = (REPO / path).read_text(encoding="utf-8").splitlines()
        pattern = CITATIONS[rule][0]
        assert any(map(pattern.search, lines)), f"{path} no longer needs its {rule!r} allowance"

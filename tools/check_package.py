"""Check a plugin zip as plugins.qgis.org does: its upload rules, then its security scan with every rule on.

``python3 tools/check_package.py dist/ai_segmentation-X.Y.Z.zip [--repo .] [--scan auto|require|off]``

Our own implementation of the rules of the QGIS plugin repository (qgis/QGIS-Plugins-Website):

- upload rules (``qgis-app/plugins/validator.py``, ``forms.py``): size <= 25 MB; a valid zip without ``..``,
  absolute paths, ``.pyc``, ``__pycache__``, ``.git`` or ``__MACOSX``; one top folder named like a Python
  identifier (here: the module name); ``__init__.py``, ``LICENSE`` and ``metadata.txt`` in it, the latter
  parsed as the site parses it (ConfigParser *with* interpolation: a bare ``%`` fails) with every required
  field; URLs with scheme and host, not the template's placeholders; an author without ``/``;
- security scan (``security_scanner.py``, rules in ``management/commands/data/*_rules.json``; a failed
  Bandit or Secrets check is "critical", and a critical finding BLOCKS the version,
  ``tasks/run_security_scan.py``): ``bandit -r DIR -f json -q -t <all enabled tests>`` (LOW severity too) and
  ``detect-secrets scan --all-files --exclude-files metadata\\.txt`` with every plugin but IPPublicDetector;
  file analysis (executable ``.py``, hidden files, ``.exe .dll .so .dylib .bat .sh .ps1 .cmd``) and scanner
  configuration files in the zip (they mark the version "validated with config").

Stricter than the site on purpose: more than one top folder, a missing icon, flags other than True/False,
hidden files, a suppression comment without rule id and reason, or a stale one, are errors here. The scan
tools are optional (``--scan auto`` skips them when not installed; ``require`` fails instead). Exit code 1
when anything is found. Network checks of the site (URL reachability) are not made.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.metadata
import importlib.util
import io
import json
import re
import subprocess
import sys
import tempfile
import tokenize
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence
from urllib.parse import urlparse


def _load_package():
    """tools/package.py (the allow-list the zip must match), also when this file is run as a script."""
    spec = importlib.util.spec_from_file_location("ai_segmentation_packager", Path(__file__).with_name("package.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = _load_package()

MAX_BYTES = 25_000_000
REQUIRED = ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version", "author",
            "email", "repository", "tracker", "homepage", "icon")
PLACEHOLDERS = {"tracker": "http://bugs", "repository": "http://repo", "homepage": "http://homepage"}
FLAGS = ("experimental", "deprecated", "server", "supportsQt6")  # read as true only for "true" or "1"
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
# Bandit tests enabled in bandit_rules.json (disabled there: B109, B404, B410, B411). Any finding fails.
BANDIT_TESTS = (
    "B101", "B102", "B103", "B104", "B105", "B106", "B107", "B108", "B110", "B111", "B112", "B113", "B201", "B202",
    "B301", "B302", "B303", "B304", "B305", "B306", "B307", "B308", "B310", "B311", "B312", "B313", "B314", "B315",
    "B316", "B317", "B318", "B319", "B320", "B321", "B323", "B324", "B401", "B402", "B403", "B405", "B406", "B407",
    "B408", "B409", "B412", "B413", "B501", "B502", "B503", "B504", "B505", "B506", "B507", "B508", "B509", "B601",
    "B602", "B603", "B604", "B605", "B606", "B607", "B608", "B609", "B610", "B611", "B612", "B613", "B614", "B615",
    "B701", "B702", "B703", "B704",
)
SECRETS_DISABLED = ("IPPublicDetector",)  # the one detector secrets_rules.json disables
SECRETS_EXCLUDE = r"metadata\.txt"
SUSPICIOUS = (".exe", ".dll", ".so", ".dylib", ".bat", ".sh", ".ps1", ".cmd")
SCANNER_CONFIGS = {".bandit", ".secrets.baseline", ".flake8", "setup.cfg", "tox.ini", "pyproject.toml",
                   "bandit.yaml", "bandit.yml", ".pre-commit-config.yaml"}
DEV_PARTS = {"tests", "test", "bench", "tools", "docs", "scripts", ".ci", "fixtures", "stubs", "dist"}
DEV_FILES = {"pytest.ini", "ruff.toml", "requirements.txt", "requirements-dev.txt", "constraints.txt",
             "README.md", "CHANGELOG.md", "conftest.py"}
_NOSEC = re.compile(r"#\s*nosec\b(?P<rest>.*)")
_NOSEC_FORM = re.compile(r"[:\s]+(?P<ids>B\d{3}(?:\s*,\s*B\d{3})*)\s*#\s*(?P<why>\S.{9,})")
_ALLOW = re.compile(r"pragma:\s?allowlist[ -](?:nextline[ -])?secret(?P<why>.*)")


@dataclass(frozen=True)
class Finding:
    """One broken rule: ``rule`` (e.g. ``B101``, ``UPLOAD_LICENSE``), where (``path[:line]``), what."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule:24} {self.where}: {self.message}"


def _metadata(text: str) -> Dict[str, str]:
    """[general] of metadata.txt as the site reads it; raises on what makes the site reject it."""
    parser = configparser.ConfigParser()  # with interpolation, like validator.py
    parser.optionxform = str
    parser.read_file(io.StringIO(text))
    if not parser.has_section("general"):
        raise ValueError("no [general] section")
    return dict(parser.items("general"))


def upload_rules(zip_path: Path, module: str = package.MODULE) -> List[Finding]:
    """The site's upload validation, plus: a single top folder named ``module``, an existing icon."""
    found: List[Finding] = []
    zname = zip_path.name

    def bad(rule: str, where: str, message: str) -> None:
        found.append(Finding(f"UPLOAD_{rule}", where, message))

    size = zip_path.stat().st_size
    if size > MAX_BYTES:
        bad("SIZE", zname, f"{size} bytes, over the {MAX_BYTES} bytes limit")
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        bad("ZIP", zname, f"not a zip file ({exc})")
        return found
    with zf:
        names = zf.namelist()
        for name in names:
            parts = name.split("/")
            if ".." in name or name.startswith(("/", "\\")):
                bad("PATH", name, "path information ('..' or an absolute path) is refused")
            if ".pyc" in name:
                bad("PYC", name, ".pyc files are refused")
            for forbidden in FORBIDDEN_DIRS:
                if forbidden in parts:
                    bad("FORBIDDEN_DIR", name, f"a '{forbidden}' folder is refused")
        broken = zf.testzip()
        if broken:
            bad("CRC", broken, "bad zip member (CRC error)")
        tops = sorted({n.split("/")[0] for n in names})
        if not names or "/" not in names[0]:
            bad("FOLDER", zname, "no folder inside the zip")
            return found
        top = names[0].split("/")[0]
        if len(tops) > 1:
            bad("FOLDER", zname, f"more than one top folder: {', '.join(tops)}")
        if not (re.fullmatch(r"[A-Za-z][A-Za-z0-9-_]+", top) and top.isidentifier()) or top != module:
            bad("FOLDER", top, f"the top folder must be the module name '{module}'")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{top}/{required}" not in names:
                bad(required.split(".")[0].upper().strip("_"), f"{top}/{required}", "missing")
        where = f"{top}/metadata.txt"
        if where not in names:
            return found
        try:
            meta = _metadata(zf.read(where).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, configparser.Error) as exc:
            bad("METADATA", where, f"does not parse as the site reads it: {exc}".replace("\n", " "))
            return found
        for key in REQUIRED:
            if not meta.get(key, "").strip():
                bad("METADATA", where, f"required field '{key}' is missing or empty")
        icon = meta.get("icon", "").strip()
        if icon and f"{top}/{icon.removeprefix('./')}" not in names:
            bad("ICON", where, f"icon '{icon}' is not in the zip")
        for key, placeholder in PLACEHOLDERS.items():
            url = meta.get(key, "").strip()
            parsed = urlparse(url)
            if url and (url == placeholder or not (parsed.scheme and parsed.netloc)):
                bad("URL", where, f"'{key}' is not a valid URL: '{url}'")
        if "/" in meta.get("author", ""):
            bad("AUTHOR", where, "the author cannot contain '/'")
        for flag in FLAGS:
            if flag in meta and meta[flag].strip().lower() not in ("true", "false"):
                bad("FLAG", where, f"'{flag}={meta[flag]}': write True or False (the site reads 'yes' as False)")
        version = meta.get("version", "").strip()
        if version and not re.fullmatch(r"\d+(\.\d+){1,3}", version):
            bad("VERSION", where, f"version '{version}' is not a dotted number such as 0.2.0")
    return found


def content_rules(zip_path: Path, repo: Optional[Path] = None) -> List[Finding]:
    """Only run-time files: no development material; with ``repo``, exactly what tools/package.py selects."""
    found: List[Finding] = []
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in infos:
            rel = info.filename.split("/", 1)[-1]
            parts = rel.split("/")
            base = parts[-1]
            if DEV_PARTS.intersection(parts[:-1]) or (len(parts) == 1 and base in DEV_FILES):
                found.append(Finding("CONTENT_DEV", info.filename, "development material in the plugin"))
            if any(part.startswith(".") for part in parts):
                found.append(Finding("FILE_HIDDEN", info.filename, "hidden file or folder"))
            if base in SCANNER_CONFIGS:
                found.append(Finding("FILE_SCANNER_CONFIG", info.filename, "configures the site's scanners"))
            if base.lower().endswith(SUSPICIOUS):
                found.append(Finding("FILE_SUSPICIOUS", info.filename, "executable or library file type"))
            if (info.external_attr >> 16) & 0o111:
                found.append(Finding("FILE_EXECUTABLE", info.filename, "has an executable bit"))
            if base.endswith(".py"):
                try:
                    compile(zf.read(info), info.filename, "exec", dont_inherit=True)
                except SyntaxError as exc:
                    found.append(Finding("E999", f"{info.filename}:{exc.lineno}", f"syntax error: {exc.msg}"))
        if repo is not None:
            have = {i.filename for i in infos}
            want = {f"{package.MODULE}/{f}" for f in package.select(package.tracked_files(Path(repo)))}
            found += [Finding("CONTENT_EXTRA", n, "not a run-time file of the repository") for n in sorted(have - want)]
            found += [Finding("CONTENT_MISSING", n, "run-time file not in the zip") for n in sorted(want - have)]
    return found


def suppression_rules(tree: Path) -> List[Finding]:
    """``# nosec`` must name its rules and give a reason after a second '#'; an allowlist pragma a reason."""
    found = []
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        with tokenize.open(path) as fh:
            comments = [t for t in tokenize.generate_tokens(fh.readline) if t.type == tokenize.COMMENT]
        for tok in comments:
            where = f"{rel}:{tok.start[0]}"
            nosec = _NOSEC.search(tok.string)
            if nosec and not _NOSEC_FORM.match(nosec.group("rest")):
                found.append(Finding("NOSEC_FORM", where, "write '# nosec B123  # reason' (rule ids, then why)"))
            allow = _ALLOW.search(tok.string)
            if allow and len(allow.group("why").strip(" -:#")) < 10:
                found.append(Finding("ALLOWLIST_FORM", where, "give the reason after 'pragma: allowlist secret'"))
    return found


def _run_json(args: Sequence[str], cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    try:
        return json.loads(out.stdout)
    except ValueError:
        raise RuntimeError(f"'{args[0]}' gave no report (exit {out.returncode}): {out.stderr[-500:]}") from None


def bandit_rules(tree: Path) -> List[Finding]:
    """bandit with every enabled test; a ``# nosec`` that hides nothing is reported as stale."""
    base = ["bandit", "-r", ".", "-f", "json", "-q", "-t", ",".join(BANDIT_TESTS)]
    report = _run_json(base, tree)
    found = [Finding(r["test_id"], f"{Path(r['filename']).as_posix().removeprefix('./')}:{r['line_number']}",
                     r["issue_text"]) for r in report["results"]]
    found += [Finding("BANDIT_ERROR", e.get("filename", "?"), e.get("reason", "")) for e in report["errors"]]
    hidden = {(Path(r["filename"]).as_posix().removeprefix("./"), r["test_id"], line)
              for r in _run_json([*base, "--ignore-nosec"], tree)["results"] for line in r["line_range"]}
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        for lineno, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            form = _NOSEC.search(text) and _NOSEC_FORM.match(_NOSEC.search(text).group("rest"))
            for rule in re.findall(r"B\d{3}", form.group("ids")) if form else ():
                if (rel, rule, lineno) not in hidden:
                    found.append(Finding("NOSEC_STALE", f"{rel}:{lineno}", f"bandit finds no {rule} here"))
    return found


def secrets_rules(tree: Path) -> List[Finding]:
    """detect-secrets as the site runs it: all files, metadata.txt excluded, IPPublicDetector off."""
    args = ["detect_secrets", "scan", "--all-files", "--exclude-files", SECRETS_EXCLUDE]
    for plugin in SECRETS_DISABLED:
        args += ["--disable-plugin", plugin]
    report = _run_json([*args, "."], tree)
    return [Finding(s["type"].replace(" ", ""), f"{name}:{s['line_number']}", "potential secret")
            for name, secrets in sorted(report["results"].items()) for s in secrets]


SCANNERS = (("bandit", "bandit", bandit_rules), ("detect-secrets", "detect_secrets", secrets_rules))


def check(zip_path: Path, repo: Optional[Path] = None, scan: str = "auto") -> List[Finding]:
    """Every rule above on ``zip_path``; prints one line per group of rules."""
    findings: List[Finding] = []

    def group(title: str, got: List[Finding]) -> None:
        print(f"{title}: {len(got)} finding(s)")
        findings.extend(got)

    group("upload rules", upload_rules(zip_path))
    if any(f.rule == "UPLOAD_ZIP" for f in findings):
        return findings
    group("contents and file analysis", content_rules(zip_path, repo))
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tree)
        group("suppression comments", suppression_rules(tree))
        for tool, module, run in SCANNERS:
            if scan == "off":
                print(f"{tool}: not run (--scan off)")
            elif importlib.util.find_spec(module) is not None:
                group(f"{tool} {importlib.metadata.version(tool)}", run(tree))
            elif scan == "require":
                group(tool, [Finding("SCAN_TOOL", tool, f"not installed: pip install {tool}")])
            else:
                print(f"{tool}: not installed, skipped")
    return findings


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zip", type=Path)
    parser.add_argument("--repo", type=Path, help="also compare the zip with this checkout's run-time files")
    parser.add_argument("--scan", choices=("auto", "require", "off"), default="auto",
                        help="bandit and detect-secrets: run if installed (auto), must run (require), or skip")
    parser.add_argument("--json", type=Path, help="write the findings to this file as JSON")
    args = parser.parse_args(argv)
    if not args.zip.is_file():
        print(f"check_package: no zip at {args.zip}; build it with: bash scripts/package.sh", file=sys.stderr)
        return 2
    findings = check(args.zip, args.repo, args.scan)
    with zipfile.ZipFile(args.zip) as zf:
        count = sum(1 for i in zf.infolist() if not i.is_dir())
    print(f"{args.zip}: {args.zip.stat().st_size} bytes, {count} files")
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in findings], indent=1), encoding="utf-8")
    for f in findings:
        print(f)
    counts: Dict[str, int] = {}
    for f in findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    print("FAILED: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) if findings else "OK")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

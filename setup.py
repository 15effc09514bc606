"""Build step of the Python package (pyproject.toml holds the metadata): compiles the shared library with cargo
and ships it inside the package, so the wheel carries the same librateclust.so (same C ABI) the C users link.

  - `cargo build --release --lib` in this repository, into $CARGO_TARGET_DIR (default: ./target): CI, which has
    already built the crate in release for `cargo test --release`, reuses that build instead of starting over.
  - $RATECLUST_PREBUILT_LIB=/path/to/librateclust.so skips cargo and packages that file instead.
The wheel is platform-specific (it holds a native library) but independent of the Python version (ctypes, no
extension module), hence the py3-none-<platform> tag.
"""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel

ROOT = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = {"darwin": "librateclust.dylib", "win32": "rateclust.dll"}.get(sys.platform, "librateclust.so")


def built_library():
    prebuilt = os.environ.get("RATECLUST_PREBUILT_LIB")
    if prebuilt:
        return prebuilt
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    cargo = os.environ.get("CARGO", "cargo")
    print("rateclust: %s build --release --lib (CARGO_TARGET_DIR=%s)" % (cargo, target), flush=True)
    subprocess.check_call([cargo, "build", "--release", "--lib"], cwd=ROOT,
                          env=dict(os.environ, CARGO_TARGET_DIR=target))
    return os.path.join(target, "release", LIB_NAME)


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        src = built_library()
        if not os.path.exists(src):
            raise RuntimeError("rateclust: %s was not built" % src)
        dst = os.path.join(self.build_lib, "rateclust", LIB_NAME)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)


class NativeDistribution(Distribution):
    def has_ext_modules(self):
        return True  # a platform wheel: it ships a native library


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


# setuptools' scratch folders go under target/ (ignored by git, next to cargo's output), not into the source tree.
SCRATCH = os.path.join("target", "pybuild")
os.makedirs(os.path.join(ROOT, SCRATCH), exist_ok=True)
setup(distclass=NativeDistribution, cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
      options={"build": {"build_base": SCRATCH}, "egg_info": {"egg_base": SCRATCH}})

"""Builds the c3 Python package's extension, c3._c3, with CMake (pyproject.toml has the rest).

The module links the C++ library statically and LibTorch dynamically: it must be built against
the LibTorch of the torch that will import it. CMake finds that LibTorch the usual way (Debian's
libtorch-dev), or through torch.utils.cmake_prefix_path (PyTorch from pip), Torch_DIR, or
CMAKE_PREFIX_PATH in the environment.

Environment:
  C3_BUILD_DIR=DIR   reuse a CMake build folder configured with -DC3_PYTHON=ON (as scripts/test.sh
                     configures build/): only the _c3 target is brought up to date there, so CI
                     does not build the library twice.
  C3_PYTHON_BUILD_DIR=DIR  where to build otherwise (default: build-python/ in the repo).
  C3_BUILD_JOBS=N    parallel compile jobs (default: the number of cores).
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def cmake_args() -> list:
    args = [
        "-DCMAKE_BUILD_TYPE=Release", "-DC3_PYTHON=ON", "-DC3_BUILD_TESTS=OFF",
        "-DC3_BUILD_BENCH=OFF", f"-DPython3_EXECUTABLE={sys.executable}",
    ]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if shutil.which("ccache"):
        args.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
    try:  # PyTorch from pip ships its CMake files; Debian's python3-torch does not
        import torch.utils
        prefix = getattr(torch.utils, "cmake_prefix_path", None)
    except ImportError:
        prefix = None
    if prefix:  # CMake also searches $CMAKE_PREFIX_PATH on its own
        args.append(f"-DCMAKE_PREFIX_PATH={prefix}")
    if os.environ.get("Torch_DIR"):
        args.append(f"-DTorch_DIR={os.environ['Torch_DIR']}")
    return args


def run(cmd: list) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        jobs = os.environ.get("C3_BUILD_JOBS", str(os.cpu_count() or 2))
        given = os.environ.get("C3_BUILD_DIR")
        build_dir = Path(given or os.environ.get("C3_PYTHON_BUILD_DIR", ROOT / "build-python"))
        if given:
            cache = build_dir / "CMakeCache.txt"
            if not cache.is_file() or "C3_PYTHON:BOOL=ON" not in cache.read_text():
                sys.exit(f"C3_BUILD_DIR={build_dir} is not a CMake build configured with "
                         "-DC3_PYTHON=ON; configure it so, or unset C3_BUILD_DIR to build here")
        else:
            run(["cmake", "-S", str(ROOT), "-B", str(build_dir)] + cmake_args())
        run(["cmake", "--build", str(build_dir), "--target", "_c3", "-j", jobs])
        built = build_dir / "python" / "c3" / ("_c3" + sysconfig.get_config_var("EXT_SUFFIX"))
        if not built.is_file():
            sys.exit(f"{built} was not built: is {build_dir} configured for this Python "
                     f"({sys.executable})? Its module is named for another one.")
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)


(ROOT / "build-pip").mkdir(exist_ok=True)
setup(
    ext_modules=[Extension("c3._c3", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    # setuptools' own scratch folders, away from CMake's build/.
    options={"build": {"build_base": "build-pip"}, "egg_info": {"egg_base": "build-pip"}},
)

"""The module keeps its code to itself: besides its init function it exports none of c3's own
symbols and none of the header-only library code built into it (nlohmann::json, fmt, CLI11,
pybind11, xxHash). An exported one can be bound by the dynamic linker to a same-named definition
that `import torch` loaded first, from other versions of those headers (python/CMakeLists.txt)."""
import re
import shutil
import subprocess

import pytest

import c3._c3 as native

OWN = re.compile(r"^(c3::|nlohmann::|fmt::|CLI::|pybind11::|XXH)")


def exported(path: str) -> list:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "-C", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    # "<address> <type> <name>"; names may hold spaces.
    return [line.split(" ", 2)[2] for line in out.splitlines() if line.count(" ") >= 2]


def test_module_exports_only_its_init_of_its_own_code():
    names = exported(native.__file__)
    assert "PyInit__c3" in names
    own = [n for n in names if OWN.match(n)]
    assert own == [], f"{len(own)} of c3's or its libraries' symbols exported, e.g. {own[:5]}"

"""examples/python/demo.py runs on the installed package and prints what every bindings demo prints (the C++ and Go
ones are checked for the same lines by tests/common/mod.rs `assert_bindings_demo_output`)."""

import os
import re
import subprocess
import sys

from conftest import IMAGE, REPO, TINY_CLIP


def test_python_demo_runs_on_the_package(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, os.path.join(REPO, "examples", "python", "demo.py"), str(tmp_path), TINY_CLIP,
                        IMAGE], capture_output=True, text=True, timeout=300, env=env)
    text = r.stdout
    assert r.returncode == 0, "demo.py failed:\n%s\n%s" % (text, r.stderr)
    assert "fitted: k = 4, dim = 24" in text
    assert int(re.search(r"progress calls: (\d+)", text).group(1)) > 0
    assert float(re.search(r"metrics: acc ([0-9.]+)", text).group(1)) >= 0.9, text
    for line in ("save/load: same labels for all 800 points", "embedded 3 texts and 2 images of dim 24",
                 "cluster 0 is named", "embedded 2 raw frames (RGB8 == BGR8)", "set_k: now ",
                 "default vocabulary: 998 names, first 'tench'", "callback exception propagated: stop here",
                 "expected error (INVALID_ARGUMENT): invalid argument: features have dimension 25",
                 "expected error (NON_FINITE): non-finite input: features[5]", "expected error (IO): I/O error"):
        assert line in text, "%r missing from:\n%s" % (line, text)
    assert text.rstrip().endswith("ok")

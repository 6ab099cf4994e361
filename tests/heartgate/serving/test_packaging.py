"""What the artifacts ship is derived from the service's own imports: the bento's and the Lambda
zip's project files must hold every project module their entry point really loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from heartgate.core.config import PROJECT_ROOT
from heartgate.serving.bento import SERVICE_MODULE
from heartgate.serving.packaging import PROJECT_PACKAGES, module_files
from heartgate.serving.targets.aws.package import HANDLER_MODULE

_LOADED = """
import json, sys
__import__(sys.argv[1])
project = set(sys.argv[2].split(","))
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.split(".")[0] in project and getattr(m, "__file__", None))))
"""


def loaded_project_files(entry: str) -> set[str]:
    """The project files a fresh interpreter has loaded after importing `entry`."""
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, entry, ",".join(PROJECT_PACKAGES)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {str(Path(path).resolve().relative_to(PROJECT_ROOT)) for path in json.loads(result.stdout)}


@pytest.mark.parametrize("entry", [HANDLER_MODULE, SERVICE_MODULE])
def test_the_artifact_ships_every_project_module_its_entry_point_imports(entry):
    shipped = set(module_files(entry))
    assert loaded_project_files(entry) - shipped == set()


def test_the_lambda_zip_ships_no_training_or_orchestration_code():
    shipped = module_files(HANDLER_MODULE)
    assert "service/lambda_handler.py" in shipped and "heartgate/serving/served_model.py" in shipped
    assert not [path for path in shipped if path.startswith(("tasks/", "flows/")) or path in ("heartgate/ml/training.py", "heartgate/core/config.py")]


def test_an_import_anywhere_in_a_module_adds_the_imported_file(tmp_path):
    (tmp_path / "service").mkdir()
    (tmp_path / "heartgate").mkdir()
    (tmp_path / "service" / "__init__.py").write_text("")
    (tmp_path / "heartgate" / "__init__.py").write_text("")
    (tmp_path / "service" / "entry.py").write_text("import json\n\ndef f():\n    from heartgate import helper\n")
    (tmp_path / "heartgate" / "helper.py").write_text("from heartgate.deep import x\n")
    (tmp_path / "heartgate" / "deep.py").write_text("x = 1\n")
    (tmp_path / "heartgate" / "unused.py").write_text("")
    assert module_files("service.entry", root=tmp_path) == [
        "heartgate/__init__.py",
        "heartgate/deep.py",
        "heartgate/helper.py",
        "service/__init__.py",
        "service/entry.py",
    ]

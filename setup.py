"""Build hook: ship the top-level ``notebooks/`` with the package as ``crackkit/notebooks/``.

All metadata lives in pyproject.toml. The notebooks have ONE source, the top-level ``notebooks/``
folder; a regular build (wheel, ``pip install .``) copies its ``*.ipynb`` files into the built
package, so an installed ``crackkit run`` finds them as package data. An editable install
(``pip install -e .``) copies nothing: it runs from the clone and uses ``notebooks/`` directly
(see ``crackkit.paths.NOTEBOOKS_DIR``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS_SRC = "notebooks"  # relative to the project root, where setuptools runs the build
NOTEBOOKS_PKG = ("crackkit", "notebooks")  # inside the built package


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies ``notebooks/*.ipynb`` into ``BUILD_LIB/crackkit/notebooks``."""

    def _notebook_mapping(self) -> dict[str, str]:
        if self.editable_mode:
            return {}
        target = os.path.join(self.build_lib, *NOTEBOOKS_PKG)
        return {
            os.path.join(target, nb.name): str(nb)
            for nb in sorted(Path(NOTEBOOKS_SRC).glob("*.ipynb"))
        }

    def run(self) -> None:
        super().run()
        mapping = self._notebook_mapping()
        if not mapping:
            return
        target = os.path.join(self.build_lib, *NOTEBOOKS_PKG)
        # a notebook deleted from notebooks/ must not survive in a reused build/ folder
        shutil.rmtree(target, ignore_errors=True)
        self.mkpath(target)
        for dst, src in mapping.items():
            self.copy_file(src, dst, preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *self._notebook_mapping()]

    def get_output_mapping(self) -> dict[str, str]:
        return {**super().get_output_mapping(), **self._notebook_mapping()}


setup(cmdclass={"build_py": BuildPyWithNotebooks})

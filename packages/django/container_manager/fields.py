"""Model fields of the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from container_manager_core.logtext import storable_text

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable

    _TextField = models.TextField[str | Combinable, str]
else:
    _TextField = models.TextField  # Django's fields are not subscriptable at run time


class StorableTextField(_TextField):
    """A text field that stores any ``str``: NUL and lone surrogates, which no database takes, are replaced.

    The worker makes a job's output storable where it becomes row fields, counting what it
    replaces; this is the net under every other text that may quote it or an engine's words
    (``last_error``, ``docker_log``), whichever path writes them: ``save()``, ``update()`` or the
    worker's guarded UPDATE. Storable text passes unchanged (see ``logtext.storable_text``).
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return storable_text(value)[0] if isinstance(value, str) else value

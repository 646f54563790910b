"""An executor plugin of type ``sample`` built on container-manager-core alone."""

from __future__ import annotations

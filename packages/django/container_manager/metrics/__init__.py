"""A Prometheus endpoint for the queue, the hosts and the workers; opt in by including ``metrics.urls``.

It needs ``prometheus_client``: ``pip install "container-manager-django[metrics]"``.
"""

from __future__ import annotations

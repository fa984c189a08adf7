"""Parameters of a flow run, stored with the run in the ``runs`` layer.

Each flow (``monitor``, ``scan``) subclasses :class:`RunParams` with its own dataclass, so what
a run was asked to do is stored beside what it did, in one JSON form.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class RunParams:
    """Parameters of a flow run, as stored in ``runs.params`` (dates as ISO strings)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()}

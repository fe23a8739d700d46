"""``_("text")`` for the Qt-free panel files: Slicer's translation (``slicer.i18n.tr``) inside Slicer, the
text itself elsewhere. Written as ``_()`` calls so that Slicer's string extraction finds them."""
from __future__ import annotations


def tr(text: str) -> str:
    try:
        from slicer.i18n import tr as slicer_tr
    except ImportError:  # plain Python (tests, the CLI): no translation
        return text
    return slicer_tr(text)

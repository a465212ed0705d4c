"""Shared test set-up.

Qt runs offscreen (no display on CI machines); set before anything imports Qt.
Area-specific fixtures live in the test modules of that area or in
``tests/_<area>.py`` helpers imported from here.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

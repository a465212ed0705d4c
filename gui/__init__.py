"""The rtconv desktop app (PyQt6 + pyqtgraph); see ``rtconv gui``."""

"""One router per resource; mounted in ``kehu.api.urls``."""

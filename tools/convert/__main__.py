"""``python -m tools.convert <detector|analyzer> ...``: see ``tools.convert.main``."""

from tools.convert import main

raise SystemExit(main())

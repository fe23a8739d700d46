"""``python -m DicomTeamAnnotateLib.demo``: see ``driver``."""
import sys

from DicomTeamAnnotateLib.demo.driver import main

sys.exit(main())

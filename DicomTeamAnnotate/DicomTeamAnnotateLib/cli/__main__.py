"""``python -m DicomTeamAnnotateLib.cli ...`` is ``dicomteam ...``."""
import sys

from DicomTeamAnnotateLib.cli.main import main

sys.exit(main())

"""A harness that runs the extension the way Slicer 5.12 runs it, without a Slicer binary.

- ``layout``: lays the modules out as Slicer's build installs them (each CMakeLists.txt's
  scripts and resources into one ``qt-scripted-modules`` folder) and refuses two files that land
  on one path.
- ``environment``: a Python environment holding exactly Slicer 5.12's bundled packages plus
  ``slicer-core`` (real MRML) and nothing else; each harness run gets a throwaway environment
  on top of it, so a first-use install really installs, and leaves the base untouched.
- ``standins/``: Slicer's application-level Python modules that ``slicer-core`` lacks (qt, ctk,
  slicer.ScriptedLoadableModule, slicer.i18n, slicer.parameterNodeWrapper, slicer.packaging,
  the Segment Editor effect factory, the PyTorch extension's PyTorchUtils). Slicer's own
  ``slicer.util`` (shipped in slicer-core) runs unchanged on top of them.
- ``app``: the application: module registration, instantiation and loading in Slicer's order,
  ``startupCompleted``, panels, the main-thread event loop, and a guard that fails a run when a
  slicer, qt or MRML call happens on another thread.
- ``run``: the entry point run inside the Slicer environment (a scenario in, JSON out);
  ``scenarios/``: what the tests do inside it.

Testing/slicer_support.py starts runs from pytest.
"""

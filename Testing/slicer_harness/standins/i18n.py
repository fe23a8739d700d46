"""A stand-in for ``slicer.i18n``: ``tr`` and ``translate`` return the source text (no translation loaded).

Like Slicer's, ``tr`` takes the text and ``translate`` a context and the text; both are plain
functions usable on any thread (they only read the translation tables).
"""


def tr(text):
    return text


def translate(context, text):
    return text


def getContext(sourceFile):
    return sourceFile

"""Small helpers the module widgets use to copy panel-model outputs into Qt widgets (PythonQt).

Only the module widgets call these, inside Slicer (or the harness); Qt is imported inside.
"""
from __future__ import annotations

ID_ROLE = 256  # qt.Qt.UserRole: where a row's id is kept


def fill_table(table, rows, ids=None, selected_id=None) -> None:
    """``rows`` (tuples of strings) into ``table``; each row's id (``ids``) kept in its cells; re-select ``selected_id``."""
    import qt

    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, text in enumerate(cells):
            item = qt.QTableWidgetItem(str(text))
            item.setToolTip(str(text))
            if ids is not None:
                item.setData(qt.Qt.UserRole, ids[r])
            table.setItem(r, c, item)
        if ids is not None and selected_id is not None and ids[r] == selected_id:
            table.selectRow(r)
    table.resizeColumnsToContents()


def selected_row_id(table):
    """The id kept in the selected row of ``table``, or None."""
    import qt

    row = table.currentRow()
    item = table.item(row, 0) if row >= 0 else None
    return item.data(qt.Qt.UserRole) if item is not None else None


def bind_path(path_edit, setter) -> None:
    """Forward a ctkPathLineEdit's path to ``setter``, clearing included.

    ctkPathLineEdit emits currentPathChanged only for text its validator accepts, so clearing the
    field emits nothing but validInputChanged(false): both are connected.
    """
    path_edit.connect("currentPathChanged(QString)", setter)
    path_edit.connect("validInputChanged(bool)", lambda valid: None if valid else setter(path_edit.currentPath))


def fill_combo(combo, items, current=None) -> None:
    """(data, text) pairs into ``combo`` without emitting, then select ``current`` (data)."""
    was = combo.blockSignals(True)
    try:
        combo.clear()
        for data, text in items:
            combo.addItem(text, data)
        if current is not None:
            index = combo.findData(current)
            if index >= 0:
                combo.setCurrentIndex(index)
    finally:
        combo.blockSignals(was)


def set_text(widget, text) -> None:
    """Set a line edit's text only when it differs (no textChanged echo while the user types)."""
    if widget.text != text:
        widget.text = text

"""Modal screens of the control center: launch dialogs, confirmation, help."""
